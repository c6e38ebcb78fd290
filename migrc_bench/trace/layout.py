"""The metadata of ``trace merge``: which threads and regions each input becomes.

- ``processes`` (the default): input k's processes become processes of the output, numbered
  1, 2, ... in input order (a version-1 input is one process); its threads keep their order
  and get ids after the previous inputs' (thread ids are unique over a trace); its regions
  go with their process.
- ``threads``: every input must be one process; their threads become threads of one process
  (pid 1) sharing one address space, so their regions are merged: a region found in several
  inputs is kept once, two that overlap otherwise are an error.
- ``--shared SELECTOR`` marks regions as mappings of one file whose id is SELECTOR: every
  region named SELECTOR, or (``0xSTART-0xEND``) every region inside that range. In each
  process the lowest selected region maps the file from offset 0, the others from their
  distance to it, so the same file page is at the same offset in every process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .native import PAGE_SIZE, Region, TraceMeta
from .processes import FileMapping, Process, check_processes, check_regions

AS_CHOICES = ("processes", "threads")


@dataclass(frozen=True)
class Layout:
    """Where each input's records go: thread ids ``tid_offset[k] + tid``; the merged metadata."""

    tid_offset: tuple[int, ...]
    meta: TraceMeta
    notes: tuple[str, ...] = ()


def merged_layout(paths: list[Path], metas: list[TraceMeta], as_: str = "processes",
                  shared: tuple[str, ...] = ()) -> Layout:
    if as_ not in AS_CHOICES:
        raise UserError(f"--as: expected one of {', '.join(AS_CHOICES)}, got {as_!r}")
    offsets, processes, regions, notes = [], [], [], []
    tid0 = 0
    for path, meta in zip(paths, metas):
        threads = max(1, meta.threads)
        offsets.append(tid0)
        own = meta.processes or (Process(0, tuple(range(threads))),)
        if as_ == "threads" and len(own) > 1:
            raise UserError(f"{path}: has {len(own)} processes; --as threads merges one-process "
                            f"traces (use --as processes)")
        for p in own:
            if as_ == "processes":
                name = path.name if len(own) == 1 else f"{path.name}:{p.name or p.pid}"
                processes.append(Process(len(processes) + 1, (), name))
            elif not processes:
                processes.append(Process(1, ()))
            pid = processes[-1].pid
            tids = processes[-1].tids + tuple(tid0 + t for t in p.tids)
            processes[-1] = dataclasses.replace(processes[-1], tids=tids)
            owner = p.pid if meta.processes else None  # a version-1 input's regions have no pid
            regions += [dataclasses.replace(r, pid=pid) for r in meta.regions if r.pid == owner]
        tid0 += threads
    if as_ == "threads":
        regions = _one_address_space(paths, metas, regions)
    regions = _mark_shared(regions, shared, notes)
    if tid0 > 1 << 16:
        raise UserError(f"the inputs have {tid0:,} threads together; a trace holds at most 65,536")
    sources = "+".join(dict.fromkeys(m.source for m in metas))
    meta = TraceMeta(source=sources, threads=tid0, regions=tuple(regions),
                     processes=tuple(processes))
    where = Path("(merged metadata)")
    check_processes(where, meta.processes, meta.threads)  # cannot fail unless this code is wrong
    check_regions(where, meta.regions, meta.processes)
    if any(m.generator for m in metas):
        notes.append("the inputs' generator metadata is not kept (each process is named after "
                     "its input file)")
    return Layout(tuple(offsets), meta, tuple(notes))


def _one_address_space(paths: list[Path], metas: list[TraceMeta],
                       regions: list[Region]) -> list[Region]:
    """Regions of several inputs as one process's: duplicates once, conflicts refused."""
    owner = [path for path, m in zip(paths, metas) for _ in m.regions]
    kept: list[tuple[Region, Path]] = []
    for r, path in sorted(zip(regions, owner), key=lambda x: x[0].start):
        if kept and r.start < kept[-1][0].end:
            prev, prev_path = kept[-1]
            if _same_mapping(prev, r):
                continue
            raise UserError(f"{path}: region {r.start:#x}-{r.end:#x} ({r.kind}) overlaps "
                            f"{prev.start:#x}-{prev.end:#x} ({prev.kind}) of {prev_path} in one "
                            f"address space (--as threads); merge them --as processes")
        kept.append((r, path))
    return [r for r, _ in kept]


def _same_mapping(a: Region, b: Region) -> bool:
    return dataclasses.replace(a, name="") == dataclasses.replace(b, name="")


def _mark_shared(regions: list[Region], shared: tuple[str, ...], notes: list[str]) -> list[Region]:
    out = list(regions)
    for sel in shared:
        pick = _selector(sel)
        chosen = [i for i, r in enumerate(out) if pick(r)]
        if not chosen:
            raise UserError(f"--shared {sel}: no region of the inputs is "
                            f"{'inside that range' if '-' in sel and sel.startswith('0x') else 'named so'}"
                            f" (`trace info` lists the regions; a trace without regions "
                            f"metadata, as a converted lackey log, has none to share)")
        base: dict[int | None, int] = {}
        for i in chosen:
            base.setdefault(out[i].pid, min(out[j].start for j in chosen if out[j].pid == out[i].pid))
        for i in chosen:
            r = out[i]
            if r.file is not None and r.file.id != sel:
                raise UserError(f"--shared {sel}: region {r.start:#x}-{r.end:#x} of pid {r.pid} "
                                f"already maps file {r.file.id!r}")
            kind = r.kind if r.kind in ("code", "file") else "file"
            if kind != r.kind:
                notes.append(f"--shared {sel}: region {r.start:#x}-{r.end:#x} of pid {r.pid} was "
                             f"{r.kind}, now a file mapping")
            offset = (r.start - base[r.pid]) // PAGE_SIZE * PAGE_SIZE
            out[i] = dataclasses.replace(r, kind=kind, file=FileMapping(sel, offset))
    return out


def _selector(sel: str):
    """A region name, or 0xSTART-0xEND (every region lying inside)."""
    lo_hi = sel.split("-")
    if len(lo_hi) == 2 and all(x.lower().startswith("0x") for x in lo_hi):
        try:
            lo, hi = (int(x, 16) for x in lo_hi)
        except ValueError:
            raise UserError(f"--shared {sel}: expected a region name or 0xSTART-0xEND") from None
        if hi <= lo:
            raise UserError(f"--shared {sel}: the range ends before it starts")
        return lambda r: lo <= r.start and r.end <= hi
    if not sel:
        raise UserError("--shared: expected a region name or 0xSTART-0xEND, got ''")
    return lambda r: r.name == sel
