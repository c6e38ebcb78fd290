"""Inputs of ``trace convert`` beyond one whole file: a cut at a start address, several inputs.

- ``--start-at ADDR`` drops every record before the first instruction fetch at ADDR: the
  way to keep only a program's phase of interest (XSBench's lookup loop) from a trace of
  the whole program. Records are kept from that fetch on, in every input.
- Several single-thread inputs become one trace with one thread per input (tid = the
  input's position), interleaved by record count: each round takes the same number of
  records from every input still open. Threads advance at equal record rates, as the replay
  consumes them, so its per-thread buffers stay small; the replay decides the real
  interleaving (model.md §2). The inputs share one address space (threads of one process).
- ``trace merge`` interleaves the same way, inputs of any thread count, as the processes or
  threads that ``layout.py`` assigns (a version-2 trace).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import TraceError, UserError
from .layout import Layout
from .native import OP_IFETCH, Batch, TraceMeta
from .processes import pid_table
from .readers import ReaderProtocol, ReadStats

ROUND_RECORDS = 1 << 16  # records per input per round: the replay's per-CPU buffer size


def parse_address(text: str) -> int:
    """A hex address, with or without ``0x`` (nm prints it without)."""
    try:
        value = int(text.strip().lower().removeprefix("0x"), 16)
    except ValueError:
        raise UserError(f"--start-at: expected a hex address such as 0x404680 (from nm), "
                        f"got {text!r}") from None
    if value >= 1 << 64:
        raise UserError(f"--start-at: address {text!r} is outside the 64-bit address space")
    return value


class StartAt:
    """A reader whose records begin at the first instruction fetch at ``addr``."""

    def __init__(self, reader: ReaderProtocol, addr: int):
        self.reader = reader
        self.addr = addr
        self.format_name = reader.format_name
        self.path = reader.path
        self.skipped_records = 0

    @property
    def stats(self) -> ReadStats:
        return self.reader.stats

    def base_meta(self) -> TraceMeta:
        return self.reader.base_meta()

    def iter_batches(self) -> Iterator[Batch]:
        batches = self.reader.iter_batches()
        want = np.uint64(self.addr)
        for b in batches:
            hit = np.flatnonzero((b.op == OP_IFETCH) & (b.addr == want))
            if len(hit) == 0:
                self.skipped_records += len(b)
                continue
            k = int(hit[0])
            self.skipped_records += k
            self.stats.notes.append(f"{self.path}: started at the first fetch of {self.addr:#x} "
                                    f"(record {self.skipped_records:,}); "
                                    f"{self.skipped_records:,} records before it dropped")
            yield b.cut(k)
            yield from batches
            return
        raise TraceError(self.path, f"no instruction fetch at {self.addr:#x} (--start-at): an "
                                    f"address from nm of the traced binary is the runtime address "
                                    f"only for a binary linked without PIE (-no-pie)")


def _chunks(batches: Iterator[Batch], n: int) -> Iterator[Batch]:
    """Pieces of exactly ``n`` records (the last may be shorter)."""
    parts: list[Batch] = []
    have = 0
    for b in batches:
        parts.append(b)
        have += len(b)
        while have >= n:
            whole = _concat(parts)
            yield whole.cut(0, n)
            parts = [whole.cut(n)]
            have -= n
    if have:
        yield _concat(parts)


def _concat(parts: list[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    cols = [np.concatenate([getattr(b, c) for b in parts]) for c in ("tid", "op", "addr", "size")]
    pid = None if any(b.pid is None for b in parts) else np.concatenate([b.pid for b in parts])
    return Batch(*cols, pid)


class Interleaved:
    """Several readers as one reader. Without a layout (``convert``): single-thread inputs,
    input k is thread k of one process (version 1). With one (``merge``): input k's thread t
    is thread ``layout.tid_offset[k] + t``, of the process the layout gives it (version 2)."""

    def __init__(self, readers: list[ReaderProtocol], round_records: int | None = None,
                 layout: "Layout | None" = None):
        self.readers = readers
        self.round = round_records or ROUND_RECORDS
        formats = list(dict.fromkeys(r.format_name for r in readers))
        self.format_name = "+".join(formats)
        self.path = readers[0].path
        self._metas = [r.base_meta() for r in readers]
        self.layout = layout
        if layout is None:
            for r, meta in zip(readers, self._metas):
                if meta.threads > 1:
                    raise UserError(f"{r.path}: has {meta.threads} threads; several inputs must "
                                    f"each be a single-thread trace (one input becomes one thread)")
        self.stats = ReadStats()

    @property
    def metas(self) -> list[TraceMeta]:
        """Each input's metadata, as its reader gives it."""
        return self._metas

    def base_meta(self) -> TraceMeta:
        if self.layout is not None:
            return self.layout.meta
        meta = dataclasses.replace(self._metas[0], source=self.format_name, threads=len(self.readers),
                                   regions=(), generator=None, processes=())
        return meta

    def iter_batches(self) -> Iterator[Batch]:
        streams = [_chunks(r.iter_batches(), self.round) for r in self.readers]
        offsets = self.layout.tid_offset if self.layout else tuple(range(len(streams)))
        pids = pid_table(self.layout.meta.processes) if self.layout else None
        open_ = list(range(len(streams)))
        while open_:
            still = []
            for k in open_:
                piece = next(streams[k], None)
                if piece is None:
                    continue
                still.append(k)
                tid = (piece.tid + np.uint16(offsets[k]) if self.layout
                       else np.full(len(piece), k, np.uint16))
                yield Batch(tid, piece.op, piece.addr, piece.size,
                            None if pids is None else pids[tid])
            open_ = still
        self._sum_stats()

    def _sum_stats(self) -> None:
        s = self.stats
        for r, meta in zip(self.readers, self._metas):
            s.lines += r.stats.lines
            s.records += r.stats.records
            s.skipped += r.stats.skipped
            s.notes += r.stats.notes
            if meta.regions and self.layout is None:
                s.notes.append(f"{r.path}: its regions metadata is dropped (inputs merged)")


def open_inputs(srcs: list[Path], open_one, start_at: int | None = None) -> ReaderProtocol:
    """One reader over ``srcs``: each opened with ``open_one(path)``, cut at ``start_at``."""
    readers = [open_one(p) for p in srcs]
    if start_at is not None:
        readers = [StartAt(r, start_at) for r in readers]
    return readers[0] if len(readers) == 1 else Interleaved(readers)
