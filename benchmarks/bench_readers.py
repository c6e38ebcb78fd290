"""Trace readers: parse-only and end-to-end conversion rates, with peak RSS.

Synthetic inputs are written once to a temp dir (removed afterwards): ~20 M lackey lines
(~290 MB), 10 M pinatrace lines and 4 M ChampSim records. Each case runs in a fresh
interpreter (benchmarks/measure.py) after a warm-up on a tiny file, so numba compilation and
earlier cases' memory are not counted. Sizes can be scaled down with MIGRC_BENCH_SCALE=0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import in_subprocess  # noqa: E402

SCALE = float(os.environ.get("MIGRC_BENCH_SCALE", "1"))
BLOCK_LINES = 1_000_000


def _addresses(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    code = 0x400000 + rng.integers(0, 1 << 16, n)
    heap = 0x4A00000 + rng.integers(0, 1 << 24, n)
    stack = 0x1FFEFFF000 + rng.integers(0, 1 << 12, n)
    data = np.where(rng.random(n) < 0.6, heap, stack)
    return code, data


def write_lackey(path: Path, lines: int) -> int:
    """A lackey-like log: 60% fetches, 25% loads, 12% stores, 3% modifies; one block repeated."""
    rng = np.random.default_rng(1)
    n = min(lines, BLOCK_LINES)
    kinds = rng.choice(4, n, p=[0.6, 0.25, 0.12, 0.03]).tolist()
    code, data = (a.tolist() for a in _addresses(rng, n))
    isz = rng.integers(1, 12, n).tolist()
    dsz = rng.choice([1, 2, 4, 8, 16], n).tolist()
    block = "".join(f"I  {c:08x},{i}\n" if k == 0 else f" {'LSM'[k - 1]} {a:08x},{s}\n"
                    for k, c, a, i, s in zip(kinds, code, data, isz, dsz)).encode()
    with open(path, "wb") as fh:
        fh.write(b"==4242== Lackey, an example Valgrind tool\n")
        for _ in range(lines // n):
            fh.write(block)
    return (lines // n) * n + 1


def write_pinatrace(path: Path, lines: int) -> int:
    rng = np.random.default_rng(2)
    n = min(lines, BLOCK_LINES)
    code, data = (a.tolist() for a in _addresses(rng, n))
    rw = rng.choice(["R", "W"], n, p=[0.7, 0.3]).tolist()
    block = "".join(f"{c:#x}: {k} {a:#x}\n" for c, k, a in zip(code, rw, data)).encode()
    with open(path, "wb") as fh:
        for _ in range(lines // n):
            fh.write(block)
        fh.write(b"#eof\n")
    return (lines // n) * n + 1


def write_champsim(path: Path, records: int) -> int:
    from migrc_bench.trace.readers.champsim import CHAMPSIM_DTYPE

    rng = np.random.default_rng(3)
    n = min(records, BLOCK_LINES)
    rec = np.zeros(n, CHAMPSIM_DTYPE)
    code, data = _addresses(rng, n)
    rec["ip"] = code
    has_load = rng.random(n) < 0.35
    has_store = rng.random(n) < 0.15
    rec["src_mem"][:, 0] = np.where(has_load, data, 0)
    rec["dst_mem"][:, 0] = np.where(has_store, data + 64, 0)
    block = rec.tobytes()
    with open(path, "wb") as fh:
        for _ in range(records // n):
            fh.write(block)
    return (records // n) * n


PARSE = """
import json, time
from migrc_bench.trace.readers import open_reader
for _ in open_reader({warm!r}, {fmt!r}).iter_batches():
    pass
r = open_reader({path!r}, {fmt!r})
t = time.perf_counter()
n = 0
for b in r.iter_batches():
    n += len(b)
dt = time.perf_counter() - t
print(json.dumps({{"items": r.stats.lines, "records": n, "seconds": dt}}))
"""

CONVERT = """
import json, time
from migrc_bench.trace.convert import convert
convert({warm!r}, {out!r}, {fmt!r})
t = time.perf_counter()
res = convert({path!r}, {out!r}, {fmt!r})
dt = time.perf_counter() - t
print(json.dumps({{"items": res.input_lines, "records": res.records, "seconds": dt}}))
"""


def _row(case: str, unit: str, result: dict) -> dict:
    return {"case": case, "items": result["items"], "unit": unit,
            "seconds": round(result["seconds"], 3),
            "rate_per_s": round(result["items"] / result["seconds"]),
            "peak_rss_mib": result["peak_rss_mib"]}


def run() -> list[dict]:
    import zstandard

    rows = []
    d = Path(tempfile.mkdtemp(prefix="bench-readers-"))
    try:
        warm = {"lackey": d / "w.log", "pinatrace": d / "w.out", "champsim": d / "w.champsim"}
        write_lackey(warm["lackey"], 1000)
        write_pinatrace(warm["pinatrace"], 1000)
        write_champsim(warm["champsim"], 1000)

        lk = d / "bench.log"
        write_lackey(lk, int(20_000_000 * SCALE))
        run_ = lambda code, path, fmt: in_subprocess(code.format(  # noqa: E731
            warm=str(warm[fmt]), path=str(path), fmt=fmt, out=str(d / "out.parquet")))
        rows.append(_row("lackey parse", "lines", run_(PARSE, lk, "lackey")))
        rows.append(_row("lackey -> parquet", "lines", run_(CONVERT, lk, "lackey")))
        zst = d / "bench.log.zst"
        with open(lk, "rb") as src, open(zst, "wb") as dst:
            zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
        lk.unlink()
        rows.append(_row("lackey.zst parse", "lines", run_(PARSE, zst, "lackey")))
        zst.unlink()

        pin = d / "bench.pinatrace"
        write_pinatrace(pin, int(10_000_000 * SCALE))
        rows.append(_row("pinatrace parse", "lines", run_(PARSE, pin, "pinatrace")))
        pin.unlink()

        cs = d / "bench.champsim"
        write_champsim(cs, int(4_000_000 * SCALE))
        rows.append(_row("champsim parse", "instructions", run_(PARSE, cs, "champsim")))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
