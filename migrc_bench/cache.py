"""Where migrc-bench keeps what it can make again: generated traces, trace page sets, compiled code.

Never the installed package's directory (site-packages may be read-only and shared):
``$MIGRC_BENCH_CACHE``, else ``$XDG_CACHE_HOME/migrc-bench``, else ``~/.cache/migrc-bench``.
The directory is marked with a ``CACHEDIR.TAG`` (https://bford.info/cachedir/) when we create
it, so backup tools skip it and ``cache clean`` can tell it from a directory it must not empty.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

TAG_NAME = "CACHEDIR.TAG"
TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
       "# This file is a cache directory tag created by migrc-bench.\n"
       "# Everything here can be made again; 'migrc-bench cache clean' empties it.\n")


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


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes: the key of what is cached about it, and the trace id of
    results (a changed file gets a new key, so nothing stale is ever reused).

    Remembered per file as git's index remembers a blob's id: while the file's device, inode,
    size, modification and change times (``ctime`` moves on every write and cannot be set
    back) are what they were when it was hashed, the recorded digest is its digest. Hashing
    a 1.5 GB trace costs ~1.8 s of every run otherwise. Nothing is recorded when the cache
    cannot be written (the digest is computed each time then)."""
    st = os.stat(path)
    stamp = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    key = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:32]
    record = cache_path("hashes", key)
    try:
        seen, digest = record.read_text().split()
        if seen == stamp and len(digest) == 64:
            return digest
    except (OSError, ValueError):
        pass
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    if os.stat(path).st_ctime_ns == st.st_ctime_ns:  # not written to while it was hashed
        try:
            from .atomic import write_text_atomic

            make_cache_dir("hashes")
            write_text_atomic(record, f"{stamp} {digest}\n")
        except OSError:
            pass
    return digest


def make_cache_dir(*parts: str) -> Path:
    """Create (if needed) the cache root with its tag, and the sub-directory ``parts``."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    tag = root / TAG_NAME
    if not tag.exists():
        tag.write_text(TAG)
    sub = root.joinpath(*parts)
    sub.mkdir(parents=True, exist_ok=True)
    return sub


def is_ours(root: Path) -> bool:
    """Whether ``root`` is a directory ``cache clean`` may empty: tagged by us, or at one of the
    default locations (named for migrc-bench) rather than wherever $MIGRC_BENCH_CACHE points."""
    tag = root / TAG_NAME
    try:
        if "migrc-bench" in tag.read_text():
            return True
    except OSError:
        pass
    return not os.environ.get("MIGRC_BENCH_CACHE") and root.name == "migrc-bench"


@dataclass
class Usage:
    """What the cache holds: bytes and files per top-level entry (traces, numba, ...)."""

    root: Path
    parts: dict[str, tuple[int, int]]  # name -> (bytes, files)

    @property
    def bytes(self) -> int:
        return sum(b for b, _ in self.parts.values())

    @property
    def files(self) -> int:
        return sum(n for _, n in self.parts.values())


def usage(root: Path | None = None) -> Usage:
    root = root or cache_dir()
    parts: dict[str, tuple[int, int]] = {}
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.name == TAG_NAME:
                continue
            parts[entry.name] = _size(entry)
    return Usage(root, parts)


def _size(path: Path) -> tuple[int, int]:
    if path.is_symlink() or not path.is_dir():
        try:
            return path.lstat().st_size, 1
        except OSError:
            return 0, 0
    total = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
                files += 1
            except OSError:
                pass
    return total, files


def clean(root: Path | None = None) -> tuple[Usage, list[Path]]:
    """Empty the cache (its tag stays); returns what it held and the temp files of writers
    still running, which are left alone (their commands remove them when they finish)."""
    from .atomic import live_temps

    root = root or cache_dir()
    before = usage(root)
    kept: list[Path] = []
    if root.is_dir():
        keep = set(live_temps(root))
        for entry in root.iterdir():
            if entry.name == TAG_NAME:
                continue
            if entry.is_dir() and not entry.is_symlink():
                kept += _clean_tree(entry, keep)
            elif entry not in keep:
                entry.unlink(missing_ok=True)
            else:
                kept.append(entry)
    return before, kept


def _clean_tree(top: Path, keep: set[Path]) -> list[Path]:
    kept = [p for p in keep if top in p.parents]
    if not kept:
        shutil.rmtree(top, ignore_errors=True)
        return []
    for dirpath, dirs, names in os.walk(top, topdown=False):
        for n in names:
            p = Path(dirpath) / n
            if p not in keep:
                p.unlink(missing_ok=True)
        for d in dirs:
            try:
                (Path(dirpath) / d).rmdir()
            except OSError:
                pass
    return kept

