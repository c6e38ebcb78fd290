"""``migrc-bench sweep GRID``: run a parameter grid (locally or on dask); ``sweep summary DIR``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from .. import interrupts
from ..errors import UserError
from .first_use import note_compile
from .options import config_options, format_option, quiet_option
from .output import emit_rows

EPILOG = """\b
Examples:
  migrc-bench sweep configs/sweep-ncpu.toml                 # local worker processes, one per core
  migrc-bench sweep grid.toml --workers 4 --out results/grid
  migrc-bench sweep grid.toml --scheduler tcp://10.0.0.5:8786   # an existing dask cluster
  migrc-bench sweep summary results/sweep-ncpu --key machine.ncpu \\
      --counter nr_tlb_remote_flush -o ncpu.png

\b
`sweep GRID` is short for `sweep run GRID`. Grid file format: `migrc-bench sweep run --help`;
running on a cluster: docs/cluster.md.
"""

RUN_EPILOG = """\b
Grid file (TOML; paths relative to the grid file):
  config  = "base.toml"                 # optional base config (default: the bundled one)
  traces  = ["../traces/app.parquet"]   # optional: else each point's trace.path, generated
                                        # from trace.generate when missing
  engines = ["baseline", "migrc"]       # optional: else the base config's engine
  [set]                                 # fixed overrides, as --set
  "replay.time_scale" = 0.01
  [grid]                                # cartesian product of these lists
  "memory.dram" = ["12%", "18%"]
  [zip]                                 # lists of one length varying together (one axis)
  "machine.ncpu" = [4, 16]
  "trace.path"   = ["../traces/t4.parquet", "../traces/default.parquet"]

\b
Points = traces × engines × [grid] values × [zip] rows. Each point's run_id (trace sha256 +
config sha256 + engine) is known before it runs: points already in OUT/runs.parquet are
skipped, so an interrupted sweep is resumed by running it again (--force re-runs them).
Results are appended to OUT by this process only, one point at a time (atomic renames);
workers only read traces. A failing point is recorded in OUT/sweep_errors.parquet (error,
traceback, worker) and the others go on; it is retried on the next run and its error row
is dropped once it succeeds. Exit status: 0 every point done, 1 some point failed,
2 bad grid file or arguments.

\b
Examples:
  migrc-bench sweep run configs/sweep-ncpu.toml --workers 2
  migrc-bench sweep run grid.toml --workers 0            # in this process, no dask
  migrc-bench sweep run grid.toml --scheduler tcp://head:8786 --out /shared/results/grid
"""

SUMMARY_EPILOG = """\b
Examples:
  migrc-bench sweep summary results/sweep-ncpu --key machine.ncpu --counter nr_tlb_remote_flush
  migrc-bench sweep summary results/sweep-ncpu --key machine.ncpu \\
      --counter nr_tlb_remote_flush_received --format markdown -o received.png
  migrc-bench sweep summary results/grid --key memory.dram --counter runtime_s \\
      --where machine.ncpu=16 --engines baseline,migrc

\b
One row per value of KEY (read from each run's config_toml), one column per engine, then
each engine's Δ% against the first engine. Several runs in one cell (another key varies
too) are an error: pick a slice with --where KEY=VALUE, or take the last appended with
--latest (after re-running a sweep with a newer migrc-bench, whose runs are new points).
"""


class _DefaultRunGroup(click.Group):
    """``sweep GRID ...`` means ``sweep run GRID ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("sweep", cls=_DefaultRunGroup, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Run a parameter grid (traces × engines × config values) into one results directory."""


def _progress(quiet: bool):
    """A listener for run_sweep: a rich bar on a terminal, one line per point otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    state = {"t0": time.perf_counter(), "failed": 0, "bar": None, "task": None}

    def eta(done: int, total: int) -> str:
        if not done:
            return "-:--:--"
        left = int(round((time.perf_counter() - state["t0"]) / done * (total - done)))
        return f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"

    tty = sys.stderr.isatty() and not quiet

    def listener(event, point, done, total):
        if quiet:
            return
        if event == "start":
            state["t0"] = time.perf_counter()
            if tty and total:
                bar = Progress(TextColumn("[bold]sweep"), BarColumn(),
                               TextColumn("{task.completed}/{task.total} points"),
                               TextColumn("{task.fields[failed]}"), TimeElapsedColumn(),
                               TextColumn("ETA {task.fields[eta]}"),
                               console=Console(file=sys.stderr), transient=True)
                bar.start()
                state["bar"], state["task"] = bar, bar.add_task("sweep", total=total, failed="",
                                                                eta="-:--:--")
            return
        if event == "failed":
            state["failed"] += 1
        if state["bar"] is not None:
            bar = state["bar"]
            bar.update(state["task"], completed=done, eta=eta(done, total),
                       failed=f"[red]{state['failed']} failed" if state["failed"] else "")
            if event == "failed":
                bar.console.print(f"[red]failed[/red] {point.label()}: {point.error}")
            if done >= total:
                bar.stop()
        else:
            secs = f" ({point.seconds:.1f} s)" if point.seconds is not None else ""
            msg = f": {point.error}" if event == "failed" else ""
            click.echo(f"sweep: [{done}/{total}] {event} {point.label()}{secs}{msg}; "
                       f"ETA {eta(done, total)}", err=True)

    def stop():
        if state["bar"] is not None:
            state["bar"].stop()

    return listener, stop


def _point_rows(points, fmt: str = "json") -> list[dict]:
    keys: list[str] = []
    for p in points:
        for k in p.values:
            if k not in keys and k not in ("trace.path", "trace.generate"):
                keys.append(k)
    rows = []
    for p in points:
        row = {"point": p.index, "engine": p.engine, "trace": Path(p.trace).name}
        for k in keys:
            row[k] = p.values.get(k, "")
        secs = None if p.seconds is None else round(p.seconds, 2)
        row.update({"status": p.status, "run_id": p.run_id,
                    "seconds": "" if secs is None and fmt != "json" else secs,
                    "error": p.error})
        rows.append(row)
    if fmt != "json":  # columns that say nothing here are left out of tables
        for col in ("seconds", "error"):
            if all(r[col] in ("", None) for r in rows) or col == "error" and fmt == "table":
                for r in rows:
                    del r[col]  # a table's error texts go below it (_emit_points)
    return rows


def _emit_points(points, fmt: str, title: str) -> None:
    """The points as rows; for a table, each failed point's error on its own line below."""
    emit_rows(_point_rows(points, fmt), fmt, title=title)
    if fmt == "table":
        for p in points:
            if p.error:
                click.echo(f"point {p.index} ({p.label()}): {p.error}")


@command.command("run", epilog=RUN_EPILOG)
@click.argument("grid", type=click.Path(dir_okay=False))
@config_options
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Results directory (default: results/sweep-GRIDNAME; sweep-ncpu.toml → "
                   "results/sweep-ncpu).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Local worker processes (default: one per core); 0 runs the points in this "
                   "process, without dask.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run on an existing dask.distributed cluster instead (docs/cluster.md).")
@click.option("--force", is_flag=True, help="Re-run points already in the results directory.")
@click.option("--dry-run", is_flag=True,
              help="List the points and which would be skipped; run nothing (missing traces are "
                   "still generated: their sha256 is part of each run_id).")
@format_option()
@quiet_option
def run_command(grid, config_path, sets, out_dir, workers, scheduler, force, dry_run, fmt,
                quiet) -> None:
    """Run every point of GRID not yet in the results directory."""
    from ..sweep import done_run_ids, expand, load_grid, run_sweep

    if scheduler and workers is not None:
        raise UserError("--workers and --scheduler: choose one (local processes or a cluster)")
    g = load_grid(grid, config_path, sets)
    out = Path(out_dir) if out_dir else Path("results") / f"sweep-{g.name.removeprefix('sweep-')}"
    points = expand(g, quiet=quiet)
    if dry_run:
        have = set() if force or not out.is_dir() else done_run_ids(out)
        for p in points:
            p.status = "skipped" if p.run_id in have else "pending"
        _emit_points(points, fmt, title=f"sweep {g.name}: {len(points)} points")
        return
    shown, stop = _progress(quiet)
    kept = [0]

    def listener(event, point, done, total):
        if event == "ran":
            kept[0] += 1
            interrupts.keep(f"{out}: {kept[0]} new point(s) kept, {total - done} not run; "
                            f"run the sweep again to resume")
        shown(event, point, done, total)

    interrupts.keep(f"{out}: no new point kept; run the sweep again to resume")
    note_compile(quiet)
    try:
        if not quiet:
            have = set() if force or not out.is_dir() else done_run_ids(out)
            skip = sum(p.run_id in have for p in points)
            where = ("dask scheduler " + scheduler if scheduler else
                     "this process" if workers == 0 else "local worker processes")
            click.echo(f"sweep {g.name}: {len(points)} points, {skip} already in {out}, "
                       f"{len(points) - skip} to run ({where})", err=True)
        report = run_sweep(g, out, workers=workers, scheduler=scheduler, force=force,
                           listener=listener, quiet=quiet, points=points)
    finally:
        stop()
    _emit_points(report.points, fmt, title=f"sweep {g.name} → {out}")
    ran, skipped, failed = (report.count(s) for s in ("ran", "skipped", "failed"))
    if not quiet:
        click.echo(f"sweep {g.name}: {ran} ran, {skipped} skipped (already in {out}), "
                   f"{failed} failed; {report.wall_s:.1f} s on {report.executor}", err=True)
        if failed:
            click.echo(f"errors: {out / 'sweep_errors.parquet'} (run the sweep again to retry)",
                       err=True)
    sys.stdout.flush()
    if failed:
        raise click.exceptions.Exit(1)


@command.command("summary", epilog=SUMMARY_EPILOG)
@click.argument("results", type=click.Path())
@click.option("--key", required=True, metavar="SECTION.KEY", help="The swept config key (x axis).")
@click.option("--counter", required=True, help="The counter to show (a runs.parquet column).")
@click.option("--where", multiple=True, metavar="KEY=VALUE",
              help="Only runs with this config value; repeatable ('trace=NAME' matches the "
                   "trace's file name).")
@click.option("--engines", default=None, metavar="A,B,...",
              help="Engines to show, the first is the Δ% reference (default: all, in order stored).")
@click.option("--latest", is_flag=True,
              help="Several runs for one value and engine: take the last appended (e.g. after "
                   "re-running a sweep with a newer migrc-bench) instead of failing.")
@click.option("-o", "--out", "out_png", default=None, type=click.Path(dir_okay=False),
              help="Also write a plot (.png; .svg and .pdf also work).")
@click.option("--title", default=None, help="Plot title.")
@format_option()
@quiet_option
def summary_command(results, key, counter, where, engines, latest, out_png, title, fmt,
                    quiet) -> None:
    """Show COUNTER against a swept config KEY, one column per engine, from RESULTS."""
    from ..sweep_summary import parse_where, plot_summary, summarize, summary_rows

    engine_list = [e.strip() for e in engines.split(",") if e.strip()] if engines else None
    if engines is not None and not engine_list:
        raise UserError("--engines: no engine named")
    df = summarize(results, key, counter, where=parse_where(where), engines=engine_list,
                   latest=latest)
    emit_rows(summary_rows(df), fmt, title=f"{counter} against {key} ({results})")
    if out_png:
        path = plot_summary(df, key, counter, out_png, title=title)
        if not quiet:
            click.echo(f"plot: wrote {path}", err=True)
