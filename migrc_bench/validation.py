"""Checking a generator against the real program: the same figures from both traces.

The real side: build the program, run it under ``valgrind --tool=lackey --trace-mem=yes`` with
``malloc_log.so`` preloaded (benchmarks/programs/), convert the log to a native trace, and cut
it to the kernel of the work (``cut_to_kernel``): a window opens at each fetch of the kernel
function's first instruction and closes at the last fetch inside the kernel's functions
(``nm`` addresses of a -no-pie build) before the next opening, so start-up, graph loading,
printing and libc exit are dropped, while everything the kernel calls (libgomp, memcpy,
malloc) stays in. The malloc log names the arrays (``RealLayout``).

The generated side: the generator's own trace at the same parameters, one thread (lackey runs
the program's threads one at a time and writes no thread ids), its arrays named by its regions.

``profile`` then measures both the same way:

* records per unit of work by region: data records per array, on the stack, elsewhere
  ("other": libraries' and the binary's data, small malloc chunks), and ``code``: fetches of
  instructions that access data (the generators' convention is one fetch per data access; a
  lackey trace fetches every instruction, so only the fetches followed by a data record count);
* distinct data pages, per region and in all;
* the read-only share: data pages only ever read, over all data pages;
* dTLB walks per unit of work: ``dtlb_load_misses + dtlb_store_misses`` of a replay on the
  skylake-sp TLBs (64-entry dTLB, 1536-entry STLB) with tiering off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numba as nb
import numpy as np

from .trace.native import PAGE_SHIFT, TraceReader, TraceWriter
from .trace.pageset import WRITE, PageSet

PROGRAMS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "programs"
STACK_SPAN = 8 << 20          # a lackey trace's stack: the 8 MiB below its highest data address


# ---- the real program -------------------------------------------------------------------------
def missing_tools() -> list[str]:
    return [t for t in ("gcc", "g++", "valgrind", "nm") if shutil.which(t) is None]


def symbols(binary: str | Path) -> dict[str, tuple[int, int]]:
    """Function name (demangled) -> (address, size) from ``nm -S -C --defined-only``."""
    out = subprocess.run(["nm", "-S", "-C", "--defined-only", str(binary)], check=True,
                         capture_output=True, text=True).stdout
    syms: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            syms.setdefault(parts[3], (int(parts[0], 16), int(parts[1], 16)))
    return syms


def function_ranges(syms: dict[str, tuple[int, int]], prefixes: Iterable[str]
                    ) -> np.ndarray:
    """int64[k, 2] address ranges of every function whose name starts with one of ``prefixes``
    (so "TDStep(" also takes its OpenMP outlined clone "TDStep(...) [clone ._omp_fn.0]")."""
    prefixes = tuple(prefixes)
    rows = sorted((a, a + s) for name, (a, s) in syms.items() if name.startswith(prefixes) and s)
    if not rows:
        raise ValueError(f"no function starts with {prefixes}")
    return np.array(rows, np.int64)


def build_malloc_log(out_dir: Path) -> Path:
    so = out_dir / "malloc_log.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(so),
                    str(PROGRAMS_DIR / "malloc_log.c")], check=True)
    return so


def lackey(cmd: list[str], workdir: Path, log: Path, malloc_log: Path, preload: Path,
           min_alloc: int = 4096, timeout: float = 1800) -> None:
    """Run ``cmd`` under lackey with the malloc shim, one OpenMP thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_LOG=str(malloc_log),
               MALLOC_LOG_MIN=str(min_alloc), LD_PRELOAD=str(preload))
    subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={log}", *cmd],
                   cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=timeout)


@nb.njit(cache=True)
def _in_ranges(addr, ranges):
    i = np.searchsorted(ranges[:, 0], addr, side="right") - 1
    return i >= 0 and addr < ranges[i, 1]


@nb.njit(cache=True)
def _scan_windows(op, addr, base, entry, ranges, state, opens, closes):
    """Find entry fetches (window openings) and the last in-range fetch before each; state[0]
    is the last in-range fetch since the latest opening (carried between batches)."""
    k = 0
    for i in range(op.shape[0]):
        if op[i] != 0:
            continue
        a = np.int64(addr[i])
        if a == entry:
            opens[k] = base + i
            closes[k] = state[0]        # closes the previous window (-1: none)
            k += 1
            state[0] = -1
        if _in_ranges(a, ranges):
            state[0] = base + i
    return k


def kernel_windows(trace: str | Path, entry: int, ranges: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) row ranges of each call of the kernel (see the module docstring)."""
    opens: list[int] = []
    prev_close: list[int] = []
    state = np.full(1, -1, np.int64)
    base = 0
    for batch in TraceReader(trace).iter_batches():
        n = len(batch)
        o = np.zeros(n, np.int64)
        c = np.zeros(n, np.int64)
        k = _scan_windows(batch.op, batch.addr, base, np.int64(entry), ranges, state, o, c)
        opens += o[:k].tolist()
        prev_close += c[:k].tolist()
        base += n
    closes = prev_close[1:] + [int(state[0])]
    return [(s, e + 1) for s, e in zip(opens, closes) if e >= s]


def cut_to_kernel(src: str | Path, out: str | Path, entry: int, ranges: np.ndarray) -> int:
    """Write the rows of ``kernel_windows`` to ``out``; returns the number of windows."""
    windows = kernel_windows(src, entry, ranges)
    if not windows:
        raise ValueError(f"{src}: the kernel's entry {entry:#x} is never fetched")
    reader = TraceReader(src)
    with TraceWriter(out, reader.meta) as w:
        base = 0
        for batch in reader.iter_batches():
            n = len(batch)
            for s, e in windows:
                lo, hi = max(s - base, 0), min(e - base, n)
                if lo < hi:
                    w.write(batch.tid[lo:hi], batch.op[lo:hi], batch.addr[lo:hi],
                            batch.size[lo:hi])
            base += n
    return len(windows)


@dataclass
class RealLayout:
    """Named address ranges of a real run: arrays from the malloc log, the stack."""

    intervals: list[tuple[int, int, str]] = field(default_factory=list)

    @classmethod
    def from_malloc_log(cls, log: str | Path, name_of: Callable[[int, int], str | None]
                        ) -> "RealLayout":
        """``name_of(size, k)`` names the k-th allocation of that size (None: not an array)."""
        seen: dict[int, int] = {}
        out: list[tuple[int, int, str]] = []
        for line in Path(log).read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "alloc":
                addr, size = int(parts[1], 16), int(parts[2], 16)
                k = seen.get(size, 0)
                seen[size] = k + 1
                name = name_of(size, k)
                if name:
                    out.append((addr, addr + size, name))
        return cls(out)


# ---- measuring a trace ------------------------------------------------------------------------
@nb.njit(cache=True)
def _classify(op, addr, starts, ends, ids, counts, code):
    """Data records per interval id (last column: none); fetches followed by a data record."""
    n = op.shape[0]
    other = counts.shape[0] - 1
    for i in range(n):
        if op[i] == 0:
            if i + 1 < n and op[i + 1] != 0:
                code[0] += 1
            continue
        a = np.int64(addr[i])
        j = np.searchsorted(starts, a, side="right") - 1
        if j >= 0 and a < ends[j]:
            counts[ids[j]] += 1
        else:
            counts[other] += 1


@dataclass
class Profile:
    """What ``profile`` measures of one trace (see the module docstring)."""

    units: int
    unit: str
    records: dict[str, int]          # data records per region, and "code"
    pages: dict[str, int]            # distinct data pages per region
    read_only: dict[str, int]        # of which only ever read
    dtlb_walks: int

    def per_unit(self, n: float) -> float:
        return n / self.units

    def modelled(self) -> list[str]:
        """Regions a generator models: every one but "other" (libraries' data, ...)."""
        return [k for k in self.pages if k != "other"]

    @property
    def data_pages(self) -> int:
        return sum(self.pages[k] for k in self.modelled())

    @property
    def read_only_share(self) -> float:
        """Data pages only read, over all data pages of the modelled regions."""
        n = self.data_pages
        return sum(self.read_only[k] for k in self.modelled()) / n if n else 0.0

    def to_json(self) -> dict[str, object]:
        return {"units": self.units, "unit": self.unit, "records": self.records,
                "pages": self.pages, "read_only": self.read_only, "dtlb_walks": self.dtlb_walks}


def generated_layout(trace: str | Path) -> list[tuple[int, int, str]]:
    """A generated trace's named ranges from its regions: "items:3" counts as "items", every
    stack as "stack"."""
    out = []
    for r in TraceReader(trace).meta.regions:
        if r.kind == "code":
            continue
        out.append((r.start, r.end, "stack" if r.kind == "stack" else r.name.split(":")[0]))
    return out


def real_stack(trace: str | Path) -> tuple[int, int]:
    """The stack of a lackey trace: the ``STACK_SPAN`` below its highest data address."""
    top = 0
    for b in TraceReader(trace).iter_batches():
        data = b.addr[b.op != 0]
        if len(data):
            top = max(top, int(data.max()))
    top = (top >> PAGE_SHIFT) + 1 << PAGE_SHIFT
    return top - STACK_SPAN, top


def profile(trace: str | Path, intervals: list[tuple[int, int, str]], units: int, unit: str,
            dtlb_walks: int | None = None) -> Profile:
    """Records per region, pages, read-only share and (replayed) dTLB walks of ``trace``."""
    ivs = sorted(intervals)
    names = list(dict.fromkeys(n for _, _, n in ivs))
    starts = np.array([s for s, _, _ in ivs], np.int64)
    ends = np.array([e for _, e, _ in ivs], np.int64)
    ids = np.array([names.index(n) for _, _, n in ivs], np.int64)
    counts = np.zeros(len(names) + 1, np.int64)
    code = np.zeros(1, np.int64)
    pages = PageSet()
    for b in TraceReader(trace).iter_batches():
        _classify(b.op, b.addr, starts, ends, ids, counts, code)
        data = b.op != 0
        pages.add(b.op[data], b.addr[data], b.size[data])
    vpns, flags = pages.items()
    page_names = np.full(len(vpns), len(names), np.int64)
    addr = vpns.astype(np.int64) << PAGE_SHIFT
    j = np.searchsorted(starts, addr, side="right") - 1
    inside = (j >= 0) & (addr < ends[np.maximum(j, 0)])
    page_names[inside] = ids[j[inside]]
    labels = names + ["other"]
    records = {"code": int(code[0])}
    records.update({labels[i]: int(c) for i, c in enumerate(counts)})
    only_read = (flags & WRITE) == 0
    per_region = {labels[i]: int((page_names == i).sum()) for i in range(len(labels))}
    read_only = {labels[i]: int(((page_names == i) & only_read).sum()) for i in range(len(labels))}
    walks = replay_dtlb_walks(trace) if dtlb_walks is None else dtlb_walks
    return Profile(units, unit, records, per_region, read_only, walks)


def replay_dtlb_walks(trace: str | Path) -> int:
    """dTLB walks of one replay on the skylake-sp TLBs with tiering off."""
    from .config import build_config
    from .runner import run_trace

    cfg = build_config({"machine.ncpu": max(1, TraceReader(trace).meta.threads),
                        "machine.preset": "skylake-sp", "tiering.enabled": False,
                        "memory.dram": "8GiB", "memory.cxl": "8GiB",
                        "memory.initial_pte": "writable-dirty"}, Path.cwd())
    result, _ = run_trace(cfg, trace)
    c = result.totals
    return int(c["dtlb_load_misses"] + c["dtlb_store_misses"])


TOLERANCE = 0.30          # the validation bound: generated within ±30 % of real
MIN_RECORD_SHARE = 0.02   # regions checked for records per unit: >= 2 % of the real records
MIN_PAGE_SHARE = 0.05     # regions checked for pages: >= 5 % of the real data pages
NEAR_ZERO_SHARE = 0.10    # a read-only share below this is checked to ±3 points, not ±30 %


@dataclass
class Figure:
    """One compared figure; ``checked`` ones must be within the tolerance (``ok``)."""

    figure: str
    real: float
    generated: float
    checked: bool

    @property
    def deviation_pct(self) -> float | None:
        return None if self.real == 0 else 100.0 * (self.generated - self.real) / self.real

    @property
    def ok(self) -> bool:
        if not self.checked:
            return True
        if self.figure == "read-only share" and self.real < NEAR_ZERO_SHARE:
            return abs(self.generated - self.real) <= NEAR_ZERO_SHARE * TOLERANCE
        return self.real != 0 and abs(self.generated - self.real) <= TOLERANCE * abs(self.real)

    def to_json(self) -> dict[str, object]:
        return {"figure": self.figure, "real": self.real, "generated": self.generated,
                "deviation_pct": self.deviation_pct, "checked": self.checked, "ok": self.ok}


def compare(real: Profile, gen: Profile) -> list[Figure]:
    """The figures of both traces. Checked: records per unit of every region holding at least
    MIN_RECORD_SHARE of the real data records (and code), pages of every region holding at
    least MIN_PAGE_SHARE of the real pages, all pages, the read-only share and dTLB walks per
    unit. "other" (what no generator models) is shown, never checked."""
    u = real.unit
    data = sum(v for k, v in real.records.items() if k != "code")
    out: list[Figure] = []
    for k in dict.fromkeys(list(real.records) + list(gen.records)):
        rv, gv = real.records.get(k, 0), gen.records.get(k, 0)
        big = k == "code" or rv >= MIN_RECORD_SHARE * data
        out.append(Figure(f"records/{u} {k}", real.per_unit(rv), gen.per_unit(gv),
                          k != "other" and big))
    for k in dict.fromkeys(list(real.pages) + list(gen.pages)):
        rv, gv = real.pages.get(k, 0), gen.pages.get(k, 0)
        out.append(Figure(f"pages {k}", rv, gv,
                          k != "other" and rv >= MIN_PAGE_SHARE * max(1, real.data_pages)))
    out.append(Figure("pages (modelled regions)", real.data_pages, gen.data_pages, True))
    out.append(Figure("read-only share", real.read_only_share, gen.read_only_share, True))
    out.append(Figure(f"dTLB walks/{u}", real.per_unit(real.dtlb_walks),
                      gen.per_unit(gen.dtlb_walks), True))
    return out
