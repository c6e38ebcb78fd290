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
