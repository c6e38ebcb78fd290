"""The compiled replay loop's cache: is it cold (first use after install), and how much of a
run went into compiling, so that a run's ``wall_s`` is the replay's own time.

numba compiles the loop on its first call (about 10 s) and caches the machine code; later
runs load it in a fraction of a second. The cache is numba's (``NUMBA_CACHE_DIR``, which an
installed migrc-bench points into its cache directory).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator


def replay_kernel_cold() -> bool:
    """True when the replay loop has no usable cached machine code (it will be compiled)."""
    try:
        from . import kernel

        cache = kernel.run_loop._cache
        if not getattr(cache, "_enabled", True):
            return False
        return not cache._cache_file._load_index()  # {} when missing or made for other sources
    except Exception:  # noqa: BLE001 - numba internals moved: say nothing rather than fail
        return False


class _CompileClock:
    """Sums the time of top-level numba compilations (nested ones are inside them)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0
        self._t0 = 0.0
        self._thread = threading.get_ident()

    def on_start(self, event) -> None:
        if threading.get_ident() != self._thread:
            return
        if self._depth == 0:
            self._t0 = time.perf_counter()
        self._depth += 1

    def on_end(self, event) -> None:
        if threading.get_ident() != self._thread:
            return
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._t0


@contextlib.contextmanager
def compile_clock() -> Iterator[_CompileClock]:
    """``with compile_clock() as c: ...`` then ``c.seconds`` spent compiling in the block."""
    clock = _CompileClock()
    try:
        from numba.core import event as ev

        class _Listener(ev.Listener):
            def on_start(self, event):
                clock.on_start(event)

            def on_end(self, event):
                clock.on_end(event)

        ctx = ev.install_listener("numba:compile", _Listener())
    except Exception:  # noqa: BLE001 - no event API: count nothing
        ctx = contextlib.nullcontext()
    with ctx:
        yield clock
