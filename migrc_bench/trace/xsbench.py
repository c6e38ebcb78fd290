"""XSBench-like trace generator: XSBench's lookups, replayed as a memory-access trace.

Public API:

* ``generate_xsbench(out_path, size=..., grid=..., mode=..., ...)`` writes a native trace;
* ``generate_from_args(argv, out_path)`` does the same from XSBench-style flags
  (``"xsbench -s large -m history -t 16 -p 400 --seed 1"``), parsed with the CLI's flag table;
* ``xsbench_layout(...)`` returns where the arrays are (name -> start, length, element size);
* ``xsbench_checksum(...)`` runs the lookups without writing, for XSBench's verification value.

The modules behind it: ``xsbench_params`` (XSBench's tables and flags), ``xsbench_data`` (the exact
grid data and LCG), ``xsbench_layout`` (address space) and ``xsbench_kernel`` (the lookups).
docs/xsbench.md describes the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .gencore import Block, Progress, loop_length, new_block, parse_flags, write_trace
from .native import ROW_GROUP_ROWS, TraceMeta
from .xsbench_data import XSBenchData, build_data
from .xsbench_kernel import (C_CONCS, C_GRID, C_HASH_BINS, C_INDEX_GRID, C_ITERS, C_LOOKUPS,
                             C_MATS, C_MAX_NUCS, C_MAX_RECORDS, C_MODE, C_N_GRID, C_N_ISO,
                             C_N_POINTS, C_NUCLIDE_GRID, C_NUM_NUCS, C_THREADS, C_UEG, N_CFG,
                             U_SEED, U_START, fill)
from .xsbench_layout import ArraySpan, XSBenchLayout, build_layout
from .sizes import SizeEstimate, shorter
from .xsbench_params import (CHUNK, DEFAULT_HASH_BINS, DEFAULT_LOOKUPS_PER_PARTICLE, GRID_IDS,
                             MATERIAL_CDF, MODE_IDS, STARTING_SEED, XSBenchParams, click_params,
                             material_lists, resolve_params)

SOURCE = "xsbench-synth"
VERIFY_MODULUS = 999_983          # Main.c: verification = verification % 999983

__all__ = ["XSBenchResult", "generate_xsbench", "generate_from_args", "xsbench_layout",
           "xsbench_checksum", "iter_blocks", "expected_records_per_lookup",
           "max_records_per_lookup", "parse_args", "resolve_params", "click_params", "generate",
           "expected_records", "size_estimate"]


@dataclass(frozen=True)
class XSBenchResult:
    """What a generation produced; ``verification`` is XSBench's checksum for the same run."""

    path: Path
    meta: TraceMeta
    params: XSBenchParams
    records: int
    verification: int

    @property
    def lookups(self) -> int:
        return self.params.total_lookups

    def summary(self) -> str:
        p = self.params
        return (f"{self.records:,} records ({p.total_lookups:,} lookups, {p.threads} threads, "
                f"{p.size}/{p.grid}/{p.mode}); XSBench verification checksum {self.verification}")


def max_records_per_lookup(p: XSBenchParams) -> int:
    """Upper bound on the records of one lookup (the kernel keeps this much room per block)."""
    searches = {"unionized": 1, "nuclide": p.gridpoints.bit_length() + 1,
                "hash": 4 + p.gridpoints.bit_length() + 1}[p.grid]
    max_nucs = max(len(m) for m in material_lists(p.n_isotopes))
    per_nuclide = 2 + searches + 2 + 3          # mats, concs, index/search, 2 points, 3 stack
    data = 4 + 2 + (p.n_points.bit_length() + 1) + 1 + max_nucs * per_nuclide
    return 2 * data                              # every data access has its instruction fetch


def expected_records_per_lookup(p: XSBenchParams) -> float:
    """Mean records per lookup (within ~1 % of measured), for size estimates before a run."""
    mats = material_lists(p.n_isotopes)
    probs = np.diff(np.concatenate([[0.0], MATERIAL_CDF]))
    nucs = float(sum(pr * len(m) for pr, m in zip(probs, mats)))
    log_n = float(np.log2(p.gridpoints))
    search = {"unionized": 1.0, "nuclide": log_n, "hash": 5.0}[p.grid]
    probes = float(np.log2(p.n_points)) if p.grid == "unionized" else 0.0
    per_lookup = 2 + 1 + 1 + probes + 1 + nucs * (2 + search + 2 + 3)
    return 2 * (per_lookup + 2 / p.lookups_per_iteration * (p.mode == "history"))


def size_estimate(p: XSBenchParams, lookups_given: bool = True,
                  particles_given: bool = True) -> SizeEstimate:
    """Records of run ``p`` from its parameters alone (lookups x records per lookup, by size,
    grid type and mode), and the flags a user giving these most likely meant."""
    records = expected_records(p)
    if p.mode == "history":
        what = (f"{p.total_lookups:,} lookups ({p.particles:,} particles x {p.lookups:,} "
                f"lookups each)")
    else:
        what = f"{p.total_lookups:,} lookups"
    hint = ""
    if p.mode == "history" and lookups_given and not particles_given:
        per = DEFAULT_LOOKUPS_PER_PARTICLE
        hint = (f"in history mode -l is lookups per particle (x {p.particles:,} particles); for "
                f"{p.lookups:,} lookups in all give -m event -l {p.lookups} or "
                f"-p {max(1, -(-p.lookups // per))} -l {per}")
    elif p.mode == "history" and not lookups_given and not particles_given:
        hint = "XSBench's defaults: give -p (e.g. -p 400) or -l for a shorter run"
    else:
        hint = (shorter(records, "-p", p.particles) if p.mode == "history"
                else shorter(records, "-l", p.lookups))
    return SizeEstimate(what, records, hint)


def _kernel_config(p: XSBenchParams, layout: XSBenchLayout, data: XSBenchData) -> np.ndarray:
    a = layout.arrays
    addr = lambda name: a[name].start if name in a else 0  # noqa: E731
    cfg = np.zeros(N_CFG, np.int64)
    cfg[[C_MODE, C_GRID, C_N_ISO, C_N_GRID, C_N_POINTS, C_THREADS, C_LOOKUPS, C_ITERS,
         C_HASH_BINS, C_MAX_NUCS, C_MAX_RECORDS]] = [
        MODE_IDS[p.mode], GRID_IDS[p.grid], p.n_isotopes, p.gridpoints, p.n_points, p.threads,
        p.lookups_per_iteration, p.iterations, p.hash_bins, data.max_num_nucs,
        max_records_per_lookup(p)]
    cfg[[C_NUCLIDE_GRID, C_UEG, C_INDEX_GRID, C_NUM_NUCS, C_MATS, C_CONCS]] = [
        addr("nuclide_grid"), addr("unionized_energy_array"), addr("index_grid"),
        addr("num_nucs"), addr("mats"), addr("concs")]
    return cfg


class _Lookups:
    """One run of the kernel over a whole XSBench run, advanced block by block."""

    def __init__(self, p: XSBenchParams, layout: XSBenchLayout | None = None):
        self.p = p
        self.layout = layout or build_layout(p)
        self.data = build_data(p)
        self.cfg = _kernel_config(p, self.layout, self.data)
        self.ist = np.zeros(4, np.int64)
        self.ust = np.zeros(2, np.uint64)
        self.ust[U_SEED] = self.ust[U_START] = p.seed
        self.fst = np.zeros(1, np.float64)
        self.sites = self.layout.site_table()
        self.slots = self.layout.stack_slots()
        self.flat = self.data.energy.reshape(-1)
        self.work = np.zeros((3, 5), np.float64)
        self.scratch = np.zeros(p.n_isotopes, np.int32)

    @property
    def done(self) -> bool:
        return int(self.ist[0]) >= loop_length(self.p.iterations, self.p.threads, CHUNK)

    @property
    def verification(self) -> int:
        return int(self.ist[3]) % VERIFY_MODULUS

    @property
    def lookups_done(self) -> int:
        """Approximate (for progress): the share of the interleaved sequence walked so far."""
        p = self.p
        n_seq = loop_length(p.iterations, p.threads, CHUNK)
        return min(p.total_lookups, int(self.ist[0]) * p.total_lookups // max(1, n_seq))

    def run(self, tid: np.ndarray, op: np.ndarray, addr: np.ndarray, size: np.ndarray,
            record: bool = True) -> int:
        d = self.data
        return fill(self.cfg, self.ist, self.ust, self.fst, d.energy, self.flat, d.order,
                    d.jump_lo, d.jump_hi, d.ueg, d.ueg_origin, d.ueg_counts, d.hash_index,
                    d.num_nucs, d.mats, d.concs, d.cdf, self.sites, self.slots, self.work,
                    self.scratch, tid, op, addr, size, record)

    def blocks(self, block_records: int = ROW_GROUP_ROWS) -> Iterator[Block]:
        """The remaining trace as blocks of at most ``block_records`` rows (fresh arrays each:
        TraceWriter keeps references to rows it has not flushed yet)."""
        cap = max(block_records, 2 * max_records_per_lookup(self.p))
        while not self.done:
            cols = new_block(cap)
            n = self.run(*cols)
            yield tuple(c[:n] for c in cols)


def iter_blocks(p: XSBenchParams, block_records: int = ROW_GROUP_ROWS) -> Iterator[Block]:
    """The trace of run ``p`` as (tid, op, addr, size) blocks of at most ``block_records`` rows.

    Memory is a few blocks plus the run's data (build_data), whatever the number of lookups.
    """
    yield from _Lookups(p).blocks(block_records)


def _meta(p: XSBenchParams, layout: XSBenchLayout) -> TraceMeta:
    arrays = {name: span.to_json() for name, span in layout.arrays.items()}
    return TraceMeta(source=SOURCE, threads=p.threads, regions=layout.regions,
                     generator=p.to_json(), extra={"xsbench_arrays": json.dumps(arrays)})


def _generate(out_path: str | Path, p: XSBenchParams, block_records: int,
              progress: Progress | None) -> XSBenchResult:
    layout = build_layout(p)
    meta = _meta(p, layout)
    run = _Lookups(p, layout)
    tick = None if progress is None else (lambda: progress(run.lookups_done, p.total_lookups))
    rows = write_trace(out_path, meta, run.blocks(block_records), tick)
    return XSBenchResult(path=Path(out_path), meta=meta, params=p, records=rows,
                         verification=run.verification)


def generate_xsbench(out_path: str | Path, size: str = "large", grid: str = "unionized",
                     mode: str = "history", lookups: int | None = None,
                     particles: int | None = None, threads: int = 1,
                     gridpoints: int | None = None, hash_bins: int = DEFAULT_HASH_BINS,
                     seed: int = STARTING_SEED, block_records: int = ROW_GROUP_ROWS,
                     progress: Progress | None = None) -> XSBenchResult:
    """Write the trace of an XSBench run to ``out_path`` (atomically) and describe it.

    Arguments are XSBench's flags (-s -G -m -l -p -t -g -h) with its defaults; ``seed`` is its
    STARTING_SEED. Bad values raise UserError before any file is created. Same arguments give a
    byte-identical file. ``progress(lookups_done, total_lookups)`` is called after each block
    (lookups_done is the generator's position, at most two blocks ahead of the file).
    """
    p = resolve_params(size=size, grid=grid, mode=mode, lookups=lookups, particles=particles,
                       threads=threads, gridpoints=gridpoints, hash_bins=hash_bins, seed=seed)
    return _generate(out_path, p, block_records, progress)


def generate(out_path: str | Path, params: XSBenchParams, progress: Progress | None = None
             ) -> XSBenchResult:
    """The generator registry's entry point (``trace.generators``)."""
    return _generate(out_path, params, ROW_GROUP_ROWS, progress)


def expected_records(p: XSBenchParams) -> float:
    return p.total_lookups * expected_records_per_lookup(p)


def cache_label(p: XSBenchParams) -> str:
    """The readable start of a cached trace's name (``trace.generated``)."""
    return f"xsbench-{p.size}-{p.grid}-{p.mode}-t{p.threads}"


def parse_args(argv: Sequence[str] | str) -> XSBenchParams:
    """XSBench-style flags (a list or one shell-quoted string, optionally led by "xsbench")."""
    return resolve_params(**parse_flags("xsbench", click_params(), argv))


def generate_from_args(argv: Sequence[str] | str, out_path: str | Path,
                       block_records: int = ROW_GROUP_ROWS,
                       progress: Progress | None = None) -> XSBenchResult:
    """Generate from XSBench-style flags, e.g. ``"xsbench -s large -t 16 -p 400 --seed 1"``.

    ``argv`` is a list or one shell-quoted string; a leading "xsbench" is ignored, and the
    output is always ``out_path``. Bad flags raise UserError (exit status 2 in the CLI).
    """
    return _generate(out_path, parse_args(argv), block_records, progress)


def xsbench_layout(size: str = "large", grid: str = "unionized", threads: int = 1,
                   gridpoints: int | None = None, hash_bins: int = DEFAULT_HASH_BINS
                   ) -> dict[str, ArraySpan]:
    """Array name -> ArraySpan(start, length, elem_size) for these XSBench parameters."""
    p = resolve_params(size=size, grid=grid, threads=threads, gridpoints=gridpoints,
                       hash_bins=hash_bins, lookups=1, particles=1)
    return dict(build_layout(p).arrays)


def xsbench_checksum(**kwargs) -> int:
    """XSBench's verification checksum for a run (same keywords as generate_xsbench), no trace.

    For checking the model against XSBench itself: e.g. ``-s small -m event`` prints 945990.
    """
    run = _Lookups(resolve_params(**kwargs))
    run.run(*new_block(0), record=False)
    return run.verification
