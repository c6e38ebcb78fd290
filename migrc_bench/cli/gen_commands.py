"""``trace gen NAME`` for every registered generator (``trace.generators``) but xsbench.

Each command takes the program's own flags, ``-o OUT`` and ``--quiet``; it prints a note before
very large runs, a progress bar of work units on a terminal, and a one-line summary.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

import click

from ..trace.generators import REGISTRY, GeneratorSpec

BIG_RUN_RECORDS = 10**9
BYTES_PER_RECORD = 1.7        # native Parquet (lz4, plain encoding), measured on XSBench traces


def add_registered(group: click.Group, skip: tuple[str, ...] = ("xsbench",)) -> None:
    """Add one command per registered generator to ``group``."""
    for spec in REGISTRY.values():
        if spec.name not in skip:
            group.add_command(_command(spec))


def _command(spec: GeneratorSpec) -> click.Command:
    params = spec.click_params() + [
        click.Option(["-o", "--out", "out"], required=True, type=click.Path(dir_okay=False),
                     help="Output trace (native Parquet); written atomically."),
        click.Option(["--quiet", "-q"], is_flag=True,
                     help="No progress bar, note or summary on stderr."),
    ]

    def run(out: str, quiet: bool, **flags) -> None:
        p = spec.resolve(**flags)
        records = spec.expected_records(p)
        if records > BIG_RUN_RECORDS and not quiet:
            click.echo(f"migrc-bench: note: about {records:.3g} records "
                       f"(~{records * BYTES_PER_RECORD / 1e9:.0f} GB)", err=True)
        with gen_progress(spec.name, f"{p.work_unit}s", quiet) as progress:
            result = spec.generate(out, p, progress)
        if not quiet:
            click.echo(f"wrote {result.summary()} to {out}", err=True)

    return click.Command(spec.name, params=params, callback=run, help=spec.summary,
                         epilog=spec.epilog, short_help=spec.summary,
                         context_settings={"help_option_names": ["-h", "--help"]})


@contextlib.contextmanager
def gen_progress(label: str, unit: str, quiet: bool
                 ) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich bar of work units on stderr (only on a terminal and without --quiet)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(f"[bold]{label}"), BarColumn(),
               TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + unit),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as bar:
        tasks: list = []

        def update(done: int, total: int) -> None:
            if not tasks:
                tasks.append(bar.add_task(label, total=total))
            bar.update(tasks[0], completed=done)

        yield update
