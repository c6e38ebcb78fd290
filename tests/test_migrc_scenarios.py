"""Hand-worked migrc v6 and LUF sequences with exact counters (K§3.2, K§3.3).

Heap pages start read-only and clean (as promoted pages are), so demotions are eligible.
Migrations are driven by hand at chosen times, like one kswapd chunk each.
"""

from __future__ import annotations

import numpy as np

from scenario_util import ANON, build, demote, frame_of, heap_addr, heap_layout, spin

RO = ['memory.initial_pte="readonly-clean"']


def held(r):
    return len(r.engine.migrc_folios)


def test_deferred_demotion_released_by_a_later_ordinary_flush(tmp_path):
    r = build(tmp_path, spin(4, 3000, {3: [(0.2, 2, ANON)]}), heap_pages=10, sets=RO,
              engine="migrc")
    log = {}

    def first(rr):
        demote(rr, 0, range(0, 5))  # five read-only, clean folios: all deferred
        log["after_first"] = (held(rr), rr.engine.migrc_ubc.sum(), rr.machine.nodes[0].pending,
                              int(rr.machine.counters[:, 13].sum()))

    def second(rr):
        # the anon page thread 3 stored to is writable: this chunk needs an ordinary flush
        m = rr.machine
        pid = int(m.pagemap.lookup(np.array([ANON >> 12]))[0])
        f = int(m.pte_pfn[pid])
        rr.tiering.lru.remove(0, f)
        rr.engine.migrate_pages(0, [f], "demotion", 1)

    r.at(10_000, first)
    r.at(40_000, second)
    t = r.run().totals
    assert log["after_first"] == (5, 4, 5, 0)  # held 5, all 4 CPUs pending, no remote flush yet
    assert t["migrc_deferred_pages"] == 5
    assert t["nr_tlb_remote_flush"] == 1        # only the ordinary flush of the second chunk
    assert t["nr_tlb_remote_flush_received"] == 3
    assert t["migrc_released_pages"] == 5       # its hook emptied the mask: all released
    assert held(r) == 0 and r.machine.nodes[0].pending == 0
    assert t["pgmigrate_success"] == 6


def test_write_protect_fault_forces_the_flush_and_frees_every_held_source(tmp_path):
    r = build(tmp_path, spin(4, 3000, {2: [(0.6, 2, heap_addr(7))]}), heap_pages=10, sets=RO,
              engine="migrc")
    r.at(10_000, lambda rr: demote(rr, 0, range(0, 5)))
    t = r.run().totals
    assert t["migrc_deferred_pages"] == 5
    assert t["migrc_flush_wp_fault"] == 1       # page 7 was never migrated: any folio flushes
    assert t["nr_tlb_remote_flush"] == 1 and t["nr_tlb_remote_flush_received"] == 3
    assert t["nr_tlb_local_flush_all"] == 1     # the faulting CPU is in the mask: local too
    assert t["migrc_released_pages"] == 5 and held(r) == 0


def _full_dram_first_touch(tmp_path, held: int):
    """DRAM full (4 spin + 28 heap pages), ``held`` read-only heap pages demoted and held by
    migrc at 10 us; thread 3 touches a new anonymous page later (a first-touch allocation)."""
    r = build(tmp_path, spin(4, 3000, {3: [(0.6, 2, ANON)]}), heap_pages=28, sets=RO,
              engine="migrc")
    heap_layout(r, on_dram=range(0, 28), on_cxl=range(0))
    r.at(10_000, lambda rr: demote(rr, 0, range(0, held)))
    return r, r.run().totals


def test_watermark_failure_with_pending_pages_flushes_them(tmp_path):
    """get_page_from_freelist (6/7): DRAM's low watermark check fails with 2 held pages, so
    migrc flushes and frees them and checks again -- with held pages counted as free, the
    second check sees the same 2 pages and fails too: the first touch falls back to CXL."""
    r, t = _full_dram_first_touch(tmp_path, 2)
    assert t["migrc_deferred_pages"] == 2
    assert t["migrc_flush_alloc"] == 1          # free 0 + pending 2 <= low 3: flush, check again
    assert t["migrc_released_pages"] == 2
    assert t["numa_hit"] == 0 and t["numa_miss"] == 1  # still 2 <= 3: the page is CXL's


def test_held_pages_alone_pass_the_watermark_but_give_no_page(tmp_path):
    """With 5 held pages DRAM passes its low watermark on held pages alone (free 0 + 5 > 3),
    so no flush: rmqueue finds nothing and the first touch takes the next node's page."""
    r, t = _full_dram_first_touch(tmp_path, 5)
    assert t["migrc_deferred_pages"] == 5
    assert t["migrc_flush_alloc"] == 0 and t["migrc_released_pages"] == 0
    assert t["numa_hit"] == 0 and t["numa_miss"] == 1


def test_pause_flushes_and_disables_migrc_until_it_ends(tmp_path):
    r = build(tmp_path, spin(4, 3000), heap_pages=10, sets=RO, engine="migrc")
    seen = {}

    def paused(rr):
        demote(rr, 0, range(0, 3))                 # deferred
        rr.engine.pause_begin(0)                   # __alloc_pages_slowpath before direct reclaim
        seen["released"] = int(rr.machine.counters[:, 36].sum())
        demote(rr, 0, range(3, 5))                 # during the pause: ordinary flush, no hold
        seen["held_in_pause"] = held(rr)
        rr.engine.pause_end(0)
        demote(rr, 0, range(5, 7))                 # deferred again
        seen["held_after"] = held(rr)

    r.at(10_000, paused)
    t = r.run().totals
    assert t["migrc_flush_pause"] == 1
    assert t["migrc_deferred_pages"] == 3 + 2
    assert seen["held_in_pause"] == 0 and seen["held_after"] == 2
    assert t["migrc_released_pages"] == 3


def test_race_rule_folds_pending_into_the_normal_batch(tmp_path):
    # a quick unmap (0.5 us of rmap work) so CPU 1 can publish inside CPU 0's flush window
    r = build(tmp_path, spin(4, 3000, {3: [(0.1, 2, ANON)]}), heap_pages=10,
              sets=RO + ["cost.migrate_page=500"], engine="migrc")

    def race(rr):
        m = rr.machine
        pid = int(m.pagemap.lookup(np.array([ANON >> 12]))[0])
        f = int(m.pte_pfn[pid])
        rr.tiering.lru.remove(0, f)
        rr.engine.migrate_pages(0, [f], "demotion", 1)  # a batched flush from CPU 0
        t0, t1 = rr.flush.batch_windows[-1]
        # CPU 1 unmaps one folio and publishes inside that window
        m.clock[1] = t0 + 100
        assert m.clock[1] + m.costs.migrate_page < t1
        demote(rr, 1, range(0, 1))

    r.at(20_000, race)
    t = r.run().totals
    assert t["migrc_flush_race"] == 1
    assert t["migrc_deferred_pages"] == 0               # nothing held: flushed right away
    assert t["nr_tlb_remote_flush"] == 2


def test_luf_page_reallocated_with_some_cpus_already_done(tmp_path):
    # DRAM full; LUF frees the 5 demoted sources at once (tagged) to the tail of DRAM's list
    r = build(tmp_path, spin(4, 3000, {3: [(0.7, 2, ANON)]}), heap_pages=28, sets=RO,
              engine="luf")
    heap_layout(r, on_dram=range(0, 28), on_cxl=range(0))
    src = {}

    def unmap(rr):
        src["frames"] = [frame_of(rr, p) for p in range(0, 5)]
        demote(rr, 0, range(0, 5))

    def partial_flush(rr):
        rr.flush.flush_batch(0, np.array([False, True, True, False]))  # CPUs 1 and 2 flush

    r.at(10_000, unmap)
    r.at(20_000, partial_flush)
    t = r.run().totals
    assert t["luf_tagged_pages"] == 5
    assert t["luf_alloc_flushes"] == 1            # the first tagged frame leaves the free list
    # owing CPUs after the diet: 0 and 3; CPU 3 allocates (local flush), CPU 0 gets an IPI
    assert t["nr_tlb_remote_flush"] == 2          # the partial flush + the allocation's
    assert t["nr_tlb_remote_flush_received"] == 2 + 1
    assert t["pgmigrate_success"] == 5
    assert int(r.machine.frame_node[src["frames"][0]]) == 0


def test_promotion_that_finds_only_held_pages_flushes_and_fails(tmp_path):
    """migrc v6 7/7 with a no-reclaim allocation: DRAM has no free page but 8 held ones, so
    migrate_balanced_pgdat (8 > high 6 + 1) lets the promotion try. Its destination passes
    the low and min watermarks on held pages alone and rmqueue finds nothing both times;
    the slow path then pauses migrc and flushes (freeing the 8), and -- the allocation may
    not reclaim -- fails: -ENOMEM, one pgmigrate_fail, the PTE restored in place."""
    r = build(tmp_path, spin(4, 3000, {1: [(0.5, 1, heap_addr(3))]}), heap_pages=28, sets=RO,
              engine="migrc")
    heap_layout(r, on_dram=range(0, 28), on_cxl=range(0))
    r.at(10_000, lambda rr: demote(rr, 0, range(0, 8)))
    r.at(20_000, lambda rr: rr.tiering.numa_scan())
    t = r.run().totals
    assert t["migrc_deferred_pages"] == 8
    assert t["numa_hint_faults"] == 1 and t["pgpromote_candidate"] == 1
    assert t["migrc_flush_pause"] == 1 and t["migrc_flush_alloc"] == 0
    assert t["migrc_released_pages"] == 8
    assert t["pgmigrate_fail"] == 1 and t["pgpromote_success"] == 0
    assert r.machine.nodes[0].nr_free == 8 and held(r) == 0
