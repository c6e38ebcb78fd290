"""Flush IPIs by the source that asked for the flush (run figures tlb_ipis_<source>, and
tlb_broadcasts_<source> for INVLPGB/RAR; model/flush.py flushing_for): hand-worked scenarios
where each source sends a known number of IPIs, and on the CI config the sources add up to
tlb_shootdown_irqs for every engine, in the results' Parquet and in compare's JSON.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from migrc_bench.cli.main import main
from migrc_bench.model import kernel as K
from migrc_bench.model.counters import FLUSH_SOURCES, RUN_FIGURES, SOURCE_FIGURES
from scenario_util import ANON, build, demote, heap_addr, heap_layout, spin
from test_file_reclaim import N as RECLAIM_N
from test_file_reclaim import _demote_then_shrink_node1
from test_scanner_flushes import demote_then_scan
from test_shared_file_pages import W1, W2, pid_of, replay, shared_trace

RO = ['memory.initial_pte="readonly-clean"']


def ipis(totals: dict) -> dict:
    """The non-zero tlb_ipis_<source> figures, after checking they add up."""
    by = {s: totals[f"tlb_ipis_{s}"] for s in FLUSH_SOURCES}
    assert sum(by.values()) == totals["tlb_shootdown_irqs"]
    return {s: n for s, n in by.items() if n}


def test_the_figures_are_run_figures_not_counters():
    from migrc_bench.model.counters import COUNTERS

    assert set(SOURCE_FIGURES) <= set(RUN_FIGURES) and not set(SOURCE_FIGURES) & set(COUNTERS)
    assert "tlb_ipis_numa_scan" in SOURCE_FIGURES and "tlb_broadcasts_reclaim" in SOURCE_FIGURES


def test_demotion_then_scan_batched_pending_then_scan_range(tmp_path):
    """test_scanner_flushes' first scenario: the demotion's batched flush IPIs CPUs 1 and 2;
    the scan's flush_tlb_batched_pending IPIs 1, 2 and the lazy 3; its range flush 1 and 2."""
    _, t = demote_then_scan(tmp_path)
    assert ipis(t) == {"demotion": 2, "batched_pending": 3, "numa_scan": 2}


def test_a_warm_up_leaves_out_the_sources_of_its_flushes(tmp_path):
    """The demotion at 10 us falls in the 500-access warm-up (about 14 us), the scan at 20 us
    after it: only the scan's IPIs are counted (every CPU runs: 3 each)."""
    r = build(tmp_path, spin(4, 3000), heap_pages=20, sets=["replay.warmup=500"])
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    r.at(10_000, lambda rr: demote(rr, 0, range(0, 2)))
    r.at(20_000, lambda rr: rr.tiering.numa_scan())
    t = r.run().totals
    assert ipis(t) == {"batched_pending": 3, "numa_scan": 3}
    assert int(r.flush.by_source.sum()) == 3 + 3 + 3  # the demotion's, before the warm-up's end


def test_a_promotion_racing_the_scan(tmp_path):
    """CPU 0's scan IPIs CPU 1; CPU 1's hint fault promotes the page (its PTE accessible while
    the scan's mmu_gather runs) and the promotion's batched flush IPIs CPU 0."""
    r = build(tmp_path, spin(2, 4000, {1: [(0.15, 1, heap_addr(12)), (0.25, 2, heap_addr(12))]}),
              heap_pages=20, sets=['cost.pte_update="2us"'])
    heap_layout(r, on_dram=range(0, 10), on_cxl=range(10, 20))
    r.at(5_000, lambda rr: rr.tiering.numa_scan())
    t = r.run().totals
    assert t["pgpromote_success"] == 1
    assert ipis(t) == {"numa_scan": 1, "promotion": 1}


def test_migrc_deferred_flush_at_a_wp_fault(tmp_path):
    """Five read-only demotions deferred (no IPI); thread 2's store is a wp fault that flushes
    migrc's pending CPUs 0, 1, 3 from CPU 2: three IPIs, migrc's."""
    r = build(tmp_path, spin(4, 3000, {2: [(0.6, 2, heap_addr(7))]}), heap_pages=10, sets=RO,
              engine="migrc")
    r.at(10_000, lambda rr: demote(rr, 0, range(0, 5)))
    t = r.run().totals
    assert t["migrc_flush_wp_fault"] == 1
    assert ipis(t) == {"migrc": 3}


def test_migrc_flush_at_an_allocation_inside_a_demotion_is_migrc_s(tmp_path):
    """The innermost source wins: DRAM full, 2 read-only pages held by migrc; thread 3's first
    touch fails the watermark and migrc flushes from CPU 3 (IPIs to 0, 1, 2)."""
    r = build(tmp_path, spin(4, 3000, {3: [(0.6, 2, ANON)]}), heap_pages=28, sets=RO,
              engine="migrc")
    heap_layout(r, on_dram=range(0, 28), on_cxl=range(0))
    r.at(10_000, lambda rr: demote(rr, 0, range(0, 2)))
    t = r.run().totals
    assert t["migrc_flush_alloc"] == 1
    assert ipis(t) == {"migrc": 3}


def test_luf_flush_when_a_tagged_page_is_reused(tmp_path):
    """test_migrc_scenarios' LUF case: a flush_batch of CPUs 1 and 2 driven by the scenario
    (source "other": no kernel path asked), then the reuse of a tagged frame by CPU 3 flushes
    the CPUs still owing, 0 (an IPI) and 3 (local)."""
    r = build(tmp_path, spin(4, 3000, {3: [(0.7, 2, ANON)]}), heap_pages=28, sets=RO,
              engine="luf")
    heap_layout(r, on_dram=range(0, 28), on_cxl=range(0))
    r.at(10_000, lambda rr: demote(rr, 0, range(0, 5)))
    r.at(20_000, lambda rr: rr.flush.flush_batch(0, np.array([False, True, True, False])))
    t = r.run().totals
    assert t["luf_alloc_flushes"] == 1
    assert ipis(t) == {"other": 2, "luf": 1}


@pytest.mark.parametrize("engine, expect", [("baseline", {"demotion": 1, "reclaim": 1}),
                                            ("luf", {})])
def test_reclaim_of_a_shared_file_page(tmp_path, engine, expect):
    """test_file_reclaim's scenario: CPU 0 demotes the page both mms map (the batch's mask is
    both mms' cpumasks: an IPI to CPU 1), then kswapd1 on CPU 0 reclaims it (again CPU 1).
    LUF defers both (the page is read-only and clean) and nothing reuses the frames."""
    r = replay(shared_trace(tmp_path / "t.parquet", n=RECLAIM_N), engine)
    m = r.machine
    seen = {"pids": (pid_of(r, 0, W1), pid_of(r, 1, W2))}
    _demote_then_shrink_node1(r, int(m.pte_pfn[seen["pids"][0]]), seen)
    t = r.run().totals
    assert seen["reclaimed"] == 1
    assert ipis(t) == expect


def test_pmd_referenced_flush_is_lru_aging(tmp_path):
    """folio_referenced on a young PMD: pmdp_clear_flush_young flushes 512 pages (above the
    ceiling: the whole mm) from CPU 0, an IPI to CPU 1."""
    from test_thp_migration import build as build_thp, thp_frame

    r = build_thp(tmp_path, spin(2, 3000))

    def age(rr):
        f = thp_frame(rr)
        rr.machine.pte_flags[int(rr.machine.frame_pid[f])] |= K.PTE_YOUNG
        assert rr.tiering.vmscan.pmd_referenced(f, 0)

    r.at(10_000, age)
    t = r.run().totals
    assert ipis(t) == {"referenced": 1}


@pytest.fixture(scope="module")
def ci_compare(tmp_path_factory):
    """The CI config (its own trace) through compare, four engines, JSON and Parquet."""
    out = tmp_path_factory.mktemp("ci-sources")
    return out


def test_sources_add_up_on_the_ci_config(ci_compare, capsys):
    code = main(["compare", "--config", "ci", "--engines", "baseline,migrc,luf,nobatch",
                 "--workers", "1", "-q", "--format", "json", "--out", str(ci_compare)])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    doc = json.loads(cap.out)
    rows = {row["counter"]: row["values"] for row in doc["rows"]}
    engines = ("baseline", "migrc", "luf", "nobatch")
    for e in engines:
        total = sum(rows[f"tlb_ipis_{s}"][e] for s in FLUSH_SOURCES)
        assert total == rows["tlb_shootdown_irqs"][e] > 0, e
        assert rows["tlb_ipis_numa_scan"][e] > 0 and rows["tlb_ipis_promotion"][e] >= 0
    assert rows["tlb_ipis_demotion"]["baseline"] > rows["tlb_ipis_demotion"]["luf"]
    assert rows["tlb_ipis_luf"]["baseline"] == 0 and rows["tlb_ipis_migrc"]["luf"] == 0
    runs = pd.read_parquet(ci_compare / "runs.parquet")
    assert set(SOURCE_FIGURES) <= set(runs.columns)
    for _, run in runs.iterrows():
        assert sum(int(run[f"tlb_ipis_{s}"]) for s in FLUSH_SOURCES) == int(run["tlb_shootdown_irqs"])
        assert all(int(run[f"tlb_broadcasts_{s}"]) == 0 for s in FLUSH_SOURCES)  # IPIs only


@pytest.mark.parametrize("mech", ["invlpgb", "rar"])
def test_broadcasts_by_source_and_the_reference_model(mech):
    """test_broadcast_flush's five CPUs: the granting IPI flush (4 IPIs) and the pool's reset
    (INVLPGB: one INVLPGB; RAR: one request to all) are scenario events ("other"); then
    flush_tlb_batched_pending after a batched unmap: one broadcast of the global-ASID mm,
    with the transition's IPIs to the 4 others; then a range flush, one broadcast, no IPI.
    The reference model counts the same, figure for figure."""
    from migrc_bench.model.reference import Event
    from test_broadcast_flush import GRANT, A, totals

    events = [GRANT, Event(6000.0, "batched", 0), Event(8000.0, "pending", 0),
              Event(10000.0, "range", 0, (A,))]
    t = totals(mech, events)
    assert ipis(t) == {"other": 4, "batched_pending": 4}
    got = {s: t[f"tlb_broadcasts_{s}"] for s in FLUSH_SOURCES if t[f"tlb_broadcasts_{s}"]}
    assert got == {"other": 2, "batched_pending": 1}
    assert sum(got.values()) == t["invlpgb_issued"] + t["rar_requests"]
