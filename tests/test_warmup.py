"""``replay.warmup``: each thread's first N accesses run (TLBs, page table, LRU warm up) but
are not counted: counters, stall times and runtime are those of the rest of the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from migrc_bench.config import load_config
from migrc_bench.errors import ConfigError
from migrc_bench.model.counters import COUNTERS
from migrc_bench.model.replay import Replay
from migrc_bench.runner import make_engine
from migrc_bench.trace.native import TraceMeta, write_trace

BASE = ['trace.generate=""', 'memory.dram="256KiB"', 'memory.cxl="1MiB"', "memory.min_free_kbytes=8",
        "tiering.enabled=false", 'memory.initial_pte="writable-dirty"', "replay.quantum=200",
        "tlb.dtlb_entries=4", "tlb.dtlb_ways=2", "tlb.stlb_entries=8", "tlb.stlb_ways=2"]


def trace(path: Path, threads: int, n: int) -> Path:
    """Loads, stores and fetches over 40 pages, no access crossing a page (records = accesses)."""
    rng = np.random.default_rng(5)
    op = rng.integers(0, 4, threads * n).astype(np.uint8)
    page = rng.integers(0, 40, threads * n)
    addr = np.where(op == 0, 0x400000 + (page % 3) * 4096, 0x10000000 + page * 4096) + 8
    write_trace(path, TraceMeta("t", threads), np.repeat(np.arange(threads), n).astype(np.uint16),
                op, addr.astype(np.uint64), np.full(threads * n, 8, np.uint8))
    return path


def run(path: Path, *sets: str) -> Replay:
    cfg = load_config(None, BASE + list(sets))
    r = Replay(cfg, path, engine=make_engine(cfg))
    r.result = r.run()
    return r


def test_warmup_subtracts_exactly_the_first_accesses(tmp_path: Path) -> None:
    path = trace(tmp_path / "t.parquet", 1, 3000)
    full = run(path, "machine.ncpu=1")
    head = run(path, "machine.ncpu=1", "replay.max_accesses=1000")  # the first 1000, alone
    warm = run(path, "machine.ncpu=1", "replay.warmup=1000")
    for name in COUNTERS:
        assert warm.result.totals[name] == full.result.totals[name] - head.result.totals[name], name
    assert warm.result.totals["accesses"] == 2000
    assert warm.result.totals["pgfault"] < full.result.totals["pgfault"]  # first touches were warm-up
    assert warm.result.totals["runtime_s"] == pytest.approx(
        full.result.totals["runtime_s"] - head.result.totals["runtime_s"], rel=1e-12)
    assert warm.result.totals["cpu_time_s"] == pytest.approx(
        full.result.totals["cpu_time_s"] - head.result.totals["cpu_time_s"], rel=1e-12)
    assert warm.result.cpus[0]["accesses"] == 2000


def test_warmup_zero_changes_nothing_and_replay_is_the_same(tmp_path: Path) -> None:
    path = trace(tmp_path / "t.parquet", 3, 2000)
    a = run(path, "machine.ncpu=4")
    b = run(path, "machine.ncpu=4", "replay.warmup=700")
    assert a.machine.clock.tolist() == b.machine.clock.tolist()  # the same replay, counted later
    assert b.result.totals["accesses"] == 3 * (2000 - 700)
    assert [c["accesses"] for c in b.result.cpus] == [1300, 1300, 1300, 0]
    assert b.result.totals["runtime_s"] < a.result.totals["runtime_s"]
    assert b.result.intervals and b.result.intervals[0]["interval"] == 0


def test_warmup_longer_than_a_thread_is_an_error(tmp_path: Path) -> None:
    path = trace(tmp_path / "t.parquet", 2, 500)
    with pytest.raises(ConfigError, match="replay.warmup"):
        run(path, "machine.ncpu=2", "replay.warmup=500")
