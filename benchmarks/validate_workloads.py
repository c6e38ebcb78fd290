"""Print the validation tables of docs/workloads.md: each generator against its real program.

    .venv/bin/python benchmarks/validate_workloads.py [NAME ...]   # gups kv gapbs-bfs gapbs-pr

Builds the real programs, traces them under valgrind lackey at the checks' small scale and
compares them with the generators (migrc_bench/validation.py; the same run as
``make test-slow``'s tests/test_workloads_real.py), then prints one markdown table per
workload. A few minutes in all; the lackey logs (up to ~1 GB) go to a temporary directory.
"""

from __future__ import annotations

import sys
import tempfile
import time

from migrc_bench import validation as V


def table(name: str, figures: list[V.Figure]) -> str:
    check = V.CHECKS[name]
    lines = [f"#### {name}: `trace gen {name} {check.gen_args} -t 1`", "",
             "| figure | real | generated | deviation | checked |", "|---|---:|---:|---:|---|"]
    for f in figures:
        dev = "" if f.deviation_pct is None else f"{f.deviation_pct:+.1f} %"
        mark = ("ok" if f.ok else "**FAIL**") if f.checked else ""
        lines.append(f"| {f.figure} | {f.real:.4g} | {f.generated:.4g} | {dev} | {mark} |")
    return "\n".join(lines) + "\n"


def main(names: list[str]) -> int:
    missing = V.missing_tools()
    if missing:
        print(f"needs {', '.join(missing)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names or list(V.CHECKS):
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"validate-{name}-") as work:
            _, _, figures = V.CHECKS[name].run(work)
        print(table(name, figures))
        print(f"({time.perf_counter() - t0:.0f} s)\n", file=sys.stderr)
        failed += any(not f.ok for f in figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
