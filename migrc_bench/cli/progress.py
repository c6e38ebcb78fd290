"""A rich progress bar on stderr for long replays; silent when not a terminal or --quiet.

The total is the trace's records; the done count is accesses, one more for each record that
crosses a page boundary, so it is capped at the total rather than running past 100 %.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


def _enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def _bars() -> Progress:
    """The bar layout every replay uses: accesses done, speed, modelled time, ETA."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed:,.0f}/{task.total:,.0f} accesses"),
               TextColumn("{task.fields[rate]}"), TextColumn("t={task.fields[tmod]}"),
               TimeRemainingColumn())
    return Progress(*columns, console=Console(file=sys.stderr), transient=True)


@contextlib.contextmanager
def replay_progress(quiet: bool = False, label: str = "replay"
                    ) -> Iterator[Callable[[int], Callable[[int, float], None]] | None]:
    """Yield a factory ``total -> update(done, modelled_ns)``, or None when disabled."""
    if not _enabled(quiet):
        yield None
        return
    with _bars() as bar:
        def factory(total: int) -> Callable[[int, float], None]:
            task = bar.add_task(label, total=total, rate="", tmod="")

            def update(done: int, modelled_ns: float) -> None:
                speed = bar.tasks[task].speed
                rate = f"{speed / 1e6:.1f} M/s" if speed else ""
                bar.update(task, completed=min(done, total), rate=rate,
                           tmod=f"{modelled_ns / 1e9:.3f}s")

            return update

        yield factory


class EngineBars:
    """One bar per engine (compare): ``update(engine, done, total, modelled_ns)``."""

    def __init__(self, bar: Progress, labels: list[str]):
        self.bar = bar
        width = max((len(x) for x in labels), default=0)
        self.tasks = {label: bar.add_task(label.ljust(width), total=0, start=False, rate="",
                                          tmod="starting") for label in labels}
        self.started: set[str] = set()

    def start(self, label: str) -> None:
        if label not in self.started:
            self.started.add(label)
            self.bar.start_task(self.tasks[label])
            self.bar.update(self.tasks[label], tmod="")

    def update(self, label: str, done: int, total: int, modelled_ns: float) -> None:
        self.start(label)
        task = self.tasks[label]
        self.bar.update(task, completed=min(done, total), total=total,
                        tmod=f"{modelled_ns / 1e9:.3f}s")
        speed = self.bar.tasks[task].speed
        self.bar.update(task, rate=f"{speed / 1e6:.1f} M/s" if speed else "")


@contextlib.contextmanager
def engines_progress(labels: list[str], quiet: bool = False) -> Iterator[EngineBars | None]:
    """Bars for several replays at once on stderr, or None when disabled (not a tty, --quiet)."""
    if not _enabled(quiet):
        yield None
        return
    with _bars() as bar:
        yield EngineBars(bar, labels)
