"""Reclaim of clean page-cache folios (vmscan_file.py, engines/base.py reclaim_pages): the lowest
tier's kswapd and direct reclaim unmap every mapping of a clean file folio into the task's
batch, flush once per list (LUF defers read-only folios, migrc does not: it covers migration
only), drop the page from the page cache, and the next access reads it again (a major fault;
a second mapping then finds it in the page cache). Dirty and anonymous folios stay.
"""

from __future__ import annotations

import pytest

from migrc_bench.config import load_config
from migrc_bench.engines.base import MR_DEMOTION
from migrc_bench.model import kernel as K
from migrc_bench.model.counters import C
from migrc_bench.model.replay import Replay
from migrc_bench.runner import make_engine

from test_shared_file_pages import HEAP, W1, W2, pid_of, replay, shared_trace

IRQS, TAGGED = C["tlb_shootdown_irqs"], C["luf_tagged_pages"]
N = 4000  # loads per thread: both still run when the reclaim comes at 20 us


def _demote_then_shrink_node1(r: Replay, src: int, seen: dict):
    """At 2 us: demote the shared page to node 1 (as kswapd0 would); at 20 us, when both CPUs
    have read it there, shrink node 1's inactive file list once (kswapd1's
    shrink_inactive_list) with its young bits clear."""
    m = r.machine

    def demote(rr):
        r.tiering.lru.remove(0, src)
        done, _ = r.engine.migrate_pages(0, [src], MR_DEMOTION, 1)
        seen["dst"] = done[0]
        m.counters[0, C["pgdemote_kswapd"]] += 1  # as shrink_folio_list counts it

    def act(rr):
        dst = seen["dst"]
        for pid in m.mappings(dst):
            m.pte_flags[pid] &= ~K.PTE_YOUNG
        r.tiering.lru.referenced[dst] = False
        before = m.counters.sum(0).copy()
        from migrc_bench.model.vmscan import ScanControl
        got = r.tiering.vmscan1.shrink_inactive_list(32, ScanControl(nr_to_reclaim=32, kswapd=True), 0)
        delta = m.counters.sum(0) - before
        seen.update(dst=dst, reclaimed=got, irqs=int(delta[IRQS]), tagged=int(delta[TAGGED]),
                    pte=[int(m.pte_pfn[p]) for p in seen["pids"]], state=int(m.frame_state[dst]))

    r.at(2000.0, demote)
    r.at(20000.0, act)


@pytest.mark.parametrize("engine, irqs, tagged", [("baseline", 1, 0), ("migrc", 1, 0),
                                                  ("luf", 0, 1)])
def test_reclaim_unmaps_every_mapping_and_the_page_is_read_again(tmp_path, engine, irqs, tagged):
    r = replay(shared_trace(tmp_path / "t.parquet", n=N), engine)
    m = r.machine
    a, b = pid_of(r, 0, W1), pid_of(r, 1, W2)
    seen = {"pids": (a, b)}
    _demote_then_shrink_node1(r, int(m.pte_pfn[a]), seen)
    res = r.run()
    assert seen["reclaimed"] == 1 and seen["pte"] == [-1, -1]  # gone from both mms
    # one batched flush to CPU 1 (mm 1 maps the page too) unless LUF defers it (read-only)
    assert (seen["irqs"], seen["tagged"]) == (irqs, tagged)
    assert res.totals["pgsteal_kswapd"] == 1
    # read again once (a major fault); the other mapping finds it in the page cache -- under
    # LUF, CPU 1 may still read the old frame through its deferred (read-only) translation
    assert res.totals["pgmajfault"] == 1
    if engine != "luf":
        assert m.pte_pfn[a] == m.pte_pfn[b] >= 0
        assert sorted(m.mappings(int(m.pte_pfn[a]))) == sorted([a, b])
    present = {int(m.pte_pfn[p]) for p in (a, b)} - {-1}
    assert len(present) == 1
    assert res.totals["invariant_violations"] == 0, res.extra["violations"]


def test_dirty_and_anonymous_folios_are_not_reclaimed(tmp_path):
    """Process 2's mapping is writable and stored to (dirty): no writeback, so it stays; the
    heaps are anonymous (no swap): never isolated by the file reclaim."""
    r = replay(shared_trace(tmp_path / "t.parquet", writable2=True, n=N), "baseline")
    m = r.machine
    a, b = pid_of(r, 0, W1), pid_of(r, 1, W2)
    seen = {"pids": (a, b)}
    _demote_then_shrink_node1(r, int(m.pte_pfn[a]), seen)
    r.run()
    assert seen["reclaimed"] == 0 and seen["pte"] == [seen["dst"]] * 2
    heap = pid_of(r, 0, HEAP)
    f = int(m.pte_pfn[heap])
    vm1 = r.tiering.vmscan1
    assert not vm1.is_file(f) and vm1.is_file(int(m.pte_pfn[a]))


def test_file_pages_beyond_memory_start_outside_the_page_cache(tmp_path):
    """The regions need more than the nodes hold: the last file pages are left out (read in
    on first touch), anonymous ones never."""
    cfg = load_config(None, ['trace.generate=""', "machine.ncpu=2", 'memory.dram="16KiB"',
                             'memory.cxl="8KiB"', "memory.min_free_kbytes=8",
                             "memory.watermark_scale_factor=1",
                             "tiering.numa_balancing=0", "tiering.demotion_enabled=false",
                             'memory.initial_pte="readonly-clean"', 'engine="baseline"'])
    r = Replay(cfg, shared_trace(tmp_path / "t.parquet", n=N), make_engine(cfg), check_invariants=True)
    m = r.machine
    file_pids = [pid_of(r, 0, W1 + k * 4096) for k in range(4)]
    assert all(m.pte_pfn[pid_of(r, mm, HEAP)] >= 0 for mm in (0, 1))
    present = [int(m.pte_pfn[p]) >= 0 for p in file_pids]
    assert present[0] and not present[-1]
    res = r.run()
    assert res.totals["pgmajfault"] >= 1 and res.totals["invariant_violations"] == 0


def test_lowest_tier_kswapd_wakes_only_for_file_data(tmp_path):
    """Without file data (the heaps alone) kswapd1 is never woken: node 1 would have nothing
    to reclaim, and one-process counters stay as before reclaim existed."""
    r = replay(shared_trace(tmp_path / "t.parquet", n=N), "baseline", check=False)
    assert r.tiering.file_data
    r.tiering.file_data = False
    r.tiering.wake_kswapd(1, 0)
    assert not r.tiering._pending1 and r.tiering.kswapd1_runs == 0


def test_a_reclaim_that_skips_its_flush_is_caught(tmp_path):
    """A test double drops try_to_unmap_flush(): CPU 1 keeps reading the freed folio through
    its translation, and the checker reports it (the exemption for reclaimed pages covers
    tagged frames only)."""
    r = replay(shared_trace(tmp_path / "t.parquet", n=N), "baseline")
    m = r.machine
    a, b = pid_of(r, 0, W1), pid_of(r, 1, W2)
    flush = r.engine.flush_unmapped

    def skip_reclaims(initiator, batch):  # a reclaim's folios have no destination
        if batch and batch[0].dst < 0:
            r.engine.tlb_ubc.clear()
        else:
            flush(initiator, batch)

    r.engine.flush_unmapped = skip_reclaims
    seen = {"pids": (a, b)}
    _demote_then_shrink_node1(r, int(m.pte_pfn[a]), seen)
    res = r.run()
    assert seen["reclaimed"] == 1
    assert res.totals["invariant_violations"] > 0
    assert any(v.startswith("I1") for v in res.extra["violations"]), res.extra["violations"]
