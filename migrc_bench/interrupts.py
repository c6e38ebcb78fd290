"""SIGINT and SIGTERM as an exception, so that every ``finally`` and temp-file cleanup runs.

Python's default SIGTERM ends the process at once, leaving the temp file of an atomic write
behind (a stopped ``trace gen`` once left 29 GB). ``handled()`` makes both signals raise
:class:`Interrupted` in the main thread; ``deferred()`` holds them over a few renames that
must happen together (a results append), so an interrupt never lands between them. A second
signal while the first is being cleaned up stops the process at once. A signal that lands
where an exception would not unwind (a ``__del__``, numba's compiler, llvmlite's callbacks) is
sent again 10 ms later, until it lands where it can be raised.

Commands say what an interrupt would leave with :func:`keep`; the CLI prints it as the one
line after "interrupted".
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised by SIGINT or SIGTERM (a BaseException, as KeyboardInterrupt: not an error)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_depth = 0
_pending: list[int] = []
_raised = False
_kept = ""


def _compiling() -> bool:
    """Whether this (the main) thread holds numba's compiler lock: numba loads cached machine
    code lazily, under that lock and through llvmlite callbacks."""
    import sys
    mod = sys.modules.get("numba.core.compiler_lock")
    return mod is not None and mod.global_compiler_lock.is_locked()


def _unsafe(frame) -> bool:
    """Whether an exception raised in ``frame`` would not unwind: inside a finalizer
    (``__del__``: Python prints "Exception ignored" and goes on, so the signal would be lost
    and the command would finish and write) or inside numba or llvmlite (an exception raised
    in a callback from their C code crashed the process with SIGSEGV)."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or "/llvmlite/" in code.co_filename \
                or "/numba/" in code.co_filename:
            return True
        frame = frame.f_back
    return _compiling()


RETRY_S = 0.01      # a deferred signal is sent again this much later ...
RETRIES = 500       # ... at most this many times (5 s), then raised wherever it lands


def _resend(signum: int) -> None:
    def later() -> None:
        global _scheduled
        time.sleep(RETRY_S)
        _scheduled = False
        if not _raised:  # not if another signal was raised meanwhile: it would end the cleanup
            signal.raise_signal(signum)
    threading.Thread(target=later, name="migrc-bench-resignal", daemon=True).start()


_retries = 0
_scheduled = False


def _handler(signum: int, frame) -> None:
    global _raised
    if _depth:
        _pending.append(signum)
        return
    global _retries, _scheduled
    if not _raised and _retries < RETRIES and _unsafe(frame):
        _retries += 1
        if not _scheduled:  # raised where an exception unwinds, moments later
            _scheduled = True
            _resend(signum)
        return
    if _raised:  # a second signal while the first is cleaned up: the user means it
        os._exit(128 + signum)
    _raised = True
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the handlers (main thread only; elsewhere nothing changes)."""
    global _raised, _kept, _retries, _scheduled
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    _raised, _kept, _retries, _scheduled = False, "", 0, False
    _pending.clear()
    for s in SIGNALS:
        if old[s] is not signal.SIG_IGN:  # e.g. nohup: an ignored signal stays ignored
            signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise for the first one that came."""
    global _depth, _raised
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending:
            signum = _pending[0]
            _pending.clear()
            if not _raised:
                _raised = True
                raise Interrupted(signum)


def keep(text: str) -> None:
    """Say what an interrupt from now on leaves behind (e.g. "results/: unchanged")."""
    global _kept
    _kept = text


def kept() -> str:
    return _kept or "nothing was written"


def keep_target(path, what: str = "") -> None:
    """An interrupt from now on leaves ``path`` as it was (or absent, when it was)."""
    from pathlib import Path

    p = Path(path)
    if p.exists():
        keep(f"{p}: unchanged{what}")
    else:
        keep(f"{p}: not written")
