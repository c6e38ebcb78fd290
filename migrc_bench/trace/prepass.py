"""The pre-pass: one streaming pass over a trace that says which pages it has and how it uses them.

What ``trace info`` reports and what the replay needs before its first access: the page set
(code and data pages, pages only read and pages written, first-touch order, accesses per
page) and the records per op and per thread. The replay uses it for the footprint that
shares such as ``memory.dram = "18%"`` are taken of, for VMAs of a trace without regions
metadata (a page fetched from is text), and for the steady-state start (which pages are
present, where they are placed, which the trace writes).

A native trace's profile is cached in the cache directory (``migrc_bench.cache``) under the
SHA-256 of the trace file's bytes: a changed file has another key, so a stale profile is
never used, and a copied or moved trace keeps its profile. Hashing reads the file once
(~0.5 GB/s here); the pass itself reads and decodes it (>20 M records/s, benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..cache import cache_path, file_sha256, make_cache_dir
from .native import PAGE_SHIFT, PAGE_SIZE, Region, TraceMeta, TraceReader, as_reader
from .pageset import FETCH, WRITE, PageSet, count_records

PREPASS_VERSION = 1  # bump when what is stored changes: older entries are then ignored
PREPASS_DIR = "pagesets"


@dataclass(frozen=True)
class TraceProfile:
    """A trace's page set and record counts. Arrays are in first-touch order."""

    vpns: np.ndarray       # uint64 page numbers
    flags: np.ndarray      # uint8 FETCH | READ | WRITE seen on the page
    counts: np.ndarray     # int64 accesses per page (a page-crossing access counts on both)
    code: np.ndarray       # bool: fetched from, or inside a region of kind "code"
    by_op: np.ndarray      # int64[4] records per op
    tids: np.ndarray       # uint16 thread ids seen
    tid_records: np.ndarray  # int64 records per thread id in ``tids``

    @property
    def records(self) -> int:
        return int(self.by_op.sum())

    @property
    def written(self) -> np.ndarray:
        return (self.flags & WRITE) != 0

    @property
    def data_pages(self) -> int:
        return int(np.count_nonzero(~self.code))

    @property
    def data_bytes(self) -> int:
        """Distinct data pages x 4 KiB: the footprint of a trace without regions metadata."""
        return self.data_pages * PAGE_SIZE

    def by_thread(self) -> np.ndarray:
        out = np.zeros(1 << 16, np.int64)
        out[self.tids] = self.tid_records
        return out


def footprint_bytes(meta: TraceMeta, profile: TraceProfile | None) -> int:
    """Data regions' size when the trace has regions, else its distinct data pages x 4 KiB."""
    if meta.footprint_bytes or profile is None:
        return meta.footprint_bytes
    return profile.data_bytes


def _in_code_regions(pages: np.ndarray, regions: tuple[Region, ...]) -> np.ndarray:
    inside = np.zeros(len(pages), bool)
    for r in regions:
        if r.kind == "code" and r.end > r.start:
            first, last = r.start >> PAGE_SHIFT, (r.end - 1) >> PAGE_SHIFT
            inside |= (pages >= np.uint64(first)) & (pages <= np.uint64(last))
    return inside


def scan(batches, regions: tuple[Region, ...] = ()) -> TraceProfile:
    """The pass itself over any stream of record batches (native or parsed on the fly)."""
    by_op = np.zeros(4, np.int64)
    by_thread = np.zeros(1 << 16, np.int64)
    pages = PageSet()
    for batch in batches:
        count_records(batch.op, batch.tid, by_op, by_thread)
        pages.add(batch.op, batch.addr, batch.size)
    vpns, flags, counts = pages.in_touch_order()
    code = ((flags & FETCH) != 0) | _in_code_regions(vpns, regions)
    tids = np.flatnonzero(by_thread).astype(np.uint16)
    return TraceProfile(vpns, flags, counts, code, by_op, tids, by_thread[tids])


def profile_path(sha256: str) -> Path:
    return cache_path(PREPASS_DIR, f"{sha256}.v{PREPASS_VERSION}.npz")


_FIELDS = ("vpns", "flags", "counts", "code", "by_op", "tids", "tid_records")


def _load(path: Path) -> TraceProfile | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return TraceProfile(*(z[name] for name in _FIELDS))
    except (OSError, KeyError, ValueError):
        return None  # missing, or damaged: computed again


def _store(path: Path, profile: TraceProfile) -> None:
    """Best effort, atomically: a cache that cannot be written only costs the next run a pass."""
    try:
        make_cache_dir(PREPASS_DIR)  # the cache's tag, as for generated traces
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{name: getattr(profile, name) for name in _FIELDS})
    except OSError:
        pass


def trace_profile(trace: str | Path | TraceReader, sha256: str | None = None) -> TraceProfile:
    """The profile of a native trace: from the cache, else one pass (then cached).

    ``sha256``: the trace file's hash when the caller already has it (results need it too).
    """
    reader = as_reader(trace)
    path = profile_path(sha256 or file_sha256(reader.path))
    profile = _load(path)
    if profile is None:
        profile = scan(reader.iter_batches(), reader.meta.regions)
        _store(path, profile)
    return profile
