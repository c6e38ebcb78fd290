"""Feed each CPU's access buffer from the trace, streaming: memory does not grow with length.

Rows of one thread are in program order; which thread runs when is the replay's business
(model.md §5). A multi-thread trace is read sequentially and split by tid; a single-thread
trace replayed as N threads gives thread k its own reader starting at offset k/N, wrapping.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from numba import njit

from ..trace.native import Batch, TraceReader
from .pending import PendingRows
from .prefetch import MappedBatches

BUFFER_ROWS = 1 << 16
READ_ROWS = 1 << 18


class Buffers:
    """Per-CPU (page id, op) queues the compiled loop consumes from head to tail (the op word
    also holds the page's low vpn bits: kernel.VPN_BITS)."""

    def __init__(self, ncpu: int, cap: int = BUFFER_ROWS):
        self.cap = cap
        self.pid = np.zeros((ncpu, cap), np.int32)
        self.op = np.zeros((ncpu, cap), np.uint32)
        self.head = np.zeros(ncpu, np.int64)
        self.tail = np.zeros(ncpu, np.int64)

    def room(self, cpu: int) -> int:
        return self.cap - int(self.tail[cpu] - self.head[cpu])

    def append(self, cpu: int, pid: np.ndarray, op: np.ndarray) -> int:
        """Append as much as fits; returns how many rows were taken."""
        return int(_append(self.pid, self.op, self.head, self.tail, cpu, pid, op))


@njit(cache=True, nogil=True, _nrt=False)
def _append(buf_pid, buf_op, head, tail, cpu, pid, op):
    """Buffers.append compiled: the unread rows moved to the front, then as many new rows as
    fit (one call per refill of a CPU, instead of a dozen numpy slicings)."""
    h = head[cpu]
    t = tail[cpu]
    if h:
        n = t - h
        for i in range(n):
            buf_pid[cpu, i] = buf_pid[cpu, h + i]
            buf_op[cpu, i] = buf_op[cpu, h + i]
        head[cpu] = 0
        t = n
    k = min(pid.shape[0], buf_pid.shape[1] - t)
    for i in range(k):
        buf_pid[cpu, t + i] = pid[i]
        buf_op[cpu, t + i] = op[i]
    tail[cpu] = t + k
    return k


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
        self.stream_open = np.zeros(buffers.pid.shape[0], np.bool_)
        self.stream_open[:threads] = True
        self.read_rows = 0
        # accesses each CPU still gets before its warm-up boundary (model/warmup.py): the
        # buffer is filled up to it exactly, so the loop runs dry there
        self.warm_left = np.zeros(buffers.pid.shape[0], np.int64)
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
        while self.buf.room(cpu) > 0:
            q = self._pending[t]
            if q:
                pid, op = q[0]
                warm = int(self.warm_left[cpu])
                k = self.buf.append(cpu, pid[:warm] if warm else pid, op[:warm] if warm else op)
                if k == len(pid):
                    q.pop(0)
                else:
                    q[0] = (pid[k:], op[k:])
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
            if self.buf.tail[cpu] > self.buf.head[cpu] and not self._pending[t]:
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
