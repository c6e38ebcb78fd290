"""A THP through the tiering policy, with exact counters (v6.7; migrc v6 and LUF v12 refuse
large folios).

One 2 MiB anonymous region (one PMD) beside the threads' spin pages. The NUMA scan marks the
PMD PROT_NONE as one entry (numa_pte_updates 512, numa_huge_pte_updates 1) and flushes it as
one 2 MiB stride entry; the hint fault on it is one fault; promotion and demotion move it as
one folio of 512 pages, whose unmap (set_pmd_migration_entry -> pmdp_invalidate ->
flush_tlb_range) is an immediate flush of 512 entries at 4 KiB stride: above the ceiling of
33, a full flush of the mm, never batched and never deferred.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from migrc_bench.model import thp
from migrc_bench.model.counters import C, T
from migrc_bench.model.memory import F_FREE, F_KERNEL, F_USED
from migrc_bench.model.replay import Replay
from migrc_bench.trace.native import Region

from scenario_util import build as build_scenario, spin

BIG = 0x40000000
N = 512
SETS = ['memory.dram="8MiB"', 'memory.cxl="8MiB"', 'memory.thp="always"']


def build(tmp: Path, records, engine="baseline", sets=()) -> Replay:
    """The spin pages, one heap page and the 2 MiB region BIG."""
    return build_scenario(tmp, records, 1, [*SETS, *sets], engine,
                          extra_regions=(Region(BIG, BIG + N * 4096, "anon", True, False),))


def head(r) -> int:
    return int(r.machine.pagemap.lookup(np.array([BIG >> 12]))[0])


def thp_frame(r) -> int:
    return int(r.machine.pte_pfn[head(r)])


def move_thp(r, nid: int) -> None:
    """Set-up: the THP onto an aligned free block of node ``nid``."""
    m, lru = r.machine, r.tiering.lru
    old = thp_frame(r)
    assert m.frame_nr[old] == N
    new = thp._free_block(m, m.nodes[nid])
    m.nodes[nid].free.take_block(new, new + N)
    lru.remove(int(m.frame_node[old]), old)
    m.frame_nr[old] = 1
    for f in range(old, old + N):
        m.frame_state[f] = F_FREE
        m.frame_pid[f] = -1
        m.nodes[int(m.frame_node[old])].free.push_head(f)
    h = head(r)
    m.pte_pfn[h:h + N] = np.arange(new, new + N)
    m.frame_state[new:new + N] = F_USED
    m.frame_pid[new:new + N] = np.arange(h, h + N)
    m.frame_nr[new] = N
    lru.add(new, nid)


def fragment(r, nid: int) -> None:
    """Set-up: one frame of every aligned block of node ``nid`` reserved (no order-9 block)."""
    m = r.machine
    node = m.nodes[nid]
    lo = -(-node.first_frame // N) * N
    for f in range(lo, node.first_frame + node.pages, N):
        if m.frame_state[f] == F_FREE:
            node.free.take_block(f, f + 1)
            m.frame_state[f] = F_KERNEL


def test_the_region_is_one_pmd_and_one_lru_folio(tmp_path):
    r = build(tmp_path, spin(1, 10))
    m = r.machine
    h = head(r)
    assert (m.page_pmd[h:h + N] == h).all()
    f = thp_frame(r)
    assert m.frame_nr[f] == N and r.tiering.lru.on[f] >= 0 and r.tiering.lru.on[f + 1] < 0
    assert r.tiering.lru.count(0, False) == N + 2  # base pages: the THP, spin and heap pages


def test_thp_promotion_is_one_hint_fault_one_migration_of_512_pages(tmp_path):
    r = build(tmp_path, spin(1, 4000, {0: [(0.5, 1, BIG + 77 * 4096)]}))
    move_thp(r, 1)
    r.at(20_000, lambda rr: rr.tiering.numa_scan())
    t = r.run().totals
    m = r.machine
    assert t["numa_pte_updates"] == N and t["numa_huge_pte_updates"] == 1
    assert t["numa_hint_faults"] == 1 and t["numa_hint_faults_local"] == 0
    assert t["pgmigrate_success"] == N and t["pgmigrate_fail"] == 0
    assert t["thp_migration_success"] == 1 and t["thp_migration_fail"] == 0
    assert t["numa_pages_migrated"] == N and t["pgpromote_success"] == N
    # the scan: one entry at PMD stride (INVLPG); the migration: 512 > 33, a full flush
    assert t["nr_tlb_local_flush_one"] == 1 and t["nr_tlb_local_flush_all"] == 1
    f = thp_frame(r)
    assert m.frame_node[f] == 0 and m.frame_nr[f] == N
    assert (m.pte_pfn[head(r):head(r) + N] == np.arange(f, f + N)).all()
    # migrate_page once for the folio, and a copy of 512 pages into DRAM at 10 GB/s
    assert m.times[0, T["copy"]] == pytest.approx(2500.0 + N * 4096 / 10e9 * 1e9)


def test_thp_promotion_without_a_free_block_fails_and_does_not_split(tmp_path):
    r = build(tmp_path, spin(1, 4000, {0: [(0.5, 1, BIG)]}))
    move_thp(r, 1)
    fragment(r, 0)
    r.at(20_000, lambda rr: rr.tiering.numa_scan())
    t = r.run().totals
    assert t["numa_hint_faults"] == 1
    assert t["thp_migration_fail"] == 1 and t["thp_migration_split"] == 0
    assert t["pgmigrate_success"] == 0 and t["pgmigrate_fail"] == N
    assert r.machine.frame_node[thp_frame(r)] == 1
    assert (r.machine.page_pmd[head(r):head(r) + N] == head(r)).all()  # still one PMD


def _demote_thp(rr):
    f = thp_frame(rr)
    rr.tiering.lru.remove(0, f)
    done, failed = rr.engine.migrate_pages(0, [f], "demotion", 1)
    for x in failed:
        rr.tiering.lru.add(x, 0)
    rr.machine.counters[0, C["pgdemote_kswapd"]] += thp.nr_pages(rr.machine, done)


RO = ['memory.initial_pte="readonly-clean"']


def test_thp_demotion_under_migrc_is_not_deferred(tmp_path):
    """migrc v6 6/7: can_migrc = ... && !is_large, and a PMD unmap never reaches
    tlb_ubc_ro: the read-only, clean THP is flushed at once and its source freed."""
    r = build(tmp_path, spin(4, 3000), engine="migrc", sets=RO)
    r.at(10_000, _demote_thp)
    t = r.run().totals
    assert t["thp_migration_success"] == 1 and t["pgmigrate_success"] == N
    assert t["pgdemote_kswapd"] == N
    assert t["migrc_deferred_pages"] == 0 and len(r.engine.migrc_folios) == 0
    assert t["nr_tlb_remote_flush"] == 1 and t["nr_tlb_remote_flush_received"] == 3
    assert t["nr_tlb_local_flush_all"] == 1
    assert r.machine.frame_node[thp_frame(r)] == 1


def test_thp_demotion_under_luf_is_not_tagged(tmp_path):
    r = build(tmp_path, spin(4, 3000), engine="luf", sets=RO)
    r.at(10_000, _demote_thp)
    t = r.run().totals
    assert t["thp_migration_success"] == 1 and t["luf_tagged_pages"] == 0
    assert t["nr_tlb_remote_flush"] == 1


def test_thp_demotion_without_a_free_block_splits(tmp_path):
    """-ENOMEM on demotion: the THP is split (its own pmdp_invalidate flush) and the 512
    pieces migrate as base folios in one more pass; under migrc the read-only pieces are
    deferred as the patch defers small folios."""
    for engine, deferred, full in (("baseline", 0, 2), ("migrc", N, 1)):
        r = build(tmp_path, spin(4, 3000), engine=engine, sets=RO)
        fragment(r, 1)
        r.at(10_000, _demote_thp)
        t = r.run().totals
        assert t["thp_migration_fail"] == 1 and t["thp_migration_split"] == 1, engine
        assert t["thp_migration_success"] == 0 and t["pgmigrate_success"] == N, engine
        assert t["migrc_deferred_pages"] == deferred, engine
        # the split's flush, then (baseline) the pieces' batched flush
        assert t["nr_tlb_remote_flush"] == full, engine
        assert (r.machine.page_pmd[head(r):head(r) + N] == -1).all()
