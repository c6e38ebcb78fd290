"""``make reproduce-scaling``: the seed's XSBench machine at s = 1/100 ... 1 (configs/scaling.toml),
each headline Δ% of the v6.7 table against s, beside the published value.

The points are the sweep's (migrc_bench/sweep.py: streamed, run_id known before they run,
skipped when already in OUT/runs.parquet, so the long ones finish over several sittings).
Each runs in a fresh process of its own, one at a time, so that its wall time and peak RSS
(``ru_maxrss``) are its own; those go to OUT/scaling_points.json beside the sweep's tables.
``--estimate`` prints what each point costs before anything runs; ``--report`` only reads.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import multiprocessing
import os
import resource
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .reproduce import PUBLISHED_16, delta
from .scaling import SCALE_KEY, parse_scale, scale_label

GRID = "scaling"
POINTS_FILE = "scaling_points.json"
HEADLINE = ("itlb_flush", "nr_tlb_remote_flush", "nr_tlb_remote_flush_received", "itlb_misses",
            "dtlb_load_misses", "dtlb_store_misses", "nr_tlb_local_flush_all",
            "nr_tlb_local_flush_one", "pgmigrate_success", "numa_pages_migrated", "runtime_s")
# the reproduction issue's bands (reproduce.TARGETS_16) as (low, high) Δ%; None: no band
BANDS: dict[str, tuple[float, float]] = {
    "itlb_flush": (-math.inf, -85), "nr_tlb_remote_flush": (-math.inf, -85),
    "nr_tlb_remote_flush_received": (-math.inf, -85), "itlb_misses": (-65, -25),
    "dtlb_load_misses": (-10, 10), "nr_tlb_local_flush_one": (-5, 5), "runtime_s": (-8, -1),
    "pgmigrate_success": (0, math.inf),
}


def _points(scales: list[Fraction] | None, engines: list[str] | None) -> list[Any]:
    from .sweep import expand, load_grid

    grid = load_grid(GRID)
    points = [p for p in expand(grid)
              if (engines is None or p.engine in engines)
              and (scales is None or parse_scale(p.values[SCALE_KEY]) in scales)]
    order = {e: i for i, e in enumerate(engines or grid.engines)}
    return sorted(points, key=lambda p: (parse_scale(p.values[SCALE_KEY]), order[p.engine]))


def records(point: Any) -> int:
    """The accesses a point replays (its generator's count, before it runs)."""
    from .trace.generators import from_args

    spec, params = from_args(point.stream)
    return int(spec.expected_records(params))


def estimate(points: list[Any], speed: float, gen_speed: float) -> list[dict[str, Any]]:
    """Per point: accesses, the pre-pass (once per s: a streamed generator pass) and the
    replay at ``speed`` accesses/s."""
    rows, seen = [], set()
    for p in points:
        n = records(p)
        s = p.values[SCALE_KEY]
        prepass = 0.0 if s in seen else n / gen_speed
        seen.add(s)
        rows.append({"scale": s, "engine": p.engine, "accesses": n, "prepass_s": prepass,
                     "replay_s": n / speed, "total_min": (prepass + n / speed) / 60})
    return rows


# ---- running ---------------------------------------------------------------------------------
def _run_one(point: Any, out: str) -> dict[str, Any]:
    """In a fresh process: the sweep's own path for one point; its peak RSS."""
    from .sweep import run_sweep

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    report = run_sweep(None, out, workers=0, points=[point])  # type: ignore[arg-type]
    p = report.points[0]
    use = resource.getrusage(resource.RUSAGE_SELF)
    # the machine is shared: the load average and CPU seconds (every thread of the process:
    # replay, trace reader, generator) say how much of the wall time was this point's
    return {"status": p.status, "error": p.error, "process_wall_s": time.perf_counter() - t0,
            "peak_rss_mib": use.ru_maxrss / 1024, "cpu_s": use.ru_utime + use.ru_stime,
            "load_start": load0, "load_end": os.getloadavg()[0]}


def read_points_file(out: Path) -> dict[str, Any]:
    path = out / POINTS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _record(out: Path, point: Any, outcome: dict[str, Any]) -> None:
    known = read_points_file(out)
    known[point.run_id] = {"scale": point.values[SCALE_KEY], "engine": point.engine,
                           "accesses": records(point), **outcome}
    with atomic_path(out / POINTS_FILE) as tmp:
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))


def run(points: list[Any], out: Path, quiet: bool = False) -> int:
    from .sweep import done_run_ids, prepare_out

    prepare_out(out)
    done = done_run_ids(out)
    failed = 0
    ctx = multiprocessing.get_context("spawn")
    for p in points:
        if p.run_id in done:
            continue
        if not quiet:
            print(f"[scaling] s = {p.values[SCALE_KEY]} {p.engine}: {records(p):,} accesses ...",
                  file=sys.stderr, flush=True)
        with cf.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            outcome = pool.submit(_run_one, p, str(out)).result()
        failed += outcome["status"] != "ran"
        _record(out, p, outcome)
        if not quiet:
            print(f"[scaling]   {outcome['status']} in {outcome['process_wall_s']:.0f} s, peak "
                  f"RSS {outcome['peak_rss_mib']:.0f} MiB {outcome['error']}", file=sys.stderr,
                  flush=True)
    return 1 if failed else 0


# ---- the report ------------------------------------------------------------------------------
def measured(out: Path) -> dict[str, dict[str, Any]]:
    """{scale label: {engine: totals}} of the study's runs in ``out`` (the last of each)."""
    from .results import read_stored_runs

    by: dict[str, dict[str, Any]] = {}
    runs = read_stored_runs(out) if (out / "runs.parquet").exists() else []
    for r in runs:
        cfg = r.config_toml
        ts = _time_scale(cfg)
        by.setdefault(scale_label(parse_scale(ts)), {})[r.engine] = {
            **r.counters, "run_id": r.run_id}
    return by


def _time_scale(config_toml: str) -> float:
    import tomllib

    return float(tomllib.loads(config_toml).get("replay", {}).get("time_scale", 1.0))


def table_rows(out: Path, scales: list[str]) -> list[dict[str, Any]]:
    runs, res = measured(out), read_points_file(out)
    rows = []
    for s in scales:
        have = runs.get(s, {})
        row: dict[str, Any] = {"s": s}
        for e in ("baseline", "migrc", "nobatch"):
            r = have.get(e)
            info = res.get(r["run_id"], {}) if r else {}
            row[e] = None if r is None else {
                "accesses": r.get("accesses"), "runtime_s": r.get("runtime_s"),
                "wall_s": r.get("wall_s"), "process_wall_s": info.get("process_wall_s"),
                "peak_rss_mib": info.get("peak_rss_mib"),
                "nr_tlb_remote_flush": r.get("nr_tlb_remote_flush")}
        if "baseline" in have and "migrc" in have:
            row["delta"] = {c: delta(have, c) for c in HEADLINE}
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| counter | " + " | ".join(f"s = {r['s']}" for r in rows) + " | published | band |"
    lines = [head, "|---|" + "---:|" * (len(rows) + 2)]
    for c in HEADLINE:
        cells = [f"{r['delta'][c]:+.1f}" if "delta" in r else "pending" for r in rows]
        lo, hi = BANDS.get(c, (None, None))
        band = "" if lo is None else (f"≤ {hi:g}" if lo == -math.inf else
                                      f"≥ {lo:g}" if hi == math.inf else f"{lo:g} … {hi:g}")
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {PUBLISHED_16[c]:+.1f} | {band} |")
    lines.append("")
    lines.append("| s | engine | accesses | modelled s | replay wall s | process wall s | peak RSS MiB |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        for e in ("baseline", "migrc", "nobatch"):
            m = r.get(e)
            if m is None:
                lines.append(f"| {r['s']} | {e} | pending | | | | |")
                continue
            pw = "" if m["process_wall_s"] is None else f"{m['process_wall_s']:.0f}"
            rss = "" if m["peak_rss_mib"] is None else f"{m['peak_rss_mib']:.0f}"
            lines.append(f"| {r['s']} | {e} | {m['accesses']:,} | {m['runtime_s']:.3f} | "
                         f"{m['wall_s']:.0f} | {pw} | {rss} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Each headline Δ% against s (log axis), the published value as a line, the band shaded."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ncols = 4
    nrows = -(-len(HEADLINE) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(15, 3.4 * nrows), layout="constrained",
                             squeeze=False)
    xs_all = [float(Fraction(r["s"])) for r in rows]
    for ax, c in zip(axes.flat, HEADLINE):
        pts = [(float(Fraction(r["s"])), r["delta"][c]) for r in rows if "delta" in r]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", color="#d62728",
                    label="migrc vs baseline (measured)")
        ax.axhline(PUBLISHED_16[c], color="black", ls="--", lw=1, label="published (v6.7 table)")
        lo, hi = BANDS.get(c, (None, None))
        if lo is not None:  # shaded within the data's range, its finite edges in view
            y0, y1 = ax.get_ylim()
            y0, y1 = min([y0] + [lo] * math.isfinite(lo)), max([y1] + [hi] * math.isfinite(hi))
            pad = 0.05 * (y1 - y0 or 1)
            y0, y1 = y0 - pad, y1 + pad
            ax.axhspan(max(lo, y0), min(hi, y1), color="#2ca02c", alpha=0.08,
                       label="reproduction band")
            ax.set_ylim(y0, y1)
        pending = [x for x, r in zip(xs_all, rows) if "delta" not in r]
        for x in pending:
            ax.axvline(x, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(xs_all, [r["s"] for r in rows], fontsize=8)
        ax.minorticks_off()
        ax.set_title(c, fontsize=10)
        ax.set_xlabel("scale s (dotted: pending)")
        ax.set_ylabel("Δ%")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(HEADLINE):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.suptitle("migrc vs baseline against the scale s (configs/scaling.toml)", fontsize=13)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from . import interrupts
    from .sweep import load_grid

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="results/scaling", help="results directory")
    ap.add_argument("--scales", help="comma-separated subset, e.g. 1/100,1/30 (default: all)")
    ap.add_argument("--engines", help="comma-separated subset (default: the grid's)")
    ap.add_argument("--estimate", action="store_true", help="print each point's cost, run nothing")
    ap.add_argument("--speed", type=float, default=25e6, help="replay accesses/s for --estimate")
    ap.add_argument("--gen-speed", type=float, default=36e6,
                    help="generator records/s of the pre-pass for --estimate")
    ap.add_argument("--report", action="store_true", help="only write the table and plot")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    scales = [parse_scale(s) for s in args.scales.split(",")] if args.scales else None
    engines = args.engines.split(",") if args.engines else None
    all_scales = [scale_label(parse_scale(v)) for a in load_grid(GRID).axes for d in a
                  for k, v in d.items() if k == SCALE_KEY]
    rc = 0
    if args.estimate:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"cost at {args.speed / 1e6:g} M accesses/s (replay), "
                        f"{args.gen_speed / 1e6:g} M records/s (pre-pass)")
        for col in ("s", "engine", "accesses", "pre-pass min", "replay min", "total min"):
            t.add_column(col, justify="right")
        for r in estimate(_points(scales, engines), args.speed, args.gen_speed):
            t.add_row(r["scale"], r["engine"], f"{r['accesses']:,}", f"{r['prepass_s'] / 60:.1f}",
                      f"{r['replay_s'] / 60:.1f}", f"{r['total_min']:.1f}")
        Console().print(t)
        return 0
    if not args.report:
        try:
            with interrupts.handled():
                rc = run(_points(scales, engines), out, args.quiet)
        except interrupts.Interrupted as exc:
            print(f"reproduce-scaling: interrupted by {exc.name}; finished points are in {out}",
                  file=sys.stderr)
            return exc.exit_code
    rows = table_rows(out, all_scales)
    text = markdown(rows)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "scaling.md") as tmp:
        tmp.write_text(text)
    plot(rows, out / "scaling.png")
    print(text)
    print(f"table: {out / 'scaling.md'}, plot: {out / 'scaling.png'}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
