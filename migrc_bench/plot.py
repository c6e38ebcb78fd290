"""``plot``: timelines per engine from intervals.parquet and a bar chart of the key Δ%.

Matplotlib with the Agg backend (no display needed). Timelines are cumulative counts over
modelled time, so engines that diverge are easy to tell apart and the end of each line is
the run's total; held pages (``migrc_pending_pages``, a gauge) are plotted as sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .compare import better, delta
from .errors import UserError
from .results import StoredRun, latest_per_engine, read_intervals, read_stored_runs

# (title, columns summed, y label); a panel is drawn when its columns exist.
TIMELINES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Remote TLB flushes (nr_tlb_remote_flush)", ("nr_tlb_remote_flush",), "flushes, cumulative"),
    ("Flush IPIs received (nr_tlb_remote_flush_received)", ("nr_tlb_remote_flush_received",),
     "IPIs, cumulative"),
    ("iTLB misses (page walks, itlb_misses)", ("itlb_misses",), "misses, cumulative"),
    ("dTLB misses (dtlb_load_misses + dtlb_store_misses)", ("dtlb_load_misses", "dtlb_store_misses"),
     "misses, cumulative"),
)
KEY_COUNTERS = ("nr_tlb_remote_flush", "nr_tlb_remote_flush_received", "itlb_flush",
                "itlb_misses", "dtlb_load_misses", "dtlb_store_misses", "pgmigrate_success",
                "pgpromote_success", "pgdemote_kswapd", "runtime_s")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


@dataclass
class PlotSummary:
    path: Path
    engines: list[str]
    panels: list[str]
    min_intervals: int = 0


def _time_axis(frames: dict[str, pd.DataFrame]) -> tuple[float, str]:
    tmax = max((float(f["t_s"].max()) for f in frames.values() if len(f)), default=0.0)
    if tmax >= 1:
        return 1.0, "s"
    if tmax >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def plot_results(results: str | Path, out: str | Path, engines: list[str] | None = None,
                 title: str | None = None, dpi: int = 110) -> PlotSummary:
    """Write a PNG with timelines per engine and a Δ% bar chart against the first engine."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UserError(f"{out}: the plot is written as PNG, SVG or PDF; name it FILE.png")
    runs = latest_per_engine(read_stored_runs(results), engines)
    if not runs:
        raise UserError(f"{results}: no run of engine {', '.join(engines or [])}")
    intervals = read_intervals(results, [r.run_id for r in runs])
    frames = {r.engine: intervals[intervals["run_id"] == r.run_id].copy() for r in runs}
    for e, f in frames.items():
        if not len(f) or "t_s" not in f.columns:
            raise UserError(f"{results}: no interval rows for engine {e}")
    scale, unit = _time_axis(frames)
    colours = {r.engine: PALETTE[i % len(PALETTE)] for i, r in enumerate(runs)}

    panels: list[tuple[str, tuple[str, ...], str, str]] = []  # title, columns, ylabel, kind
    for t, cols, ylab in TIMELINES:
        if any(all(c in f.columns for c in cols) for f in frames.values()):
            panels.append((t, cols, ylab, "cum"))
    if any(c in f.columns for f in frames.values() for c in ("pgpromote_success", "pgdemote_kswapd")):
        panels.append(("Promotions (solid) and demotions (dashed)",
                       ("pgpromote_success", "pgdemote_kswapd"), "pages, cumulative", "promo"))
    if any("migrc_pending_pages" in f.columns and f["migrc_pending_pages"].notna().any()
           for f in frames.values()):
        panels.append(("Pages held by migrc (migrc_pending_pages)", ("migrc_pending_pages",),
                       "pages held at sample", "gauge"))
    ncols = 2
    nrows = (len(panels) + ncols - 1) // ncols + 1
    fig = plt.figure(figsize=(13, 3.3 * nrows), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)
    for i, (ptitle, cols, ylab, kind) in enumerate(panels):
        ax = fig.add_subplot(grid[i // ncols, i % ncols])
        for r in runs:
            f = frames[r.engine]
            x = f["t_s"].to_numpy() * scale
            if kind == "promo":
                for col, style in (("pgpromote_success", "-"), ("pgdemote_kswapd", "--")):
                    if col in f.columns:
                        ax.step(x, f[col].fillna(0).cumsum().to_numpy(), where="post", ls=style,
                                color=colours[r.engine],
                                label=f"{r.engine} {'promoted' if style == '-' else 'demoted'}")
            elif kind == "gauge":
                if "migrc_pending_pages" in f.columns and f["migrc_pending_pages"].notna().any():
                    ax.step(x, f["migrc_pending_pages"].to_numpy(), where="post",
                            color=colours[r.engine], label=r.engine)
            else:
                if not all(c in f.columns for c in cols):
                    continue
                y = sum(f[c].fillna(0) for c in cols).cumsum().to_numpy()
                ax.step(x, y, where="post", color=colours[r.engine], label=r.engine)
        ax.set_title(ptitle, fontsize=10)
        ax.set_xlabel(f"modelled time ({unit})")
        ax.set_ylabel(ylab)
        ax.grid(True, alpha=0.3)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 5))
        ax.legend(fontsize=7, loc="best", ncol=2 if kind == "promo" else 1)
    _delta_bars(fig.add_subplot(grid[nrows - 1, :]), runs, colours)
    traces = {Path(r.trace).name for r in runs if r.trace}
    fig.suptitle(title or (f"migrc-bench: {', '.join(r.engine for r in runs)}"
                           + (f" on {traces.pop()}" if len(traces) == 1 else "")), fontsize=13)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=out.suffix.lower().lstrip("."))
    plt.close(fig)
    return PlotSummary(out, [r.engine for r in runs], [p[0] for p in panels] + ["Δ% bar chart"],
                       min(len(f) for f in frames.values()))


def _delta_bars(ax, runs: list[StoredRun], colours: dict[str, str]) -> None:
    ref = runs[0]
    others = runs[1:]
    ax.set_title(f"Key counters: Δ% against {ref.engine} (totals of runs.parquet)", fontsize=10)
    ax.axhline(0, color="black", lw=0.8)
    if not others:
        ax.text(0.5, 0.5, "one engine only: nothing to compare", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xticks([])
        return
    names = [c for c in KEY_COUNTERS if c in ref.counters]
    width = 0.8 / len(others)
    for j, r in enumerate(others):
        xs, ys, labels = [], [], []
        for i, c in enumerate(names):
            _, pct = delta(ref.counters.get(c), r.counters.get(c))
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(pct if pct is not None else 0.0)
            labels.append("n/a" if pct is None else "" if abs(pct) < 0.05 else f"{pct:+.1f}%")
        bars = ax.bar(xs, ys, width=width * 0.95, color=colours[r.engine], label=f"{r.engine} vs {ref.engine}")
        for b, lab in zip(bars, labels):
            h = b.get_height()
            ax.annotate(lab, (b.get_x() + b.get_width() / 2, h), ha="center",
                        va="bottom" if h >= 0 else "top", fontsize=6.5,
                        xytext=(0, 2 if h >= 0 else -2), textcoords="offset points")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{_wrap(c)}\n({_arrow(c)})" for c in names], fontsize=8)
    ax.set_ylabel("Δ% (engine − reference) / reference")
    ax.grid(True, axis="y", alpha=0.3)
    lo, hi = ax.get_ylim()
    pad = 0.12 * (hi - lo or 1)
    ax.set_ylim(lo - pad, hi + pad)
    ax.legend(fontsize=8, loc="best")


def _arrow(counter: str) -> str:
    return {"lower": "lower is better", "higher": "higher is better"}.get(better(counter), "neutral")


def _wrap(name: str, width: int = 16) -> str:
    """Break a long counter name at the underscore nearest its middle."""
    if len(name) <= width or "_" not in name:
        return name
    cuts = [i for i, ch in enumerate(name) if ch == "_"]
    i = min(cuts, key=lambda k: abs(k - len(name) / 2))
    return name[:i + 1] + "\n" + name[i + 1:]
