"""Options shared by several subcommands, so they read the same everywhere."""

from __future__ import annotations

import functools
from typing import Callable

import click

from ..errors import UserError

FORMATS = ("table", "json", "csv", "markdown")


def config_options(fn: Callable) -> Callable:
    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="TOML config file (default: the bundled configs/default.toml; for run "
                       "and compare of a TRACE given, configs/unscaled.toml).")
    @click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config key; repeatable. Units allowed: \"1GiB\", \"18%\", \"250ns\".")
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def format_option(default: str = "table") -> Callable:
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default=default,
                        show_default=True, help="Output format (table for people, others for machines).")


def quiet_option(fn: Callable) -> Callable:
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar or notes on stderr.")(fn)


STREAM_SET = "trace.keep=false"


def stream_sets(stream: bool, trace: object, sets: tuple[str, ...]) -> tuple[str, ...]:
    """--stream is ``--set trace.keep=false`` (so the config records it); with a TRACE named
    it is an error: there is then no generator to stream."""
    if not stream:
        return tuple(sets)
    if trace:
        raise UserError("--stream replays the config's trace.generate as it is made; "
                        f"it takes no TRACE (got {trace})")
    return tuple(sets) + (STREAM_SET,)


def stream_option(fn: Callable) -> Callable:
    return click.option("--stream", is_flag=True,
                        help="Replay the config's trace.generate as it is generated, keeping no "
                             "trace file (sets trace.keep=false; docs/traces.md).")(fn)
