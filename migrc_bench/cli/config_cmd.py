"""``migrc-bench config show|list``: the effective configuration; the bundled config files."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import SCHEMA, bundled_files, load_config, load_toml_file
from .options import config_options, format_option
from .output import emit_rows

EPILOG = """\b
Examples:
  migrc-bench config list
  migrc-bench config show --config xsbench-cxl16 --format markdown
  migrc-bench config show --set machine.ncpu=4 --toml > my.toml
  migrc-bench run app.parquet --config my.toml
"""


@click.group("config", epilog=EPILOG)
def command() -> None:
    """Inspect configuration: every key's value, and the bundled config files."""


@command.command("show", epilog="""\b
Examples:
  migrc-bench config show --set machine.ncpu=4 --format json
  migrc-bench config show --config xsbench-cxl16 --toml
""")
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

    def unset(path: str) -> str:
        if path == "machine.flush":  # the mechanism machine.preset implies
            from ..model.broadcast import flush_kind

            return f"({flush_kind(cfg)}: machine.preset {cfg.machine.preset})"
        if path == "machine.sched_base_slice":  # the kernel's default for the machine's CPUs
            from ..model.sched import base_slice_ns

            ms = base_slice_ns(cfg, cfg.machine.ncpu) / 1e6
            return f"({ms:g} ms: 0.75 ms x (1 + ilog2(min(ncpu {cfg.machine.ncpu}, 8))))"
        return f"(preset {cfg.cost.preset})"

    rows = [{"key": k.path, "value": raw[k.path] if raw[k.path] is not None else unset(k.path),
             "meaning": k.doc} for k in SCHEMA]
    if fmt == "json":
        click.echo(json.dumps({r["key"]: raw[r["key"]] for r in rows}, indent=2))
        return
    emit_rows(rows, fmt, title="effective configuration")


@command.command("list", epilog="""\b
Examples:
  migrc-bench config list
  migrc-bench config list --format json
  migrc-bench compare --config xsbench-cxl16 --engines nobatch,baseline,migrc
  migrc-bench sweep sweep-ncpu
""")
@format_option(default="table")
def list_command(fmt) -> None:
    """The config, grid and thresholds files shipped with migrc-bench, one line each.

    Each is usable by name: --config NAME, sweep NAME, check --thresholds NAME.
    """
    rows = []
    for name, path in bundled_files().items():
        doc = load_toml_file(path, "config")
        kind = kind_of(doc)
        rows.append({"name": name, "kind": kind, "about": summary(kind, doc),
                     "path": str(path), "header": header(path)})
    if fmt == "table":
        emit_rows(rows, fmt, title="bundled configs", columns=("name", "kind", "about"))
    else:
        emit_rows(rows, fmt, columns=("name", "kind", "about", "path", "header"))


def kind_of(doc: dict[str, Any]) -> str:
    if "rules" in doc or isinstance(doc.get("engines"), dict):
        return "thresholds"
    if any(k in doc for k in ("grid", "zip", "traces")) or isinstance(doc.get("engines"), list):
        return "grid"
    return "config"


def summary(kind: str, doc: dict[str, Any]) -> str:
    """What a file sets up, from its values (so it stays true when the file changes)."""
    if kind == "thresholds":
        per = {e: len(t) for e, t in doc.get("engines", {}).items() if isinstance(t, dict)}
        extra = "".join(f", {n} more for {e}" for e, n in per.items())
        return f"check rules: {len(doc.get('rules', {}))} counters{extra}"
    if kind == "grid":
        axes = [f"{k} ({len(v)})" for t in ("grid", "zip") for k, v in doc.get(t, {}).items()
                if isinstance(v, list) and k != "trace.generate"]
        engines = ", ".join(doc.get("engines", [])) or "the config's engine"
        return f"sweep of {' x '.join(axes) or 'one point'}; {engines}"
    machine, memory = doc.get("machine", {}), doc.get("memory", {})
    parts = [f"{machine.get('ncpu', 16)} CPUs", f"{memory.get('dram', '18%')} DRAM"]
    gen = doc.get("trace", {}).get("generate", "")
    if gen:
        parts.append(_trace_summary(gen))
    return ", ".join(parts)


def _trace_summary(gen: str) -> str:
    try:
        from ..trace.generators import from_args

        spec, p = from_args(gen)
    except Exception:  # noqa: BLE001 - a summary, not a check: show the text
        return gen
    count = _count(p.work_units)
    what = f"{spec.title} {p.size}" if spec.name == "xsbench" else spec.title or spec.name
    return f"{what} {count} {p.work_unit}s"


def _count(n: int) -> str:
    """54k, 2.5M: two or three digits, so that the list fits 80 columns."""
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if n >= div:
            v = n / div
            return f"{v:.0f}{unit}" if v >= 10 else f"{v:.2g}{unit}"
    return str(n)


def header(path) -> str:
    """The file's leading comment, as one line."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(x for x in lines if x)
