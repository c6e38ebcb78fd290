"""SIGINT and SIGTERM as an exception, so that every ``finally`` and temp-file cleanup runs.

Python's default SIGTERM ends the process at once, leaving the temp file of an atomic write
behind (a stopped ``trace gen`` once left 29 GB). ``handled()`` makes both signals raise
:class:`Interrupted` in the main thread; ``deferred()`` holds them over a few renames that
must happen together (a results append), so an interrupt never lands between them. A second
signal while the first is being cleaned up stops the process at once.

Commands say what an interrupt would leave with :func:`keep`; the CLI prints it as the one
line after "interrupted".
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
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


def _compiling() -> threading.RLock | None:
    """numba's compiler lock when this (the main) thread holds it, else None.

    numba loads cached machine code lazily, under that lock and through llvmlite callbacks;
    an exception raised by the handler inside one of them crashes the process (SIGSEGV)
    instead of unwinding, so no ``finally`` would run."""
    import sys
    mod = sys.modules.get("numba.core.compiler_lock")
    if mod is None:
        return None
    lock = mod.global_compiler_lock
    return lock._lock if lock.is_locked() else None


def _resignal_after(lock: threading.RLock, signum: int) -> None:
    """Send the signal again once the main thread has left numba's compiler."""
    def wait() -> None:
        with lock:  # free once the main thread releases it (this thread is not its owner)
            pass
        signal.raise_signal(signum)
    threading.Thread(target=wait, name="migrc-bench-resignal", daemon=True).start()


def _handler(signum: int, frame) -> None:
    global _raised
    if _depth:
        _pending.append(signum)
        return
    if not _raised and (lock := _compiling()) is not None:
        _resignal_after(lock, signum)  # raised where an exception unwinds, moments later
        return
    if _raised:  # a second signal while the first is cleaned up: the user means it
        os._exit(128 + signum)
    _raised = True
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the handlers (main thread only; elsewhere nothing changes)."""
    global _raised, _kept
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    _raised, _kept = False, ""
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
