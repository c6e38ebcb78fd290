"""Atomic file replacement: write a sibling temp file, fsync, rename over the target.

A crash, Ctrl-C or SIGTERM never leaves a half-written file at the target path, and an
existing file there stays intact until the new one is complete. Temp files are named
``.NAME.PID.XXXXXXXX.tmp``: one whose process is gone (SIGKILL, power loss) is stale, and
the next write of the same target removes it, as ``cache clean`` does in the cache.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from .interrupts import deferred

_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp$")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on clean exit it is renamed onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=target.parent)
    tmp = Path(tmp_name)
    try:
        # mkstemp makes the file 0600; give the result the mode a plain open() would (or keep
        # the replaced file's), so other users can still read a trace or a results file.
        try:
            os.fchmod(fd, _mode_for(target))
        finally:
            os.close(fd)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        with deferred():  # the rename and the end of this block happen together
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def temp_owner(path: Path) -> int | None:
    """The pid in one of our temp files' names (None: not ours, or an older name without it)."""
    m = _TEMP.match(path.name)
    return int(m.group("pid")) if m and m.group("pid") else None


def is_temp(path: Path) -> bool:
    return _TEMP.match(path.name) is not None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process not yet reaped by its parent writes nothing more
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_stale(path: Path) -> bool:
    """Our temp file whose writer is gone (or an older-style name, which carried no pid)."""
    if not is_temp(path):
        return False
    pid = temp_owner(path)
    return pid is None or not _alive(pid)


def remove_stale_temps(target: str | Path) -> list[Path]:
    """Remove the stale temp files of ``target`` (left by a killed writer); returns them."""
    target = Path(target)
    removed = []
    try:
        candidates = list(target.parent.glob(f".{glob_escape(target.name)}.*.tmp"))
    except OSError:
        return removed
    for p in candidates:
        m = _TEMP.match(p.name)
        if m and m.group("name") == target.name and is_stale(p):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def live_temps(root: Path) -> list[Path]:
    """Temp files under ``root`` whose writer is still running."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            if is_temp(p) and not is_stale(p):
                out.append(p)
    return out


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _mode_for(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask is racy)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | Path, text: str) -> None:
    write_bytes_atomic(target, text.encode())
