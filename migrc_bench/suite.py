"""The workload suite: engines × workloads on one machine, as sweep points, and its summary.

Each workload is a config in ``configs/`` (``WORKLOADS``): the seed's v5-v8 machine (16 vCPUs,
1 GB DRAM + 8 GB lower tier) scaled by 1/100 in space and time as ``xsbench-cxl16.toml`` is,
with that workload's generated trace (docs/workloads.md explains each one's scaling). Every
(workload, engine) is one point of ``sweep``: it runs on local worker processes or a dask
cluster, is appended to one results directory, and is skipped when that directory already
holds it, so an interrupted suite resumes where it stopped.

The summary compares every engine with the reference engine (baseline) per workload: remote
flushes, iTLB and dTLB misses, runtime and migrations, and the share of pages whose flush was
deferred (``migrc_deferred_pages``, LUF's ``luf_tagged_pages``) of all migrated pages
(``pgmigrate_success``) and of the demoted ones. The
second is the one that can reach 100 %: a promotion by NUMA hint fault unmaps a PROT_NONE
PTE that no TLB holds, so v6.7 skips its flush and migrc has nothing to defer (K§2, §3.2);
in a promote/demote steady state about half of the migrations are such promotions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import atomic_path
from .config import CONFIG_DIR, load_config
from .errors import UserError
from .results import read_runs
from .sweep import Listener, Point, SweepReport, TraceHashes, make_point, run_sweep

WORKLOADS: dict[str, str] = {
    "xsbench": "default.toml",        # xsbench-cxl16.toml's machine on a 50 M-record trace
    "gups": "gups-cxl16.toml",
    "kv": "kv-cxl16.toml",
    "gapbs-bfs": "gapbs-bfs-cxl16.toml",
    "gapbs-pr": "gapbs-pr-cxl16.toml",
}
DEFAULT_ENGINES = ("baseline", "migrc", "luf")
# (column, label, short label, counters summed)
FIGURES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("remote_flushes", "remote flushes", "flushes", ("nr_tlb_remote_flush",)),
    ("itlb_misses", "iTLB misses", "iTLB", ("itlb_misses",)),
    ("dtlb_misses", "dTLB misses", "dTLB", ("dtlb_load_misses", "dtlb_store_misses")),
    ("runtime_s", "runtime_s", "runtime", ("runtime_s",)),
    ("migrations", "migrations", "migrations", ("pgmigrate_success",)),
)


def workload_config(name: str) -> Path:
    try:
        return CONFIG_DIR / WORKLOADS[name]
    except KeyError:
        raise UserError(f"unknown workload {name!r} (known: {', '.join(WORKLOADS)})") from None


@dataclass
class SuitePoint:
    workload: str
    point: Point


def suite_points(workloads: list[str], engines: list[str], quiet: bool = True,
                 hashes: TraceHashes | None = None) -> list[SuitePoint]:
    """Every (workload, engine) point; a workload's trace is generated first when missing."""
    from .runner import default_trace

    from .compare import check_engines

    configs = [(w, load_config(workload_config(w))) for w in workloads]
    # the workloads are bundled configs: a file engine is relative to the current directory
    idents = check_engines(engines, Path.cwd())
    hashes = hashes or TraceHashes()
    out: list[SuitePoint] = []
    for w, base in configs:
        trace = Path(default_trace(base, quiet=quiet)).resolve()   # checks a stale trace too
        for e, ident in zip(engines, idents):
            cfg = base.with_overrides({"engine": e})
            out.append(SuitePoint(w, make_point(len(out), cfg, trace, {"workload": w}, hashes,
                                                ident)))
    return out


def run_suite(points: list[SuitePoint], out: str | Path, workers: int | None = None,
              scheduler: str | None = None, force: bool = False,
              listener: Listener | None = None) -> SweepReport:
    return run_sweep(None, out, workers=workers, scheduler=scheduler, force=force,  # type: ignore[arg-type]
                     listener=listener, points=[sp.point for sp in points])


# ---- the summary ------------------------------------------------------------------------------
def _pct(value: float, ref: float) -> float | None:
    if ref is None or value is None or (isinstance(ref, float) and math.isnan(ref)):
        return None
    if ref == 0:
        return 0.0 if value == 0 else None
    return 100.0 * (value - ref) / ref


def summarize(out: str | Path, points: list[SuitePoint], reference: str = "baseline"
              ) -> list[dict[str, Any]]:
    """One row per (workload, engine): the figures, their Δ% against ``reference`` on the same
    workload, and the deferred share. Points not in ``out`` yet (failed) are left out."""
    runs = read_runs(out)
    by_id = {str(r["run_id"]): r for _, r in runs.iterrows()} if len(runs) else {}
    values: dict[tuple[str, str], dict[str, float]] = {}
    for sp in points:
        row = by_id.get(sp.point.run_id)
        if row is None:
            continue
        v = {col: float(sum(row.get(c, 0) or 0 for c in cs)) for col, _, _, cs in FIGURES}
        migrated = float(row.get("pgmigrate_success", 0) or 0)
        # migrc holds the sources it defers, LUF tags them: one of the two is 0
        deferred = float(row.get("migrc_deferred_pages", 0) or 0) + \
            float(row.get("luf_tagged_pages", 0) or 0)
        demoted = float(row.get("pgdemote_kswapd", 0) or 0) + float(row.get("pgdemote_direct", 0)
                                                                   or 0)
        v["deferred_share"] = deferred / migrated if migrated else 0.0
        v["deferred_of_demoted"] = deferred / demoted if demoted else 0.0
        v["deferred_pages"] = deferred
        values[(sp.workload, sp.point.engine)] = v
    rows = []
    for sp in points:
        key = (sp.workload, sp.point.engine)
        if key not in values:
            continue
        v = values[key]
        ref = values.get((sp.workload, reference))
        row: dict[str, Any] = {"workload": sp.workload, "engine": sp.point.engine}
        for col, _, _, _ in FIGURES:
            row[col] = v[col]
            row[f"{col}_delta_pct"] = None if ref is None or sp.point.engine == reference \
                else _pct(v[col], ref[col])
        row["deferred_pages"] = int(v["deferred_pages"])
        row["deferred_share"] = v["deferred_share"]
        row["deferred_of_demoted"] = v["deferred_of_demoted"]
        row["run_id"] = sp.point.run_id
        rows.append(row)
    return rows


def count_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The measured figures per (workload, engine), for a table."""
    out = []
    for r in rows:
        d: dict[str, Any] = {"workload": r["workload"], "engine": r["engine"]}
        for col, label, _, _ in FIGURES:
            d[label] = round(r[col], 4) if col == "runtime_s" else int(r[col])
        d["deferred pages"] = r["deferred_pages"]
        out.append(d)
    return out


def delta_rows(rows: list[dict[str, Any]], reference: str = "baseline") -> list[dict[str, Any]]:
    """Each engine but the reference: the Δ% of every figure and migrc's deferred shares."""
    out = []
    for r in rows:
        if r["engine"] == reference:
            continue
        d: dict[str, Any] = {"workload": r["workload"], "engine": r["engine"]}
        for col, _, short, _ in FIGURES:
            pct = r[f"{col}_delta_pct"]
            d[f"{short} Δ%"] = "n/a" if pct is None else f"{pct:+.1f}"
        d["deferred/migrated"] = f"{100 * r['deferred_share']:.1f}%"
        d["deferred/demoted"] = f"{100 * r['deferred_of_demoted']:.1f}%"
        out.append(d)
    return out


def plot_suite(rows: list[dict[str, Any]], out_png: str | Path, reference: str = "baseline",
               dpi: int = 110) -> Path:
    """Per workload, the Δ% of each figure for every engine against the reference (bars), and
    migrc's deferred share. Written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from .sweep_summary import PALETTE

    out = Path(out_png)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        raise UserError(f"{out}: the plot is written as PNG, SVG or PDF; name it FILE.png")
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise UserError("nothing to plot: no suite point has run")
    workloads = list(dict.fromkeys(frame["workload"]))
    engines = [e for e in dict.fromkeys(frame["engine"]) if e != reference]
    n = len(workloads) + 1
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows), squeeze=False)
    colours = {e: PALETTE[(i + 1) % len(PALETTE)] for i, e in enumerate(engines)}
    width = 0.8 / max(1, len(engines))
    for k, w in enumerate(workloads):
        ax = axes[k // ncols][k % ncols]
        sub = frame[frame["workload"] == w]
        for j, e in enumerate(engines):
            er = sub[sub["engine"] == e]
            if er.empty:
                continue
            ys = [er.iloc[0][f"{col}_delta_pct"] for col, _, _, _ in FIGURES]
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(FIGURES))]
            vals = [0.0 if y is None or (isinstance(y, float) and math.isnan(y)) else y
                    for y in ys]
            bars = ax.bar(xs, vals, width=width * 0.95, color=colours[e], label=e)
            for b, y in zip(bars, ys):
                missing = y is None or (isinstance(y, float) and math.isnan(y))
                ax.annotate("n/a" if missing else f"{y:+.0f}", (b.get_x() + b.get_width() / 2,
                            b.get_height()), ha="center", fontsize=6.5,
                            va="bottom" if b.get_height() >= 0 else "top",
                            xytext=(0, 2 if b.get_height() >= 0 else -2),
                            textcoords="offset points")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(FIGURES)))
        ax.set_xticklabels([label.replace(" ", "\n", 1).replace("_s", "") for _, label, _, _
                            in FIGURES], fontsize=8)
        ax.set_ylabel(f"Δ% vs {reference}")
        ax.set_title(w, fontsize=11)
        ax.grid(True, axis="y", alpha=0.3)
        lo, hi = ax.get_ylim()
        lo, hi = min(lo, -5.0), max(hi, 5.0)       # a workload where nothing moves: ±5 %
        pad = 0.12 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
        if k == 0:
            ax.legend(fontsize=8)
    ax = axes[(n - 1) // ncols][(n - 1) % ncols]
    migrc = frame[frame["engine"] == "migrc"].set_index("workload")
    for j, (col, label) in enumerate((("deferred_share", "of migrated pages"),
                                      ("deferred_of_demoted", "of demoted pages"))):
        ys = [100 * float(migrc.loc[w, col]) if w in migrc.index else 0.0 for w in workloads]
        xs = [i - 0.2 + 0.4 * j for i in range(len(workloads))]
        bars = ax.bar(xs, ys, width=0.38, color=colours.get("migrc", PALETTE[1]),
                      alpha=1.0 if j == 0 else 0.5, label=label)
        for b, y in zip(bars, ys):
            ax.annotate(f"{y:.0f}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                        va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(workloads, fontsize=8, rotation=20)
    ax.set_ylim(0, 115)
    ax.set_ylabel("% of pages")
    ax.set_title("migrc: pages whose flush it deferred", fontsize=11)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(True, axis="y", alpha=0.3)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    fig.suptitle(f"migrc-bench suite: {', '.join(engines)} against {reference}", fontsize=13)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    plt.close(fig)
    return out

