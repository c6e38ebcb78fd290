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


def map_ahead(b: Batch, pagemap: PageMap, threads: int, path: Path, declared: int,
              task_mm: np.ndarray | None = None) -> list | None:
    """map_batch's parts of a batch all of whose pages are in the ranges, mapped while the
    batch before it is still being mapped (PageMap.map_ranged); None for any other batch
    (and for bad thread ids or several mms: they are mapped in turn instead)."""
    if task_mm is not None:
        return None
    try:
        return pagemap.map_ranged(b.addr, b.size, b.tid, b.op, threads)
    except ValueError:
        return None


_END = object()
_MAP, _AHEAD = object(), object()  # the replay's jobs: map a read batch, map one ahead
# a batch that could not be mapped ahead this often is not tried for others any more
AHEAD_TRIES = 4


class MappedBatches:
    """The trace's mapped batches in file order, made on demand or by a reader thread.

    With the thread, reading and mapping are two steps shared by two threads: the reader
    thread reads ahead, and maps only when QUEUE_BATCHES batches are read or mapped and not yet
    taken; the replay, when the batch it needs is read but not mapped, maps it itself. So the
    mapping goes to whichever thread has time (the replay's loop, when it is the faster one).
    Batches are mapped oldest first: the page map hands out ids in file order. One exception:
    while the reader thread maps the batch the replay waits for, the replay maps the next one,
    if all its pages are in the trace's ranges (whose ids are fixed, whatever comes before:
    ``map_ahead``), and queues it after that one.
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
        self._ahead = False  # the replay maps the read batch after the one being mapped
        self._ahead_fails = 0
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
                job, item = self._replay_job()
            if job is _MAP:  # read but not mapped yet: map it here rather than wait
                self._map_one(item)
                continue
            if job is _AHEAD:
                self._map_ahead(item)
                continue
            if item is _END or isinstance(item, BaseException):
                self.close()
                if item is not _END:
                    raise item
                return None
            return item

    def _replay_job(self) -> tuple[object, object]:
        """Under the lock: (None, the next mapped item), or (_MAP, a read batch to map), or
        (_AHEAD, the read batch after the one the reader thread maps); waits for one."""
        while True:
            if self._mapped:
                item = self._mapped.popleft()
                self._cond.notify_all()
                return None, item
            b = self._take_read()
            if b is not None:
                return _MAP, b
            if self._mapped:  # (_take_read passed the end on to it)
                continue
            if (self._mapping and not self._ahead and self._ahead_fails < AHEAD_TRIES
                    and self._read and isinstance(self._read[0], Batch)):
                self._ahead = True
                return _AHEAD, self._read.popleft()
            self._cond.wait(1.0)
            if not (self._mapped or self._read or self._mapping or self._thread.is_alive()):
                raise RuntimeError("the trace reader thread ended before the trace")

    def _map_ahead(self, b: Batch) -> None:
        """Map ``b`` (outside the lock) while the batch before it is mapped; queue it after
        that one, or give it back to be mapped in turn when it is not all in the ranges."""
        parts = map_ahead(b, *self._args)
        with self._cond:
            while self._mapping and not self._stop:  # the batch before it first
                self._cond.wait(0.1)
            if parts is None:
                self._read.appendleft(b)
                self._ahead_fails += 1
            else:  # no new pages: what mapping it in turn would give
                n = self._args[0].n
                self._mapped.append(MappedBatch(parts, n, n, len(b)))
            self._ahead = False
            self._cond.notify_all()

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
        while self._read and not self._mapping and not self._ahead:
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
                if (len(self._read) + len(self._mapped) + self._mapping + self._ahead
                        < QUEUE_BATCHES):
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
