"""Feed each task's queue of rows from the trace, streaming: memory does not grow with length.

Rows of one thread are in program order; which thread runs when is the replay's business
(model.md §5). A multi-thread trace is read sequentially and split by tid; a single-thread
trace replayed as N threads gives thread k its own reader starting at offset k/N, wrapping.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator

import numpy as np

from ..trace.native import Batch, TraceReader
from .kernel import SEGMENTS
from .pending import PendingRows
from .prefetch import MappedBatches
from .rawptr import address

BUFFER_ROWS = 1 << 16
READ_ROWS = 1 << 18


class Buffers:
    """Per-task queues of (page id, op) chunks that the compiled loop consumes in order (the op
    word also holds the page's low vpn bits: kernel.VPN_BITS).

    A chunk is a pair of arrays of its own (a thread's rows of one trace batch, as the page
    mapping made them); the loop reads it by address (rawptr.py), so rows are never copied
    into a buffer. Each task's queue is a ring of at most SEGMENTS chunks: ``seg_first[t]``
    is the one being read, from row ``head[t]``, and ``seg_n[t]`` are queued in all; the
    loop moves to the next chunk itself and returns R_NEED_DATA when the last is read. The
    arrays of queued chunks are kept alive here until the loop is past them."""

    def __init__(self, ntasks: int, cap: int = BUFFER_ROWS):
        self.cap = cap  # at most this many rows queued per task (a larger chunk goes in parts)
        self.seg_pid = np.zeros((ntasks, SEGMENTS), np.int64)  # addresses (rawptr.address)
        self.seg_op = np.zeros((ntasks, SEGMENTS), np.int64)
        self.seg_len = np.zeros((ntasks, SEGMENTS), np.int64)
        self.seg_first = np.zeros(ntasks, np.int64)
        self.seg_n = np.zeros(ntasks, np.int64)
        self.head = np.zeros(ntasks, np.int64)
        self._chunks: list[deque[tuple[np.ndarray, np.ndarray]]] = [deque() for _ in range(ntasks)]
        self._rows = [0] * ntasks  # rows of each task's chunks in _chunks

    def retire(self, t: int) -> None:
        """Let go of the chunks the loop has read to the end."""
        chunks = self._chunks[t]
        n = int(self.seg_n[t])
        while len(chunks) > n:  # the loop moved past them
            self._rows[t] -= len(chunks.popleft()[0])
        if n and self.head[t] == len(chunks[0][0]):
            self._rows[t] -= len(chunks.popleft()[0])
            self.seg_n[t] = n - 1
            self.seg_first[t] = (self.seg_first[t] + 1) % SEGMENTS
            self.head[t] = 0

    def queued(self, t: int) -> int:
        """Rows not read yet (the chunks read to the end let go of first)."""
        self.retire(t)
        return self._rows[t] - int(self.head[t])

    def room(self, t: int) -> int:
        """How many more rows may be queued (0 when the ring is full). At most ``cap`` rows
        are queued: a larger chunk is queued in parts (views; the rest waits where it was),
        so rows queued here stay few and the pending rows' budget bounds the others."""
        if self.seg_n[t] >= SEGMENTS:
            return 0
        return max(0, self.cap - self.queued(t))

    def append(self, t: int, pid: np.ndarray, op: np.ndarray) -> None:
        """Queue a chunk (not empty); the caller checked ``room``."""
        assert len(pid) == len(op) > 0 and self.seg_n[t] < SEGMENTS
        pid = np.ascontiguousarray(pid, np.int32)
        op = np.ascontiguousarray(op, np.uint32)
        if not self.seg_n[t]:
            self.head[t] = 0
        k = (int(self.seg_first[t]) + int(self.seg_n[t])) % SEGMENTS
        self.seg_pid[t, k] = address(pid)
        self.seg_op[t, k] = address(op)
        self.seg_len[t, k] = len(pid)
        self._chunks[t].append((pid, op))
        self._rows[t] += len(pid)
        self.seg_n[t] += 1


class Feeder:
    """Moves trace rows into per-CPU buffers through the machine's page map."""

    def __init__(self, reader: TraceReader, machine, buffers: Buffers, threads: int,
                 max_accesses: int = 0, reader_thread: bool = False,
                 task_mm: np.ndarray | None = None):
        """``task_mm``: each thread's mm when the trace has several (pages keyed by mm)."""
        self.reader = reader
        self.m = machine
        self.buf = buffers
        self.threads = threads
        self.limit = max_accesses or None
        self.stream_open = np.zeros(len(buffers.head), np.bool_)
        self.stream_open[:threads] = True
        self.read_rows = 0
        # accesses each CPU still gets before its warm-up boundary (model/warmup.py): the
        # buffer is filled up to it exactly, so the loop runs dry there
        self.warm_left = np.zeros(len(buffers.head), np.int64)
        # rows read for each thread, waiting for its CPU (bounded memory: pending.py)
        self._pending = PendingRows(threads, lambda: machine.page_vpn)
        if reader.meta.threads > 1 or threads == 1:
            self._sources = None
            # read, mapped and grouped by thread on the trace reader thread when asked
            self._batches = MappedBatches(self._limited(reader.iter_batches(READ_ROWS)),
                                          machine.pagemap, threads, reader.path,
                                          reader.meta.threads, background=reader_thread,
                                          task_mm=task_mm)
        else:
            n = reader.num_rows
            self._sources = [self._limited(_rotated(reader, k * n // threads), per_thread=True)
                             for k in range(threads)]
            self._batches = None

    def _limited(self, it: Iterator[Batch], per_thread: bool = False) -> Iterator[Batch]:
        taken = 0
        limit = None if self.limit is None else (self.limit // self.threads if per_thread else self.limit)
        for b in it:
            if limit is not None and taken + len(b) > limit:
                b = Batch(*(x[: limit - taken] for x in (b.tid, b.op, b.addr, b.size)))
            taken += len(b)
            if len(b):
                yield b
            if limit is not None and taken >= limit:
                return

    def _map(self, b: Batch, tid: np.ndarray | None = None):
        pid, tids, op, first_new = self.m.pagemap.map_batch(b.addr, b.size, b.tid if tid is None else tid, b.op)
        self.m.on_new_pages(first_new)
        self.read_rows += len(b)
        return pid, tids, op

    def _read_shared(self) -> bool:
        """Read one batch of a multi-thread trace and queue its rows per thread."""
        assert self._batches is not None
        mb = self._batches.next()
        if mb is None:
            return False
        self.m.on_new_pages(mb.first_new, mb.end)
        self.read_rows += mb.rows
        for t, part in enumerate(mb.parts):
            if part is not None:
                self._pending[t].append(part)
        return True

    def refill(self, cpu: int) -> None:
        """Top up one task's buffer (``cpu``: the task, which is the CPU of the same number
        when there are no more tasks than CPUs); close its stream when the trace has nothing
        more for it."""
        t = cpu
        buf = self.buf
        buf.retire(t)
        while (room := buf.room(t)) > 0:
            q = self._pending[t]
            if q:
                pid, op = q[0]
                warm = int(self.warm_left[cpu])
                k = min(len(pid), room, warm or room)  # (up to the warm-up boundary exactly)
                if k < len(pid):
                    buf.append(t, pid[:k], op[:k])
                    q[0] = (pid[k:], op[k:])
                else:
                    buf.append(t, pid, op)
                    q.pop(0)
                if warm:
                    self.warm_left[cpu] = warm - k
                    if warm == k:
                        return
                continue
            if self._sources is not None:
                b = next(self._sources[t], None)
                if b is None:
                    self.stream_open[cpu] = False
                    return
                pid, _, op = self._map(b, np.zeros(len(b), np.uint16))
                q.append((pid, op))
                continue
            if not self._read_shared():
                self.stream_open[cpu] = False
                return
            if buf.queued(t) and not self._pending[t]:
                return

    def start(self) -> None:
        """Let the trace reader thread (if any) start reading ahead."""
        if self._batches is not None:
            self._batches.start()

    def prime(self) -> None:
        for cpu in range(self.threads):
            self.refill(cpu)

    def close(self) -> None:
        """Stop reading (the trace reader thread, if any): the replay is over."""
        if self._batches is not None:
            self._batches.close()
        self._pending.close()


def _rotated(reader: TraceReader, offset: int) -> Iterator[Batch]:
    """Rows [offset, n) then [0, offset): a thread's view of a single-thread trace. Row
    groups that end before ``offset`` are skipped unread (the batches are the same)."""
    starts = reader.group_starts()
    first = max(0, int(np.searchsorted(starts, offset, side="right")) - 1)
    first = min(first, max(0, len(starts) - 2))
    pos = int(starts[first])
    for b in reader.iter_batches(READ_ROWS, first_group=first):
        end = pos + len(b)
        if end <= offset:
            pos = end
            continue
        start = max(0, offset - pos)
        yield Batch(*(x[start:] for x in (b.tid, b.op, b.addr, b.size)))
        pos = end
    pos = 0
    for b in reader.iter_batches(READ_ROWS):
        if pos >= offset:
            return
        stop = min(len(b), offset - pos)
        yield Batch(*(x[:stop] for x in (b.tid, b.op, b.addr, b.size)))
        pos += len(b)
