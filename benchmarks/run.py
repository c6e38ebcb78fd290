"""``make bench``: run every benchmarks/bench_*.py module and print one table.

Each module exposes ``run() -> list[dict]``; a row has at least ``case``, and usually
``items``, ``unit``, ``seconds``, ``rate_per_s`` and ``peak_rss_mib``.
Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    only = set(argv)
    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem[len("bench_"):]
        if only and name not in only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(mod)
        for row in mod.run():
            rows.append({"bench": name, **row})
            print(row, file=sys.stderr, flush=True)
    table = Table(title="migrc-bench benchmarks")
    cols = ["bench", "case", "items", "unit", "seconds", "rate_per_s", "peak_rss_mib"]
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*(f"{r[c]:,.3g}" if isinstance(r.get(c), float) else f"{r.get(c, ''):,}"
                        if isinstance(r.get(c), int) else str(r.get(c, "")) for c in cols))
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
