"""Where migrc-bench keeps what it can make again: generated traces, trace page sets.

Never the installed package's directory (site-packages may be read-only and shared):
``$MIGRC_BENCH_CACHE``, else ``$XDG_CACHE_HOME/migrc-bench``, else ``~/.cache/migrc-bench``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root (not created here: callers create what they write into)."""
    env = os.environ.get("MIGRC_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "migrc-bench"


def cache_path(*parts: str) -> Path:
    """A path inside the cache, e.g. ``cache_path("traces", name)``."""
    return cache_dir().joinpath(*parts)


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """The SHA-256 of a file's bytes: the key of what is cached about it, and the trace id of
    results (a changed file gets a new key, so nothing stale is ever reused)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
