"""Replay speed: accesses per second end to end (trace reading included) and peak memory.

The standard cases of the replay-core and tiering issues: the bundled default trace and
config (16 CPUs; XSBench large scaled to 1/100 of the grid, ~50 M records) with the tiering
policy off and on, per engine, with --check-invariants; the full-size XSBench large (51 M
records, 5.5 GiB footprint) with tiering off; and 10 M vs 100 M accesses of it to show memory
does not grow with length.
Each case runs three times, each in a fresh interpreter (measure.in_subprocess) after a
warm-up that fills the numba cache: the figure is the fastest run (the least disturbed by
other load on a shared machine) and the peak RSS the largest.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import in_subprocess  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
TRACES = {
    "51M": "xsbench -s large -G unionized -m history -t 16 -p 1600 --seed 1",
    "default": "xsbench -s large -G unionized -m history -t 16 -p 1600 -g 113 --seed 1",
    "10M": "xsbench -s large -G unionized -m history -t 16 -p 1600 -l 7 --seed 1",
    "100M": "xsbench -s large -G unionized -m history -t 16 -p 1600 -l 68 --seed 1",
}

_RUN = """
import json, time
from migrc_bench.config import load_config
from migrc_bench.runner import run_trace
cfg = load_config(None, {sets!r})
t = time.perf_counter()
res, _ = run_trace(cfg, {trace!r}, check_invariants={check!r})
dt = time.perf_counter() - t
print(json.dumps({{"items": res.totals["accesses"], "seconds": dt,
                  "violations": res.totals["invariant_violations"],
                  "remote": res.totals["nr_tlb_remote_flush"]}}))
"""


def trace(name: str) -> str:
    import shlex

    from migrc_bench.trace.xsbench import generate_from_args

    path = CACHE / f"xsbench-{name}.parquet"
    if not path.exists():
        generate_from_args(shlex.split(TRACES[name])[1:], path)
    return str(path)


REPEAT = 3  # best of three fresh processes: the figure least disturbed by other load


def case(label: str, name: str, sets: list[str], check: bool = False) -> dict:
    runs = [in_subprocess(_RUN.format(sets=sets, trace=trace(name), check=check))
            for _ in range(REPEAT)]
    r = min(runs, key=lambda x: x["seconds"])
    r["peak_rss_mib"] = max(x["peak_rss_mib"] for x in runs)
    return {"case": label, "items": r["items"], "unit": "accesses", "seconds": round(r["seconds"], 2),
            "rate_per_s": round(r["items"] / r["seconds"]), "peak_rss_mib": r["peak_rss_mib"],
            "remote_flushes": r["remote"], "violations": r["violations"]}


def run() -> list[dict]:
    off = ["tiering.enabled=false"]
    case("warm-up (numba cache)", "10M", off)
    rows = [
        case("default trace, tiering off", "default", off),
        case("default trace, tiering on, baseline", "default", ['engine="baseline"']),
        case("default trace, tiering on, nobatch", "default", ['engine="nobatch"']),
        case("default trace, tiering on, migrc", "default", ['engine="migrc"']),
        case("default trace, tiering on, luf", "default", ['engine="luf"']),
        case("default trace, migrc, --check-invariants", "default", ['engine="migrc"'], check=True),
        case("XSBench large full size (5.5 GiB), tiering off", "51M", off),
        case("memory: 10 M accesses, tiering off", "10M", off),
        case("memory: 100 M accesses, tiering off", "100M", off),
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
