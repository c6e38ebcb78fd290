"""Checking a generator against the real program: the same figures from both traces.

The real side: build the program, run it under ``valgrind --tool=lackey --trace-mem=yes`` with
``malloc_log.so`` preloaded (benchmarks/programs/), convert the log to a native trace, and cut
it to the kernel of the work (``cut_to_kernel``): a window opens at each fetch of the kernel
function's first instruction and closes at the last fetch inside the kernel's functions
(``nm`` addresses of a -no-pie build) before the next opening, so start-up, graph loading,
printing and libc exit are dropped, while everything the kernel calls (libgomp, memcpy,
malloc) stays in. The malloc log names the arrays (``RealLayout``).

Three kinds of lackey records are Valgrind's, not the hardware's, and the cut drops them
(``lackey_artifacts``, ``_keep_records``): VEX runs ``bt``/``bts``/``btr``/``btc`` with
register operands through memory (a store of the register below the stack pointer and a
byte load: two records per bit test in GAP's bitmap loops); it splits a locked
read-modify-write (``lock add``, ``xadd``, ``xchg``) into a load and a modify of the same
address, where the hardware makes one access, the modify; and it runs ``rep movsb`` /
``rep stosb`` (glibc's memcpy and memset above ~2 KiB) one byte per iteration, each a fetch
and one or two 1-byte accesses, where the hardware moves whole lines: such a loop is folded
to one execution per 32 bytes, the AVX2 vector that ``gencore.emit_memcpy`` writes.

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
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numba as nb
import numpy as np

from .trace.native import PAGE_SHIFT, TraceReader, TraceWriter
from .trace.pageset import WRITE, PageSet

PROGRAMS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "programs"  # noqa: E501
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
           min_alloc: int = 4096, timeout: float = 1800,
           extra_env: dict[str, str] | None = None) -> None:
    """Run ``cmd`` under lackey with the malloc shim, one OpenMP thread (and ``extra_env``)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_LOG=str(malloc_log),
               MALLOC_LOG_MIN=str(min_alloc), LD_PRELOAD=str(preload), **(extra_env or {}))
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


BIT_TESTS = ("bt", "bts", "btr", "btc")


def lackey_artifacts(binary: str | Path, ranges: np.ndarray) -> np.ndarray:
    """Sorted addresses of the instructions in ``ranges`` whose lackey data records VEX makes
    up: bit tests with register operands (no memory operand in ``objdump -d``)."""
    out = []
    for lo, hi in ranges:
        text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={lo:#x}",
                               f"--stop-address={hi:#x}", str(binary)], check=True,
                              capture_output=True, text=True).stdout
        for line in text.splitlines():
            m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
            if m and m.group(2) in BIT_TESTS and "(" not in m.group(3):
                out.append(int(m.group(1), 16))
    return np.array(sorted(out), np.int64)


@nb.njit(cache=True)
def _keep_records(op, addr, size, artifacts, state, keep):
    """Mark the records a cut keeps (see ``cut_to_kernel``). state carries, across batches:
    the current instruction, whether its records are being dropped, and the previous fetch's
    address and first data address (for string loops)."""
    n = op.shape[0]
    cur, dropping, prev_fetch, prev_data = state[0], state[1], state[2], state[3]
    for i in range(n):
        if op[i] == 0:
            a = np.int64(addr[i])
            dropping = 0
            if i + 1 < n and op[i + 1] != 0 and size[i + 1] == 1:
                d = np.int64(addr[i + 1])
                # one more byte of a rep-string loop: keep one execution per 32 bytes
                if a == prev_fetch and d == prev_data + 1 and (d & 31) != 0:
                    dropping = 1
                prev_data = d
            else:
                prev_data = -2
            prev_fetch = a
            cur = a
            keep[i] = dropping == 0
            continue
        if dropping:
            keep[i] = False
            continue
        j = np.searchsorted(artifacts, cur)
        if j < artifacts.shape[0] and artifacts[j] == cur:
            keep[i] = False
        elif (op[i] == 1 and i + 1 < n and op[i + 1] == 3 and addr[i + 1] == addr[i]
              and size[i + 1] == size[i]):
            keep[i] = False
        else:
            keep[i] = True
    state[0], state[1], state[2], state[3] = cur, dropping, prev_fetch, prev_data


def cut_to_kernel(src: str | Path, out: str | Path, entry: int, ranges: np.ndarray,
                  artifacts: np.ndarray | None = None) -> int:
    """Write the rows of ``kernel_windows`` to ``out``, without Valgrind's artifacts (the
    instructions ``artifacts`` and locked loads); returns the number of windows."""
    windows = kernel_windows(src, entry, ranges)
    if not windows:
        raise ValueError(f"{src}: the kernel's entry {entry:#x} is never fetched")
    arts = np.zeros(0, np.int64) if artifacts is None else np.asarray(artifacts, np.int64)
    state = np.array([0, 0, -1, -2], np.int64)
    reader = TraceReader(src)
    with TraceWriter(out, reader.meta) as w:
        base = 0
        for batch in reader.iter_batches():
            n = len(batch)
            keep = np.ones(n, np.bool_)
            _keep_records(batch.op, batch.addr, batch.size, arts, state, keep)
            for s, e in windows:
                lo, hi = max(s - base, 0), min(e - base, n)
                if lo < hi:
                    k = keep[lo:hi]
                    w.write(batch.tid[lo:hi][k], batch.op[lo:hi][k], batch.addr[lo:hi][k],
                            batch.size[lo:hi][k])
            base += n
    return len(windows)


MARKS = 4096


@dataclass
class RealLayout:
    """The arrays of a real run from its malloc log: (address, size, name) per allocation in
    order, and the address of the shim's mark array (see malloc_log.c)."""

    allocs: list[tuple[int, int, str | None]] = field(default_factory=list)
    marks: int = 0
    fixed: list[tuple[int, int, str]] = field(default_factory=list)

    @classmethod
    def from_malloc_log(cls, log: str | Path, name_of: Callable[[int, int], str | None]
                        ) -> "RealLayout":
        """``name_of(size, k)`` names the k-th allocation of that size (None: not an array)."""
        seen: dict[int, int] = {}
        out = cls()
        for line in Path(log).read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "marks":
                out.marks = int(parts[1], 16)
            elif len(parts) == 3 and parts[0] == "alloc":
                addr, size = int(parts[1], 16), int(parts[2], 16)
                k = seen.get(size, 0)
                seen[size] = k + 1
                out.allocs.append((addr, size, name_of(size, k)))
        return out

    def change_points(self, trace: str | Path) -> list[tuple[int, list[tuple[int, int, str]]]]:
        """(first row, named intervals) from each point of ``trace`` where an allocation
        happened: a mark store at marks + 8 (k mod 4096) is allocation k. Allocations before the
        trace's first mark (the graph, built before the kernel) hold from row 0; a later one
        replaces whatever it overlaps."""
        rows: list[tuple[int, int]] = []
        base = 0
        lo, hi = self.marks, self.marks + 8 * MARKS
        for b in TraceReader(trace).iter_batches():
            hit = np.flatnonzero((b.op == 2) & (b.addr >= lo) & (b.addr < hi))
            rows += [(base + int(i), int(b.addr[i] - lo) // 8) for i in hit]
            base += len(b)
        ks: list[tuple[int, int]] = []
        last = -1
        for row, j in rows:
            k = last + 1 + (j - (last + 1)) % MARKS
            ks.append((row, k))
            last = k
        first = ks[0][1] if ks else len(self.allocs)
        active: list[tuple[int, int, str]] = list(self.fixed)
        for k in range(min(first, len(self.allocs))):
            active = _activate(active, self.allocs[k])
        points = [(0, list(active))]
        for row, k in ks:
            if k < len(self.allocs):
                active = _activate(active, self.allocs[k])
                points.append((row, list(active)))
        return points


def _activate(active: list[tuple[int, int, str]], alloc: tuple[int, int, str | None]
              ) -> list[tuple[int, int, str]]:
    """The intervals after ``alloc``: what it overlaps is cut away, it is added if named."""
    addr, size, name = alloc
    end = addr + size
    out: list[tuple[int, int, str]] = []
    for s, e, n in active:
        if e <= addr or s >= end:
            out.append((s, e, n))
            continue
        if s < addr:
            out.append((s, addr, n))
        if e > end:
            out.append((end, e, n))
    if name:
        out.append((addr, end, name))
    return out


# ---- measuring a trace ------------------------------------------------------------------------
@nb.njit(cache=True)
def _classify(op, addr, starts, ends, ids, counts, code, which):
    """Data records per interval id (last: none), and each data record's id in ``which``;
    fetches followed by a data record count as code."""
    n = op.shape[0]
    other = counts.shape[0] - 1
    for i in range(n):
        if op[i] == 0:
            if i + 1 < n and op[i + 1] != 0:
                code[0] += 1
            continue
        a = np.int64(addr[i])
        j = np.searchsorted(starts, a, side="right") - 1
        r = ids[j] if j >= 0 and a < ends[j] else other
        counts[r] += 1
        which[i] = r


@dataclass
class Profile:
    """What ``profile`` measures of one trace (see the module docstring)."""

    units: int
    unit: str
    records: dict[str, int]          # data records per region, and "code"
    pages: dict[str, int]            # distinct data pages per region
    data_pages: int                  # distinct data pages of all regions but "other"
    read_only_pages: int             # of which only ever read
    dtlb_walks: int

    def per_unit(self, n: float) -> float:
        return n / self.units

    @property
    def read_only_share(self) -> float:
        """Data pages only read, over all data pages of the modelled regions (all but
        "other": libraries' data, the binary's, small malloc chunks)."""
        return self.read_only_pages / self.data_pages if self.data_pages else 0.0

    def to_json(self) -> dict[str, object]:
        return {"units": self.units, "unit": self.unit, "records": self.records,
                "pages": self.pages, "data_pages": self.data_pages,
                "read_only_pages": self.read_only_pages, "dtlb_walks": self.dtlb_walks}


def generated_layout(trace: str | Path) -> list[tuple[int, int, str]]:
    """A generated trace's named ranges: its arrays (``migrc_bench.arrays``: "items:3" counts
    as "items"), else its regions; every stack region as "stack"."""
    import json

    meta = TraceReader(trace).meta
    out = [(r.start, r.end, "stack") for r in meta.regions if r.kind == "stack"]
    arrays = json.loads(meta.extra.get("arrays", "{}"))
    if arrays:
        for name, a in arrays.items():
            start = int(a["start"])
            out.append((start, start + int(a["length"]) * int(a["elem_size"]),
                        name.split(":")[0]))
        return out
    for r in meta.regions:
        if r.kind not in ("code", "stack"):
            out.append((r.start, r.end, r.name.split(":")[0]))
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


def profile(trace: str | Path, layout: list[tuple[int, int, str]] | RealLayout, units: int,
            unit: str, dtlb_walks: int | None = None,
            extra: list[tuple[int, int, str]] = ()) -> Profile:
    """Records per region, pages, read-only share and (replayed) dTLB walks of ``trace``.

    ``layout`` names its address ranges: fixed intervals (a generated trace) or a real run's
    ``RealLayout``, whose intervals change where allocations happened; ``extra`` intervals
    (the real stack) hold throughout.
    """
    if isinstance(layout, RealLayout):
        points = [(row, ivs + list(extra)) for row, ivs in layout.change_points(trace)]
    else:
        points = [(0, list(layout) + list(extra))]
    names = list(dict.fromkeys(n for _, ivs in points for _, _, n in ivs))
    other = len(names)
    counts = np.zeros(other + 1, np.int64)
    code = np.zeros(1, np.int64)
    page_sets = [PageSet() for _ in range(other + 1)]
    modelled = PageSet()
    tables = [_interval_table(ivs, names) for _, ivs in points]
    starts_rows = [row for row, _ in points] + [2**62]
    base = 0
    seg = 0
    for b in TraceReader(trace).iter_batches():
        n = len(b)
        lo = 0
        while lo < n:
            while starts_rows[seg + 1] <= base + lo:
                seg += 1
            hi = min(n, starts_rows[seg + 1] - base)
            st, en, ids = tables[seg]
            op, addr, size = b.op[lo:hi], b.addr[lo:hi], b.size[lo:hi]
            which = np.full(hi - lo, -1, np.int64)
            _classify(op, addr, st, en, ids, counts, code, which)
            for r in range(other + 1):
                sel = which == r
                if sel.any():
                    page_sets[r].add(op[sel], addr[sel], size[sel])
            sel = (which >= 0) & (which < other)
            modelled.add(op[sel], addr[sel], size[sel])
            lo = hi
        base += n
    labels = names + ["other"]
    records = {"code": int(code[0])}
    records.update({labels[i]: int(c) for i, c in enumerate(counts)})
    pages = {labels[i]: len(ps) for i, ps in enumerate(page_sets)}
    _, flags = modelled.items()
    walks = replay_dtlb_walks(trace) if dtlb_walks is None else dtlb_walks
    return Profile(units, unit, records, pages, len(flags), int(((flags & WRITE) == 0).sum()),
                   walks)


def _interval_table(ivs: list[tuple[int, int, str]], names: list[str]):
    ivs = sorted(ivs)
    return (np.array([s for s, _, _ in ivs], np.int64), np.array([e for _, e, _ in ivs], np.int64),
            np.array([names.index(n) for _, _, n in ivs], np.int64))


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


# ---- the checks of the four workloads ---------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent        # the checkout
GAP_FLAGS = ["-std=c++11", "-O3", "-Wall", "-fopenmp", "-no-pie"]


@dataclass
class RealCheck:
    """One generator against its real program at the same parameters (one thread)."""

    name: str                       # the generator
    gen_args: str                   # its flags (without -t, -o)
    unit: str
    kernel: str                     # the kernel's function (its entry opens a window)
    prefixes: tuple[str, ...]       # the functions that are the kernel
    min_alloc: int = 4096           # smallest allocation the malloc log records

    def build(self, work: Path) -> tuple[Path, list[str]]:
        """Build the real program in ``work``; returns (binary, command line)."""
        if self.name in ("gups", "kv"):
            binary = work / self.name
            subprocess.run(["gcc", "-O2", "-fopenmp", "-no-pie", "-o", str(binary),
                            str(PROGRAMS_DIR / f"{self.name}.c"), "-lm"], check=True)
            args = self.gen_args.split()
            if self.name == "gups":
                return binary, [str(binary), args[1], args[3]]
            opt = dict(zip(args[0::2], args[1::2]))
            return binary, [str(binary), opt["-k"], opt["-v"], opt["-z"], opt["-w"], opt["-n"],
                            opt["--seed"]]
        src = work / "gapbs"
        if not src.exists():
            shutil.copytree(gapbs_source(), src)
        prog = "bfs" if self.name == "gapbs-bfs" else "pr"
        for p in (prog, "converter"):
            if not (src / p).exists():
                subprocess.run(["g++", *GAP_FLAGS, f"src/{p}.cc", "-o", p], cwd=src, check=True)
        opt = dict(zip(self.gen_args.split()[0::2], self.gen_args.split()[1::2]))
        graph = src / f"g{opt['-g']}k{opt.get('-k', '16')}.sg"
        if not graph.exists():
            subprocess.run([str(src / "converter"), "-g", opt["-g"], "-k", opt.get("-k", "16"),
                            "-b", str(graph)], check=True, capture_output=True)
        cmd = [str(src / prog), "-f", str(graph), "-n", opt["-n"]]
        if "-i" in opt:
            cmd += ["-i", opt["-i"]]
        return src / prog, cmd

    def real_profile(self, work: Path, gen_units: int, result) -> Profile:
        binary, cmd = self.build(work)
        preload = build_malloc_log(work)
        log, allocs = work / f"{self.name}.lackey", work / f"{self.name}.allocs"
        full, cut = work / f"{self.name}-full.parquet", work / f"{self.name}-real.parquet"
        try:
            lackey(cmd, work, log, allocs, preload, self.min_alloc)
            from .trace.convert import convert

            convert(log, full)
        finally:
            log.unlink(missing_ok=True)
        syms = symbols(binary)
        entry = next(a for n, (a, _) in syms.items() if n.split("(")[0] == self.kernel
                     and "clone" not in n and "._omp_fn" not in n)
        ranges = function_ranges(syms, self.prefixes)
        cut_to_kernel(full, cut, entry, ranges, lackey_artifacts(binary, ranges))
        full.unlink()
        layout = RealLayout.from_malloc_log(allocs, self.namer(result))
        lo, hi = real_stack(cut)
        return profile(cut, layout, gen_units, self.unit, extra=[(lo, hi, "stack")])

    def namer(self, result) -> Callable[[int, int], str | None]:
        """Name the real program's allocations as the generator names its arrays."""
        if self.name == "gups":
            words = result.params.table_words
            return lambda size, k: "table" if size == 8 * words else None
        if self.name == "kv":
            from .trace import kv

            p = result.params
            sizes = {kv.STORE_BYTES: "store", 8 << p.hashpower: "buckets",
                     kv.SLAB_BYTES: "items", kv.CONN_BYTES: "conn", 8 * kv.BATCH: "requests"}
            return lambda size, k: sizes.get(size)
        n, m = result.num_nodes, 2 * result.num_edges
        if self.name == "gapbs-pr":
            def pr_name(size: int, k: int) -> str | None:
                if size == 4 * m:
                    return "neighs"
                if size == 8 * (n + 1):
                    return "index" if k == 1 else None      # k 0: the .sg reader's offsets
                if size == 4 * n:
                    return ("scores", "contrib")[k % 2]
                return None
            return pr_name
        words = (n + 63) // 64

        def bfs_name(size: int, k: int) -> str | None:
            if size == 4 * m:
                return "neighs"
            if size == 8 * (n + 1):
                return "index" if k == 1 else None
            if size == 4 * n:
                return ("parent", "queue")[k % 2]
            if size == 8 * words:
                return "bitmap"
            if size == 4 * 16384:
                return "queue_buffer"
            return None
        return bfs_name

    def run(self, work: str | Path) -> tuple[Profile, Profile, list[Figure]]:
        """Generate, trace the real program, profile both; the compared figures."""
        from .trace.generators import get

        work = Path(work)
        work.mkdir(parents=True, exist_ok=True)
        spec = get(self.name)
        params = spec.parse(f"{self.gen_args} -t 1")
        gen_trace = work / f"{self.name}-generated.parquet"
        result = spec.generate(gen_trace, params)
        units = getattr(result, "units", params.work_units)
        gen = profile(gen_trace, generated_layout(gen_trace), units, self.unit)
        real = self.real_profile(work, units, result)
        return real, gen, compare(real, gen)


def gapbs_source() -> Path:
    """The unmodified gapbs sources (../shared/third_party/gapbs from the checkout)."""
    env = os.environ.get("MIGRC_BENCH_GAPBS")
    candidates = [ROOT.parent / "shared", ROOT.parent.parent / "shared"]   # checkout, worktree
    for p in ([Path(env)] if env else []) + [c / "third_party" / "gapbs" for c in candidates]:
        if (p / "src" / "bfs.cc").exists():
            return p
    raise FileNotFoundError("gapbs sources not found: set MIGRC_BENCH_GAPBS to a copy of "
                            "github.com/sbeamer/gapbs (b5e3e19)")


CHECKS: dict[str, RealCheck] = {c.name: c for c in (
    RealCheck("gups", "-n 20 -u 500000", "update", "update", ("update", "starts")),
    RealCheck("kv", "-k 20000 -v 1000 -z 0.99 -w 0.05 -n 50000 --seed 1", "operation", "serve",
              ("serve",)),
    RealCheck("gapbs-bfs", "-g 15 -n 1", "edge", "DOBFS",
              ("DOBFS", "TDStep", "BUStep", "QueueToBitmap", "BitmapToQueue", "InitParent"),
              min_alloc=1024),
    RealCheck("gapbs-pr", "-g 14 -n 1 -i 6", "edge", "PageRankPullGS", ("PageRankPullGS",),
              min_alloc=1024),
)}
