"""``migrc-bench run TRACE``."""

from __future__ import annotations

import click


@click.command("run")
def command() -> None:
    """Replay a trace."""
