"""``make reproduce``: run nobatch, baseline and migrc on the seed's two machines and print each
measured change beside the published one (kernel-mechanism.md §4.2).

Nothing is scaled or adjusted after the run: the figures are the counters the replay
produced, and the same knobs serve both configs. Exit status 1 when an acceptance target of
the reproduction issue is missed, so the command doubles as a check.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

from . import interrupts
from .config import CONFIG_DIR, load_config
from .runner import default_trace, run_trace

ENGINES = ("nobatch", "baseline", "migrc")

# migrc vs baseline, v5-v8 cover letters (v6.7, 16 CPUs, 1 GB + 8 GB), and the RFC (4 CPUs)
PUBLISHED_16 = {
    "itlb_flush": -93.9, "nr_tlb_remote_flush": -93.5, "nr_tlb_remote_flush_received": -93.8,
    "itlb_misses": -45.5, "dtlb_load_misses": -1.6, "dtlb_store_misses": -34.2,
    "nr_tlb_local_flush_all": -57.5, "nr_tlb_local_flush_one": 0.1,
    "pgmigrate_success": 14.9, "numa_pages_migrated": 16.5, "runtime_s": -3.6,
}
PUBLISHED_4 = {
    "itlb_flush": -57.9, "nr_tlb_remote_flush": -57.9, "nr_tlb_remote_flush_received": -58.4,
    "pgmigrate_success": -0.2, "runtime_s": -9.3,
}
# three-case table (v4 thread): remote flushes 6,614,459 / 1,955,114 / 311,146
PUBLISHED_RATIOS = {"nobatch/baseline": 6_614_459 / 1_955_114, "baseline/migrc": 1_955_114 / 311_146}


def delta(runs: dict, counter: str, a: str = "baseline", b: str = "migrc") -> float:
    base = runs[a][counter]
    return (runs[b][counter] - base) / base * 100 if base else float("nan")


@dataclass
class Target:
    text: str
    ok: Callable[[dict, dict], bool]


TARGETS_16 = [
    Target("itlb_flush, remote flushes and received IPIs fall by 85 % or more",
           lambda r, _: all(delta(r, c) <= -85 for c in
                            ("itlb_flush", "nr_tlb_remote_flush", "nr_tlb_remote_flush_received"))),
    Target("received per remote flush between 12 and 15 (baseline)",
           lambda r, _: 12 <= r["baseline"]["nr_tlb_remote_flush_received"]
           / max(1, r["baseline"]["nr_tlb_remote_flush"]) <= 15),
    Target("itlb_misses fall by 25-65 %", lambda r, _: -65 <= delta(r, "itlb_misses") <= -25),
    Target("dtlb_load_misses change by less than 10 %", lambda r, _: abs(delta(r, "dtlb_load_misses")) < 10),
    Target("nr_tlb_local_flush_one changes by less than 5 %",
           lambda r, _: abs(delta(r, "nr_tlb_local_flush_one")) < 5),
    Target("runtime falls by 1-8 %", lambda r, _: -8 <= delta(r, "runtime_s") <= -1),
    Target("pgmigrate_success does not fall", lambda r, _: delta(r, "pgmigrate_success") >= 0),
    Target("nobatch sends at least twice baseline's remote flushes",
           lambda r, _: r["nobatch"]["nr_tlb_remote_flush"] >= 2 * r["baseline"]["nr_tlb_remote_flush"]),
    Target("baseline sends several (>= 3) times migrc's remote flushes",
           lambda r, _: r["baseline"]["nr_tlb_remote_flush"] >= 3 * r["migrc"]["nr_tlb_remote_flush"]),
]
TARGETS_4 = [
    Target("4 CPUs: migrc's cut in remote flushes is smaller than on 16 CPUs",
           lambda r4, r16: delta(r4, "nr_tlb_remote_flush") > delta(r16, "nr_tlb_remote_flush")),
]


def run_config(name: str, out_root: Path, quiet: bool, engines=ENGINES) -> dict:
    cfg = load_config(CONFIG_DIR / f"xsbench-{name}.toml")
    trace = default_trace(cfg, quiet=quiet)
    runs = {}
    for engine in engines:
        if not quiet:
            print(f"[{name}] {engine} ...", file=sys.stderr, flush=True)
        result, _ = run_trace(cfg.with_overrides({"engine": engine}), trace,
                              out_root / f"reproduce-{name}")
        runs[engine] = result.totals
    return runs


def table(title: str, runs: dict, published: dict) -> Table:
    t = Table(title=title)
    for col in ("counter", *ENGINES, "Δ% measured", "Δ% published"):
        t.add_column(col, justify="left" if col == "counter" else "right")
    for counter, pub in published.items():
        vals = [runs[e][counter] for e in ENGINES]
        cells = [f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" for v in vals]
        t.add_row(counter, *cells, f"{delta(runs, counter):+.1f}", f"{pub:+.1f}")
    b = runs["baseline"]
    t.add_row("received / remote (baseline)", "", f"{b['nr_tlb_remote_flush_received'] / max(1, b['nr_tlb_remote_flush']):.1f}",
              "", "", "14.9" if "itlb_misses" in published else "2.95")
    return t


# The counters of the THP table (issue 18): the flush and miss counters of the published
# tables and the THP ones; no published figure exists for XSBench under THP.
THP_ENGINES = ("baseline", "migrc")
THP_COUNTERS = ("itlb_flush", "nr_tlb_remote_flush", "nr_tlb_remote_flush_received",
                "nr_tlb_local_flush_all", "nr_tlb_local_flush_one", "itlb_misses",
                "dtlb_load_misses", "dtlb_store_misses", "pgmigrate_success", "pgmigrate_fail",
                "numa_pages_migrated", "thp_migration_success", "thp_migration_fail",
                "thp_migration_split", "migrc_deferred_pages", "runtime_s")


def thp_table(title: str, runs: dict) -> Table:
    t = Table(title=title)
    for col in ("counter", *THP_ENGINES, "Δ% migrc vs baseline"):
        t.add_column(col, justify="left" if col == "counter" else "right")
    for counter in THP_COUNTERS:
        vals = [runs[e][counter] for e in THP_ENGINES]
        cells = [f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" for v in vals]
        t.add_row(counter, *cells, f"{delta(runs, counter):+.1f}")
    return t


def main_thp(out: Path, quiet: bool) -> int:
    """The same two machines with memory.thp = "always" (configs/xsbench-thp16.toml, -thp4)."""
    try:
        with interrupts.handled():
            r16 = run_config("thp16", out, quiet, THP_ENGINES)
            r4 = run_config("thp4", out, quiet, THP_ENGINES)
    except interrupts.Interrupted as exc:
        print(f"reproduce: interrupted by {exc.name}", file=sys.stderr)
        return exc.exit_code
    console = Console()
    console.print(thp_table("16 CPUs, 1 GB + 8 GB, THP always (no published figures)", r16))
    console.print(thp_table("4 CPUs, 2 GB + 6 GB, THP always (no published figures)", r4))
    console.print(f"results: {out / 'reproduce-thp16'}, {out / 'reproduce-thp4'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="results", help="results root (default: results/)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--thp", action="store_true",
                    help="the THP configs (xsbench-thp16.toml, xsbench-thp4.toml) instead; no targets")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.thp:
        return main_thp(out, args.quiet)
    try:
        with interrupts.handled():  # Ctrl-C/SIGTERM: no temp file left, finished configs kept
            r16 = run_config("cxl16", out, args.quiet)
            r4 = run_config("cxl4", out, args.quiet)
    except interrupts.Interrupted as exc:
        print(f"reproduce: interrupted by {exc.name}; runs finished so far are in "
              f"{out / 'reproduce-cxl16'} and {out / 'reproduce-cxl4'}", file=sys.stderr)
        return exc.exit_code
    console = Console()
    console.print(table("16 CPUs, 1 GB + 8 GB (v5-v8 cover letters): migrc vs baseline", r16, PUBLISHED_16))
    console.print(table("4 CPUs, 2 GB + 6 GB (RFC): migrc vs baseline", r4, PUBLISHED_4))
    ratios = {"nobatch/baseline": r16["nobatch"]["nr_tlb_remote_flush"] / max(1, r16["baseline"]["nr_tlb_remote_flush"]),
              "baseline/migrc": r16["baseline"]["nr_tlb_remote_flush"] / max(1, r16["migrc"]["nr_tlb_remote_flush"])}
    console.print("three-case remote-flush ratios (16 CPUs): " + ", ".join(
        f"{k} {v:.1f}x (published {PUBLISHED_RATIOS[k]:.1f}x)" for k, v in ratios.items()))
    failed = 0
    for target in TARGETS_16 + TARGETS_4:
        ok = target.ok(r16, r16) if target in TARGETS_16 else target.ok(r4, r16)
        failed += not ok
        console.print(f"  {'PASS' if ok else 'MISS'}  {target.text}")
    console.print(f"results: {out / 'reproduce-cxl16'}, {out / 'reproduce-cxl4'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
