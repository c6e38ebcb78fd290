"""The flushes the NUMA scanner adds (mm/mprotect.c change_pte_range, x86 pte_accessible).

- flush_tlb_batched_pending: after a batched unmap of the mm (mm->tlb_flush_batched), the
  scan's first PTE table brings a full flush_tlb_mm() with freed_tables, so lazy CPUs get
  the IPI too (and leave mm_cpumask until they switch back);
- mm->tlb_flush_pending: while the scan's mmu_gathers run (its PTE walk costs time on the
  scanning CPU), a PROT_NONE PTE is accessible: a promotion that races the scan joins the
  unmap batch -- baseline flushes, migrc defers when the folio is clean.

Set-up as in test_tiering_scenarios: 32 DRAM pages, threads spinning on their own DRAM
pages, the scanner driven by hand.
"""

from __future__ import annotations

from scenario_util import build, demote, heap_addr, heap_layout, spin

RO = ['memory.initial_pte="readonly-clean"']


def demote_then_scan(tmp_path):
    """Thread 3 finishes at once (its CPU idles lazily); CPU 0 demotes 2 writable folios at
    10 us and scans at 20 us. Returns the replay and its totals."""
    recs = spin(4, 3000)
    recs[3] = recs[3][:5]
    r = build(tmp_path, recs, heap_pages=20)
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    r.at(10_000, lambda rr: demote(rr, 0, range(0, 2)))
    r.at(20_000, lambda rr: rr.tiering.numa_scan())
    return r, r.run().totals


def test_scan_after_a_batched_unmap_flushes_the_whole_mm(tmp_path):
    """The demotion of 2 writable folios from CPU 0 is one batched flush: IPIs to CPUs 1 and
    2, a local full flush. The scan (on CPU 0) first finds mm->tlb_flush_batched behind:
    flush_tlb_mm, IPIs to 1, 2 and the lazy 3 (which leaves the mask), a local full flush;
    then its own range flush of the 10 slow-tier PTEs (span 10) goes to CPUs 1 and 2 only."""
    r, t = demote_then_scan(tmp_path)
    assert t["pgdemote_kswapd"] == 2 and t["numa_pte_updates"] == 10 + 2
    assert t["nr_tlb_remote_flush"] == 3
    assert t["nr_tlb_remote_flush_received"] == 2 + 3 + 2
    assert t["nr_tlb_local_flush_all"] == 2
    assert t["nr_tlb_local_flush_one"] == 20     # the scan's 12 PTEs span heap pages 0-19
    assert not r.machine.mm_cpumask[3]           # the lazy CPU switched to init_mm


def test_migrc_still_counts_its_deferred_unmaps_in_tlb_flush_batched(tmp_path):
    """migrc defers the demotion's flush, but set_tlb_ubc_flush_pending still counted it:
    the scan's flush_tlb_mm comes anyway -- and, not being a batched flush, releases
    nothing that migrc holds."""
    r = build(tmp_path, spin(4, 3000), heap_pages=20, sets=RO, engine="migrc")
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    r.at(10_000, lambda rr: demote(rr, 0, range(0, 2)))
    r.at(20_000, lambda rr: rr.tiering.numa_scan())
    t = r.run().totals
    assert t["migrc_deferred_pages"] == 2
    assert t["nr_tlb_remote_flush"] == 2         # flush_tlb_mm, then the scan's range flush
    assert t["nr_tlb_local_flush_all"] == 1
    assert t["migrc_released_pages"] == 0 and len(r.engine.migrc_folios) == 2


def _race(tmp_path, engine, at, sets=()):
    """CPU 0 scans at 5 us, walking 22 present PTEs (2 spin pages, 20 heap pages of which 10
    on CXL) at 2 us each: the mmu_gather window runs from 5 us to about 50 us on CPU 0's
    clock. CPU 1 (4000 loads of about 27 ns) reads CXL page 12 (hot, DRAM has room) at
    ``at`` of its run, and stores to it a tenth of the run later."""
    r = build(tmp_path, spin(2, 4000, {1: [(at, 1, heap_addr(12)), (at + 0.1, 2, heap_addr(12))]}),
              heap_pages=20, sets=['cost.pte_update="2us"', *sets], engine=engine)
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    r.at(5_000, lambda rr: rr.tiering.numa_scan())
    res = r.run().totals
    return r, res


def test_promotion_racing_the_scan_is_flushed_by_baseline(tmp_path):
    r, t = _race(tmp_path, "baseline", 0.15)
    t0, t1 = r.flush.pending_windows[0]
    assert t1 - t0 >= 22 * 2000
    assert t["pgpromote_success"] == 1
    # the scan's range flush, then the promotion's batched flush from CPU 1
    assert t["nr_tlb_remote_flush"] == 2 and t["nr_tlb_remote_flush_received"] == 2
    assert t["nr_tlb_local_flush_all"] == 1


def test_promotion_racing_the_scan_is_deferred_by_migrc_when_clean(tmp_path):
    r, t = _race(tmp_path, "migrc", 0.15, RO)
    assert t["pgpromote_success"] == 1 and t["migrc_deferred_pages"] == 1
    # only the scan's flush until CPU 1's store: a write-protect fault, so migrc flushes
    assert t["migrc_flush_wp_fault"] == 1
    assert t["nr_tlb_remote_flush"] == 2 and t["nr_tlb_local_flush_all"] == 1


def test_promotion_racing_the_scan_of_a_dirty_folio_is_flushed_by_migrc(tmp_path):
    r, t = _race(tmp_path, "migrc", 0.15)  # writable-dirty: PROT_NONE keeps the dirty bit
    assert t["pgpromote_success"] == 1 and t["migrc_deferred_pages"] == 0
    assert t["nr_tlb_remote_flush"] == 2 and t["nr_tlb_local_flush_all"] == 1


def test_promotion_after_the_scan_needs_no_flush(tmp_path):
    """The same read after the window: the PROT_NONE PTE is inaccessible (4d4b6d66db)."""
    r, t = _race(tmp_path, "baseline", 0.7)
    assert t["pgpromote_success"] == 1
    assert t["nr_tlb_remote_flush"] == 1 and t["nr_tlb_local_flush_all"] == 0
