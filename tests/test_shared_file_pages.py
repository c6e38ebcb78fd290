"""Shared file pages (issue 17 step 4): regions of several processes naming one file id map
the same page-cache pages. One frame for all the mappings; migrating it unmaps every mapping
(try_to_migrate's rmap walk), ORs each mapping's mm_cpumask into the batch, remaps them all,
and migrc defers it only if no mapping is writable or dirty; aging counts young mappings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from migrc_bench.config import load_config
from migrc_bench.engines.base import MR_DEMOTION
from migrc_bench.model import kernel as K
from migrc_bench.model.counters import C
from migrc_bench.model.machine import MM_SHIFT
from migrc_bench.model.replay import Replay
from migrc_bench.runner import make_engine
from migrc_bench.trace.native import Region, TraceMeta, write_trace
from migrc_bench.trace.processes import FileMapping, Process

HEAP, W1, W2 = 0x10000000, 0x7F0000000000, 0x7E0000000000
PAGES = 4


def shared_trace(path: Path, writable2: bool = False, n: int = 400) -> Path:
    """Process 1 (thread 0) maps file "w" at W1, process 2 (thread 1) at W2; each loads its
    mapping's pages over and over (``n`` loads each); with ``writable2`` process 2's mapping is writable (taken
    as MAP_SHARED: a store makes the page-cache page's PTE writable and dirty) and stores."""
    regions = (Region(HEAP, HEAP + 4096, "heap", True, False, pid=1),
               Region(W1, W1 + PAGES * 4096, "file", False, False, pid=1, file=FileMapping("w")),
               Region(HEAP, HEAP + 4096, "heap", True, False, pid=2),
               Region(W2, W2 + PAGES * 4096, "file", writable2, False, pid=2,
                      file=FileMapping("w")))
    tid = np.repeat(np.arange(2, dtype=np.uint16), n)
    page = np.tile(np.arange(n) % PAGES, 2)
    addr = np.where(tid == 0, W1, W2).astype(np.uint64) + (page * 4096).astype(np.uint64)
    meta = TraceMeta("t", 2, regions, processes=(Process(1, (0,)), Process(2, (1,))))
    op = np.where((tid == 1) & writable2, 2, 1).astype(np.uint8)
    return write_trace(path, meta, tid, op, addr, np.full(2 * n, 8, np.uint8),
                       np.where(tid == 0, 1, 2).astype(np.uint32))


def replay(path: Path, engine: str, check: bool = True) -> Replay:
    cfg = load_config(None, ['trace.generate=""', "machine.ncpu=2", 'memory.dram="1MiB"',
                             'memory.cxl="1MiB"', "memory.min_free_kbytes=8",
                             "tiering.numa_balancing=0", "tiering.demotion_enabled=false",
                             'memory.initial_pte="readonly-clean"', "replay.quantum=50",
                             f'engine="{engine}"'])
    return Replay(cfg, path, make_engine(cfg), check_invariants=check)


def pid_of(r: Replay, mm: int, addr: int) -> int:
    return int(r.machine.lookup_pages(np.array([(mm << MM_SHIFT) | addr >> 12]))[0])


def test_one_frame_for_every_mapping_of_a_file_page(tmp_path):
    r = replay(shared_trace(tmp_path / "t.parquet"), "baseline")
    m = r.machine
    for k in range(PAGES):
        a, b = pid_of(r, 0, W1 + k * 4096), pid_of(r, 1, W2 + k * 4096)
        assert a != b and m.pte_pfn[a] == m.pte_pfn[b] >= 0
        assert m.mappings(int(m.pte_pfn[a])) == [a, b]
    used = int(np.count_nonzero(m.frame_state != 0)) - len(m.kernel_pids)
    assert used == 2 + PAGES  # two heaps, the file's pages once


@pytest.mark.parametrize("engine,writable2", [("baseline", False), ("migrc", False),
                                              ("migrc", True)])
def test_migrating_a_shared_page_unmaps_and_remaps_every_mapping(tmp_path, engine, writable2):
    """Both CPUs cache the page (one per mm); CPU 0 demotes it at 2 us. Baseline: one batched
    flush on the union of the two mms' cpumasks (CPU 1 gets the IPI); both PTEs then point to
    the new frame. migrc defers it (no IPI) unless the second mapping is writable."""
    r = replay(shared_trace(tmp_path / "t.parquet", writable2), engine)
    m = r.machine
    a, b = pid_of(r, 0, W1), pid_of(r, 1, W2)
    src = int(m.pte_pfn[a])
    seen = {}

    def demote(rr):
        assert m.loaded_mm.tolist() == [0, 1]
        assert bool(m.pte_flags[b] & K.PTE_WRITE) == writable2
        before = m.counters[:, [C["tlb_shootdown_irqs"], C["migrc_deferred_pages"]]].sum(0)
        r.tiering.lru.remove(0, src)
        done, failed = r.engine.migrate_pages(0, [src], MR_DEMOTION, 1)
        m.counters[0, C["pgdemote_kswapd"]] += len(done)  # as shrink_folio_list counts it
        after = m.counters[:, [C["tlb_shootdown_irqs"], C["migrc_deferred_pages"]]].sum(0)
        seen.update(done=done, failed=failed, irqs=int(after[0] - before[0]),
                    deferred=int(after[1] - before[1]))

    r.at(2000.0, demote)
    res = r.run()
    assert seen["failed"] == [] and len(seen["done"]) == 1
    dst = seen["done"][0]
    assert m.pte_pfn[a] == m.pte_pfn[b] == dst and m.frame_node[dst] == 1
    assert m.mappings(dst) == [a, b] and src not in m.frame_maps
    defer = engine == "migrc" and not writable2
    assert seen["deferred"] == (1 if defer else 0)
    assert seen["irqs"] == (0 if defer else 1)  # CPU 1 runs mm 1, which maps the page too
    assert res.totals["invariant_violations"] == 0, res.extra["violations"]


def test_aging_counts_young_mappings(tmp_path):
    """folio_referenced(): a folio young in two mappings is activated at once; young in one,
    it is kept (PG_referenced set); every young bit is cleared."""
    r = replay(shared_trace(tmp_path / "t.parquet"), "baseline", check=False)
    m = r.machine
    a, b = pid_of(r, 0, W1), pid_of(r, 1, W2)
    f = int(m.pte_pfn[a])
    vmscan = r.tiering.vmscan
    m.pte_flags[[a, b]] |= K.PTE_YOUNG
    r.tiering.lru.referenced[f] = False
    assert vmscan.folio_check_references(f) == "activate"
    assert not (m.pte_flags[[a, b]] & K.PTE_YOUNG).any()
    m.pte_flags[b] |= K.PTE_YOUNG
    r.tiering.lru.referenced[f] = False
    assert vmscan.folio_check_references(f) == "keep"
