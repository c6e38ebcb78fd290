"""``migrc-bench suite``: engines × workloads on one machine, a summary table and a PNG."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import UserError
from .options import format_option, quiet_option
from .output import emit_rows

EPILOG = """\b
Examples:
  migrc-bench suite                                   # baseline, migrc, luf on every workload
  migrc-bench suite --engines baseline,migrc --workloads gups,kv --format markdown
  migrc-bench suite --workers 2 --out results/suite -o suite.png
  migrc-bench suite --scheduler tcp://head:8786       # on a dask cluster (docs/cluster.md)

\b
Workloads (bundled configs, docs/workloads.md): xsbench (default: xsbench-cxl16's machine
on a 50 M-record trace), gups, kv, gapbs-bfs, gapbs-pr (NAME-cxl16): the seed's 16-vCPU,
1 GB + 8 GB machine scaled by 1/100, each with its generated trace (made on first use, kept
in the cache). Every (workload, engine) is a sweep point: points already in OUT are
skipped, so running the suite again resumes it (--force re-runs). The table gives each
engine's remote flushes, iTLB and dTLB misses, runtime and migrations with their change
against the first engine, and migrc's deferred share (deferred pages / migrated pages).
Exit status 1 if a point failed (OUT/sweep_errors.parquet has it).
"""


def _names(text: str, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"--{what}: no {what[:-1]} named")
    return list(dict.fromkeys(names))


@click.command("suite", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--engines", default="baseline,migrc,luf", show_default=True, metavar="A,B,...",
              help="Engines to run; the first is the reference of the Δ%.")
@click.option("--workloads", default=None, metavar="A,B,...",
              help="Workloads to run (default: all: xsbench,gups,kv,gapbs-bfs,gapbs-pr).")
@click.option("--out", "out_dir", default="results/suite", show_default=True,
              type=click.Path(file_okay=False), help="Results directory (resumable).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Local worker processes (default: one per core); 0 runs in this process.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run on an existing dask.distributed cluster instead.")
@click.option("--force", is_flag=True, help="Re-run points already in the results directory.")
@click.option("-o", "--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Write the Δ% plot here (default: OUT/suite.png).")
@format_option()
@quiet_option
def command(engines, workloads, out_dir, workers, scheduler, force, plot_path, fmt,
            quiet) -> None:
    """Run every workload of the suite with ENGINES and compare them with the first engine."""
    from ..suite import (WORKLOADS, count_rows, delta_rows, plot_suite, run_suite, suite_points,
                         summarize)
    from .sweep_cmd import _progress

    if scheduler and workers is not None:
        raise UserError("--workers and --scheduler: choose one (local processes or a cluster)")
    engine_list = _names(engines, "engines")
    names = _names(workloads, "workloads") if workloads else list(WORKLOADS)
    out = Path(out_dir)
    points = suite_points(names, engine_list, quiet=quiet)
    listener, stop = _progress(quiet)
    try:
        report = run_suite(points, out, workers=workers, scheduler=scheduler, force=force,
                           listener=listener)
    finally:
        stop()
    rows = summarize(out, points, reference=engine_list[0])
    if fmt == "json":
        sys.stdout.write(json.dumps({"reference": engine_list[0], "results": str(out),
                                     "rows": rows}, indent=2, default=str) + "\n")
    elif fmt == "csv":
        emit_rows(rows, "csv")
    else:
        ref = engine_list[0]
        for title, table in ((f"suite → {out}", count_rows(rows)),
                             (f"Δ% against {ref}", delta_rows(rows, ref))):
            if fmt == "markdown":
                sys.stdout.write(f"\n### {title}\n\n")
            emit_rows(table, fmt, title=title if fmt == "table" else None)
    if rows:
        png = plot_suite(rows, plot_path or out / "suite.png", reference=engine_list[0])
        if not quiet:
            click.echo(f"plot: wrote {png}", err=True)
    ran, skipped, failed = (report.count(s) for s in ("ran", "skipped", "failed"))
    if not quiet:
        click.echo(f"suite: {ran} ran, {skipped} skipped (already in {out}), {failed} failed; "
                   f"{report.wall_s:.1f} s on {report.executor}", err=True)
    if failed:
        raise click.exceptions.Exit(1)
