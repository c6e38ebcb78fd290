"""Render a list of row dicts as a rich table, JSON, CSV or markdown on stdout."""

from __future__ import annotations

import csv
import io
import json
import sys
from numbers import Real
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from ..catalogue import fmt_value


def _cell(value: Any) -> str:
    if isinstance(value, Real) and not isinstance(value, bool):
        return fmt_value(value)  # one number format in every table (numpy types too)
    return str(value)


def emit_rows(rows: Sequence[dict[str, Any]], fmt: str, title: str | None = None,
              columns: Sequence[str] | None = None) -> None:
    cols = list(columns or (rows[0].keys() if rows else []))
    out = sys.stdout
    if fmt == "json":
        out.write(json.dumps(list(rows), indent=2, default=str) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        out.write(buf.getvalue())
    elif fmt == "markdown":
        out.write(markdown_table(rows, cols))
    else:
        table = Table(title=title)
        for c in cols:
            table.add_column(c, justify="right" if rows and isinstance(rows[0].get(c), Real)
                             and not isinstance(rows[0].get(c), bool) else "left")
        for r in rows:
            table.add_row(*(_cell(r.get(c, "")) for c in cols))
        # a pipe or a file gets the whole table (rich would cut it to 80 columns)
        Console(file=out, soft_wrap=False, width=None if out.isatty() else 200).print(table)


def markdown_table(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c, "")).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"
