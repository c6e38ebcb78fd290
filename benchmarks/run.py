"""``make bench``: run every benchmarks/bench_*.py module and print one table.

Each module exposes ``run() -> list[dict]``; a row has at least ``case``, and usually
``items``, ``unit``, ``seconds``, ``rate_per_s`` and ``peak_rss_mib``; optional columns
(the C yardstick, the load average at the start of a case) are shown when some row has them.
Speed is measured here, never asserted in tests. The machine's load (uptime) is printed before
and after: other users' load makes every figure slower.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
FIRST = ("replay", "startup", "scale")  # the headline (replay's first row) leads the table


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv: list[str]) -> int:
    only = set(argv)
    rows = []
    before = _uptime()
    print(f"uptime before: {before}", file=sys.stderr, flush=True)
    paths = sorted(HERE.glob("bench_*.py"), key=lambda p: (
        FIRST.index(p.stem[6:]) if p.stem[6:] in FIRST else len(FIRST), p.stem))
    for path in paths:
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
    cols += [c for c in ("c_rate_per_s", "ratio_to_c", "rss_vs_1e8", "says_compiling", "cpu_seconds",
                        "load")
             if any(c in r for r in rows)]
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*(f"{r[c]:,.3g}" if isinstance(r.get(c), float) else f"{r.get(c, ''):,}"
                        if isinstance(r.get(c), int) else str(r.get(c, "")) for c in cols))
    # not a terminal (make bench > file): wide enough that no column is cut
    Console(width=None if sys.stdout.isatty() else 240).print(table)
    print(f"uptime before: {before}\nuptime after:  {_uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
