"""``migrc-bench trace gen``: synthetic trace generators."""

from __future__ import annotations

import click

from ..trace.xsbench_params import click_params
from .gen_commands import add_registered, gen_progress


GEN_EPILOG = """\b
Examples:
  migrc-bench trace gen xsbench -s small -m event -l 20000 -t 4 -o small.parquet
  migrc-bench trace gen xsbench --help
"""


@click.group("gen", epilog=GEN_EPILOG)
def gen() -> None:
    """Generate a synthetic trace."""


class _XSBenchCommand(click.Command):
    """XSBench's flags, where -h is the hash-bin count: a bare ``-h`` (no number after it) is
    taken as a request for help, as anyone typing it means."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        for i, a in enumerate(args):
            if a == "--":
                break
            if a == "-h" and (i + 1 == len(args) or not args[i + 1].lstrip("-").isdigit()):
                args[i] = "--help"
        return super().parse_args(ctx, args)

XSBENCH_EPILOG = """\b
Examples:
  migrc-bench trace gen xsbench -s small -m event -l 20000 -t 4 -o small.parquet
  migrc-bench trace gen xsbench -s large -m history -p 400 -t 16 --seed 1 -o default.parquet
  migrc-bench trace gen xsbench -s large -G hash -m event -l 100000 -t 8 -o hash.parquet

\b
Defaults are XSBench's (-s large -G unionized -m history -p 500000 -l 34, i.e. 17 M lookups and
about 16 G records for large): give -p or -l for a trace of practical size. In history mode -l
is lookups per particle, so "-l 2000" alone means 2000 x 500,000 lookups. Before writing, the
size is estimated from the flags: above 2e9 records or the free disk space the command stops
(exit 2) with the estimate and the flags you likely meant; --force writes it anyway.
-h NUMBER is the hash-bin count, as in XSBench; -h alone shows this help.
"""


@gen.command("xsbench", cls=_XSBenchCommand, params=click_params(), epilog=XSBENCH_EPILOG,
             context_settings={"help_option_names": ["--help"]})
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output trace (native Parquet); written atomically.")
@click.option("--force", is_flag=True,
              help="Write it even above 2e9 records or the free disk space.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, note or summary on stderr.")
def xsbench(out: str, force: bool, quiet: bool, **flags) -> None:
    """XSBench's cross-section lookups as a memory-access trace (see docs/xsbench.md).

    Takes XSBench's own flags; the trace holds every load and store of the lookup phase and the
    instruction fetch of each, for THREADS OpenMP threads sharing one address space.
    """
    from .. import interrupts
    from ..trace.sizes import check_size
    from ..trace.xsbench import generate_xsbench, resolve_params, size_estimate

    params = resolve_params(**flags)
    est = size_estimate(params, lookups_given=flags.get("lookups") is not None,
                        particles_given=flags.get("particles") is not None)
    check_size(est, out, force)
    interrupts.keep_target(out)
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
