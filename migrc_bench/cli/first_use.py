"""The one line a first run after install prints: the replay loop is being compiled."""

from __future__ import annotations

import click

_said = False


def note_compile(quiet: bool = False) -> None:
    """Say once, on stderr, that the next replay compiles the loop (it is otherwise silent)."""
    global _said
    if quiet or _said:
        return
    from ..model.jit_cache import replay_kernel_cold

    if replay_kernel_cold():
        _said = True
        click.echo("migrc-bench: compiling the replay loop (first use after install: about "
                   "10-30 s, cached for later runs)", err=True)
