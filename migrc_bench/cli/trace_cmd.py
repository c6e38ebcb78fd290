"""``migrc-bench trace gen|convert|info``."""

from __future__ import annotations

import click

from .trace_gen import gen


@click.group("trace")
def command() -> None:
    """Generate, convert and inspect traces."""


command.add_command(gen)
