"""``migrc-bench trace gen``: synthetic trace generators."""

from __future__ import annotations

import click


@click.group("gen")
def gen() -> None:
    """Generate a synthetic trace."""
