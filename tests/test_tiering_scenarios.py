"""Hand-worked tiering sequences on tiny machines, with exact counter values.

Set-up (scenario_util): 32 DRAM pages (low 3, high 6, promo 9), 256 CXL pages; each thread
spins on its own DRAM page; heap pages are arranged on nodes before the run; the NUMA
scanner is driven by hand (scan_delay is 1000 s).
"""

from __future__ import annotations

from scenario_util import K, build, heap_addr, heap_layout, node_of, pte, spin


def scan_at(replay, t_ns: float) -> None:
    replay.at(t_ns, lambda r: r.tiering.numa_scan())


def test_scan_below_ceiling_is_a_partial_flush(tmp_path):
    """10 slow-tier PTEs, span 10 <= 33: per-page invalidation on both CPUs."""
    r = build(tmp_path, spin(2, 2000), heap_pages=20)
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    scan_at(r, 5_000)
    t = r.run().totals
    assert t["numa_pte_updates"] == 10          # only the CXL pages (mode 2 skips top tier)
    assert t["nr_tlb_remote_flush"] == 1        # initiator CPU 0, CPU 1 in mm_cpumask
    assert t["nr_tlb_remote_flush_received"] == 1
    assert t["nr_tlb_local_flush_one"] == 10    # the span, counted by the initiator
    assert t["nr_tlb_local_flush_all"] == 0
    assert t["itlb_flush"] == 2 * 10 * 2        # 2 CPUs x 10 pages x 2 PCIDs (PTI)


def test_scan_above_ceiling_is_a_full_flush(tmp_path):
    """40 slow-tier PTEs, span 40 > 33: one full flush on each CPU."""
    r = build(tmp_path, spin(2, 2000), heap_pages=40)
    heap_layout(r, on_dram=range(0), on_cxl=range(0, 40))
    scan_at(r, 5_000)
    t = r.run().totals
    assert t["numa_pte_updates"] == 40
    assert t["nr_tlb_remote_flush"] == 1
    assert t["nr_tlb_remote_flush_received"] == 1
    assert t["nr_tlb_local_flush_all"] == 1
    assert t["nr_tlb_local_flush_one"] == 0
    assert t["itlb_flush"] == 2 * 2


def test_ceiling_is_a_knob(tmp_path):
    r = build(tmp_path, spin(2, 2000), heap_pages=20, sets=["tlb.single_page_flush_ceiling=5"])
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    scan_at(r, 5_000)
    t = r.run().totals
    assert (t["nr_tlb_local_flush_all"], t["nr_tlb_local_flush_one"]) == (1, 0)


def test_hint_fault_promotes_without_any_flush(tmp_path):
    """CPU 1 touches a scanned CXL page: promoted (DRAM has room), no flush beyond the scan's."""
    r = build(tmp_path, spin(2, 2000, {1: [(0.5, 1, heap_addr(12)), (0.75, 2, heap_addr(12))]}),
              heap_pages=20)
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    scan_at(r, 5_000)
    t = r.run().totals
    assert t["numa_hint_faults"] == 1 and t["numa_hint_faults_local"] == 0
    assert t["pgpromote_candidate"] == 1
    assert t["pgpromote_success"] == 1 and t["numa_pages_migrated"] == 1
    assert t["pgmigrate_success"] == 1
    assert node_of(r, 12) == 0
    # only the scan flushed: one remote flush, one IPI received
    assert (t["nr_tlb_remote_flush"], t["nr_tlb_remote_flush_received"]) == (1, 1)
    # the promoted PTE came from a PROT_NONE migration entry: read-only, so the store
    # afterwards is a write-protect fault (hint fault + wp fault = 2 faults)
    assert t["pgfault"] == 2
    assert pte(r, 12) & K.PTE_WRITE


def test_migration_entry_ad_carries_young_and_dirty(tmp_path):
    for ad, expect_young in ((False, 0), (True, K.PTE_YOUNG)):
        d = tmp_path / str(ad)
        d.mkdir()
        r = build(d, spin(2, 2000, {1: [(0.5, 1, heap_addr(12))]}), heap_pages=20,
                  sets=[f"tiering.migration_entry_ad={'true' if ad else 'false'}"])
        heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
        scan_at(r, 5_000)
        r.run()
        # the scan left young clear on an untouched page; the hint fault restores nothing
        assert pte(r, 12) & K.PTE_PRESENT
        assert not pte(r, 12) & K.PTE_WRITE
        assert pte(r, 12) & K.PTE_DIRTY == (K.PTE_DIRTY if ad else 0)


def test_demotion_chunk_is_one_batched_flush(tmp_path):
    """kswapd on CPU 0 demotes the 24 idle DRAM pages of one 28-folio chunk: one flush,
    IPIs to the 3 other CPUs (CPU 0 itself is lazy while kswapd runs)."""
    r = build(tmp_path, spin(4, 2000), heap_pages=24)  # 4 spin pages + 24 heap on DRAM: free 4
    r.at(5_000, lambda rr: rr.tiering.kswapd())
    t = r.run().totals
    assert t["pgdemote_kswapd"] == 24            # the spin pages are young: second chance
    assert t["pgmigrate_success"] == 24
    assert t["nr_tlb_remote_flush"] == 1
    assert t["nr_tlb_remote_flush_received"] == 3
    assert t["nr_tlb_local_flush_all"] == 0 and t["nr_tlb_local_flush_one"] == 0


def test_nobatch_demotion_flushes_every_pte(tmp_path):
    r = build(tmp_path, spin(4, 2000), heap_pages=24, engine="nobatch")
    r.at(5_000, lambda rr: rr.tiering.kswapd())
    t = r.run().totals
    assert t["pgdemote_kswapd"] == 24
    assert t["nr_tlb_remote_flush"] == 24
    assert t["nr_tlb_remote_flush_received"] == 24 * 3


def test_refused_promotion_wakes_kswapd(tmp_path):
    """DRAM free 4 <= high + 1: the promotion is refused, kswapd wakes and demotes."""
    r = build(tmp_path, spin(2, 2000, {1: [(0.5, 1, heap_addr(27))]}), heap_pages=30)
    heap_layout(r, on_dram=range(0, 26), on_cxl=range(26, 30))  # 2 + 26 on DRAM: free 4
    scan_at(r, 5_000)
    t = r.run().totals
    assert t["numa_hint_faults"] == 1
    assert t["pgpromote_candidate"] == 1 and t["pgpromote_success"] == 0
    assert node_of(r, 27) == 1
    assert pte(r, 27) & K.PTE_WRITE and not pte(r, 27) & K.PTE_PROTNONE  # restored in place
    assert t["pgdemote_kswapd"] == 26           # kswapd ran: the idle heap pages went down
    assert r.tiering.kswapd_runs == 1


def test_promotion_rate_limit(tmp_path):
    """10 MB/s scaled by 0.001 is 2.56 pages per 1 ms window: 2 promoted, then refused."""
    extra = {1: [(0.3 + 0.01 * i, 1, heap_addr(10 + i)) for i in range(5)]}
    r = build(tmp_path, spin(2, 2000, extra), heap_pages=20,
              sets=["tiering.promote_rate_limit_MBps=10", "replay.time_scale=0.001"])
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    scan_at(r, 5_000)
    t = r.run().totals
    assert t["numa_hint_faults"] == 5
    assert t["pgpromote_candidate"] == 5
    assert t["pgpromote_success"] == 2
    assert [node_of(r, 10 + i) for i in range(5)] == [0, 0, 1, 1, 1]


def test_hot_threshold_refuses_cold_pages(tmp_path):
    """Scaled threshold 1000 ms x 1e-6 = 1 us: a fault 20 us after the scan is not hot."""
    r = build(tmp_path, spin(2, 2000, {1: [(0.9, 1, heap_addr(12))]}), heap_pages=20,
              sets=["replay.time_scale=1e-6", 'tiering.scan_period_min="1e9s"'])
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    scan_at(r, 5_000)
    t = r.run().totals
    assert t["numa_hint_faults"] == 1
    assert t["pgpromote_candidate"] == 0 and t["pgpromote_success"] == 0
