"""``migrc-bench cache [clean]``: where generated traces, page sets and compiled code are kept,
and how much."""

from __future__ import annotations

import json

import click

from .. import cache as K
from ..errors import UserError
from ..trace.sizes import human_bytes
from .options import format_option
from .output import emit_rows

EPILOG = """\b
Examples:
  migrc-bench cache                    # the directory, and what it holds
  migrc-bench cache --format json
  migrc-bench cache clean              # remove everything in it (all can be made again)
  MIGRC_BENCH_CACHE=/scratch/mb migrc-bench compare

\b
The directory is $MIGRC_BENCH_CACHE, else $XDG_CACHE_HOME/migrc-bench, else
~/.cache/migrc-bench. It holds the traces that configs' trace.generate make (traces/, named
by their arguments), each replayed trace's pre-pass (pagesets/, named by the trace's sha256)
and, for an installed package, numba's compiled code (numba/).
"""


@click.group("cache", epilog=EPILOG, invoke_without_command=True)
@format_option()
@click.pass_context
def command(ctx: click.Context, fmt: str) -> None:
    """Show the cache directory and its size; 'cache clean' empties it."""
    if ctx.invoked_subcommand is not None:
        return
    u = K.usage()
    if fmt == "json":
        click.echo(json.dumps({"path": str(u.root), "exists": u.root.is_dir(), "bytes": u.bytes,
                               "files": u.files,
                               "parts": {k: {"bytes": b, "files": n} for k, (b, n) in u.parts.items()}},
                              indent=2))
        return
    rows = [{"part": k, "files": n, "size": human_bytes(b)} for k, (b, n) in u.parts.items()]
    rows.append({"part": "total", "files": u.files, "size": human_bytes(u.bytes)})
    state = "" if u.root.is_dir() else " (not created yet)"
    click.echo(f"cache: {u.root}{state}")
    emit_rows(rows, fmt, columns=("part", "files", "size"))


@command.command("clean", epilog="""\b
Examples:
  migrc-bench cache clean
  MIGRC_BENCH_CACHE=/scratch/mb migrc-bench cache clean
""")
def clean() -> None:
    """Remove everything in the cache: generated traces, page sets, compiled code, stale temp files.

    Temp files of commands still running are left to them.
    """
    root = K.cache_dir()
    if not root.is_dir():
        click.echo(f"cache: {root}: nothing to remove (not created yet)", err=True)
        return
    if not K.is_ours(root):
        raise UserError(f"{root}: not a migrc-bench cache (no {K.TAG_NAME} of ours in it): "
                        f"not emptying it; check $MIGRC_BENCH_CACHE")
    before, kept = K.clean(root)
    note = f"; {len(kept)} temp file(s) of running commands left" if kept else ""
    click.echo(f"cache: removed {before.files:,} file(s), {human_bytes(before.bytes)} from "
               f"{root}{note}", err=True)
