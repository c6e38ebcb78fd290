"""Trace format version 2 (several processes) and ``trace merge``: v1 unchanged, v2 round
trip, merging as processes and as threads, shared file mappings, the replay's refusal."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from migrc_bench.errors import TraceError
from migrc_bench.trace import merge as merge_mod
from migrc_bench.trace.native import Region, TraceMeta, TraceReader, write_trace
from migrc_bench.trace.processes import FileMapping, Process

from results_util import cli, make_trace, run_into

CODE, HEAP, STACK = 0x400000, 0x10000000, 0x7ff000000000


def trace(path: Path, threads: int, n: int, base: int, name: str = "heap",
          meta_extra: dict | None = None) -> Path:
    """``threads`` threads of ``n`` records each, tid-major; addresses from ``base`` up."""
    tid = np.repeat(np.arange(threads, dtype=np.uint16), n)
    op = np.tile(np.array([0, 1, 2, 1], np.uint8), threads * n // 4 + 1)[: threads * n]
    addr = np.where(op == 0, CODE, base + np.arange(threads * n) * 64).astype(np.uint64)
    size = np.where(op == 0, 4, 8).astype(np.uint8)
    meta = TraceMeta(source=f"t{base:x}", threads=threads,
                     regions=(Region(CODE, CODE + 4096, "code", False, True, "text"),
                              Region(base, base + (1 << 20), "heap", True, False, name)),
                     **(meta_extra or {}))
    return write_trace(path, meta, tid, op, addr, size)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_v1_is_written_and_read_as_before(tmp_path: Path) -> None:
    p = trace(tmp_path / "v1.parquet", 2, 100, HEAP)
    schema = pq.read_schema(p)
    assert schema.names == ["tid", "op", "addr", "size"]
    keys = {k.decode() for k in schema.metadata}
    assert keys == {"migrc_bench.trace_version", "migrc_bench.source", "migrc_bench.threads",
                    "migrc_bench.regions"}
    assert schema.metadata[b"migrc_bench.trace_version"] == b"1"
    assert b'"pid"' not in schema.metadata[b"migrc_bench.regions"]
    r = TraceReader(p)
    assert r.meta.version == 1 and r.meta.processes == () and r.columns == ("tid", "op", "addr", "size")
    b = r.read_all()
    assert b.pid is None and len(b) == 200


def test_v2_round_trip(tmp_path: Path) -> None:
    procs = (Process(7, (0, 2), "a"), Process(4194304, (1,)))
    regions = (Region(CODE, CODE + 8192, "code", False, True, "text", pid=7),
               Region(HEAP, HEAP + (1 << 20), "file", False, False, "w", pid=7,
                      file=FileMapping("weights", 0)),
               Region(HEAP, HEAP + (1 << 21), "file", False, False, "w", pid=4194304,
                      file=FileMapping("weights", 4096)))
    meta = TraceMeta(source="x", threads=3, regions=regions, processes=procs)
    tid = np.array([0, 1, 2, 1], np.uint16)
    pid = np.array([7, 4194304, 7, 4194304], np.uint32)
    p = write_trace(tmp_path / "v2.parquet", meta, tid, np.ones(4, np.uint8),
                    np.arange(4, dtype=np.uint64) + HEAP, np.full(4, 8, np.uint8), pid)
    schema = pq.read_schema(p)
    assert schema.names == ["tid", "op", "addr", "size", "pid"]
    assert schema.metadata[b"migrc_bench.trace_version"] == b"2"
    r = TraceReader(p)
    assert r.meta == meta and r.meta.version == 2 and r.meta.pids == (7, 4194304)
    b = r.read_all()
    assert b.pid.tolist() == pid.tolist() and b.tid.tolist() == tid.tolist()
    # the file's pages count once: 256 (pid 7, offset 0) and 512 from page 1 (pid 4194304)
    assert meta.footprint_bytes == 513 * 4096


def test_one_process_v2_without_pid_column_given_is_filled(tmp_path: Path) -> None:
    meta = TraceMeta(source="x", threads=1, processes=(Process(3, (0,)),))
    p = write_trace(tmp_path / "one.parquet", meta, np.zeros(3, np.uint16), np.ones(3, np.uint8),
                    np.arange(3, dtype=np.uint64), np.ones(3, np.uint8))
    assert TraceReader(p).read_all().pid.tolist() == [3, 3, 3]


def test_merge_as_processes(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(merge_mod, "ROUND_RECORDS", 4)
    a = trace(tmp_path / "a.parquet", 2, 5, HEAP)          # tids 0, 1: 10 records
    b = trace(tmp_path / "b.parquet", 1, 6, HEAP + (1 << 24))  # 6 records
    out = tmp_path / "ab.parquet"
    code, _, err = cli(["trace", "merge", a, b, "-o", out], capsys)
    assert code == 0, err
    assert "(merge, 2 processes, 3 threads)" in err
    r = TraceReader(out)
    assert r.meta.processes == (Process(1, (0, 1), "a.parquet"), Process(2, (2,), "b.parquet"))
    assert r.meta.threads == 3 and r.meta.source == f"t{HEAP:x}+t{HEAP + (1 << 24):x}"
    assert [(x.pid, x.name) for x in r.meta.regions] == [(1, "text"), (1, "heap"),
                                                        (2, "text"), (2, "heap")]
    t = r.read_all()
    # rounds of 4 records from each input still open: a a a a b b b b | a a a a b b | a a
    assert t.pid.tolist() == [1] * 4 + [2] * 4 + [1] * 4 + [2] * 2 + [1] * 2
    assert t.tid.tolist() == [0] * 4 + [2] * 4 + [0, 1, 1, 1] + [2] * 2 + [1] * 2
    # every input's records, in its own order
    a_rows, b_rows = TraceReader(a).read_all(), TraceReader(b).read_all()
    assert t.addr[t.pid == 1].tolist() == a_rows.addr.tolist()
    assert t.addr[t.pid == 2].tolist() == b_rows.addr.tolist()
    # deterministic: the same inputs give the same bytes
    again = tmp_path / "again.parquet"
    assert cli(["trace", "merge", a, b, "-o", again, "--quiet"], capsys)[0] == 0
    assert digest(again) == digest(out)


def test_merge_keeps_the_processes_of_a_merged_input(tmp_path: Path, capsys) -> None:
    a = trace(tmp_path / "a.parquet", 1, 8, HEAP)
    b = trace(tmp_path / "b.parquet", 2, 8, HEAP)
    ab = tmp_path / "ab.parquet"
    abc = tmp_path / "abc.parquet"
    assert cli(["trace", "merge", a, b, "-o", ab, "--quiet"], capsys)[0] == 0
    assert cli(["trace", "merge", ab, a, "-o", abc, "--quiet"], capsys)[0] == 0
    r = TraceReader(abc)
    assert [(p.pid, p.tids) for p in r.meta.processes] == [(1, (0,)), (2, (1, 2)), (3, (3,))]
    assert len(r.read_all()) == 8 + 16 + 8
    assert sorted({x.pid for x in r.meta.regions}) == [1, 2, 3]


def test_merge_as_threads(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(merge_mod, "ROUND_RECORDS", 4)
    a = trace(tmp_path / "a.parquet", 2, 5, HEAP)
    b = trace(tmp_path / "b.parquet", 1, 6, HEAP + (1 << 24), name="other")
    out = tmp_path / "t.parquet"
    code, _, err = cli(["trace", "merge", a, b, "--as", "threads", "-o", out], capsys)
    assert code == 0, err
    r = TraceReader(out)
    assert r.meta.processes == (Process(1, (0, 1, 2)),)
    # one address space: the shared text region once, both heaps
    assert [(x.name, x.start) for x in r.meta.regions] == [
        ("text", CODE), ("heap", HEAP), ("other", HEAP + (1 << 24))]
    t = r.read_all()
    assert set(t.pid.tolist()) == {1} and t.tid.tolist()[:8] == [0] * 4 + [2] * 4
    assert np.bincount(t.tid).tolist() == [5, 5, 6]


def test_merge_as_threads_refuses_conflicting_regions(tmp_path: Path, capsys) -> None:
    a = trace(tmp_path / "a.parquet", 1, 8, HEAP)
    b = trace(tmp_path / "b.parquet", 1, 8, HEAP + 4096)  # heaps overlap, differently
    out = tmp_path / "t.parquet"
    code, _, err = cli(["trace", "merge", a, b, "--as", "threads", "-o", out], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{b}: region {HEAP + 4096:#x}-" in err and "--as processes" in err
    assert not out.exists()
    ab = tmp_path / "ab.parquet"
    assert cli(["trace", "merge", a, b, "-o", ab, "--quiet"], capsys)[0] == 0
    code, _, err = cli(["trace", "merge", ab, a, "--as", "threads", "-o", out], capsys)
    assert code == 2 and f"{ab}: has 2 processes" in err


def test_shared_file_mapping(tmp_path: Path, capsys) -> None:
    a = trace(tmp_path / "a.parquet", 1, 8, HEAP, name="weights")
    b = trace(tmp_path / "b.parquet", 1, 8, HEAP, name="weights")
    out = tmp_path / "ab.parquet"
    code, _, err = cli(["trace", "merge", a, b, "--shared", "weights", "-o", out], capsys)
    assert code == 0, err
    assert "was heap, now a file mapping" in err
    meta = TraceReader(out).meta
    shared = [x for x in meta.regions if x.file is not None]
    assert [(x.pid, x.kind, x.file) for x in shared] == [(1, "file", FileMapping("weights", 0)),
                                                         (2, "file", FileMapping("weights", 0))]
    assert meta.footprint_bytes == 256 * 4096  # one copy of the file's pages
    code, js, _ = cli(["trace", "info", out, "--format", "json"], capsys)
    d = json.loads(js)
    assert d["trace_version"] == 2
    assert [(p["pid"], p["tids"], p["records"], p["regions"]) for p in d["processes"]] == [
        (1, [0], 8, 2), (2, [1], 8, 2)]
    assert d["shared_files"] == [{"id": "weights", "mappings": [
        {"pid": 1, "start": HEAP, "end": HEAP + (1 << 20), "offset": 0, "pages": 256},
        {"pid": 2, "start": HEAP, "end": HEAP + (1 << 20), "offset": 0, "pages": 256}]}]
    code, table, _ = cli(["trace", "info", out, "--format", "markdown"], capsys)
    assert "### processes" in table and "### shared files" in table and "weights@0x0" in table
    # a range selects every region inside it; offsets keep the regions' distance
    rng = tmp_path / "range.parquet"
    sel = f"{CODE:#x}-{HEAP + (1 << 20):#x}"
    assert cli(["trace", "merge", a, b, "--shared", sel, "-o", rng, "--quiet"], capsys)[0] == 0
    files = [(x.pid, x.kind, x.file.offset) for x in TraceReader(rng).meta.regions]
    assert files == [(1, "code", 0), (1, "file", HEAP - CODE), (2, "code", 0), (2, "file", HEAP - CODE)]


@pytest.mark.parametrize("args, words", [
    (["--shared", "nothing"], "--shared nothing: no region of the inputs is named so"),
    (["--shared", "0x10-0x5"], "--shared 0x10-0x5: the range ends before it starts"),
    (["--as", "both"], "Invalid value for '--as'"),
])
def test_merge_bad_arguments(tmp_path: Path, capsys, args: list[str], words: str) -> None:
    a = trace(tmp_path / "a.parquet", 1, 8, HEAP)
    out = tmp_path / "o.parquet"
    code, _, err = cli(["trace", "merge", a, a, "-o", out, *args], capsys)
    assert code == 2 and words in err and "Traceback" not in err, err
    assert not out.exists()


def test_merge_needs_two_inputs_and_names_a_bad_one(tmp_path: Path, capsys) -> None:
    a = trace(tmp_path / "a.parquet", 1, 8, HEAP)
    code, _, err = cli(["trace", "merge", a, "-o", tmp_path / "o.parquet"], capsys)
    assert code == 2 and "give at least two input traces" in err
    bad = Path(__file__).parent / "corpus" / "bad" / "v2_undeclared_pid.parquet"
    code, _, err = cli(["trace", "merge", a, bad, "-o", tmp_path / "o.parquet"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{bad}: row 3: pid 9 is not one of the trace's processes" in err
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("engine", ["baseline", "migrc", "luf"])
def test_several_processes_replay_end_to_end(tmp_path: Path, capsys, engine: str) -> None:
    """A merge of two traces as processes (2 x 2 threads on 2 CPUs): run replays it with
    tiering on, every mm checked, no violation; tasks switch and the mms take ASID slots."""
    a = make_trace(tmp_path / "a.parquet", n=20000, seed=1)
    b = make_trace(tmp_path / "b.parquet", n=20000, seed=2)
    ab = tmp_path / "ab.parquet"
    assert cli(["trace", "merge", a, b, "-o", ab, "--quiet"], capsys)[0] == 0
    code, out, err = cli(["run", ab, "--config", "ci", "--set", "machine.ncpu=2", "--set",
                          f"engine={engine}", "--set", 'memory.dram="40%"', "--check-invariants",
                          "--no-save", "--quiet", "--format", "json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    c = res["counters"]
    assert c["invariant_violations"] == 0
    assert c["accesses"] >= 40000
    assert c["nr_context_switches"] > 0 and c["tlb_flush_on_task_switch"] > 0
    assert c["numa_hint_faults"] > 0


@pytest.mark.parametrize("engine", ["baseline", "migrc"])
def test_one_process_v2_replays_as_v1(tmp_path: Path, engine: str) -> None:
    v1 = make_trace(tmp_path / "v1.parquet")
    r = TraceReader(v1)
    meta = dataclasses.replace(r.meta, regions=tuple(dataclasses.replace(x, pid=4711)
                                                     for x in r.meta.regions),
                               processes=(Process(4711, (0, 1)),))
    b = r.read_all()
    v2 = write_trace(tmp_path / "v2.parquet", meta, b.tid, b.op, b.addr, b.size,
                     np.full(len(b), 4711, np.uint32))
    assert TraceReader(v2).meta.version == 2
    one, _ = run_into(None, v1, engine)
    two, _ = run_into(None, v2, engine)
    wall = {"wall_s", "accesses_per_s"}  # the host's time, not the model's
    counters = lambda res: {k: v for k, v in res.totals.items() if k not in wall}  # noqa: E731
    assert counters(one) == counters(two) and one.cpus == two.cpus
    assert one.intervals == two.intervals
    assert one.totals["nr_tlb_remote_flush"] > 0
