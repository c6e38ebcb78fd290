"""XSBench trace generator speed: records per second, end to end (data build + Parquet writing).

Each case runs in a fresh interpreter (benchmarks/measure.py) so peak RSS is its own; the numba
kernel comes from its on-disk cache (a warm-up run compiles it first). The "no writing" case
runs the same lookups without TraceWriter, to show how much of the time is the writer's.
``cpu_seconds`` (all threads) is reported too: on a shared machine it moves less than wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import in_subprocess  # noqa: E402

LARGE = dict(size="large", grid="unionized", mode="history", particles=1600, threads=16)
SMALL = dict(size="small", grid="unionized", mode="history", particles=4800, threads=16)

_END_TO_END = """
import json, os, tempfile, time
from migrc_bench.trace.xsbench import generate_xsbench
kw = {kw!r}
with tempfile.TemporaryDirectory() as d:
    t, c = time.perf_counter(), time.process_time()
    r = generate_xsbench(os.path.join(d, "t.parquet"), **kw)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    size = os.path.getsize(os.path.join(d, "t.parquet"))
print(json.dumps({{"items": r.records, "seconds": dt, "cpu_seconds": dc, "lookups": r.lookups,
                  "bytes_per_record": size / r.records}}))
"""

_NO_WRITE = """
import json, time
from migrc_bench.trace.xsbench import iter_blocks, resolve_params
p = resolve_params(**{kw!r})
t, c = time.perf_counter(), time.process_time()
n = sum(len(b[0]) for b in iter_blocks(p))
print(json.dumps({{"items": n, "seconds": time.perf_counter() - t,
                  "cpu_seconds": time.process_time() - c, "lookups": p.total_lookups}}))
"""


def _row(case: str, code: str, kw: dict) -> dict:
    r = in_subprocess(code.format(kw=kw))
    row = {"case": case, "items": r["items"], "unit": "records", "seconds": round(r["seconds"], 3),
           "rate_per_s": round(r["items"] / r["seconds"]), "peak_rss_mib": r["peak_rss_mib"],
           "cpu_seconds": round(r["cpu_seconds"], 3),
           "records_per_lookup": round(r["items"] / r["lookups"], 1)}
    if "bytes_per_record" in r:
        row["bytes_per_record"] = round(r["bytes_per_record"], 2)
    return row


def run() -> list[dict]:
    in_subprocess(_NO_WRITE.format(kw=dict(SMALL, particles=1)))      # compile/warm the cache
    return [
        _row("large/unionized/history t16, end to end", _END_TO_END, LARGE),
        _row("large/unionized/history t16, no writing", _NO_WRITE, LARGE),
        _row("small/unionized/history t16, end to end", _END_TO_END, SMALL),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
