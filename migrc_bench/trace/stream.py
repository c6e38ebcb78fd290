"""A config's ``trace.generate`` replayed as it is generated: no trace file (``trace.keep =
false``, or ``--stream`` on run and compare).

``GeneratedTrace`` offers what the replay reads of a ``TraceReader`` (``path``, ``meta``,
``num_rows``, ``iter_batches``), so the model takes it as one more batch source behind the
same reader protocol (model/feeder.py, model/prefetch.py) and never imports the generators.
The generator runs on a thread of its own (its numba kernels release the GIL, so it runs on
the second core) and hands its blocks over through a bounded queue (``gencore.BlockSink``):
memory is a few blocks plus the program's data, whatever the trace length.

The batches are cut exactly where a written file's would be (row groups of
``ROW_GROUP_ROWS`` rows, read ``batch_rows`` at a time), so the replay sees the same batches
in the same order and its counters are identical to replaying the written file.

A streamed trace has no file to hash: its ``sha256`` is the SHA-256 of the generator's
canonical parameter record (the JSON a written trace carries as ``migrc_bench.generator``,
keys sorted), recorded in runs.parquet's ``trace_sha256``; ``trace`` is ``stream:`` and the
arguments. The pre-pass (a steady-state start or hot placement needs the page set before
the first access) is one streamed pass of its own, cached under that hash as a file's is.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError
from .gencore import BlockSink
from .generated import record
from .generators import from_args
from .native import COLUMNS, ROW_GROUP_ROWS, Batch, TraceMeta

_END = object()


@dataclass(frozen=True)
class StreamSpec:
    """A trace to generate and replay without a file: picklable, for compare's workers."""

    text: str  # trace.generate

    def __str__(self) -> str:
        return f"stream:{self.text}"


def stream_sha256(params: Any) -> str:
    """The deterministic stand-in for a streamed trace's file hash (module docstring)."""
    return hashlib.sha256(json.dumps(record(params), sort_keys=True).encode()).hexdigest()


class GeneratedTrace:
    """The reader protocol over a generator; each ``iter_batches`` runs the generator afresh
    (the first one reuses the run started to learn the metadata)."""

    def __init__(self, spec: StreamSpec | str):
        self.spec = spec if isinstance(spec, StreamSpec) else StreamSpec(spec)
        self.gen, self.params = from_args(self.spec.text)
        self.path = Path(str(self.spec))
        self.sha256 = stream_sha256(self.params)
        # an estimate (the progress bar's total): the generators know their length only roughly
        self.num_rows = max(1, int(self.gen.expected_records(self.params)))
        self._runs: list[tuple[BlockSink, threading.Thread]] = []
        self._first = self._start()
        self.meta: TraceMeta = self._take(self._first)  # type: ignore[assignment]

    def _start(self) -> BlockSink:
        sink = BlockSink()

        def produce() -> None:
            try:
                self.gen.generate(sink, self.params)
                sink.put(_END)
            except BaseException as exc:  # noqa: BLE001 - raised in the replay, in order
                sink.put(exc)

        thread = threading.Thread(target=produce, name="migrc-bench trace generator", daemon=True)
        self._runs.append((sink, thread))
        thread.start()
        return sink

    @staticmethod
    def _take(sink: BlockSink) -> object:
        item = sink.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _blocks(self, sink: BlockSink) -> Iterator[tuple[np.ndarray, ...]]:
        try:
            while (item := self._take(sink)) is not _END:
                yield item  # type: ignore[misc]
        finally:
            sink.close()

    def iter_batches(self, batch_rows: int = ROW_GROUP_ROWS) -> Iterator[Batch]:
        """The trace as a file of it would be read: row groups of ROW_GROUP_ROWS rows, each cut
        into batches of ``batch_rows``."""
        if self._first is not None:
            sink, self._first = self._first, None
        else:
            sink = self._start()
            meta = self._take(sink)
            if meta != self.meta:
                raise ConfigError(f"{self.path}: the generator is not deterministic")
        pending: list[tuple[np.ndarray, ...]] = []
        have = 0
        in_group = 0  # rows of the current row group already handed out
        blocks = self._blocks(sink)
        done = False
        while True:
            want = min(batch_rows, ROW_GROUP_ROWS - in_group)
            while have < want and not done:
                block = next(blocks, None)
                if block is None:
                    done = True
                else:
                    pending.append(block)
                    have += len(block[0])
            if have == 0:
                return
            take = min(want, have)
            cols = [np.concatenate([b[i] for b in pending]) if len(pending) > 1 else pending[0][i]
                    for i in range(len(COLUMNS))]
            yield Batch(*(c[:take] for c in cols))
            rest = tuple(c[take:] for c in cols)
            have -= take
            pending = [rest] if have else []
            in_group = (in_group + take) % ROW_GROUP_ROWS

    def close(self) -> None:
        """Stop every generator run still going (the replay ended, early or not)."""
        for sink, thread in self._runs:
            sink.close()
            if thread.is_alive():  # not if an interrupt came before it started (or it ended)
                thread.join(timeout=5)
        self._runs = []
