"""Replay speed: accesses per second end to end (trace file to results directory), peak memory,
and a C yardstick on the same records in the same run.

1. Headline: XSBench large in event mode (16 threads, 54,400 lookups: 51.3 M records) on an
   unscaled skylake-sp machine (128-entry 8-way iTLB, 64-entry 4-way dTLB, 1536-entry 12-way
   STLB), 16 CPUs, tiering off. Beside it the C loop of tlb_loop.c, built here with
   ``cc -O2``, over the same records held in memory; its miss counts must equal ours (checked).
2. Tiering on: configs/xsbench-cxl16.toml (its own trace, 911 M records since issue 13) with baseline, migrc
   and LUF.
3. Further rows: the bundled default trace and config (TLBs scaled by 1/100), tiering off and
   on per engine, with --check-invariants; XSBench large history mode at full size; 10 M vs
   100 M accesses of it.
4. Streamed: the default config's trace file against its generator feeding the replay
   directly (trace.keep = false), tiering on.

Each case runs three times, each in a fresh interpreter (measure.in_subprocess) after a
warm-up that fills the numba cache: the figure is the fastest run (the least disturbed by
other load on a shared machine), the peak RSS the largest. The load average (os.getloadavg)
is recorded at the start of each case. The traces live in benchmarks/.cache and are read once
before timing (in the page cache: this VM's disk reads ~20 MB/s cold).

    .venv/bin/python benchmarks/run.py replay          # this group (make bench: every group)
    .venv/bin/python benchmarks/bench_replay.py headline cxl16   # some cases
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import in_subprocess  # noqa: E402

CACHE = HERE / ".cache"
REPO = HERE.parent
TRACES = {
    "event": "xsbench -s large -m event -l 54400 -t 16 --seed 1",
    "51M": "xsbench -s large -G unionized -m history -t 16 -p 1600 --seed 1",
    "default": "xsbench -s large -G unionized -m history -t 16 -p 1600 -g 113 --seed 1",
    "10M": "xsbench -s large -G unionized -m history -t 16 -p 1600 -l 7 --seed 1",
    "100M": "xsbench -s large -G unionized -m history -t 16 -p 1600 -l 68 --seed 1",
}
# the skylake-sp preset's own geometry, written out (configs/default.toml scales the data TLBs)
REAL_TLB = ["tlb.itlb_entries=128", "tlb.itlb_ways=8", "tlb.dtlb_entries=64", "tlb.dtlb_ways=4",
            "tlb.stlb_entries=1536", "tlb.stlb_ways=12"]
MISSES = ("itlb_hits", "itlb_l1_misses", "dtlb_hits", "dtlb_l1_misses", "stlb_hits", "stlb_misses",
          "itlb_misses", "dtlb_load_misses", "dtlb_store_misses", "accesses")
REPEAT = 3  # best of three fresh processes: the figure least disturbed by other load

_RUN = """
import json, tempfile, time
from migrc_bench.config import load_config
from migrc_bench.runner import run_trace, stream_spec
cfg = load_config({config!r}, {sets!r})
with tempfile.TemporaryDirectory() as out:
    t, c = time.perf_counter(), time.process_time()
    res, _ = run_trace(cfg, {trace}, out_dir=out, check_invariants={check!r})
    dt, dc = time.perf_counter() - t, time.process_time() - c
tot = res.totals
print(json.dumps({{"items": tot["accesses"], "seconds": dt, "cpu_seconds": dc,
                  "violations": tot["invariant_violations"], "remote": tot["nr_tlb_remote_flush"],
                  "counts": {{k: tot[k] for k in {misses!r}}}}}))
"""


def trace(name: str) -> str:
    """The cached trace (generated on first use), read once so that it is in the page cache."""
    from migrc_bench.trace.xsbench import generate_from_args

    path = CACHE / f"xsbench-{name}.parquet"
    if not path.exists():
        print(f"generating {path} ({TRACES[name]}) ...", file=sys.stderr, flush=True)
        generate_from_args(shlex.split(TRACES[name])[1:], path)
    _warm_file(path)
    return str(path)


def config_trace(config: Path) -> str:
    from migrc_bench.config import load_config
    from migrc_bench.runner import default_trace

    path = default_trace(load_config(config), quiet=True)
    _warm_file(path)
    return str(path)


def _warm_file(path: str | Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def case(label: str, trace_path: str | None, sets: list[str], config: str | None = None,
         check: bool = False) -> dict:
    """``trace_path`` None: the config's trace.generate streamed (trace.keep = false)."""
    load = _load()
    expr = "stream_spec(cfg)" if trace_path is None else repr(trace_path)
    runs = [in_subprocess(_RUN.format(config=config, sets=sets, trace=expr, check=check,
                                      misses=MISSES)) for _ in range(REPEAT)]
    r = min(runs, key=lambda x: x["seconds"])
    return {"case": label, "items": r["items"], "unit": "accesses", "seconds": round(r["seconds"], 2),
            "rate_per_s": round(r["items"] / r["seconds"]),
            "peak_rss_mib": max(x["peak_rss_mib"] for x in runs),
            "cpu_seconds": round(r["cpu_seconds"], 2), "load": load,
            "remote_flushes": r["remote"], "violations": r["violations"], "counts": r["counts"]}


# ---- the C yardstick ---------------------------------------------------------------------

def build_c() -> Path:
    """Compile tlb_loop.c with the system's C compiler (cc -O2), every benchmark run."""
    exe = CACHE / "tlb_loop"
    CACHE.mkdir(exist_ok=True)
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", str(exe), str(HERE / "tlb_loop.c")],
                   check=True)
    return exe


RECORD = np.dtype([("addr", "<u8"), ("tid", "<u2"), ("op", "u1"), ("size", "u1")])


def records_file(trace_path: str) -> Path:
    """The trace's records as the raw array tlb_loop reads (12 bytes each), made once."""
    from migrc_bench.trace.native import TraceReader

    out = Path(trace_path).with_suffix(".records")
    if out.exists() and out.stat().st_mtime >= Path(trace_path).stat().st_mtime:
        return out
    tmp = out.with_suffix(".records.tmp")
    with open(tmp, "wb") as fh:
        for b in TraceReader(trace_path).iter_batches():
            rec = np.empty(len(b), RECORD)
            rec["addr"], rec["tid"], rec["op"], rec["size"] = b.addr, b.tid, b.op, b.size
            rec.tofile(fh)
    tmp.replace(out)
    return out


def c_case(exe: Path, trace_path: str, ncpu: int, geometry: list[str]) -> dict:
    """Best of three runs of the C loop (its loop's own clock: the records are in memory)."""
    rec = records_file(trace_path)
    _warm_file(rec)
    g = dict(s.split("=") for s in geometry)
    args = [str(exe), str(rec), str(ncpu)] + [g[f"tlb.{k}"] for k in
                                               ("itlb_entries", "itlb_ways", "dtlb_entries",
                                                "dtlb_ways", "stlb_entries", "stlb_ways")]
    runs = [json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
            for _ in range(REPEAT)]
    return min(runs, key=lambda x: x["seconds"])


def headline(exe: Path) -> list[dict]:
    path = trace("event")
    sets = ["tiering.enabled=false", "machine.ncpu=16"] + REAL_TLB
    ours = case("headline: XSBench large event (51 M), real TLBs, tiering off", path, sets)
    c = c_case(exe, path, 16, REAL_TLB)
    differ = {k: (ours["counts"][k], c[k]) for k in MISSES if ours["counts"][k] != c[k]}
    if differ:  # an independent check of the model, not only a yardstick: stop the bench
        raise RuntimeError(f"the C loop's counts differ from ours (ours, C): {differ}")
    c_rate = ours["items"] / c["seconds"]
    ours.update({"c_rate_per_s": round(c_rate), "ratio_to_c": round(ours["rate_per_s"] / c_rate, 3)})
    return [ours, {"case": "  C loop (tlb_loop.c, cc -O2), same records in memory",
                   "items": c["accesses"], "unit": "accesses", "seconds": round(c["seconds"], 2),
                   "rate_per_s": round(c_rate), "counts_equal": True}]


def cxl16() -> list[dict]:
    config = REPO / "configs" / "xsbench-cxl16.toml"
    path = config_trace(config)
    return [case(f"cxl16 config (911 M), tiering on, {e}", path, [f'engine="{e}"'], str(config))
            for e in ("baseline", "migrc", "luf")]


def scaled() -> list[dict]:
    off = ["tiering.enabled=false"]
    d = trace("default")
    return [
        case("default trace and config (scaled TLBs), tiering off", d, off),
        case("default, tiering on, baseline", d, ['engine="baseline"']),
        case("default, tiering on, nobatch", d, ['engine="nobatch"']),
        case("default, tiering on, migrc", d, ['engine="migrc"']),
        case("default, tiering on, luf", d, ['engine="luf"']),
        case("default, migrc, --check-invariants", d, ['engine="migrc"'], check=True),
        case("XSBench large history full size (51 M), scaled TLBs, tiering off", trace("51M"), off),
        case("memory: 10 M accesses, tiering off", trace("10M"), off),
        case("memory: 100 M accesses, tiering off", trace("100M"), off),
    ]


def stream() -> list[dict]:
    """The default config, tiering on: its trace file against its generator streamed into the
    replay (trace.keep = false: the generator on a thread of its own, the second core)."""
    on = ['engine="baseline"']
    return [case("default, tiering on, baseline, trace file", trace("default"), on),
            case("default, tiering on, baseline, streamed (trace.keep = false)", None,
                 on + ["trace.keep=false"])]


GROUPS = {"headline": headline, "cxl16": cxl16, "scaled": scaled, "stream": stream}


def run(groups: tuple[str, ...] = tuple(GROUPS)) -> list[dict]:
    exe = build_c()
    in_subprocess(_RUN.format(config=None, sets=["tiering.enabled=false"], trace=repr(trace("10M")),
                              check=False, misses=MISSES))  # warm-up: fills the numba cache
    rows = []
    for g in groups:
        rows += GROUPS[g](exe) if g == "headline" else GROUPS[g]()
    for r in rows:
        r.pop("counts", None)
    return rows


if __name__ == "__main__":
    for row in run(tuple(sys.argv[1:]) or tuple(GROUPS)):
        print(row, flush=True)
