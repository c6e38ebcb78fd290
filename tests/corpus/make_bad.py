"""Write the bad-input corpus (tests/corpus/bad/) deterministically.

Run from anywhere: ``python tests/corpus/make_bad.py``. The files are committed; this script
is how they were made, and how to remake them after a format change. Each file is small
(a few KB at most). tests/test_bad_inputs.py says what error each one must produce.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import struct
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

HERE = Path(__file__).resolve().parent
OUT = HERE / "bad"

VALGRIND_HEADER = """\
==4242== Lackey, an example Valgrind tool
==4242== Copyright (C) 2002-2017, and GNU GPL'd, by Nicholas Nethercote.
==4242== Using Valgrind-3.19.0 and LibVEX; rerun with -h for copyright info
==4242== Command: ./app
==4242== Parent PID: 4241
==4242== 
"""
GOOD_LACKEY = [
    "I  04016a0,3", " S 1ffefffa98,8", "I  04016a3,5", " L 04a2c010,8", "I  04016a8,4",
    " M 04a2c018,4", "I  04016ac,2", " L 1ffefffa90,8", "I  04016ae,7", " S 04a2c020,16",
]


def lackey(bad_line: int, bad: str) -> bytes:
    """A lackey log whose line ``bad_line`` (1-based, after the 6 header lines) is ``bad``."""
    lines = VALGRIND_HEADER.splitlines()
    i = 0
    while len(lines) < bad_line - 1:
        lines.append(GOOD_LACKEY[i % len(GOOD_LACKEY)])
        i += 1
    lines.append(bad)
    lines += GOOD_LACKEY[:4]
    return ("\n".join(lines) + "\n").encode()


def champsim_records(n: int) -> bytes:
    out = b""
    for i in range(n):
        ip = 0x401000 + 4 * i
        out += struct.pack("<QBB2B4B2Q4Q", ip, 0, 0, 0, 0, 0, 0, 0, 0,
                           0x7ffd0000 + 8 * i, 0, 0x601000 + 8 * i, 0, 0, 0)
    return out


def table(n: int = 256, **overrides) -> pa.Table:
    rng = np.random.default_rng(7)
    cols = {
        "tid": pa.array(np.zeros(n, np.uint16)),
        "op": pa.array(rng.integers(0, 4, n).astype(np.uint8)),
        "addr": pa.array((0x400000 + rng.integers(0, 1 << 20, n)).astype(np.uint64)),
        "size": pa.array(np.full(n, 8, np.uint8)),
    }
    cols.update(overrides)
    return pa.table(cols)


def meta(version: str = "1", **extra: str) -> dict[bytes, bytes]:
    kv = {"migrc_bench.trace_version": version, "migrc_bench.source": "corpus",
          "migrc_bench.threads": "1", **extra}
    return {k.encode(): v.encode() for k, v in kv.items()}


def parquet_bytes(t: pa.Table, kv: dict[bytes, bytes] | None) -> bytes:
    if kv is not None:
        t = t.replace_schema_metadata(kv)
    buf = io.BytesIO()
    pq.write_table(t, buf, compression="zstd")
    return buf.getvalue()


def good_trace(n: int = 2048) -> bytes:
    return parquet_bytes(table(n), meta())


def build() -> dict[str, bytes]:
    rng = np.random.default_rng(1234)
    gz = lambda b: gzip.compress(b, mtime=0)  # noqa: E731
    files: dict[str, bytes] = {}

    # lackey text
    files["lackey_unknown_kind.log"] = lackey(17, " X 0400,8")
    files["lackey_bad_hex.log"] = lackey(9, " L 04zz00,8")
    files["lackey_missing_size.log"] = lackey(8, " S 0ffe0010")
    files["lackey_size_zero.log"] = lackey(12, "I  00400000,0")
    files["lackey_addr_too_long.log"] = lackey(10, " L 00000000000000001,8")
    files["lackey_trailing_text.log"] = lackey(11, " L 04a2c010,8 extra")
    files["lackey_bad_line.log.gz"] = gz(lackey(1234, " L 04a2c010;8"))
    files["lackey_no_records.log"] = VALGRIND_HEADER.encode()
    files["blank_lines.txt"] = b"\n\n   \n\n"
    files["empty.log"] = b""

    # pinatrace text
    pin = ["0x4005d0: W 0x7ffd8a3c1e48", "0x4005d4: R 0x601040", "0x4005d8: R 0x601048"]
    files["pinatrace_bad_kind.out"] = ("\n".join(pin + ["0x4005dc: X 0x601050"] + pin) + "\n#eof\n").encode()
    files["pinatrace_missing_addr.out"] = ("\n".join(pin * 2 + ["0x4005dc: R"]) + "\n#eof\n").encode()
    files["pinatrace_no_records.out"] = b"#eof\n"

    # ChampSim binary
    files["truncated.champsim"] = champsim_records(3) + b"\x01" * 10
    files["truncated.champsimtrace.xz"] = lzma.compress(champsim_records(2) + b"\x02" * 5)

    # compressed containers
    text = lackey(200, GOOD_LACKEY[0])
    files["corrupt.log.gz"] = gz(text)[:10] + rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
    big = "".join(f"I  {0x400000 + 7 * i:08x},3\n L {0x600000 + 8 * i:08x},8\n" for i in range(4000))
    files["truncated.log.gz"] = gz(big.encode())[:3000]
    files["truncated.log.xz"] = lzma.compress(big.encode())[:3000]
    files["truncated.log.zst"] = zstandard.ZstdCompressor(level=3).compress(big.encode())[:3000]
    files["not_gzip.log.gz"] = lackey(20, GOOD_LACKEY[0])
    files["compressed_trace.parquet.gz"] = gz(good_trace(64))

    # unknown
    files["garbage.bin"] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    files["unknown.txt"] = b"hello world\nthis is not a trace\n"

    # Parquet
    good = good_trace()
    files["truncated.parquet"] = good[: len(good) // 2]
    corrupt = bytearray(good)
    for off in range(200, 1200, 7):
        corrupt[off] ^= 0x5A
    files["corrupt_pages.parquet"] = bytes(corrupt)
    files["foreign.parquet"] = parquet_bytes(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}), None)
    files["version3.parquet"] = parquet_bytes(table(16), meta("3"))
    _version2(files)
    files["empty.parquet"] = b""
    files["fake.parquet"] = b"PAR1" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes() + b"PAR1"
    files["wrong_types.parquet"] = parquet_bytes(
        table(16, addr=pa.array(np.arange(16, dtype=np.int64))), meta())
    t = table(16)
    files["missing_column.parquet"] = parquet_bytes(t.drop_columns(["size"]), meta())
    files["nulls.parquet"] = parquet_bytes(
        table(16, addr=pa.array([0x1000 * i if i != 5 else None for i in range(16)], pa.uint64())),
        meta())
    files["bad_op.parquet"] = parquet_bytes(
        table(16, op=pa.array([1, 2, 0, 7] + [1] * 12, pa.uint8())), meta())
    files["bad_metadata.parquet"] = parquet_bytes(table(16), meta(**{"migrc_bench.regions": "[{oops"}))
    return files


def _version2(files: dict[str, bytes]) -> None:
    """Trace version 2 (several processes): bad pids, processes and regions."""
    def v2(name: str, tid=None, pid=None, threads: str = "2", drop_pid: bool = False, **kv: str):
        n = 16
        t = table(n, tid=pa.array(np.asarray(tid if tid is not None else [0, 1] * 8, np.uint16)))
        if not drop_pid:
            t = t.append_column("pid", pa.array(np.asarray(pid if pid is not None else [1, 2] * 8,
                                                           np.uint32)))
        kv.setdefault("migrc_bench.processes", json.dumps([{"pid": 1, "tids": [0]},
                                                           {"pid": 2, "tids": [1]}]))
        kv = {k: v for k, v in kv.items() if v is not None}
        files[name] = parquet_bytes(t, meta("2", **{"migrc_bench.threads": threads, **kv}))

    region = lambda start, end, pid, **more: {"start": start, "end": end, "kind": "heap",  # noqa: E731
                                              "writable": True, "exec": False, "pid": pid, **more}
    v2("v2_no_processes.parquet", **{"migrc_bench.processes": None})
    v2("v2_no_pid_column.parquet", drop_pid=True)
    v2("v2_pid_zero.parquet", **{"migrc_bench.processes": json.dumps([{"pid": 0, "tids": [0, 1]}])})
    v2("v2_tid_in_two_processes.parquet", **{"migrc_bench.processes": json.dumps(
        [{"pid": 1, "tids": [0, 1]}, {"pid": 2, "tids": [1]}])})
    v2("v2_undeclared_pid.parquet", pid=[1, 2, 1, 9] + [1, 2] * 6)
    v2("v2_pid_of_other_thread.parquet", pid=[1, 2, 2, 2] + [1, 2] * 6)
    v2("v2_region_unknown_pid.parquet", **{"migrc_bench.regions": json.dumps(
        [region(0x400000, 0x500000, 1), region(0x400000, 0x500000, 7)])})
    v2("v2_regions_overlap.parquet", **{"migrc_bench.regions": json.dumps(
        [region(0x400000, 0x500000, 1), region(0x480000, 0x600000, 1)])})
    v2("v2_bad_file_offset.parquet", **{"migrc_bench.regions": json.dumps(
        [dict(region(0x400000, 0x500000, 1), kind="file", file={"id": "w", "offset": 100})])})


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    files = build()
    for name, data in sorted(files.items()):
        (OUT / name).write_bytes(data)
    stale = {p.name for p in OUT.iterdir()} - set(files)
    for name in stale:
        print(f"note: {OUT / name} is not made by this script", file=sys.stderr)
    print(f"wrote {len(files)} files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
