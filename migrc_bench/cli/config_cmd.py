"""``migrc-bench config show``: the effective configuration after files and overrides."""

from __future__ import annotations

import json

import click

from ..config import SCHEMA, load_config
from .options import config_options, format_option
from .output import emit_rows


@click.group("config")
def command() -> None:
    """Inspect configuration."""


@command.command("show", epilog="\b\nExample:\n  migrc-bench config show --set machine.ncpu=4 --format json")
@config_options
@format_option(default="table")
@click.option("--toml", "as_toml", is_flag=True, help="Print the effective config as TOML.")
def show(config_path, sets, fmt, as_toml) -> None:
    """Print every key's effective value, with its meaning."""
    cfg = load_config(config_path, sets)
    if as_toml:
        click.echo(cfg.to_toml(), nl=False)
        return
    raw = dict(cfg.raw)
    rows = [{"key": k.path, "value": raw[k.path] if raw[k.path] is not None else f"(preset {cfg.cost.preset})",
             "meaning": k.doc} for k in SCHEMA]
    if fmt == "json":
        click.echo(json.dumps({r["key"]: raw[r["key"]] for r in rows}, indent=2))
        return
    emit_rows(rows, fmt, title="effective configuration")
