"""Rows read for a thread that its CPU has not reached yet, in bounded memory.

A multi-thread trace is read in file order, so the threads that run ahead decide how far the
reading gets; the rows of the threads behind them wait. How far a thread falls behind grows
with the run when its CPU is systematically slower (kswapd shares it, more CXL accesses): in
XSBench at 10^9 accesses, 25 M rows (200 MB). Past a budget of rows held in memory, the newest
rows of the thread holding the most are parked in an unlinked temporary file (appended, read
back in order when the thread gets to them), so the replay's memory does not grow with the
trace's length. Where the rows wait changes nothing the replay computes.

A parked row is 4.25 bytes, not the 8 it has in memory: its page id, and its access kind in
two bits. The op word's other bits are the page's low vpn bits (kernel.VPN_BITS), which the
page map gives again when the row is read back (``page_vpn[pid]``, as pagemap's mapping made
them). 512 M of xsbench-cxl16's 911 M rows go through the file; at 8 bytes a row, sampled
replays spent 4.3 s of 23 s in parking and reading back (14 s of 50 s in a run whose writes
met this disk's ~300 MB/s), 3.7 s at 4.25 bytes (benchmarks/README.md).
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from typing import Callable

import numpy as np
from numba import njit

from .pagemap import op_word

# Rows (8 bytes each: page id and op word) the pending queues may hold in memory in all: 32 MB.
BUDGET_ROWS = 1 << 22
_HEADER = np.dtype("<i8")


def _pwrite_all(fd: int, data: memoryview, at: int) -> int:
    while len(data):
        n = os.pwrite(fd, data, at)
        data, at = data[n:], at + n
    return at


def _pread_all(fd: int, into: memoryview, at: int) -> int:
    while len(into):
        n = os.preadv(fd, [into], at)
        if n <= 0:
            raise OSError(f"the parked rows' file ended early at offset {at}")
        into, at = into[n:], at + n
    return at


@njit(cache=True, nogil=True, _nrt=False)
def _pack_kinds(op, out):
    """The access kinds (op word bits 0-1) of ``op``, four to a byte of ``out``."""
    n = op.shape[0]
    for j in range(n >> 2):
        i = 4 * j
        out[j] = np.uint8((op[i] & 3) | ((op[i + 1] & 3) << 2) | ((op[i + 2] & 3) << 4)
                          | ((op[i + 3] & 3) << 6))
    if n & 3:
        b = 0
        for i in range(n & ~3, n):
            b |= (np.int64(op[i]) & 3) << (2 * (i & 3))
        out[n >> 2] = np.uint8(b)


@njit(cache=True, nogil=True, _nrt=False)
def _unpack_ops(kinds, pid, page_vpn, out):
    """The op words of parked rows again: the kind from ``kinds``, the page's low vpn bits."""
    for i in range(pid.shape[0]):
        kind = (np.int64(kinds[i >> 2]) >> (2 * (i & 3))) & 3
        out[i] = np.uint32(op_word(kind, page_vpn[pid[i]]))


class ThreadRows:
    """One thread's rows in order: chunks in memory, then (when parked) a run of them on disk,
    newer rows following the parked ones there until those are read back. The list-like
    ``q[0]``, ``q[0] = rest``, ``q.pop(0)``, ``q.append(chunk)`` are what the feeder uses."""

    def __init__(self, owner: "PendingRows"):
        self._owner = owner
        self._mem: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self.mem_rows = 0
        self._file = None
        self._read_at = 0
        self._write_at = 0
        self.disk_rows = 0

    def __len__(self) -> int:
        return len(self._mem) + (self.disk_rows > 0)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        assert i == 0
        if not self._mem:
            self._read_back()
        return self._mem[0]

    def __setitem__(self, i: int, chunk: tuple[np.ndarray, np.ndarray]) -> None:
        assert i == 0
        self._owner._moved(self, len(chunk[0]) - len(self._mem[0][0]))
        self._mem[0] = chunk

    def pop(self, i: int = 0) -> tuple[np.ndarray, np.ndarray]:
        assert i == 0
        if not self._mem:
            self._read_back()
        chunk = self._mem.popleft()
        self._owner._moved(self, -len(chunk[0]))
        return chunk

    def append(self, chunk: tuple[np.ndarray, np.ndarray]) -> None:
        if self.disk_rows:  # behind the parked rows: join them
            self._write(chunk)
            return
        self._mem.append(chunk)
        self._owner._moved(self, len(chunk[0]))

    # ---- parking ------------------------------------------------------------------------
    def park_newest(self, rows: int) -> int:
        """Move about ``rows`` of the newest in-memory rows to disk; returns how many moved.
        Only while nothing is parked yet (parked rows must stay behind those in memory)."""
        if self.disk_rows:
            return 0
        moved: list[tuple[np.ndarray, np.ndarray]] = []
        n = 0
        while len(self._mem) > 1 and n < rows:  # the oldest chunk stays: it is read next
            chunk = self._mem.pop()
            moved.append(chunk)
            n += len(chunk[0])
        for chunk in reversed(moved):
            self._write(chunk)
        self._owner._moved(self, -n)
        return n

    def _write(self, chunk: tuple[np.ndarray, np.ndarray]) -> None:
        """Positioned writes of (row count, page ids, kinds four to a byte): no seek, no copy
        to bytes (measured at 10^9 accesses: the buffered writes, reads and truncations this
        replaced cost the replay thread ~6 s of a 28 s run)."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="migrc-bench-rows-")
        pid, op = chunk
        kinds = np.empty((len(pid) + 3) // 4, np.uint8)
        _pack_kinds(op, kinds)
        parts = [np.array([len(pid)], _HEADER), np.ascontiguousarray(pid), kinds]
        fd = self._file.fileno()
        at = self._write_at
        for part in parts:
            at = _pwrite_all(fd, memoryview(part).cast("B"), at)
        self._write_at = at
        self.disk_rows += len(pid)

    def _read_back(self) -> None:
        """The oldest parked chunk into memory (the in-memory ones are all gone). The file is
        never truncated: once everything is read back, writing starts again at offset 0 over
        the pages already in the page cache (cheaper than freeing and allocating them)."""
        assert self.disk_rows and self._file is not None
        fd = self._file.fileno()
        head = np.empty(1, _HEADER)
        at = _pread_all(fd, memoryview(head).cast("B"), self._read_at)
        n = int(head[0])
        pid = np.empty(n, np.int32)
        kinds = np.empty((n + 3) // 4, np.uint8)
        at = _pread_all(fd, memoryview(pid).cast("B"), at)
        at = _pread_all(fd, memoryview(kinds).cast("B"), at)
        op = np.empty(n, np.uint32)
        _unpack_ops(kinds, pid, self._owner.page_vpn(), op)
        self._read_at = at
        self.disk_rows -= n
        if not self.disk_rows:  # all read back: start the file afresh
            self._read_at = self._write_at = 0
        self._mem.append((pid, op))
        self._owner._moved(self, n)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class PendingRows:
    """The pending rows of every thread, at most ``budget`` of them in memory. ``page_vpn()``
    is the page map's vpn of every page id (it grows: asked for at each read-back)."""

    def __init__(self, threads: int, page_vpn: Callable[[], np.ndarray],
                 budget: int | None = None):
        self.page_vpn = page_vpn
        self.budget = BUDGET_ROWS if budget is None else budget
        self.mem_rows = 0
        self.parked_rows = 0  # how many rows went to disk in all (for the record)
        self._threads = [ThreadRows(self) for _ in range(threads)]

    def __getitem__(self, t: int) -> ThreadRows:
        return self._threads[t]

    def __iter__(self):
        return iter(self._threads)

    def _moved(self, q: ThreadRows, rows: int) -> None:
        q.mem_rows += rows
        self.mem_rows += rows
        if rows > 0 and self.mem_rows > self.budget:
            self._park()

    def _park(self) -> None:
        """Park the newest rows of the threads holding most until a quarter of the budget is
        free again (so that parking happens in large steps, not on every batch)."""
        target = self.budget * 3 // 4
        for q in sorted(self._threads, key=lambda q: -q.mem_rows):
            if self.mem_rows <= target:
                return
            n = q.park_newest(self.mem_rows - target)
            self.parked_rows += n

    def close(self) -> None:
        for q in self._threads:
            q.close()
