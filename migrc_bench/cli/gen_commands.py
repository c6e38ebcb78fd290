"""``trace gen NAME`` for every registered generator (``trace.generators``) but xsbench.

Each command takes the program's own flags, ``-o OUT``, ``--force`` and ``--quiet``; it refuses
a run beyond what anyone means before writing anything (``trace.sizes``, as ``trace gen
xsbench`` does), shows a progress bar of work units on a terminal, and a one-line summary.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

import click

from ..trace.generators import REGISTRY, GeneratorSpec

def add_registered(group: click.Group, skip: tuple[str, ...] = ("xsbench",)) -> None:
    """Add one command per registered generator to ``group``."""
    for spec in REGISTRY.values():
        if spec.name not in skip:
            group.add_command(_command(spec))


def _command(spec: GeneratorSpec) -> click.Command:
    params = spec.click_params() + [
        click.Option(["-o", "--out", "out"], required=True, type=click.Path(dir_okay=False),
                     help="Output trace (native Parquet); written atomically."),
        click.Option(["--force"], is_flag=True,
                     help="Write it even above 2e9 records or the free disk space."),
        click.Option(["--quiet", "-q"], is_flag=True,
                     help="No progress bar, note or summary on stderr."),
    ]

    def run(out: str, force: bool, quiet: bool, **flags) -> None:
        from .. import interrupts
        from ..trace.sizes import check_size

        p = spec.resolve(**flags)
        check_size(spec.size_estimate(p), out, force)
        interrupts.keep_target(out)
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
