"""The compiled replay core against the pure-Python reference model, counter for counter.

Random small traces (threads, loads, stores, modifies, fetches, page-crossing accesses,
first touches, runs of accesses to one page), random TLB geometries, quanta, PTI and ceiling
settings, placements, traces with and without regions, and random scheduled flushes and PTE
changes (including flush_tlb_batched_pending after batched unmaps, page-table-freeing flushes
that reach lazy CPUs, and change_protection with its PTE cost), with the trace reader thread on
or off. Every counter and every CPU clock must be identical.

The reference model has no same-page filter (kernel.py): each lookup scans its set. The
directed tests below put each kind of invalidation between two uses of one page on one CPU —
a per-page flush, a full flush, a write-protect flush, flush_tlb_mm, flush_tlb_batched_pending,
mprotect, the drop of a read-only translation on a store, kernel text evicting the entry —
where a filter that kept its page would hit.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest

from migrc_bench.config import load_config
from migrc_bench.model.counters import COUNTERS, SOURCE_FIGURES
from migrc_bench.model.reference import Event, ReferenceModel
from migrc_bench.model.replay import Replay
from migrc_bench.model.scenario import schedule
from migrc_bench.trace.native import Region, TraceMeta, write_trace
from migrc_bench.trace.processes import FileMapping, Process

CODE = 0x400000
HEAP = 0x10000000
ANON = 0x20000000
HEAP_PAGES = 12
CODE_PAGES = 2
KINDS = ["range", "full", "batch", "wrprotect", "unmap", "batched", "pending", "mm", "mprotect"]
COMPARED_FIGURES = ("global_asids", "tlb_ipis_global_asid", *SOURCE_FIGURES)
REGIONS = (Region(CODE, CODE + CODE_PAGES * 4096, "code", False, True),
           Region(HEAP, HEAP + HEAP_PAGES * 4096, "heap", True, False))
FILE = 0x30000000
FILE_PAGES = 3
# with several processes each maps file "f" here: the same page-cache pages (one frame each)
WITH_FILE = REGIONS + (Region(FILE, FILE + FILE_PAGES * 4096, "file", True, False,
                              file=FileMapping("f", 4096)),)


@st.composite
def records(draw, file: bool = False):
    op = draw(st.integers(0, 3))
    if op == 0:
        page = draw(st.integers(0, CODE_PAGES - 1))
        return 0, CODE + page * 4096 + draw(st.integers(0, 4095)) // 4 * 4, 4
    base = draw(st.sampled_from([HEAP, HEAP, HEAP, ANON] + ([FILE, FILE] if file else [])))
    if base == FILE:
        return op, FILE + draw(st.integers(0, FILE_PAGES - 1)) * 4096 + 64, 8
    page = draw(st.integers(0, HEAP_PAGES - 1 if base == HEAP else 3))
    offset = draw(st.sampled_from([0, 64, 2048, 4092]))
    size = draw(st.sampled_from([1, 4, 8]))
    addr = base + page * 4096 + offset
    if base == HEAP and addr + size > HEAP + HEAP_PAGES * 4096:
        size = 1
    return op, addr, size


def all_vpns():
    return ([(CODE >> 12) + i for i in range(CODE_PAGES)] + [(HEAP >> 12) + i for i in range(HEAP_PAGES)]
            + [(ANON >> 12) + i for i in range(4)] + [(FILE >> 12) + i for i in range(FILE_PAGES)])


@st.composite
def runs(draw, file: bool = False):
    """A record repeated: successive accesses to one page (the same-page filter's case)."""
    return [draw(records(file))] * draw(st.sampled_from([1, 1, 1, 2, 5]))


def machine_sets(draw, ncpu: int, dram_kib: list[int], cxl_kib: int) -> list[str]:
    """Random small TLBs, quanta, PTI, ceiling, memory sizes, start states and costs."""
    itlb_ways = draw(st.sampled_from([1, 2]))
    stlb = draw(st.sampled_from([(8, 2), (16, 4), (4, 4)]))
    return [
        f"machine.ncpu={ncpu}",
        f"tlb.itlb_entries={2 * itlb_ways}", f"tlb.itlb_ways={itlb_ways}",
        "tlb.dtlb_entries=4", f"tlb.dtlb_ways={draw(st.sampled_from([1, 2, 4]))}",
        f"tlb.stlb_entries={stlb[0]}", f"tlb.stlb_ways={stlb[1]}",
        f"tlb.pti={'true' if draw(st.booleans()) else 'false'}",
        f"tlb.kernel_text_pages={draw(st.integers(0, 2))}",
        f"tlb.kernel_text_pool={draw(st.sampled_from([0, 3, 5]))}",
        f"tlb.single_page_flush_ceiling={draw(st.sampled_from([0, 1, 2, 33]))}",
        f"replay.quantum={draw(st.sampled_from([30, 100, 400, 5000]))}",
        f'memory.dram="{draw(st.sampled_from(dram_kib))}KiB"',
        f'memory.cxl="{cxl_kib}KiB"', "memory.min_free_kbytes=8",
        f'memory.initial_pte="{draw(st.sampled_from(["writable-dirty", "writable-clean", "readonly-clean", "steady-state"]))}"',
        f'memory.placement="{draw(st.sampled_from(["first-touch", "interleave", "hot"]))}"',
        f'cost.preset="{draw(st.sampled_from(["bare-metal", "kvm-guest"]))}"',
        f"replay.reader_thread={'true' if draw(st.booleans()) else 'false'}",
    ]


@st.composite
def scenarios(draw):
    threads = draw(st.integers(1, 3))
    ncpu = draw(st.integers(threads, 4))
    traces = [[r for run in draw(st.lists(runs(), min_size=0 if t else 1, max_size=60)) for r in run]
              for t in range(threads)]
    sets = machine_sets(draw, ncpu, [16, 24, 64], 256)
    vpns = all_vpns()
    events = draw(st.lists(st.builds(
        lambda t, kind, cpu, pages, mask: Event(float(t), kind, cpu % ncpu, tuple(pages),
                                                tuple(mask[:ncpu])),
        st.integers(0, 6000), st.sampled_from(KINDS),
        st.integers(0, 3), st.lists(st.sampled_from(vpns), min_size=1, max_size=5, unique=True),
        st.lists(st.booleans(), min_size=4, max_size=4)), max_size=8))
    regions = draw(st.sampled_from([REGIONS, REGIONS, ()]))  # () : VMAs and pages from the pre-pass
    return ncpu, traces, sets, events, regions


def v2_meta(nthreads: int, thread_mm: list[int] | None, regions=REGIONS) -> TraceMeta:
    """Version 1 (one process), or version 2 with process k (pid 100 + k) owning the threads
    ``thread_mm`` gives it and a copy of ``regions`` each."""
    if thread_mm is None:
        return TraceMeta("test", nthreads, regions)
    nmm = max(thread_mm) + 1
    procs = tuple(Process(100 + k, tuple(t for t in range(nthreads) if thread_mm[t] == k))
                  for k in range(nmm))
    regs = tuple(dataclasses.replace(r, pid=100 + k) for k in range(nmm) for r in regions)
    return TraceMeta("test", nthreads, regs, processes=procs)


def run_fast(traces, sets, events, path: Path, regions=REGIONS, thread_mm=None, replay_out=None):
    tid = np.concatenate([np.full(len(t), i, np.uint16) for i, t in enumerate(traces)])
    rows = [r for t in traces for r in t]
    op = np.array([r[0] for r in rows], np.uint8)
    addr = np.array([r[1] for r in rows], np.uint64)
    size = np.array([r[2] for r in rows], np.uint8)
    pid = None
    if thread_mm is not None:
        pid = np.array([100 + thread_mm[t] for t in tid.tolist()], np.uint32)
    write_trace(path, v2_meta(len(traces), thread_mm, regions), tid, op, addr, size, pid)
    cfg = load_config(None, sets + ['trace.generate=""', "tiering.enabled=false"])
    replay = Replay(cfg, path)
    schedule(replay, events)
    result = replay.run()
    if replay_out is not None:
        replay_out.append(replay)
    return result, replay.machine.clock.tolist(), cfg


def run_reference(cfg, traces, events, regions=REGIONS, thread_mm=None):
    """The reference on the same trace: region pages in the fast model's first-touch order
    (code and stacks first, then the rest; each by process, then address)."""
    nmm = max(thread_mm) + 1 if thread_mm is not None else 1
    pages = []
    order = sorted(((r.kind not in ("code", "stack"), k, r.start, r) for k in range(nmm)
                    for r in regions), key=lambda x: x[:3])
    for _, k, _, r in order:
        first = r.start >> 12
        pages += [(k, v, r.writable, None if r.file is None else
                   (r.file.id, r.file.offset // 4096 + v - first))
                  for v in range(first, (r.end - 1 >> 12) + 1)]
    meta = v2_meta(len(traces), thread_mm, regions)
    anon = [(k, r.start >> 12, r.end >> 12, r.hugepage) for k in range(nmm) for r in regions
            if r.kind in ("heap", "anon", "stack") and r.file is None]
    ref = ReferenceModel(cfg, traces, pages, meta.footprint_bytes, events, thread_mm, anon)
    return ref.run()


def same_as_reference(traces, sets, events, regions=REGIONS, thread_mm=None):
    """Replay through both models; every counter and clock equal. Returns the totals."""
    with tempfile.TemporaryDirectory() as d:
        fast, clocks, cfg = run_fast(traces, sets, events, Path(d) / "t.parquet", regions,
                                     thread_mm)
    ref = run_reference(cfg, traces, events, regions, thread_mm)
    diffs = {c: (fast.totals[c], ref[c]) for c in COUNTERS + COMPARED_FIGURES
             if fast.totals[c] != ref[c]}
    assert not diffs, diffs
    assert clocks == ref["clocks"]
    return fast.totals


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fast_kernel_matches_reference(scenario):
    ncpu, traces, sets, events, regions = scenario
    same_as_reference(traces, sets, events, regions)


@st.composite
def several_processes(draw):
    """1-3 processes with more threads than CPUs (1-3 CPUs, up to 7 threads), slices short
    enough that tasks take turns, switch costs, random flushes naming a process, and a file
    every process maps (its pages one frame for all of them)."""
    nmm = draw(st.integers(1, 3))
    ncpu = draw(st.integers(1, 3))
    nthreads = draw(st.integers(max(nmm, ncpu + 1), 7))
    thread_mm = list(range(nmm)) + [draw(st.integers(0, nmm - 1)) for _ in range(nthreads - nmm)]
    traces = [[r for run in draw(st.lists(runs(True), min_size=1, max_size=40)) for r in run]
              for _ in range(nthreads)]
    sets = machine_sets(draw, ncpu, [24, 64, 128], 512) + [
        f'machine.sched_base_slice="{draw(st.sampled_from([50, 120, 300, 2000]))}ns"',
        f'machine.context_switch_cost="{draw(st.sampled_from([0, 15, 40]))}ns"']
    vpns = all_vpns()
    events = draw(st.lists(st.builds(
        lambda t, kind, cpu, pages, mask, mm: Event(float(t), kind, cpu % ncpu, tuple(pages),
                                                    tuple(mask[:ncpu]), mm % nmm),
        st.integers(0, 6000), st.sampled_from(KINDS),
        st.integers(0, 3), st.lists(st.sampled_from(vpns), min_size=1, max_size=5, unique=True),
        st.lists(st.booleans(), min_size=4, max_size=4), st.integers(0, 2)), max_size=10))
    return traces, sets, events, thread_mm


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(several_processes())
def test_several_processes_match_reference(scenario):
    """Several mms and more tasks than CPUs: run queues, slices, context switches, ASID slots,
    flushes of one mm; every counter and clock equal."""
    traces, sets, events, thread_mm = scenario
    same_as_reference(traces, sets, events, WITH_FILE, thread_mm)


@st.composite
def broadcast_machines(draw):
    """INVLPGB or RAR on 4-5 CPUs with 4-7 threads of 1-2 processes (more than 3 CPUs run
    an mm, so global ASIDs can be granted), jiffies from slow to a few ns, ranged flushes
    in chunks of 1-8 pages, ceilings that let a range pass RAR's 63-page limit."""
    nmm = draw(st.integers(1, 2))
    ncpu = draw(st.integers(4, 5))
    nthreads = draw(st.integers(ncpu, 7))
    thread_mm = [0] * (nthreads - nmm + 1) + list(range(1, nmm))
    thread_mm = draw(st.permutations(thread_mm))
    traces = [[r for run in draw(st.lists(runs(nmm > 1), min_size=30, max_size=60)) for r in run]
              for _ in range(nthreads)]
    # HZ 250 with time_scale 1: one jiffy over the whole run, in which task 0 (current->pid
    # 1000) passes consider_global_asid's gate; short jiffies make the gate come and go
    hz, time_scale = draw(st.sampled_from([(250, 1.0), (250, 1.0), (250, 1.0), (1000, 1e-3),
                                           (100_000, 1e-4), (250, 1e-4)]))
    sets = machine_sets(draw, ncpu, [128], 512) + [
        f'machine.flush="{draw(st.sampled_from(["invlpgb", "rar"]))}"',
        f"machine.hz={hz}", f"replay.time_scale={time_scale}",
        f"tlb.invlpgb_count_max={draw(st.sampled_from([1, 2, 8]))}",
        f"tlb.single_page_flush_ceiling={draw(st.sampled_from([2, 33, 100]))}",
        f"replay.quantum={draw(st.sampled_from([30, 100, 400]))}",
        f'machine.sched_base_slice="{draw(st.sampled_from([80, 300, 2000]))}ns"',
        'machine.context_switch_cost="15ns"',
    ]
    vpns = all_vpns()
    events = draw(st.lists(st.builds(
        lambda t, kind, cpu, pages, mask, mm: Event(float(t), kind, cpu % ncpu, tuple(pages),
                                                    tuple(mask[:ncpu]), mm % nmm),
        st.integers(0, 1500), st.sampled_from(KINDS + ["range", "range", "full"]),
        st.sampled_from([0, 0, 0, 1, 2, 3, 4]), st.lists(st.sampled_from(vpns), min_size=1, max_size=8, unique=True),
        st.lists(st.booleans(), min_size=5, max_size=5), st.integers(0, 1)), max_size=14))
    if draw(st.sampled_from([True, True, True, False])):  # an early IPI flush from task 0
        events = [Event(100.0, "full", 0)] + events
    return traces, sets, events, thread_mm if nmm > 1 else None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broadcast_machines())
def test_broadcast_mechanisms_match_reference(scenario):
    """INVLPGB and RAR: global ASIDs granted (pid/jiffies gate, active CPUs), CPUs moving onto
    them, transition IPIs, ranged and full broadcasts, batched flushes, the pool's first
    wrap-around flush; with two processes, a file both map; every counter, clock and
    global-ASID figure equal."""
    traces, sets, events, thread_mm = scenario
    same_as_reference(traces, sets, events, WITH_FILE if thread_mm else REGIONS, thread_mm)


ONE_CPU = ["machine.ncpu=1", "replay.quantum=50", 'memory.dram="64KiB"', 'memory.cxl="256KiB"',
           "memory.min_free_kbytes=8", 'memory.initial_pte="writable-dirty"',
           "tlb.kernel_text_pages=0"]
LOAD_A, STORE_A, FETCH = (1, HEAP, 8), (2, HEAP, 8), (0, CODE, 4)


PAGE_A = (HEAP >> 12,)
FLUSHES = {  # one invalidation of page A (or of the whole mm) on CPU 0 at 300 ns
    "range": [Event(300.0, "range", 0, PAGE_A, (True,))],
    "full": [Event(300.0, "full", 0, (), (True,))],
    "wrprotect": [Event(300.0, "wrprotect", 0, PAGE_A, (True,))],
    "flush_tlb_mm": [Event(300.0, "mm", 0, (), (True,))],
    # a batched unmap not yet seen: flush_tlb_batched_pending's flush_tlb_mm
    "batched_pending": [Event(100.0, "batched", 0), Event(300.0, "pending", 0)],
    "mprotect": [Event(300.0, "mprotect", 0, PAGE_A, (True,))],
}


@pytest.mark.parametrize("kind", sorted(FLUSHES))
def test_filter_sees_a_flush_between_two_uses(kind):
    """Loads of one page, flushed on their CPU half-way (one page, the whole mm, the page
    write-protected, flush_tlb_mm, flush_tlb_batched_pending after a batched unmap, mprotect):
    the first load after the flush walks (a filter that kept the page would hit, and count one
    walk fewer)."""
    t = same_as_reference([[LOAD_A] * 40 + [FETCH] * 40], ONE_CPU, FLUSHES[kind])
    assert t["dtlb_load_misses"] == 2 and t["dtlb_hits"] == 38
    assert t["itlb_misses"] == 1


def test_filter_sees_the_read_only_drop_of_a_store():
    """A store through the read-only translation of the last load drops it and faults; the
    retried store walks, and so does nothing else (the loads after it hit the new entry)."""
    t = same_as_reference([[LOAD_A, STORE_A, LOAD_A, STORE_A, LOAD_A]],
                          ONE_CPU[:-2] + ['memory.initial_pte="readonly-clean"',
                                          "tlb.kernel_text_pages=0"], [])
    assert t["pgfault"] == 1
    assert t["dtlb_load_misses"] == 1 and t["dtlb_store_misses"] == 1
    assert t["dtlb_hits"] == 4  # the faulting store's hit, then load, store, load


def test_filter_sees_kernel_text_evict_the_fetch_entry():
    """A one-set, two-way iTLB: the kernel text a first-touch fault fetches evicts the user
    page's entry, so the next fetch of that page misses the iTLB."""
    t = same_as_reference([[FETCH, FETCH, (2, ANON, 8), FETCH, FETCH]],
                          ONE_CPU[:-1] + ["tlb.kernel_text_pages=2", "tlb.kernel_text_pool=3",
                                          "tlb.itlb_entries=2", "tlb.itlb_ways=2", "tlb.pti=true"],
                          [])
    assert t["pgfault"] == 1
    assert t["itlb_l1_misses"] == 2 + 2  # the user page twice, the two kernel pages once


def test_reference_counts_something():
    """Guard against a vacuous comparison: the scenarios do exercise faults and flushes."""
    traces = [[(1, HEAP, 8), (2, HEAP + 4096, 8), (0, CODE, 4), (2, ANON, 8)] * 20,
              [(1, HEAP + 8192, 8), (3, HEAP, 8)] * 20]
    events = [Event(200.0, "wrprotect", 0, ((HEAP >> 12),)), Event(400.0, "full", 1),
              Event(600.0, "unmap", 0, ((ANON >> 12),))]
    sets = ["machine.ncpu=2", "replay.quantum=50", 'memory.dram="64KiB"', 'memory.cxl="256KiB"',
            "memory.min_free_kbytes=8", 'memory.initial_pte="writable-dirty"']
    with tempfile.TemporaryDirectory() as d:
        fast, clocks, cfg = run_fast(traces, sets, events, Path(d) / "t.parquet")
    ref = run_reference(cfg, traces, events)
    for name in ("pgfault", "nr_tlb_remote_flush", "nr_tlb_remote_flush_received",
                 "nr_tlb_local_flush_one", "dtlb_store_misses"):
        assert fast.totals[name] > 0, name
        assert fast.totals[name] == ref[name], name


def test_reference_covers_the_scanner_flushes():
    """flush_tlb_batched_pending and flush_tlb_mm reach a CPU whose thread has finished (lazy):
    both models count its IPI, drop it from mm_cpumask, and charge the PTE walk's cost."""
    traces = [[(1, HEAP, 8)] * 10, [(1, HEAP + 4096, 8), (2, HEAP + 8192, 8)] * 60]
    events = [Event(300.0, "batched", 0), Event(600.0, "mprotect", 1, ((HEAP >> 12) + 2,)),
              Event(900.0, "pending", 1), Event(1200.0, "batched", 1), Event(1500.0, "mm", 1),
              Event(1800.0, "pending", 1)]
    sets = ["machine.ncpu=2", "replay.quantum=50", 'memory.dram="64KiB"', 'memory.cxl="256KiB"',
            "memory.min_free_kbytes=8", 'memory.initial_pte="writable-dirty"', 'cost.pte_update="1us"']
    with tempfile.TemporaryDirectory() as d:
        fast, clocks, cfg = run_fast(traces, sets, events, Path(d) / "t.parquet")
    ref = run_reference(cfg, traces, events)
    # mprotect: one full flush_tlb_mm (CPU 0 finished: lazy, IPI'd, leaves the mask) and a
    # one-page range flush; "pending" then finds nothing new; "mm" flushes CPU 1 alone; the
    # last "pending" flushes CPU 1 again (the "batched" at 1200 is new)
    assert fast.totals["nr_tlb_remote_flush"] == ref["nr_tlb_remote_flush"] == 1
    assert fast.totals["nr_tlb_remote_flush_received"] == ref["nr_tlb_remote_flush_received"] == 1
    assert fast.totals["nr_tlb_local_flush_all"] == ref["nr_tlb_local_flush_all"] == 3
    assert fast.totals["nr_tlb_local_flush_one"] == ref["nr_tlb_local_flush_one"] == 1
    assert clocks == ref["clocks"]
