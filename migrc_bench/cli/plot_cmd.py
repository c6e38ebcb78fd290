"""``migrc-bench plot RESULTS -o FILE.png``: timelines per engine and the key Δ% as bars."""

from __future__ import annotations

import click

from .options import quiet_option

EPILOG = """\b
Examples:
  migrc-bench compare app.parquet --engines baseline,migrc --out results/
  migrc-bench plot results/ -o compare.png
  migrc-bench plot results/ --engines nobatch,baseline,migrc -o three.png --title "XSBench, 16 CPUs"
  migrc-bench plot results/sweep-ncpu --by machine.ncpu --counter nr_tlb_remote_flush -o ncpu.png

\b
Panels: cumulative remote flushes, flush IPIs received, iTLB and dTLB misses, promotions and
demotions over modelled time (one line per engine; the last run of each engine in RESULTS),
pages held by migrc when the intervals have migrc_pending_pages, and a bar chart of the key
counters' Δ% against the first engine.
"""


@click.command("plot", epilog=EPILOG, short_help="Timelines per engine and key Δ% bars as a PNG.")
@click.argument("results", type=click.Path())
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Image to write (.png; .svg and .pdf also work); replaced atomically.")
@click.option("--engines", default=None, metavar="A,B,...",
              help="Engines to plot, the first is the Δ reference (default: every engine, in "
                   "the order first stored).")
@click.option("--title", default=None, help="Figure title.")
@click.option("--by", "by_key", default=None, metavar="KEY",
              help="For a sweep's results directory: plot --counter against this swept config "
                   "key, one line per engine.")
@click.option("--counter", default="nr_tlb_remote_flush", show_default=True,
              help="The counter for --by.")
@click.option("--where", multiple=True, metavar="KEY=VALUE",
              help="With --by: keep only runs whose config has this value (repeatable).")
@quiet_option
def command(results, out, engines, title, by_key, counter, where, quiet) -> None:
    """Plot the runs of a results directory (intervals.parquet and runs.parquet)."""
    from ..plot import plot_results

    engine_list = [e.strip() for e in engines.split(",") if e.strip()] if engines else None
    if by_key is not None:
        from ..sweep_summary import parse_where, plot_summary, summarize

        df = summarize(results, by_key, counter, where=parse_where(where), engines=engine_list)
        path = plot_summary(df, by_key, counter, out, title=title)
        if not quiet:
            click.echo(f"plot: wrote {path} ({counter} against {by_key})", err=True)
        return
    summary = plot_results(results, out, engine_list, title)
    if not quiet:
        click.echo(f"plot: wrote {summary.path} ({', '.join(summary.engines)}; "
                   f"{len(summary.panels)} panels)", err=True)
        if summary.min_intervals < 5:
            click.echo(f"migrc-bench: note: a run has only {summary.min_intervals} interval(s): "
                       f"the timelines are coarse; replay with a smaller replay.interval "
                       f"(e.g. --set replay.interval=\"1ms\")", err=True)
