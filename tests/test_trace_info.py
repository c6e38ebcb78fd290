"""``trace info``: page classification, footprint, output formats; the page set itself."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from migrc_bench.cli.main import main
from migrc_bench.trace.info import trace_info
from migrc_bench.trace.native import Region, TraceMeta, write_trace
from migrc_bench.trace.pageset import FETCH, READ, WRITE, PageSet

I, L, S, M = 0, 1, 2, 3
ROWS = [  # tid, op, addr, size
    (0, I, 0x400000, 4),    # code page 0x400 (fetched)
    (0, L, 0x400010, 8),    # a load from a code page: still code
    (2, L, 0x600FFC, 8),    # crosses into 0x601: data pages 0x600, 0x601, read only
    (2, S, 0x700000, 8),    # written
    (0, M, 0x800000, 4),    # modify counts as written
    (2, L, 0x700008, 8),    # 0x700 stays written
    (0, L, 0x900000, 8),    # inside a code region: code
]
REGIONS = (Region(0x900000, 0x902000, "code", False, True, "text"),
           Region(0x600000, 0x900000, "heap", True, False))


@pytest.fixture()
def trace(tmp_path: Path) -> Path:
    cols = list(zip(*ROWS))
    return write_trace(tmp_path / "t.parquet",
                       TraceMeta(source="handmade", threads=3, regions=REGIONS, generator={"seed": 1}),
                       np.array(cols[0], np.uint16), np.array(cols[1], np.uint8),
                       np.array(cols[2], np.uint64), np.array(cols[3], np.uint8))


def test_info_counts(trace: Path) -> None:
    ti = trace_info(trace)
    assert ti.by_op.tolist() == [1, 4, 1, 1]
    assert ti.threads_seen() == [(0, 4), (2, 3)]
    assert (ti.code_pages, ti.data_pages) == (2, 4)
    assert (ti.data_read_only_pages, ti.data_written_pages) == (2, 2)
    assert ti.footprint_bytes == 0x300 * 4096 and ti.footprint_from == "regions"


def test_info_json(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "info", str(trace), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["source"] == "handmade" and d["threads"] == 3 and d["records"] == 7
    assert d["records_by_op"] == {"ifetch": 1, "load": 4, "store": 1, "modify": 1}
    assert d["records_by_thread"] == [{"tid": 0, "records": 4}, {"tid": 2, "records": 3}]
    assert d["pages"] == {"total": 6, "code": 2, "data": 4, "data_read_only": 2, "data_written": 2}
    assert d["generator"] == {"seed": 1}
    assert [r["kind"] for r in d["regions"]] == ["code", "heap"]


def test_info_table_csv_markdown(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "info", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "records by op" in out and "regions" in out and "0x900000" in out
    assert main(["trace", "info", str(trace), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {"section": "pages", "key": "code", "value": "2"} in rows
    assert {"section": "op", "key": "modify", "value": "1"} in rows
    assert main(["trace", "info", str(trace), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "### records by thread" in md and "| ifetch | 1 |" in md


def test_info_of_text_trace_uses_data_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "t.log"
    log.write_text("I  0400000,3\n L 0600000,8\n S 0601000,8\n")
    assert main(["trace", "info", str(log), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "lackey" and d["source"] == "lackey"
    assert d["footprint_bytes"] == 2 * 4096 and d["footprint_from"] == "data pages"


def test_pageset_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    n = 300_000
    addr = (rng.integers(0, 1 << 20, n).astype(np.uint64) << np.uint64(12)) + rng.integers(0, 4096, n).astype(np.uint64)
    op = rng.integers(0, 4, n).astype(np.uint8)
    size = rng.integers(1, 256, n).astype(np.uint8)
    ps = PageSet(bits=4)  # starts tiny: exercises growth and resumption
    for i in range(0, n, 70_000):
        ps.add(op[i:i + 70_000], addr[i:i + 70_000], size[i:i + 70_000])
    pages, flags = ps.items()

    first = addr >> np.uint64(12)
    last = (addr + size.astype(np.uint64) - np.uint64(1)) >> np.uint64(12)
    opflags = np.array([FETCH, READ, WRITE, READ | WRITE], np.uint8)[op]
    allp = np.concatenate([first, last[last != first]])
    allf = np.concatenate([opflags, opflags[last != first]])
    ref_pages, inv = np.unique(allp, return_inverse=True)
    ref_flags = np.zeros(len(ref_pages), np.uint8)
    np.bitwise_or.at(ref_flags, inv, allf)
    assert len(ps) == len(ref_pages)
    assert np.array_equal(pages, ref_pages)
    assert np.array_equal(flags, ref_flags)
