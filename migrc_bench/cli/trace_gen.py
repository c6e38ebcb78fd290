"""``migrc-bench trace gen``: synthetic trace generators."""

from __future__ import annotations

import click

from ..trace.xsbench_params import click_params
from .gen_commands import add_registered, gen_progress


@click.group("gen")
def gen() -> None:
    """Generate a synthetic trace."""


BIG_RUN_RECORDS = 10**9

XSBENCH_EPILOG = """\b
Examples:
  migrc-bench trace gen xsbench -s small -m event -l 20000 -t 4 -o small.parquet
  migrc-bench trace gen xsbench -s large -m history -p 400 -t 16 --seed 1 -o default.parquet
  migrc-bench trace gen xsbench -s large -G hash -m event -l 100000 -t 8 -o hash.parquet

\b
Defaults are XSBench's (-s large -G unionized -m history -p 500000 -l 34, i.e. 17 M lookups and
about 16 G records for large): give -p or -l for a trace of practical size. In history mode -l
is lookups per particle, so "-l 2000" alone means 2000 x 500,000 lookups. Help is --help only:
-h is the hash-bin count, as in XSBench.
"""


@gen.command("xsbench", params=click_params(), epilog=XSBENCH_EPILOG,
             context_settings={"help_option_names": ["--help"]})
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output trace (native Parquet); written atomically.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, note or summary on stderr.")
def xsbench(out: str, quiet: bool, **flags) -> None:
    """XSBench's cross-section lookups as a memory-access trace (see docs/xsbench.md).

    Takes XSBench's own flags; the trace holds every load and store of the lookup phase and the
    instruction fetch of each, for THREADS OpenMP threads sharing one address space.
    """
    from ..trace.xsbench import expected_records_per_lookup, generate_xsbench, resolve_params

    params = resolve_params(**flags)
    records = params.total_lookups * expected_records_per_lookup(params)
    if records > BIG_RUN_RECORDS and not quiet:
        click.echo(f"migrc-bench: note: {params.total_lookups:,} lookups, about {records:.3g} "
                   f"records (~{records * 1.7 / 1e9:.0f} GB); -p/-l make it shorter", err=True)
    with _lookup_progress(quiet) as progress:
        result = generate_xsbench(out, progress=progress, **flags)
    if not quiet:
        p = result.params
        click.echo(f"wrote {result.records:,} records ({p.total_lookups:,} lookups, "
                   f"{p.threads} threads, {p.size}/{p.grid}/{p.mode}) to {out}; "
                   f"XSBench verification checksum {result.verification}", err=True)


def _lookup_progress(quiet: bool):
    """A transient rich bar of lookups on stderr (only on a terminal and without --quiet)."""
    return gen_progress("xsbench", "lookups", quiet)


add_registered(gen)
