"""kswapd's reclaim as v6.7's balance_pgdat runs it (mm/vmscan.c), with exact counters.

A 128-page DRAM node (min 0, low 12, high 24, promo 36 with min_free_kbytes 8 and
watermark_scale_factor 1000), four threads spinning on their own DRAM pages (young), 120
idle heap pages, 4 pages free. space_scale 1/512: at priority p kswapd scans
(pages x 512) >> p of a list, i.e. an eighth of it at DEF_PRIORITY (12), a quarter at 11.
With 4 pages free (<= high) and the inactive list not low, file_is_tiny holds: SCAN_ANON,
the whole share on the anon lists.
"""

from __future__ import annotations

from migrc_bench.model.counters import C, T
from scenario_util import build, heap_layout, spin

SETS = ['memory.dram="512KiB"', "replay.space_scale=0.001953125"]


def _run(tmp_path, sets=SETS, heap=120, prepare=None):
    """kswapd woken at 5 us with every heap page on DRAM; each shrink_inactive_list call is
    recorded as (priority, folios asked for, folios demoted, pgmigrate_fail so far, folios
    on the active list)."""
    r = build(tmp_path, spin(4, 4000), heap_pages=heap, sets=list(sets))
    heap_layout(r, on_dram=range(0, heap), on_cxl=range(0))
    calls = []
    vm = r.tiering.vmscan
    shrink = vm.shrink_inactive_list

    def traced(n, sc, cpu):
        done = shrink(n, sc, cpu)
        calls.append((sc.priority, n, done, int(r.machine.counters[:, C["pgmigrate_fail"]].sum()),
                      r.tiering.lru.count(0, True)))
        return done

    vm.shrink_inactive_list = traced
    if prepare is not None:
        prepare(r)
    r.at(5_000, lambda rr: rr.tiering.kswapd())
    return r, r.run().totals, calls


def _spin_frames(r):
    return [int(r.machine.pte_pfn[p]) for p in range(4)]


def _referenced(r):
    """The spin pages as an earlier pass left them: PG_referenced set."""
    for f in _spin_frames(r):
        r.tiering.lru.referenced[f] = True


def test_priorities_scan_a_growing_share_and_check_the_balance_between_steps(tmp_path):
    """Priority 12: 124 x 512 >> 12 = 15 folios in one chunk: the 4 spin pages (at the tail,
    placed first) are referenced -- kept, PG_referenced set -- and 11 heap pages demoted.
    Not balanced (15 free <= promo 36), and 15 scanned < nr_to_reclaim = max(high 24, 32):
    priority 11, 113 x 512 >> 11 = 28 heap folios, all demoted. 43 free: balanced."""
    r, t, calls = _run(tmp_path)
    assert [c[:3] for c in calls] == [(12, 15, 11), (11, 28, 28)]
    assert t["pgdemote_kswapd"] == 39 and t["pgmigrate_success"] == 39
    assert t["nr_tlb_remote_flush"] == 2 and t["nr_tlb_remote_flush_received"] == 2 * 3
    lru = r.tiering.lru
    assert (lru.count(0, False), lru.count(0, True)) == (124 - 39, 0)
    assert all(lru.referenced[f] for f in _spin_frames(r))


def test_nr_to_reclaim_ends_a_step_and_keeps_the_priority(tmp_path):
    """SWAP_CLUSTER_MAX 8: nr_to_reclaim = max(24, 8) = 24. Priority 12 scans 15 (8 + 7: 4
    kept, 11 demoted); priority 11 wants 28 but stops after three chunks of 8 (24 reclaimed
    >= 24), and having scanned 24 >= nr_to_reclaim keeps priority 11 -- where the next
    balance check finds 39 free and ends."""
    r, t, calls = _run(tmp_path, [*SETS, "tiering.reclaim_chunk=8"])
    assert [c[:3] for c in calls] == [(12, 8, 4), (12, 7, 7), (11, 8, 8), (11, 8, 8), (11, 8, 8)]
    assert t["pgdemote_kswapd"] == 35 and t["nr_tlb_remote_flush"] == 5


def test_folio_referenced_twice_is_activated_then_aged_back(tmp_path):
    """The 32-page node (free 4; space_scale 1e-4: the whole 28-folio list at priority 12):
    the spin pages, young again and PG_referenced from an earlier pass, are activated; the
    24 heap pages are demoted. Then the active list (4) outweighs the inactive one (0 x
    ratio 1 < 4: inactive_is_low), so shrink_lruvec ends with shrink_active_list: every
    active anon folio goes back to the inactive list, its young bit cleared."""
    r, t, calls = _run(tmp_path, [], heap=24, prepare=_referenced)
    assert [c[:3] for c in calls] == [(12, 28, 24)]
    lru = r.tiering.lru
    assert (lru.count(0, False), lru.count(0, True)) == (4, 0)
    assert not any(lru.active[f] for f in _spin_frames(r))


def test_kswapd_pays_per_folio_in_either_list(tmp_path):
    """lru_scan per folio that folio_check_references or folio_referenced looks at: 28 on
    the inactive list, then the 4 activated ones once more in shrink_active_list (the pass
    the single-list model used to charge as a stand-in)."""
    r0, t0, _ = _run(tmp_path / "a", ['cost.lru_scan="0ns"'], heap=24, prepare=_referenced)
    r1, t1, _ = _run(tmp_path / "b", ['cost.lru_scan="1us"'], heap=24, prepare=_referenced)
    assert t0["pgdemote_kswapd"] == t1["pgdemote_kswapd"] == 24
    extra = r1.machine.times[0, T["fault"]] - r0.machine.times[0, T["fault"]]
    assert abs(extra - (28 + 4) * 1000.0) < 1e-6


def test_failed_demotion_stops_the_batch_and_is_activated(tmp_path):
    """The CXL node has 5 pages above its min watermark: the first chunk (15: 4 kept, 11 to
    demote) meets -ENOMEM at its 6th destination; migrate_pages stops there and counts that
    one failure; the 6 folios not demoted are activated (no swap to fall back on)."""

    def fill_cxl(r):
        cxl = r.machine.nodes[1]
        cxl.free.pop(cxl.nr_free - cxl.wmark.min - 5)

    r, t, calls = _run(tmp_path, prepare=fill_cxl)
    assert calls[0] == (12, 15, 5, 1, 6)


def test_scan_balance_and_list_ratio(tmp_path):
    """get_scan_count with DRAM above high (file_is_tiny false): SCAN_FRACT against the empty
    file LRU, ap = 60 (T + 1) / (A + 1), fp = 140 (T + 1) / (F + 1) with A, F, T the anon,
    file and total costs doubled as the kernel does; inactive_is_low's ratio from the real
    machine's GiB: int_sqrt(10 x GiB)."""
    from migrc_bench.model.vmscan import ScanControl

    r = build(tmp_path, spin(4, 10), heap_pages=90, sets=SETS)
    heap_layout(r, on_dram=range(0, 90), on_cxl=range(0))
    vm = r.tiering.vmscan
    sc = ScanControl(nr_to_reclaim=32, kswapd=True)
    vm.prepare_scan_control(sc)
    assert not sc.file_is_tiny  # 34 free > high 24
    assert vm.get_scan_count(sc) == ((94 * 512 >> 12) * 60 // 200, 0) == (3, 0)
    vm.anon_cost = 100
    vm.prepare_scan_control(sc)
    ap, fp = 60 * 301 // 201, 140 * 301 // 101
    assert vm.get_scan_count(sc) == ((94 * 512 >> 12) * ap // (ap + fp), 0) == (1, 0)
    # 30 inactive, 64 active: 94 pages x 512 < 1 GiB, ratio 1: low; x 4096 (space_scale
    # 1/4096) = 1.5 GiB, ratio int_sqrt(10) = 3: 90 >= 64, not low
    lru = r.tiering.lru
    for f in lru.isolate(0, False, 64):
        lru.active[f] = True
        lru.add(f, 0)
    assert (lru.count(0, False), lru.count(0, True)) == (30, 64)
    assert vm.inactive_is_low()
    vm.space_scale = 1 / 4096
    assert not vm.inactive_is_low()


def test_a_hopeless_kswapd_sleeps_and_is_not_woken_until_reclaim_succeeds(tmp_path):
    """No demotion target (the CXL node at its min watermark) and no swap: every chunk's
    migrate_pages meets -ENOMEM at its first folio. One balance_pgdat walks priorities 12 to
    1 with 23 shrink_inactive_list calls and reclaims nothing: kswapd_failures + 1
    (balance_pgdat). prepare_kswapd_sleep lets the unbalanced node sleep only once it is
    hopeless, at MAX_RECLAIM_RETRIES (16) runs: 16 x 23 = 368 failed migrations. The wake-ups
    at 400 and 800 us find it hopeless (wakeup_kswapd returns). Then a demotion target frees
    up and direct reclaim succeeds (SWAP_CLUSTER_MAX folios): shrink_node resets
    kswapd_failures, and once allocations take the node below promo again, the next wake-up
    at 950 us runs kswapd."""
    sets = ['memory.dram="512KiB"', "replay.space_scale=0.001953125", 'cost.lru_scan="10ns"']
    r = build(tmp_path, spin(4, 40000), heap_pages=120, sets=sets)
    heap_layout(r, on_dram=range(0, 120), on_cxl=range(0))
    cxl = r.machine.nodes[1]
    taken = [int(f) for f in cxl.free.pop(cxl.nr_free - cxl.wmark.min)]
    vm, tiering = r.tiering.vmscan, r.tiering
    seen = {}

    def wake(at):
        def fn(rr):
            tiering.wake_kswapd(0, 0)
            seen[at] = (tiering.kswapd_runs, tiering.kswapd_pending, vm.kswapd_failures,
                        int(rr.machine.counters[:, C["pgmigrate_fail"]].sum()))
        r.at(at, fn)

    def revive(rr):
        for f in reversed(taken):
            cxl.free.push_head(f)
        tiering.direct_reclaim(1)
        dram = rr.machine.nodes[0]
        seen["direct"] = (vm.kswapd_failures, dram.nr_free)
        dram.free.pop(dram.nr_free - dram.wmark.high)  # taken by allocations: below promo

    for at in (5_000, 400_000, 800_000):
        wake(at)
    r.at(900_000, revive)
    wake(950_000)
    t = r.run().totals
    assert seen[5_000] == (0, True, 0, 0)
    assert seen[400_000] == seen[800_000] == (1, False, 16, 368)
    assert seen["direct"] == (0, 4 + 48)  # at least SWAP_CLUSTER_MAX, in whole chunks
    assert seen[950_000][:3] == (1, True, 0)
    assert tiering.kswapd_runs == 2
    assert t["pgdemote_kswapd"] > 0 and t["pgdemote_direct"] > 0
