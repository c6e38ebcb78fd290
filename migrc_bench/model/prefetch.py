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

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import TraceError
from ..trace.native import Batch
from .pagemap import PageMap

# Batches the reader thread may hold ready (each ~5 bytes a row: 2^18 rows ~ 1.3 MB).
QUEUE_BATCHES = 8


@dataclass
class MappedBatch:
    """One trace batch as page ids and op words per thread (``parts[t]``: thread t's rows in
    program order, arrays of their own, or None); pages ``first_new`` up to ``end`` are new."""

    parts: list[tuple[np.ndarray, np.ndarray] | None]
    first_new: int
    end: int
    rows: int


class _Scratch:
    """The grouped rows of the batch being mapped, reused batch after batch (fresh arrays of a
    few MB each time would cost a page fault per 4 KiB)."""

    def __init__(self) -> None:
        self.pid = np.empty(0, np.int32)
        self.op = np.empty(0, np.uint32)

    def get(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.pid) < rows:
            self.pid = np.empty(rows, np.int32)
            self.op = np.empty(rows, np.uint32)
        return self.pid[:rows], self.op[:rows]


def map_batch(b: Batch, pagemap: PageMap, threads: int, path: Path, declared: int,
              scratch: _Scratch | None = None) -> MappedBatch:
    """Page ids grouped by thread for one batch; a thread id beyond the trace's is a TraceError.
    Each thread's rows are copied out, so that a thread left behind holds only its own rows."""
    try:
        pid, op, bounds, first_new, end = pagemap.map_grouped(
            b.addr, b.size, b.tid, b.op, threads, out=(scratch or _Scratch()).get)
    except ValueError:
        raise TraceError(path, f"thread id {int(b.tid.max())} but the trace declares "
                               f"{declared} threads") from None
    parts: list[tuple[np.ndarray, np.ndarray] | None] = [
        (pid[lo:hi].copy(), op[lo:hi].copy()) if hi > lo else None
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist())]
    return MappedBatch(parts, first_new, end, len(b))


_END = object()


class MappedBatches:
    """The trace's mapped batches in file order, made on demand or by a reader thread."""

    def __init__(self, batches: Iterator[Batch], pagemap: PageMap, threads: int, path: Path,
                 declared_threads: int, background: bool):
        self._batches = batches
        self._args = (pagemap, threads, path, declared_threads, _Scratch())
        self.background = background
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
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
        assert self._queue is not None
        item = self._queue.get()
        if item is _END:
            self._done = True
            self._thread.join()
            return None
        if isinstance(item, BaseException):
            self._done = True
            self._thread.join()
            raise item
        return item

    def start(self) -> None:
        """Start the reader thread (if asked for one and not started yet): it reads ahead."""
        if not self.background or self._thread is not None or self._done:
            return
        self._queue = queue.Queue(maxsize=QUEUE_BATCHES)
        self._thread = threading.Thread(target=self._run, name="migrc-bench trace reader",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: object = _END
        try:
            for b in self._batches:
                if self._stop.is_set():
                    return
                if not self._put(map_batch(b, *self._args)):
                    return
        except BaseException as exc:  # handed to the replay, raised there in order
            item = exc
        self._put(item)

    def _put(self, item: object) -> bool:
        """Queue an item unless the replay stopped listening; False when it did."""
        assert self._queue is not None
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop the reader thread (the replay ended early, or failed) and wait for it."""
        self._done = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
