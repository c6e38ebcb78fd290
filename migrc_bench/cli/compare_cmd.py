"""``migrc-bench compare [TRACE | RESULT [RESULT_B]]``: engines side by side, Δ against the first."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import compare as C
from .. import interrupts
from ..catalogue import fmt_value
from ..config import config_dir, load_config
from ..defaults import config_for
from ..engines.loader import identify, relative_to_config, split_file_spec
from ..notices import short_run
from ..errors import UserError
from ..runner import default_trace, stream_spec
from .first_use import note_compile
from .options import config_options, format_option, quiet_option, stream_option, stream_sets
from .output import emit_rows, markdown_table
from .progress import engines_progress

DEFAULT_ENGINES = "baseline,migrc"

EPILOG = """\b
Examples:
  migrc-bench compare                                  # baseline vs migrc on the default trace
  migrc-bench compare app.parquet --engines nobatch,baseline,migrc --out results/
  migrc-bench compare app.parquet --set machine.ncpu=4 --only-changed --format markdown
  migrc-bench compare --engines baseline,migrc,examples/engines/latr.py:Latr   # your own engine
  migrc-bench compare --config ci --stream              # the trace generated as replayed, no file
  migrc-bench compare results/                         # stored runs: last run of each engine
  migrc-bench compare old/ new/ --engines migrc        # migrc in old/ vs migrc in new/
  migrc-bench compare results/ --counters 'nr_tlb_*,itlb_misses,runtime_s' --format json

\b
Δ and Δ% are against the first column. Colours: green better, red worse; counters whose
direction is neither (migrations, hits, input counts) are not coloured. JSON schema and
directions: docs/results.md.
"""


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [x.strip() for x in value.split(",") if x.strip()]
    return items


@click.command("compare", epilog=EPILOG, short_help="Engines side by side: replay a trace, or stored runs.")
@click.argument("inputs", nargs=-1, metavar="[TRACE | RESULT [RESULT_B]]")
@click.option("--engines", default=None, metavar="A,B,...",
              help=f"Engines to replay (default {DEFAULT_ENGINES}) or to pick from stored results "
                   f"(default: every engine found): built-in names, installed engines or file "
                   f"engines PATH.py:CLASS (docs/engines.md).")
@config_options
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Append the runs this command makes to this results directory.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=False,
              help="Worker processes for the replays (default: one per engine, at most the "
                   "CPU count; 1 = in this process).")
@click.option("--counters", default=None, metavar="A,B,...",
              help="Only these counters (names or globs such as 'nr_tlb_*').")
@click.option("--only-changed", is_flag=True, help="Hide counters equal in every column.")
@click.option("--by", "by_key", default=None, metavar="KEY",
              help="For a sweep's results directory: the counter (--counters, one name) against "
                   "this swept config key, one column per engine (see 'sweep summary').")
@click.option("--where", multiple=True, metavar="KEY=VALUE",
              help="With --by: keep only runs whose config has this value (repeatable).")
@stream_option
@format_option()
@quiet_option
def command(inputs, engines, config_path, sets, out_dir, workers, counters, only_changed, by_key,
            where, stream, fmt, quiet) -> None:
    """Compare engines: replay TRACE (default: the config's trace.path) with each engine,
    or compare runs stored in results directories, runs.parquet or baseline files.

    Without --config, TRACE runs on an unscaled machine (configs/unscaled.toml); no TRACE
    replays the bundled default trace on the scaled demo machine (configs/default.toml).
    """
    engine_list = _split_list(engines)
    if by_key is not None:
        _compare_by_key(inputs, by_key, counters, engine_list, where, fmt)
        return
    counter_list = _split_list(counters)
    if counters is not None and not counter_list:
        raise UserError("--counters: no counter named")
    if len(inputs) > 2:
        raise UserError(f"compare takes a trace, or one or two results; got {len(inputs)} arguments")
    sets = stream_sets(stream, inputs[0] if inputs else None, sets)
    kinds = [C.source_kind(p) for p in inputs]
    if inputs and all(k != "trace" for k in kinds):
        given = [n for n, v in (("--config", config_path), ("--set", sets), ("--out", out_dir),
                                ("--workers", workers)) if v]
        if given:
            raise UserError(f"{', '.join(given)}: only for replaying a trace; "
                            f"{' and '.join(inputs)} hold stored runs")
        columns = C.stored_columns(list(inputs), _names(engine_list))
    else:
        if len(inputs) == 2:
            bad = [p for p, k in zip(inputs, kinds) if k == "trace"]
            raise UserError(f"compare A B compares two results (directories, runs.parquet or "
                            f"baseline files); {bad[0]} is not one (to replay a trace: compare TRACE)")
        engine_list = engine_list if engine_list is not None else _split_list(DEFAULT_ENGINES)
        config_path = config_for(config_path, bool(inputs))
        # a file engine is named relative to the current directory; configs resolve it in theirs
        engine_list = [relative_to_config(e, Path.cwd(), config_dir(config_path)) for e in engine_list]
        C.check_engines(engine_list, config_dir(config_path))
        cfg = load_config(config_path, sets)
        # streamed: each engine's replay runs the generator once more (docs/traces.md)
        trace = Path(inputs[0]) if inputs else stream_spec(cfg) or default_trace(cfg, quiet=quiet)
        if out_dir is not None:
            interrupts.keep_target(out_dir, " (no run appended)")
        note_compile(quiet)
        with engines_progress(engine_list, quiet=quiet) as bars:
            columns = C.replay_columns(
                config_path, tuple(sets), engine_list, trace, workers=workers, out_dir=out_dir,
                on_progress=bars.update if bars else None, on_start=bars.start if bars else None)
        if out_dir is not None and not quiet:
            ids = ", ".join(f"{c.id} {c.run.run_id}" for c in columns)
            click.echo(f"results: {out_dir} ({ids})", err=True)
    rows = C.build_rows(columns, counter_list, only_changed)
    notes = C.notes_for(columns)
    if columns:
        notice = short_run(columns[0].run.config_values(), columns[0].run.counters)
        notes += [notice] if notice else []
    emit_compare(columns, rows, notes, fmt, quiet)


def _names(engines: list[str] | None) -> list[str] | None:
    """Engine names for picking stored runs: a file engine PATH.py:CLASS by its class's name."""
    if engines is None:
        return None
    return [identify(e, Path.cwd()).name if split_file_spec(e) else e for e in engines]


def _compare_by_key(inputs, key: str, counters: str | None, engines, where, fmt: str) -> None:
    """A sweep summary: one counter against one swept key, engines side by side."""
    from ..sweep_summary import parse_where, summarize, summary_rows
    from .output import emit_rows

    names = _split_list(counters) or []
    if len(inputs) != 1 or len(names) != 1:
        raise UserError("--by KEY takes one results directory and one counter (--counters NAME)")
    df = summarize(inputs[0], key, names[0], where=parse_where(where), engines=engines)
    emit_rows(summary_rows(df), fmt, title=f"{names[0]} against {key} ({inputs[0]})")


def emit_compare(columns: list[C.Column], rows: list[C.Row], notes: list[str], fmt: str,
                 quiet: bool = False) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(C.to_json(columns, rows, notes), indent=2, allow_nan=False) + "\n")
        return
    if fmt == "csv":
        flat = C.flat_rows(columns, rows)
        cols = ["group", "counter", "better"] + [c.id for c in columns] + \
            [f"{p}_{c.id}" for c in columns[1:] for p in ("delta", "delta_pct")]
        emit_rows(flat, "csv", columns=cols)
        return
    if fmt == "markdown":
        sys.stdout.write(markdown_table(_text_rows(columns, rows), _text_columns(columns)))
        for n in notes:
            sys.stdout.write(f"\n> note: {n}\n")
        return
    _rich_table(columns, rows)
    if not quiet:
        for n in notes:
            click.echo(f"migrc-bench: note: {n}", err=True)


def fmt_delta(d: Any) -> str:
    if d is None:
        return "-"
    if isinstance(d, int):
        return f"{d:+,}" if d else "0"
    if abs(d) >= 1e4:  # as fmt_value: a large figure with separators, not 1.208e+05
        return f"{d:+,.0f}"
    return f"{d:+.4g}" if d else "0"


def fmt_pct(p: float | None, d: Any) -> str:
    if p is None:
        return "-" if d is None else "new"
    return f"{p:+.1f}%" if abs(p) >= 0.05 or p == 0 else f"{p:+.2g}%"


def _text_columns(columns: list[C.Column]) -> list[str]:
    cols = ["group", "counter", "better"] + [c.id for c in columns]
    for c in columns[1:]:
        cols += [f"Δ {c.id}", f"Δ% {c.id}"]
    return cols


def _text_rows(columns: list[C.Column], rows: list[C.Row]) -> list[dict[str, str]]:
    out = []
    for r in rows:
        d = {"group": r.group, "counter": r.counter,
             "better": {"lower": "lower", "higher": "higher", "neutral": "-"}[r.better]}
        for c, v in zip(columns, r.values):
            d[c.id] = fmt_value(v)
        for c, dv, p in zip(columns[1:], r.deltas[1:], r.pcts[1:]):
            d[f"Δ {c.id}"] = fmt_delta(dv)
            d[f"Δ% {c.id}"] = fmt_pct(p, dv)
        out.append(d)
    return out


STYLE = {"better": "green", "worse": "bold red", "changed": "", "same": "dim", "n/a": "dim"}


def _rich_table(columns: list[C.Column], rows: list[C.Row]) -> None:
    # Piped output is not cut to a terminal: the table keeps its natural width.
    console = Console(file=sys.stdout, soft_wrap=False,
                      width=None if sys.stdout.isatty() else 400)
    for table in compare_tables(columns, rows, console.width):
        console.print(table)


def compare_tables(columns: list[C.Column], rows: list[C.Row], width: int) -> list[Table]:
    """The comparison as tables that fit ``width`` columns, every value whole.

    Tried in order: values, Δ and Δ% of every engine; values and Δ% only; then the engines
    split over as few tables as fit, each with the reference column first.
    """
    probe = Console(width=10_000, file=io.StringIO())

    def fitting(*tables: Table) -> list[Table] | None:
        """The tables as they are, else with padding collapsed, if that makes them fit."""
        for collapse in (False, True):
            for t in tables:
                t.collapse_padding = collapse
            if all(probe.measure(t).maximum <= width for t in tables):
                return list(tables)
        return None

    others = list(range(1, len(columns)))
    full = _table(columns, rows, [0, *others], with_delta=True)
    if not others or fitting(full):
        return [full]
    for values in (True, False):
        one = fitting(_table(columns, rows, [0, *others], with_delta=False, values=values))
        if one:
            return one
    for k in range(len(others) - 1, 0, -1):
        parts = [others[i:i + k] for i in range(0, len(others), k)]
        tables = fitting(*(_table(columns, rows, [0, *part], with_delta=False,
                                  part=(n + 1, len(parts))) for n, part in enumerate(parts)))
        if tables:
            return tables
    return [_table(columns, rows, [0, o], with_delta=False, part=(n + 1, len(others)))
            for n, o in enumerate(others)]


def _table(columns: list[C.Column], rows: list[C.Row], shown: list[int], with_delta: bool,
           part: tuple[int, int] | None = None, values: bool = True) -> Table:
    """One table of the columns at positions ``shown`` (the reference, 0, first); without
    ``values`` only the reference's values, and Δ% for the others."""
    cols = [columns[i] for i in shown]
    valued = cols if values else cols[:1]
    title = f"{' vs '.join(c.id for c in cols)}"
    traces = {Path(c.run.trace).name for c in cols if c.run.trace}
    if len(traces) == 1:
        title += f" on {traces.pop()}"
    if part is not None:
        title += f" ({part[0]}/{part[1]})"
    caption = f"Δ against {cols[0].id}: green better, red worse, plain neither"
    if not values:
        caption += (f"; values of {cols[0].id} only (every value: a wider terminal, or "
                    f"--format markdown)")
    table = Table(title=title, caption=caption, caption_justify="left")
    table.add_column("counter", no_wrap=True)
    for c in valued:
        table.add_column(c.id, justify="right", no_wrap=True)
    for c in cols[1:]:
        if with_delta:
            table.add_column(f"Δ {c.id}" if len(cols) > 2 else "Δ", justify="right", no_wrap=True)
        table.add_column(f"Δ% {c.id}" if len(cols) > 2 else "Δ%", justify="right", no_wrap=True)
    group = None
    for r in rows:
        if r.group != group:
            if group is not None:
                table.add_section()
            table.add_row(Text(r.group, style="bold cyan"))
            group = r.group
        cells: list[Any] = [f"  {r.counter}"] + [fmt_value(r.values[i])
                                                  for i in shown[:len(valued)]]
        for i in shown[1:]:
            style = STYLE.get(r.verdicts[i], "")
            if with_delta:
                cells.append(Text(fmt_delta(r.deltas[i]), style=style))
            cells.append(Text(fmt_pct(r.pcts[i], r.deltas[i]), style=style))
        table.add_row(*cells)
    return table
