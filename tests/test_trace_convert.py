"""``trace convert`` happy paths: every format, summary line, --quiet, metadata, atomic replace."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from migrc_bench.cli.main import main
from migrc_bench.trace.native import Region, TraceMeta, TraceReader, write_trace

INPUTS = {
    "app.log": b"==7== Lackey\nI  0400000,3\n L 0600000,8\n S 0600008,8\n M 0600010,4\n",
    "pinatrace.out": b"0x400000: R 0x600000\n0x400004: W 0x600008\n#eof\n",
    "trace.champsim": struct.pack("<QBB2B4B2Q4Q", 0x400000, 0, 0, 0, 0, 0, 0, 0, 0,
                                  0x600008, 0, 0x600000, 0, 0, 0),
}
EXPECTED = {  # format, ops
    "app.log": ("lackey", [0, 1, 2, 3]),
    "pinatrace.out": ("pinatrace", [0, 1, 0, 2]),
    "trace.champsim": ("champsim", [0, 1, 2]),
}


@pytest.mark.parametrize("name", sorted(INPUTS))
@pytest.mark.parametrize("gz", [False, True])
def test_convert_each_format(name: str, gz: bool, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / (name + (".gz" if gz else ""))
    src.write_bytes(gzip.compress(INPUTS[name]) if gz else INPUTS[name])
    out = tmp_path / "out.parquet"
    assert main(["trace", "convert", str(src), "-o", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    fmt, ops = EXPECTED[name]
    assert len(err) == 1 and err[0].startswith("migrc-bench: converted ") and f"({fmt}, 1 thread)" in err[0]
    r = TraceReader(out)
    assert r.meta.source == fmt and r.meta.threads == 1
    assert r.read_all().op.tolist() == ops
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, "out.parquet"])


def test_quiet_and_forced_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "x.txt"
    src.write_bytes(INPUTS["app.log"])
    out = tmp_path / "o.parquet"
    assert main(["trace", "convert", str(src), "--format", "lackey", "-o", str(out), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert TraceReader(out).num_rows == 4


def test_convert_replaces_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.log"
    src.write_bytes(INPUTS["app.log"])
    out = tmp_path / "o.parquet"
    out.write_bytes(b"old")
    assert main(["trace", "convert", str(src), "-o", str(out), "-q"]) == 0
    assert TraceReader(out).num_rows == 4


def test_native_to_native_keeps_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = TraceMeta(source="xsbench-synth", threads=7, generator={"seed": 3},
                     regions=(Region(0x1000, 0x3000, "heap", True, False),))
    src = write_trace(tmp_path / "in.parquet", meta, np.array([0, 4, 4], np.uint16),
                      np.array([1, 2, 3], np.uint8), np.array([0x1000, 0x2000, 0x2008], np.uint64),
                      np.array([8, 8, 8], np.uint8))
    out = tmp_path / "out.parquet"
    assert main(["trace", "convert", str(src), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "(native, 2 threads)" in err and "thread ids 0, 4 renumbered 0..1" in err
    r = TraceReader(out)
    assert r.meta.source == "xsbench-synth" and r.meta.threads == 2
    assert r.meta.generator == {"seed": 3} and r.meta.regions == meta.regions
    assert r.read_all().tid.tolist() == [0, 1, 1]  # ids `run` accepts on 2 CPUs


def test_convert_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_trace(tmp_path / "t.parquet", TraceMeta(source="x", threads=1),
                      np.zeros(3, np.uint16), np.ones(3, np.uint8),
                      np.arange(3, dtype=np.uint64), np.ones(3, np.uint8))
    assert main(["trace", "convert", str(src), "-o", str(src), "-q"]) == 0
    assert TraceReader(src).num_rows == 3
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def lackey_lines(pc: int, n: int, data: int) -> bytes:
    return b"".join(b"I  %08x,3\n L %08x,8\n" % (pc + 4 * i, data + 8 * i) for i in range(n))


def test_several_inputs_become_threads_interleaved_by_record_count(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from migrc_bench.trace import merge

    monkeypatch.setattr(merge, "ROUND_RECORDS", 4)
    a, b, c = tmp_path / "a.log", tmp_path / "b.out", tmp_path / "c.log"
    a.write_bytes(lackey_lines(0x400000, 5, 0x600000))        # 10 records
    b.write_bytes(b"0x500000: R 0x700000\n0x500004: W 0x700008\n#eof\n")  # 4 records
    c.write_bytes(lackey_lines(0x800000, 3, 0x900000))        # 6 records
    out = tmp_path / "t.parquet"
    assert main(["trace", "convert", str(a), str(b), str(c), "-o", str(out)]) == 0
    assert "(lackey+pinatrace, 3 threads)" in capsys.readouterr().err
    r = TraceReader(out)
    assert r.meta.threads == 3 and r.meta.source == "lackey+pinatrace"
    t = r.read_all()
    # rounds of 4 records from each input still open: a a a a b b b b c c c c | a a a a c c | a a
    assert t.tid.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [0] * 4 + [2] * 2 + [0] * 2
    assert t.addr[t.tid == 0].tolist()[:2] == [0x400000, 0x600000]  # each thread in program order
    assert t.addr[t.tid == 2].tolist()[-1] == 0x900010


def test_several_inputs_need_single_thread_inputs(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    two = write_trace(tmp_path / "two.parquet", TraceMeta(source="x", threads=2),
                      np.array([0, 1], np.uint16), np.ones(2, np.uint8),
                      np.arange(2, dtype=np.uint64), np.ones(2, np.uint8))
    one = tmp_path / "a.log"
    one.write_bytes(INPUTS["app.log"])
    assert main(["trace", "convert", str(one), str(two), "-o", str(tmp_path / "o.parquet")]) == 2
    err = capsys.readouterr().err
    assert "two.parquet: has 2 threads" in err and "Traceback" not in err
    assert not (tmp_path / "o.parquet").exists()


def test_start_at_drops_records_before_the_first_fetch(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.log"
    src.write_bytes(lackey_lines(0x400000, 4, 0x600000) + b" L 00404008,8\n"
                    + lackey_lines(0x404000, 2, 0x610000) + lackey_lines(0x404000, 1, 0x620000))
    out = tmp_path / "o.parquet"
    assert main(["trace", "convert", str(src), "--start-at", "404000", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "started at the first fetch of 0x404000 (record 9); 9 records before it dropped" in err
    t = TraceReader(out).read_all()
    assert t.op.tolist() == [0, 1, 0, 1, 0, 1] and t.addr[:2].tolist() == [0x404000, 0x610000]


def test_start_at_missing_address_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.log"
    src.write_bytes(lackey_lines(0x400000, 4, 0x600000))
    out = tmp_path / "o.parquet"
    assert main(["trace", "convert", str(src), "--start-at", "0x4011f0", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a.log: no instruction fetch at 0x4011f0 (--start-at)" in err and not out.exists()
    assert main(["trace", "convert", str(src), "--start-at", "main", "-o", str(out)]) == 2
    assert "--start-at: expected a hex address" in capsys.readouterr().err
