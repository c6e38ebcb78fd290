"""THP (memory.thp): the compiled loop against the reference model on PMD-mapped memory.

A 2 MiB-aligned anonymous region of four PMDs plus a tail that is not PMD-mappable, placed so
that some PMDs straddle the DRAM/CXL boundary (those stay PTE-mapped), random thp modes and
madvise hints, small 2 MiB L1 arrays and STLBs (so 2 MiB and 4 KiB entries evict each other),
read-only starts (write faults on a PMD), and random flushes: range flushes of pages inside a
PMD (INVLPG drops the 2 MiB translation), full flushes, flush_tlb_mm, batches; PTE changes only
on 4 KiB pages. Every counter and every CPU clock must be identical.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import pytest

from migrc_bench.model.reference import Event
from migrc_bench.trace.native import Region

from test_reference_equivalence import (CODE, CODE_PAGES, HEAP, HEAP_PAGES, machine_sets,
                                        run_fast, same_as_reference)

BIG = 0x40000000  # 2 MiB-aligned
PMDS = 4
BIG_PAGES = PMDS * 512 + 40  # four PMD-mappable ranges and a 4 KiB tail
FLUSH_ONLY = ["range", "full", "batch", "batched", "pending", "mm"]
PTE_KINDS = ["wrprotect", "mprotect", "unmap"]


def thp_regions(hugepage: bool):
    return (Region(CODE, CODE + CODE_PAGES * 4096, "code", False, True),
            Region(HEAP, HEAP + HEAP_PAGES * 4096, "heap", True, False),
            Region(BIG, BIG + BIG_PAGES * 4096, "anon", True, False, hugepage=hugepage))


@st.composite
def thp_records(draw):
    op = draw(st.integers(0, 3))
    if op == 0:
        return 0, CODE + draw(st.integers(0, CODE_PAGES - 1)) * 4096, 4
    if draw(st.integers(0, 3)) == 0:
        return op, HEAP + draw(st.integers(0, HEAP_PAGES - 1)) * 4096 + 64, 8
    pmd = draw(st.integers(0, PMDS))  # PMDS: the tail
    page = draw(st.integers(0, 511 if pmd < PMDS else 39))
    # a few pages per PMD, so that lines repeat: the same-page filter and the 2 MiB hits
    page = draw(st.sampled_from([0, 1, page, 511 if pmd < PMDS else 39]))
    return op, BIG + (pmd * 512 + page) * 4096 + draw(st.sampled_from([0, 64, 4088])), 8


@st.composite
def thp_scenarios(draw):
    # a broadcast machine (INVLPGB or RAR) needs more than 3 CPUs running the mm for a
    # global ASID, whose ranged flushes drop 2 MiB entries too
    broadcast = draw(st.sampled_from([False, False, True]))
    threads = draw(st.integers(4, 5) if broadcast else st.integers(1, 3))
    ncpu = threads if broadcast else draw(st.integers(threads, 3))
    traces = [[r for _ in range(draw(st.integers(1 if t == 0 else 0, 50)))
               for r in [draw(thp_records())] * draw(st.sampled_from([1, 1, 3]))]
              for t in range(threads)]
    # DRAM of 1.2-9 MiB: some PMDs cross to CXL (PTE-mapped), some lie wholly on one node
    sets = machine_sets(draw, ncpu, [1200, 4000, 9000], 16384) + [
        f'memory.thp="{draw(st.sampled_from(["always", "always", "madvise", "never"]))}"',
        f"tlb.dtlb2m_entries={draw(st.sampled_from([2, 4]))}",
        f"tlb.dtlb2m_ways={draw(st.sampled_from([1, 2]))}",
        f"tlb.itlb2m_entries={draw(st.sampled_from([1, 2]))}", "tlb.itlb2m_ways=1"]
    if broadcast:
        sets += [f'machine.flush="{draw(st.sampled_from(["invlpgb", "rar"]))}"', "machine.hz=250",
                 "replay.time_scale=1.0",
                 f"tlb.invlpgb_count_max={draw(st.sampled_from([1, 8]))}"]
    big = [(BIG >> 12) + p for p in (0, 1, 511, 512, 1024, 2047, 2048, 2050)]
    small = [(HEAP >> 12) + i for i in range(HEAP_PAGES)]
    events = draw(st.lists(st.one_of(
        st.builds(lambda t, kind, cpu, pages, mask: Event(float(t), kind, cpu % ncpu,
                                                          tuple(pages), tuple(mask[:ncpu])),
                  st.integers(0, 6000), st.sampled_from(FLUSH_ONLY), st.integers(0, 3),
                  st.lists(st.sampled_from(big + small), min_size=1, max_size=5, unique=True),
                  st.lists(st.booleans(), min_size=5, max_size=5)),
        st.builds(lambda t, kind, cpu, pages: Event(float(t), kind, cpu % ncpu, tuple(pages)),
                  st.integers(0, 6000), st.sampled_from(PTE_KINDS), st.integers(0, 3),
                  st.lists(st.sampled_from(small), min_size=1, max_size=3, unique=True))),
        max_size=8))
    if broadcast:  # an early IPI flush from task 0: the global ASID's gate
        events = [Event(100.0, "full", 0)] + events
    return traces, sets, events, thp_regions(draw(st.booleans()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(thp_scenarios())
def test_thp_fast_kernel_matches_reference(scenario):
    traces, sets, events, regions = scenario
    same_as_reference(traces, sets, events, regions)


ONE_CPU = ["machine.ncpu=1", "replay.quantum=50", 'memory.dram="16MiB"', 'memory.cxl="16MiB"',
           "memory.min_free_kbytes=8", "tlb.kernel_text_pages=0", 'memory.thp="always"']


def test_one_pmd_is_one_translation():
    """Loads of 512 pages of one PMD: one walk (3/4 of a 4 KiB walk's cost), then every page
    hits the one 2 MiB dTLB entry; under thp=never the same loads walk 512 times."""
    loads = [[(1, BIG + p * 4096, 8) for p in range(512)]]
    regions = thp_regions(False)
    huge = same_as_reference(loads, ONE_CPU, [], regions)
    assert huge["dtlb_load_misses"] == 1 and huge["dtlb_hits"] == 511
    small = same_as_reference(loads, ONE_CPU[:-1], [], regions)
    assert small["dtlb_load_misses"] == 512
    with tempfile.TemporaryDirectory() as d:
        fast, _, _ = run_fast(loads, ONE_CPU + ['cost.preset="bare-metal"'], [],
                              Path(d) / "t.parquet", regions)
    assert fast.cpus[0]["stall_walk_s"] * 1e9 == pytest.approx(25.0 * 3 / 4)  # walk_ns 25


def test_madvise_maps_only_hinted_regions():
    loads = [[(1, BIG + p * 4096, 8) for p in range(0, 512, 8)]]
    sets = ONE_CPU[:-1] + ['memory.thp="madvise"']
    assert same_as_reference(loads, sets, [], thp_regions(False))["dtlb_load_misses"] == 64
    assert same_as_reference(loads, sets, [], thp_regions(True))["dtlb_load_misses"] == 1


def test_invlpg_inside_a_pmd_drops_the_2m_entry():
    """A range flush of one page in the middle of the PMD: the next load of any of its pages
    walks again."""
    loads = [[(1, BIG, 8)] * 20 + [(1, BIG + 300 * 4096, 8)] * 20]
    t = same_as_reference(loads, ONE_CPU, [Event(100.0, "range", 0, ((BIG >> 12) + 7,))],
                          thp_regions(False))
    assert t["dtlb_load_misses"] == 2 and t["nr_tlb_local_flush_one"] == 1


def test_write_fault_on_a_pmd_makes_it_all_writable():
    """Read-only PMD: the first store faults once (do_huge_pmd_wp_page), and stores to other
    pages of the PMD then need no fault."""
    stores = [[(2, BIG + p * 4096, 8) for p in (0, 5, 400, 511)]]
    t = same_as_reference(stores, ONE_CPU + ['memory.initial_pte="readonly-clean"'], [],
                          thp_regions(False))
    assert t["pgfault"] == 1 and t["dtlb_store_misses"] == 1


def test_broadcast_range_flush_drops_the_2m_entry():
    """INVLPGB and RAR: once the mm has a global ASID (granted after task 0's early IPI flush
    on 4 busy CPUs), a ranged broadcast of one page inside the PMD drops the 2 MiB entry on
    every CPU: the CPUs' next loads of the PMD walk again."""
    loads = [[(1, BIG + (t * 100 + i % 7) * 4096, 8) for i in range(400)] for t in range(4)]
    for mech in ("invlpgb", "rar"):
        sets = ["machine.ncpu=4", "replay.quantum=50", 'memory.dram="16MiB"',
                'memory.cxl="16MiB"', "memory.min_free_kbytes=8", "tlb.kernel_text_pages=0",
                'memory.thp="always"', f'machine.flush="{mech}"', "machine.hz=250",
                "replay.time_scale=1.0"]
        grant = [Event(100.0, "full", 0)]
        without = same_as_reference(loads, sets, grant, thp_regions(False))
        t = same_as_reference(loads, sets, grant + [Event(8000.0, "range", 1, ((BIG >> 12) + 3,))],
                              thp_regions(False))
        assert t["global_asids"] == 1, mech
        assert t["dtlb_load_misses"] > without["dtlb_load_misses"], mech


def test_broadcast_batch_flush_drops_the_2m_entries():
    """INVLPGB's batch flush is invlpgb_flush_all_nonglobals(): every CPU loses its 2 MiB
    entries too, in the reference model as in the compiled loop (the reference once kept
    them: its whole-TLB drop skipped the 2 MiB arrays)."""
    loads = [[(1, BIG + (t * 100 + i % 7) * 4096, 8) for i in range(400)] for t in range(4)]
    sets = ["machine.ncpu=4", "replay.quantum=50", 'memory.dram="16MiB"', 'memory.cxl="16MiB"',
            "memory.min_free_kbytes=8", "tlb.kernel_text_pages=0", 'memory.thp="always"',
            'machine.flush="invlpgb"', "machine.hz=250", "replay.time_scale=1.0"]
    grant = [Event(100.0, "full", 0)]
    without = same_as_reference(loads, sets, grant, thp_regions(False))
    t = same_as_reference(loads, sets, grant + [Event(8000.0, "batch", 1, ((BIG >> 12) + 3,),
                                                      (True,) * 4)], thp_regions(False))
    assert t["dtlb_load_misses"] >= without["dtlb_load_misses"] + 4
