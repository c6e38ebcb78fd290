"""The compiled replay core against the pure-Python reference model, counter for counter.

Random small traces (threads, loads, stores, modifies, fetches, page-crossing accesses,
first touches), random TLB geometries, quanta, PTI and ceiling settings, and random
scheduled flushes and PTE changes. Every counter and every CPU clock must be identical.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrc_bench.config import load_config
from migrc_bench.model.counters import COUNTERS
from migrc_bench.model.reference import Event, ReferenceModel
from migrc_bench.model.replay import Replay
from migrc_bench.model.scenario import schedule
from migrc_bench.trace.native import Region, TraceMeta, write_trace

CODE = 0x400000
HEAP = 0x10000000
ANON = 0x20000000
HEAP_PAGES = 12
CODE_PAGES = 2
REGIONS = (Region(CODE, CODE + CODE_PAGES * 4096, "code", False, True),
           Region(HEAP, HEAP + HEAP_PAGES * 4096, "heap", True, False))


@st.composite
def records(draw):
    op = draw(st.integers(0, 3))
    if op == 0:
        page = draw(st.integers(0, CODE_PAGES - 1))
        return 0, CODE + page * 4096 + draw(st.integers(0, 4095)) // 4 * 4, 4
    base = draw(st.sampled_from([HEAP, HEAP, HEAP, ANON]))
    page = draw(st.integers(0, HEAP_PAGES - 1 if base == HEAP else 3))
    offset = draw(st.sampled_from([0, 64, 2048, 4092]))
    size = draw(st.sampled_from([1, 4, 8]))
    addr = base + page * 4096 + offset
    if base == HEAP and addr + size > HEAP + HEAP_PAGES * 4096:
        size = 1
    return op, addr, size


def all_vpns():
    return ([(CODE >> 12) + i for i in range(CODE_PAGES)] + [(HEAP >> 12) + i for i in range(HEAP_PAGES)]
            + [(ANON >> 12) + i for i in range(4)])


@st.composite
def scenarios(draw):
    threads = draw(st.integers(1, 3))
    ncpu = draw(st.integers(threads, 4))
    traces = [draw(st.lists(records(), min_size=0 if t else 1, max_size=120)) for t in range(threads)]
    itlb_ways = draw(st.sampled_from([1, 2]))
    stlb = draw(st.sampled_from([(8, 2), (16, 4), (4, 4)]))
    sets = [
        f"machine.ncpu={ncpu}",
        f"tlb.itlb_entries={2 * itlb_ways}", f"tlb.itlb_ways={itlb_ways}",
        "tlb.dtlb_entries=4", f"tlb.dtlb_ways={draw(st.sampled_from([1, 2, 4]))}",
        f"tlb.stlb_entries={stlb[0]}", f"tlb.stlb_ways={stlb[1]}",
        f"tlb.pti={'true' if draw(st.booleans()) else 'false'}",
        f"tlb.kernel_text_pages={draw(st.integers(0, 2))}",
        f"tlb.kernel_text_pool={draw(st.sampled_from([0, 3, 5]))}",
        f"tlb.single_page_flush_ceiling={draw(st.sampled_from([0, 1, 2, 33]))}",
        f"replay.quantum={draw(st.sampled_from([30, 100, 400, 5000]))}",
        f'memory.dram="{draw(st.sampled_from([16, 24, 64]))}KiB"',
        'memory.cxl="256KiB"', "memory.min_free_kbytes=8",
        f'memory.initial_pte="{draw(st.sampled_from(["writable-dirty", "writable-clean", "readonly-clean", "steady-state"]))}"',
        f'memory.placement="{draw(st.sampled_from(["first-touch", "interleave", "hot"]))}"',
        f'cost.preset="{draw(st.sampled_from(["bare-metal", "kvm-guest"]))}"',
    ]
    vpns = all_vpns()
    events = draw(st.lists(st.builds(
        lambda t, kind, cpu, pages, mask: Event(float(t), kind, cpu % ncpu, tuple(pages),
                                                tuple(mask[:ncpu])),
        st.integers(0, 6000), st.sampled_from(["range", "full", "batch", "wrprotect", "unmap"]),
        st.integers(0, 3), st.lists(st.sampled_from(vpns), min_size=1, max_size=5, unique=True),
        st.lists(st.booleans(), min_size=4, max_size=4)), max_size=6))
    regions = draw(st.sampled_from([REGIONS, REGIONS, ()]))  # () : VMAs and pages from the pre-pass
    return ncpu, traces, sets, events, regions


def run_fast(traces, sets, events, path: Path, regions=REGIONS):
    tid = np.concatenate([np.full(len(t), i, np.uint16) for i, t in enumerate(traces)])
    rows = [r for t in traces for r in t]
    op = np.array([r[0] for r in rows], np.uint8)
    addr = np.array([r[1] for r in rows], np.uint64)
    size = np.array([r[2] for r in rows], np.uint8)
    write_trace(path, TraceMeta("test", len(traces), regions), tid, op, addr, size)
    cfg = load_config(None, sets + ['trace.generate=""', "tiering.enabled=false"])
    replay = Replay(cfg, path)
    schedule(replay, events)
    result = replay.run()
    return result, replay.machine.clock.tolist(), cfg


def run_reference(cfg, traces, events, regions=REGIONS):
    pages = []
    for r in sorted(regions, key=lambda r: r.start):
        pages += [(v, r.writable) for v in range(r.start >> 12, (r.end - 1 >> 12) + 1)]
    ref = ReferenceModel(cfg, traces, pages, TraceMeta("test", 1, regions).footprint_bytes, events)
    return ref.run()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fast_kernel_matches_reference(scenario):
    ncpu, traces, sets, events, regions = scenario
    with tempfile.TemporaryDirectory() as d:
        fast, clocks, cfg = run_fast(traces, sets, events, Path(d) / "t.parquet", regions)
    ref = run_reference(cfg, traces, events, regions)
    diffs = {c: (fast.totals[c], ref[c]) for c in COUNTERS if fast.totals[c] != ref[c]}
    assert not diffs, diffs
    assert clocks == ref["clocks"]


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
