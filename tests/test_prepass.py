"""The pre-pass (page set of any trace, cached), and what the replay builds on it: shares of
the footprint, VMAs and the steady-state start of a trace without regions, hot placement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from migrc_bench.config import load_config
from migrc_bench.model import kernel as K
from migrc_bench.model.replay import Replay
from migrc_bench.runner import make_engine
from migrc_bench.trace import prepass
from migrc_bench.trace.native import Region, TraceMeta, write_trace

CODE = 0x400000
DATA = 0x10000000
STACK = 0x7FFF0000


def lackey_like(path: Path, reps: int = 4) -> Path:
    """A single-thread trace without regions: code, a hot page, colder pages, a written stack."""
    rows = []
    for r in range(reps):
        for p in range(10):
            rows += [(0, CODE + 16 * p, 4), (1, DATA + 4096 * p, 8), (1, DATA, 8)]
            rows.append((2, STACK + 8 * p, 8))
    rows.append((3, DATA + 4096 * 9 + 4090, 8))  # a modify across a page boundary: pages 9, 10
    write_trace(path, TraceMeta("lackey", 1), np.zeros(len(rows), np.uint16),
                np.array([r[0] for r in rows], np.uint8), np.array([r[1] for r in rows], np.uint64),
                np.array([r[2] for r in rows], np.uint8))
    return path


def test_profile_counts_first_touch_and_kinds(tmp_path: Path) -> None:
    p = prepass.trace_profile(lackey_like(tmp_path / "t.parquet"))
    vpns = p.vpns.tolist()
    assert vpns[:4] == [CODE >> 12, DATA >> 12, STACK >> 12, (DATA >> 12) + 1]  # first touch
    count = dict(zip(vpns, p.counts.tolist()))
    assert count[DATA >> 12] == 4 * (10 + 1) and count[(DATA >> 12) + 5] == 4
    assert count[(DATA >> 12) + 9] == 5 and count[(DATA >> 12) + 10] == 1  # the crossing modify
    written = {v for v, w in zip(vpns, p.written) if w}
    assert written == {STACK >> 12, (DATA >> 12) + 9, (DATA >> 12) + 10}
    assert p.code.tolist() == [v == CODE >> 12 for v in vpns]
    assert p.records == 4 * 40 + 1 and p.data_bytes == 12 * 4096


def test_second_run_does_not_rescan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = lackey_like(tmp_path / "t.parquet")
    first = replay(trace, 'memory.dram="50%"').run()
    assert prepass.profile_path(prepass.file_sha256(trace)).exists()

    def no_scan(*args, **kwargs):
        raise AssertionError("the pre-pass ran again")

    monkeypatch.setattr(prepass, "scan", no_scan)
    second = replay(trace, 'memory.dram="50%"').run()
    assert second.totals["accesses"] == first.totals["accesses"]
    assert second.extra["footprint_bytes"] == first.extra["footprint_bytes"] == 12 * 4096


def test_changed_trace_is_scanned_again(tmp_path: Path) -> None:
    trace = lackey_like(tmp_path / "t.parquet", reps=2)
    a = prepass.trace_profile(trace)
    lackey_like(trace, reps=3)  # same name, other content
    b = prepass.trace_profile(trace)
    assert b.records == 3 * 40 + 1 != a.records


def test_damaged_cache_entry_is_recomputed(tmp_path: Path) -> None:
    trace = lackey_like(tmp_path / "t.parquet")
    want = prepass.trace_profile(trace)
    prepass.profile_path(prepass.file_sha256(trace)).write_bytes(b"not a numpy file")
    assert prepass.trace_profile(trace).counts.tolist() == want.counts.tolist()


def test_profiles_live_in_the_tagged_cache_and_cache_clean_removes_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from migrc_bench import cache

    monkeypatch.setenv("MIGRC_BENCH_CACHE", str(tmp_path / "c"))
    trace = lackey_like(tmp_path / "t.parquet")
    prepass.trace_profile(trace)
    entry = prepass.profile_path(prepass.file_sha256(trace))
    assert entry.parent == tmp_path / "c" / prepass.PREPASS_DIR and entry.is_file()
    assert cache.is_ours(tmp_path / "c")  # the tag: cache clean may empty it
    assert cache.usage().parts[prepass.PREPASS_DIR][1] == 1
    cache.clean()
    assert not entry.exists()


def replay(trace: Path, *sets: str) -> Replay:
    cfg = load_config(None, ['trace.generate=""', 'memory.cxl="1MiB"', "machine.ncpu=1",
                             "tiering.enabled=false", "memory.min_free_kbytes=8", *sets])
    return Replay(cfg, trace, engine=make_engine(cfg))


def pte_of(r: Replay, vpn: int) -> tuple[int, int]:
    m = r.machine
    pid = int(m.pagemap.lookup(np.array([vpn]))[0])
    return int(m.frame_node[m.pte_pfn[pid]]), int(m.pte_flags[pid])


def test_share_sizes_work_without_regions(tmp_path: Path) -> None:
    r = replay(lackey_like(tmp_path / "t.parquet"), 'memory.dram="50%"')
    assert r.machine.nodes[0].pages == 6  # half of 12 data pages


def test_steady_state_places_the_page_set(tmp_path: Path) -> None:
    r = replay(lackey_like(tmp_path / "t.parquet"), 'memory.dram="40KiB"',
               'memory.initial_pte="steady-state"')
    ro, rw_clean = K.PTE_PRESENT, K.PTE_PRESENT | K.PTE_WRITE
    rw_dirty = rw_clean | K.PTE_DIRTY
    low = r.machine.nodes[0].wmark.low
    assert low == 0 and r.machine.nodes[0].pages == 10
    assert pte_of(r, CODE >> 12) == (0, ro)                 # text: read-only, not writable
    assert pte_of(r, DATA >> 12) == (0, ro)                 # promoted: read-only and clean
    assert pte_of(r, STACK >> 12) == (0, rw_dirty)          # written by the trace
    assert pte_of(r, (DATA >> 12) + 9) == (1, rw_dirty)     # written; past DRAM's low mark
    assert pte_of(r, (DATA >> 12) + 8) == (1, rw_clean)     # demoted with write permission
    assert r.machine.page_flags[int(r.machine.pagemap.lookup(np.array([CODE >> 12]))[0])] == K.VMA_EXEC
    res = r.run()
    assert res.totals["pgfault"] == 0  # every page was present, every store writable


def test_hot_placement_puts_the_most_accessed_pages_in_dram(tmp_path: Path) -> None:
    r = replay(lackey_like(tmp_path / "t.parquet"), 'memory.dram="12KiB"',
               'memory.initial_pte="steady-state"', 'memory.placement="hot"')
    # accesses: DATA page 0 (44), stack (40), code (40), then the other data pages (<= 5)
    on0 = {int(v) for v in r.machine.profile.vpns if pte_of(r, int(v))[0] == 0}
    assert on0 == {DATA >> 12, STACK >> 12, CODE >> 12}
    # the hottest page is the LRU's head (highest frame), the coldest DRAM page its tail
    frame = {v: int(r.machine.pte_pfn[r.machine.pagemap.lookup(np.array([v]))[0]])
             for v in (DATA >> 12, CODE >> 12)}
    assert frame[DATA >> 12] > frame[CODE >> 12]


def test_regions_trace_steady_state_written_pages(tmp_path: Path) -> None:
    """With regions, the region pages are placed; a heap page the trace writes starts
    writable and dirty (no write-protect fault at its first store), the others read-only."""
    path = tmp_path / "r.parquet"
    regions = (Region(DATA, DATA + 4 * 4096, "heap", True, False),)
    write_trace(path, TraceMeta("t", 1, regions), np.zeros(3, np.uint16), np.array([1, 2, 1], np.uint8),
                np.array([DATA, DATA + 4096, DATA + 8192], np.uint64), np.full(3, 8, np.uint8))
    r = replay(path, 'memory.dram="400%"', 'memory.initial_pte="steady-state"')
    assert pte_of(r, (DATA >> 12) + 1)[1] == K.PTE_PRESENT | K.PTE_WRITE | K.PTE_DIRTY
    assert pte_of(r, DATA >> 12)[1] == K.PTE_PRESENT
    assert r.run().totals["pgfault"] == 0


def test_share_of_a_lackey_converted_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: `memory.dram = "18%"` on a trace converted from lackey (no regions)."""
    from migrc_bench.cli.main import main

    log = tmp_path / "app.log"
    lines = ["==1== Lackey"] + [f"I  {0x400000 + 4 * i:08x},4\n L {0x10000000 + 4096 * (i % 100):08x},8"
                                for i in range(1000)]
    log.write_text("\n".join(lines) + "\n")
    trace = tmp_path / "app.parquet"
    assert main(["trace", "convert", str(log), "-o", str(trace), "-q"]) == 0
    out = tmp_path / "res"
    assert main(["run", str(trace), "--set", 'memory.dram="18%"', "--set", "machine.ncpu=1",
                 "--out", str(out), "--quiet"]) == 0
    import pandas as pd

    row = pd.read_parquet(out / "runs.parquet").iloc[0]
    assert row.footprint_bytes == 100 * 4096 and row.dram_pages == 18
