"""Trace format version 2 (model.md §2 extended, docs/traces.md): several processes.

A version-2 trace has a ``pid`` column and declares its processes in the metadata key
``migrc_bench.processes``: ``[{"pid": P, "tids": [...], "name": "..."}, ...]``. Thread ids
stay **unique over the whole trace** (0..threads-1, as in version 1): a thread belongs to
exactly one process, so everything keyed by tid (the replay's per-thread streams, the
pre-pass's records per thread) is unchanged, and the ``pid`` column is checked against the
declared owner of each tid. Each region carries the ``pid`` that maps it; a region with a
``file`` key (``{"id": ..., "offset": ...}``) maps that file from that byte offset, and
regions naming the same file id map the same page-cache pages, in one process or several.

Everything here is checked with one-line errors naming the file and the metadata key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import TraceError

PID_MAX_LIMIT = 4 * 1024 * 1024
"""include/linux/threads.h on 64-bit: no Linux pid is larger (pid 0 is the idle task)."""

FILE_KINDS = ("code", "file")
"""Region kinds that may map a file: text is a private mapping of the executable."""

PAGE_SIZE = 4096


@dataclass(frozen=True)
class FileMapping:
    """A region's backing file: the same ``id`` is the same page-cache pages."""

    id: str
    offset: int = 0  # bytes into the file where the mapping starts (page-aligned, as mmap's)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "offset": self.offset}


@dataclass(frozen=True)
class Process:
    """One process (one mm) of a version-2 trace."""

    pid: int
    tids: tuple[int, ...]
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"pid": self.pid, "tids": list(self.tids)}
        if self.name:
            d["name"] = self.name
        return d


def _where(key: str, i: int | None = None) -> str:
    return f"metadata migrc_bench.{key}" + ("" if i is None else f"[{i}]")


def parse_processes(path: Path, text: str | None) -> tuple[Process, ...]:
    """The ``migrc_bench.processes`` list, shape-checked (see :func:`check_processes`)."""
    if not text:
        raise TraceError(path, f"{_where('processes')} is missing (trace version 2 declares its "
                               f"processes)")
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise TraceError(path, f"{_where('processes')}: not JSON ({exc})") from None
    if not isinstance(items, list) or not items:
        raise TraceError(path, f"{_where('processes')}: expected a non-empty list of processes")
    out = []
    for i, p in enumerate(items):
        if not isinstance(p, dict) or "pid" not in p or "tids" not in p:
            raise TraceError(path, f"{_where('processes', i)}: expected {{\"pid\": P, \"tids\": "
                                   f"[...]}}, got {str(p)[:60]}")
        pid, tids = p["pid"], p["tids"]
        if not _is_int(pid) or not 1 <= pid <= PID_MAX_LIMIT:
            raise TraceError(path, f"{_where('processes', i)}: pid {pid!r} is not a process id "
                                   f"1..{PID_MAX_LIMIT} (PID_MAX_LIMIT; pid 0 is the idle task)")
        if not isinstance(tids, list) or not tids or not all(_is_int(t) for t in tids):
            raise TraceError(path, f"{_where('processes', i)}: tids must be a non-empty list of "
                                   f"thread ids, got {str(tids)[:60]}")
        out.append(Process(int(pid), tuple(int(t) for t in tids), str(p.get("name", ""))))
    return tuple(out)


def check_processes(path: Path, processes: tuple[Process, ...], threads: int) -> None:
    """Distinct pids; every tid 0..threads-1 owned by exactly one process."""
    seen_pid: dict[int, int] = {}
    owner: dict[int, int] = {}
    for i, p in enumerate(processes):
        if p.pid in seen_pid:
            raise TraceError(path, f"{_where('processes', i)}: pid {p.pid} is declared twice "
                                   f"(also [{seen_pid[p.pid]}])")
        seen_pid[p.pid] = i
        for t in p.tids:
            if not 0 <= t < threads:
                raise TraceError(path, f"{_where('processes', i)}: thread id {t} is not below the "
                                       f"trace's {threads} threads (migrc_bench.threads; thread ids "
                                       f"are unique over the whole trace)")
            if t in owner:
                raise TraceError(path, f"{_where('processes', i)}: thread {t} also belongs to pid "
                                       f"{owner[t]} (a thread id belongs to one process)")
            owner[t] = p.pid
    missing = sorted(set(range(threads)) - set(owner))
    if missing:
        raise TraceError(path, f"{_where('processes')}: thread{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(map(str, missing[:6]))} belong{'' if len(missing) > 1 else 's'}"
                               f" to no process")


def parse_file(path: Path, i: int, raw: Any) -> FileMapping:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise TraceError(path, f"{_where('regions', i)}: file must be {{\"id\": NAME, \"offset\": "
                               f"BYTES}} with a non-empty id, got {str(raw)[:60]}")
    offset = raw.get("offset", 0)
    if not _is_int(offset) or offset < 0 or offset % PAGE_SIZE:
        raise TraceError(path, f"{_where('regions', i)}: file offset {offset!r} is not a "
                               f"non-negative multiple of {PAGE_SIZE} (mmap's offset is page-aligned)")
    return FileMapping(raw["id"], int(offset))


def check_regions(path: Path, regions: Iterable[Any], processes: tuple[Process, ...]) -> None:
    """Each region names a declared pid, maps a file only if code or file, and overlaps no
    other region of its pid."""
    pids = {p.pid for p in processes}
    by_pid: dict[int, list[tuple[int, int, int]]] = {}
    for i, r in enumerate(regions):
        if r.pid is None:
            raise TraceError(path, f"{_where('regions', i)}: no pid (trace version 2: every "
                                   f"region names the process that maps it)")
        if r.pid not in pids:
            raise TraceError(path, f"{_where('regions', i)}: pid {r.pid} is not one of the "
                                   f"trace's processes ({_shown(sorted(pids))})")
        if r.file is not None and r.kind not in FILE_KINDS:
            raise TraceError(path, f"{_where('regions', i)}: a {r.kind} region cannot map file "
                                   f"{r.file.id!r} (only kinds {', '.join(FILE_KINDS)} do)")
        by_pid.setdefault(r.pid, []).append((r.start, r.end, i))
    for pid, spans in by_pid.items():
        spans.sort()
        for (s0, e0, i0), (s1, e1, i1) in zip(spans, spans[1:]):
            if s1 < e0:
                raise TraceError(path, f"{_where('regions', i1)}: {s1:#x}-{e1:#x} overlaps "
                                       f"[{i0}] {s0:#x}-{e0:#x} in pid {pid}")


def pid_table(processes: tuple[Process, ...]) -> np.ndarray:
    """uint32[65536]: the pid owning each tid (0 for none: no process has pid 0)."""
    table = np.zeros(1 << 16, np.uint32)
    for p in processes:
        table[list(p.tids)] = p.pid
    return table


def check_pids(path: Path, tid: np.ndarray, pid: np.ndarray, table: np.ndarray,
               first_row: int) -> None:
    """Each record's pid is the declared owner of its tid (vectorised; one-line error)."""
    want = table[tid]
    bad = np.flatnonzero(want != pid)
    if not len(bad):
        return
    i = int(bad[0])
    declared = sorted({int(x) for x in table[table != 0]})
    if int(pid[i]) not in declared:
        what = f"pid {int(pid[i])} is not one of the trace's processes ({_shown(declared)})"
    else:
        what = f"thread {int(tid[i])} belongs to pid {int(want[i])}, but the record says pid {int(pid[i])}"
    raise TraceError(path, f"row {first_row + i:,}: {what}")


def shared_files(regions: Iterable[Any]) -> dict[str, list[Any]]:
    """File id -> the regions mapping it, for files mapped by more than one region."""
    out: dict[str, list[Any]] = {}
    for r in regions:
        if r.file is not None:
            out.setdefault(r.file.id, []).append(r)
    return {k: v for k, v in out.items() if len(v) > 1}


def distinct_pages(regions: Iterable[Any]) -> int:
    """Pages of ``regions``, a file's pages counted once however many regions map them (the
    page cache holds one copy): what the footprint of several processes is."""
    anon = 0
    files: dict[str, set[int]] = {}
    for r in regions:
        if r.file is None:
            anon += r.pages
        else:
            first = r.file.offset // PAGE_SIZE
            files.setdefault(r.file.id, set()).update(range(first, first + r.pages))
    return anon + sum(len(s) for s in files.values())


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _shown(pids: list[int]) -> str:
    return ", ".join(map(str, pids[:8])) + (", ..." if len(pids) > 8 else "")
