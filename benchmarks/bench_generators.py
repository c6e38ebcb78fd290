"""Generator speed for gups, kv, gapbs-bfs and gapbs-pr: records per second at the suite's
sizes (configs/*-cxl16.toml), and llama at configs/luf-llama.toml's shape (2 of its 24 token
steps), end to end (data or graph build, kernel, Parquet writing) and
without writing (the blocks are counted and dropped: the kernels' own speed).

Each case runs in a fresh interpreter (benchmarks/measure.py), so peak RSS is its own; the
numba kernels come from their on-disk cache (a warm-up run compiles them first).
``cpu_seconds`` (all threads) is reported too: on a shared machine it moves less than wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import in_subprocess  # noqa: E402

CASES = {
    "gups": "gups -n 23 -t 16",
    "kv": "kv -k 52000 -v 1000 -z 0.99 -w 0.05 -n 400000 -t 16",
    "gapbs-bfs": "gapbs-bfs -g 19 -k 16 -n 3 -t 16",
    "gapbs-pr": "gapbs-pr -g 19 -k 16 -n 1 -i 1 -t 16",
    "llama": "llama --dim 128 --hidden-dim 448 --layers 80 --heads 8 --kv-heads 1 --vocab 2048 "
             "--seq-len 32 --separate-classifier -n 2 -P 3 -t 15 --weights per-process",
}
WARM = {"gups": "gups -n 10 -u 1000", "kv": "kv -k 1000 -n 1000",
        "gapbs-bfs": "gapbs-bfs -g 10 -n 1", "gapbs-pr": "gapbs-pr -g 10 -n 1 -i 1",
        "llama": "llama --dim 16 --hidden-dim 24 --layers 1 --heads 2 --kv-heads 1 --vocab 8 -n 1"}

_CODE = """
import json, os, tempfile, time
import migrc_bench.trace.gencore as G
from migrc_bench.trace.generators import from_args
if {no_write!r}:
    G.write_trace = lambda out, meta, blocks, progress=None: sum(len(b[0]) for b in blocks)
spec, p = from_args({args!r})
with tempfile.TemporaryDirectory() as d:
    t, c = time.perf_counter(), time.process_time()
    r = spec.generate(os.path.join(d, "t.parquet"), p)
    dt, dc = time.perf_counter() - t, time.process_time() - c
print(json.dumps({{"items": r.records, "seconds": dt, "cpu_seconds": dc}}))
"""


def _row(case: str, args: str, no_write: bool) -> dict:
    r = in_subprocess(_CODE.format(args=args, no_write=no_write))
    return {"case": case, "items": r["items"], "unit": "records", "seconds": round(r["seconds"], 3),
            "rate_per_s": round(r["items"] / r["seconds"]), "peak_rss_mib": r["peak_rss_mib"],
            "cpu_seconds": round(r["cpu_seconds"], 3),
            "records_per_cpu_s": round(r["items"] / max(r["cpu_seconds"], 1e-9))}


_GRAPH = """
import json, time
from migrc_bench.trace.gapbs_graph import kronecker
t, c = time.perf_counter(), time.process_time()
g = kronecker({scale})
print(json.dumps({{"items": g.num_edges_directed, "seconds": time.perf_counter() - t,
                  "cpu_seconds": time.process_time() - c}}))
"""


def run() -> list[dict]:
    rows = []
    for name, args in CASES.items():
        in_subprocess(_CODE.format(args=WARM[name], no_write=True))     # compile/warm the cache
        rows.append(_row(f"{args}, end to end", args, False))
        rows.append(_row(f"{args}, no writing", args, True))
    r = in_subprocess(_GRAPH.format(scale=19))      # what the GAP cases spend before the kernel
    rows.append({"case": "gapbs graph -g 19 (Kronecker + CSR build)", "items": r["items"],
                 "unit": "edges", "seconds": round(r["seconds"], 3),
                 "rate_per_s": round(r["items"] / r["seconds"]), "peak_rss_mib": r["peak_rss_mib"],
                 "cpu_seconds": round(r["cpu_seconds"], 3)})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
