"""Trace batches read, decompressed, mapped to page ids and grouped by thread — on a second
thread when asked (``replay.reader_thread``), so that this work overlaps the compiled loop.

The replay consumes the batches in file order, one whenever its feeder needs the next
(``MappedBatches.next``), exactly as it would read them itself: the reader thread only runs
ahead, through a bounded queue, so memory stays flat. Page ids are handed out by the page map
in file order either way, and the machine learns of a batch's new pages only when the replay
takes the batch (``Machine.on_new_pages``), so results are identical with the thread on or off.

The GIL is released by pyarrow while it reads and decompresses a row group and by the
compiled mapping (``nogil``) and replay loop; what the thread still does in Python is a few
calls per batch of 2^18 rows.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import TraceError
from ..trace.native import Batch
from .pagemap import PageMap

# Batches read or mapped ahead of the replay (2^18 rows: ~3 MB read, ~2 MB mapped).
QUEUE_BATCHES = 8
ADDR_BITS = 57  # machine.MM_SHIFT + 12: user addresses of a trace of several processes


@dataclass
class MappedBatch:
    """One trace batch as page ids and op words per thread (``parts[t]``: thread t's rows in
    program order, arrays of their own, or None); pages ``first_new`` up to ``end`` are new."""

    parts: list[tuple[np.ndarray, np.ndarray] | None]
    first_new: int
    end: int
    rows: int


def map_batch(b: Batch, pagemap: PageMap, threads: int, path: Path, declared: int,
              task_mm: np.ndarray | None = None) -> MappedBatch:
    """Page ids grouped by thread for one batch; a thread id beyond the trace's is a TraceError.
    Each thread's rows are arrays of its own, so that a thread left behind holds only its rows.
    ``task_mm`` (several mms): each thread's mm, put in the address's bits 57-62, so pages
    are keyed (mm, vpn) (machine.MM_SHIFT)."""
    addr = b.addr
    if task_mm is not None:
        if len(addr) and int(addr.max()) >> ADDR_BITS:
            i = int(np.argmax(addr >> np.uint64(ADDR_BITS) != 0))
            raise TraceError(path, f"address 0x{int(addr[i]):x} is not a user address below "
                                   f"2^{ADDR_BITS} (a trace of several processes keys pages "
                                   f"by process above that)")
        tid = np.minimum(b.tid, len(task_mm) - 1)
        addr = addr | (task_mm[tid].astype(np.uint64) << np.uint64(ADDR_BITS))
    try:
        parts, first_new, end = pagemap.map_threads(addr, b.size, b.tid, b.op, threads)
    except ValueError:
        raise TraceError(path, f"thread id {int(b.tid.max())} but the trace declares "
                               f"{declared} threads") from None
    return MappedBatch(parts, first_new, end, len(b))


_END = object()


class MappedBatches:
    """The trace's mapped batches in file order, made on demand or by a reader thread.

    With the thread, reading and mapping are two steps shared by two threads: the reader
    thread reads ahead, and maps only when QUEUE_BATCHES batches are read or mapped and not yet
    taken; the replay, when the batch it needs is read but not mapped, maps it itself. So the
    mapping goes to whichever thread has time (the replay's loop, when it is the faster one).
    One batch is mapped at a time, oldest first: the page map hands out ids in file order.
    """

    def __init__(self, batches: Iterator[Batch], pagemap: PageMap, threads: int, path: Path,
                 declared_threads: int, background: bool, task_mm: np.ndarray | None = None):
        self._batches = batches
        self._args = (pagemap, threads, path, declared_threads, task_mm)
        self.background = background
        self._cond = threading.Condition()
        self._read: deque[object] = deque()    # read, not mapped: Batch, _END or an error
        self._mapped: deque[object] = deque()  # MappedBatch, _END or an error
        self._mapping = False
        self._thread: threading.Thread | None = None
        self._stop = False
        self._done = False

    def next(self) -> MappedBatch | None:
        """The next batch, or None at the end of the trace; errors of reading or mapping are
        raised here, at the batch where they happened."""
        if self._done:
            return None
        if not self.background:
            b = next(self._batches, None)
            if b is None:
                self._done = True
                return None
            return map_batch(b, *self._args)
        self.start()
        while True:
            with self._cond:
                while not self._mapped:
                    b = self._take_read()
                    if b is not None:
                        break
                    if not self._mapped:  # (_take_read may have passed the end on to it)
                        self._cond.wait(1.0)
                        if not (self._mapped or self._read or self._mapping
                                or self._thread.is_alive()):
                            raise RuntimeError("the trace reader thread ended before the trace")
                else:
                    item = self._mapped.popleft()
                    self._cond.notify_all()
                    b = None
            if b is not None:  # read but not mapped yet: map it here rather than wait
                self._map_one(b)
                continue
            if item is _END or isinstance(item, BaseException):
                self.close()
                if item is not _END:
                    raise item
                return None
            return item

    def start(self) -> None:
        """Start the reader thread (if asked for one and not started yet): it reads ahead."""
        if not self.background or self._thread is not None or self._done:
            return
        self._thread = threading.Thread(target=self._run, name="migrc-bench trace reader",
                                        daemon=True)
        self._thread.start()

    # ---- both threads, under the condition's lock ----------------------------------------
    def _take_read(self) -> Batch | None:
        """The oldest read batch to map, if nobody is mapping; the end of the trace or an
        error of reading passes straight on to the mapped ones, in order."""
        while self._read and not self._mapping:
            item = self._read.popleft()
            if isinstance(item, Batch):
                self._mapping = True
                return item
            self._mapped.append(item)
            self._cond.notify_all()
        return None

    def _map_one(self, b: Batch) -> None:
        """Map a batch taken with _take_read (outside the lock: the mapping is nogil)."""
        try:
            item: object = map_batch(b, *self._args)
        except BaseException as exc:  # handed to the replay, raised there in order
            item = exc
        with self._cond:
            self._mapped.append(item)
            self._mapping = False
            self._cond.notify_all()

    # ---- the reader thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            for b in self._batches:
                if not self._hand_over(b):
                    return
        except BaseException as exc:  # handed to the replay, raised there in order
            self._hand_over(exc)
            return
        if self._hand_over(_END):
            self._map_rest()

    def _hand_over(self, item: object) -> bool:
        """Queue a read item; while enough is ahead of the replay, map what waits to be
        mapped, else wait. False once the replay stopped listening."""
        while True:
            with self._cond:
                if self._stop:
                    return False
                if len(self._read) + len(self._mapped) + self._mapping < QUEUE_BATCHES:
                    self._read.append(item)
                    self._cond.notify_all()
                    return True
                b = self._take_read()
                if b is None:
                    self._cond.wait(0.1)
                    continue
            self._map_one(b)

    def _map_rest(self) -> None:
        """Everything is read: map what the replay has not taken to map yet."""
        while True:
            with self._cond:
                b = None if self._stop else self._take_read()
            if b is None:
                return
            self._map_one(b)

    def close(self) -> None:
        """Stop the reader thread (the replay ended early, or failed) and wait for it."""
        self._done = True
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        # not alive: finished, or a signal interrupted start() before it ran (joining a thread
        # that never started raises, and would hide the interrupt)
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()
        self._thread = None
