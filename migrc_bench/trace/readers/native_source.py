"""Our own Parquet traces seen through the reader protocol, so ``convert`` and ``info`` take
them like any other format (re-writing one re-chunks it and checks every row)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import numpy as np

from ..native import Batch, TraceMeta, TraceReader
from .protocol import ReadStats
from .streams import CHUNK_BYTES, check_file


class NativeSource:
    """A native trace. Its metadata (source, regions, generator) is carried over as it is.

    ``renumber_threads`` (set by ``convert``): write thread ids 0..N-1, which ``run`` accepts
    on N CPUs; ``info`` leaves them as they are.
    """

    format_name = "native"
    renumber_threads = False

    def __init__(self, path: str | Path, chunk_bytes: int = CHUNK_BYTES):
        self.path = Path(path)
        check_file(self.path)
        self.reader = TraceReader(self.path)
        self.stats = ReadStats()
        self._ids: np.ndarray | None = None

    def base_meta(self) -> TraceMeta:
        """The input's metadata, with ``threads`` recounted from the tid column (as
        renumbered when ``renumber_threads`` is set). A version-2 trace declares its threads
        (0..N-1, each in one process): nothing to recount or renumber."""
        if self.reader.meta.processes:
            return self.reader.meta
        ids = self._tids()
        threads = len(ids) if self.renumber_threads or not len(ids) else int(ids[-1]) + 1
        return dataclasses.replace(self.reader.meta, threads=threads)

    def _tids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = self.reader.thread_ids()
        return self._ids

    def iter_batches(self) -> Iterator[Batch]:
        """The records; with ``renumber_threads``, thread ids 0..N-1 in order when they are
        not already (``run`` puts thread t on CPU t: ids 3, 17 and 42 would need 43 CPUs)."""
        ids = self._tids() if not self.reader.meta.processes else np.zeros(0, np.uint16)
        remap = None
        if self.renumber_threads and len(ids) and int(ids[-1]) != len(ids) - 1:
            remap = np.zeros(1 << 16, np.uint16)
            remap[ids] = np.arange(len(ids), dtype=np.uint16)
            shown = ", ".join(str(int(t)) for t in ids[:6]) + (", ..." if len(ids) > 6 else "")
            self.stats.notes.append(f"thread ids {shown} renumbered 0..{len(ids) - 1}")
        for batch in self.reader.iter_batches():
            self.stats.lines += len(batch)
            self.stats.records += len(batch)
            if remap is not None:
                batch = Batch(remap[batch.tid], batch.op, batch.addr, batch.size, batch.pid)
            yield batch
