"""Scale: 10^8 vs 10^9 accesses through ``run``, streamed from disk in bounded memory.

The traces are XSBench large (unionized grid, history mode, 16 threads, 1600 particles, seed 1)
made longer with -l (lookups per particle), in two sizes of data:

* ``g113``: the bundled default trace's arguments (``-g 113``: the nuclide grid scaled by
  1/100, as configs/default.toml's TLBs, capacities and periods are), ~927 records per lookup:
  -l 67 ≈ 1.0·10^8 and -l 674 ≈ 1.0·10^9 records. The default config's tiering is active here.
* ``full``: XSBench's own grid (5.5 GiB footprint, ~1.4 M pages in the model), ~946 records
  per lookup: -l 66 and -l 661. The largest machine model, so the memory worst case (under
  the default config, scaled for the small grid, few pages migrate).

They are generated once into benchmarks/.cache (gitignored; ~0.16 GB and ~1.6 GB each) and
then streamed by the replay one row group at a time, never held whole.

Each case runs three times, each in a fresh interpreter (measure.in_subprocess) after a
warm-up that fills the numba cache, with the bundled default config (16 CPUs, tiering on,
engine baseline) and the results appended to a temporary results directory, i.e. what
``migrc-bench run TRACE`` does: the fastest run's time, the largest peak RSS (VmHWM, the
process's own). The point is that memory does not grow with trace length: each 10^9 row also
gives its peak RSS over the 10^8 one of the same grid (``rss_vs_1e8``).

    .venv/bin/python benchmarks/run.py scale                    # the four cases
    .venv/bin/python benchmarks/bench_scale.py g113-1e9 full-1e9  # some of them
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import in_subprocess  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
XSBENCH = "xsbench -s large -G unionized -m history -t 16 -p 1600 -l {lookups}{grid} --seed 1"
# name -> (lookups per particle, extra generator flags, cache file)
TRACES = {
    "g113-1e8": (67, " -g 113", "xsbench-g113-l67.parquet"),
    "g113-1e9": (674, " -g 113", "xsbench-g113-l674.parquet"),
    "full-1e8": (66, "", "xsbench-l66.parquet"),
    "full-1e9": (661, "", "xsbench-l661.parquet"),
}
WARM = "xsbench -s small -G unionized -m event -t 4 -l 2000 --seed 1"
LABELS = {"g113": "default grid (-g 113)", "full": "full grid (5.5 GiB)"}

_RUN = """
import json, tempfile, time
from migrc_bench.config import load_config
from migrc_bench.runner import run_trace
cfg = load_config(None, {sets!r})
with tempfile.TemporaryDirectory() as out:
    t = time.perf_counter()
    res, _ = run_trace(cfg, {trace!r}, out_dir=out)
    dt = time.perf_counter() - t
tot = res.totals
print(json.dumps({{"items": tot["accesses"], "seconds": dt, "runtime_s": tot["runtime_s"],
                  "remote": tot["nr_tlb_remote_flush"], "migrated": tot["pgmigrate_success"],
                  "trace_rows": res.extra.get("trace_rows", 0)}}))
"""


def trace(name: str) -> Path:
    """The cached trace for ``name`` (1e8, 1e9, warm), generated when missing."""
    from migrc_bench.trace.xsbench import generate_from_args

    if name == "warm":
        args, path = WARM, CACHE / "xsbench-warm.parquet"
    else:
        lookups, grid, file = TRACES[name]
        args, path = XSBENCH.format(lookups=lookups, grid=grid), CACHE / file
    if not path.exists():
        print(f"generating {path} ({args}) ...", file=sys.stderr, flush=True)
        generate_from_args(args, path)
    return path


REPEAT = 3


def case(label: str, name: str, sets: list[str], timeout: float = 6 * 3600,
         repeat: int = REPEAT) -> dict:
    path = trace(name)
    load = round(os.getloadavg()[0], 2)
    runs = [in_subprocess(_RUN.format(sets=sets, trace=str(path)), timeout=timeout)
            for _ in range(repeat)]
    r = min(runs, key=lambda x: x["seconds"])
    return {"case": label, "items": r["items"], "unit": "accesses",
            "seconds": round(r["seconds"], 1), "rate_per_s": round(r["items"] / r["seconds"]),
            "peak_rss_mib": max(x["peak_rss_mib"] for x in runs), "load": load,
            "trace_rows": r["trace_rows"],
            "trace_mib": round(os.path.getsize(path) / 2**20, 1),
            "runtime_s": round(r["runtime_s"], 4), "remote_flushes": r["remote"],
            "pgmigrate_success": r["migrated"]}


def run(names: tuple[str, ...] = tuple(TRACES)) -> list[dict]:
    case("warm-up (numba cache)", "warm", ["machine.ncpu=4", "replay.time_scale=2e-5"], repeat=1)
    rows, peak = [], {}
    for name in names:
        grid, size = name.split("-")
        row = case(f"{size} accesses, {LABELS[grid]}, default config", name, [])
        peak[name] = row["peak_rss_mib"]
        if size == "1e9" and f"{grid}-1e8" in peak:
            row["rss_vs_1e8"] = round(row["peak_rss_mib"] / peak[f"{grid}-1e8"], 3)
        rows.append(row)
    return rows


if __name__ == "__main__":
    for row in run(tuple(sys.argv[1:]) or tuple(TRACES)):
        print(row, flush=True)
