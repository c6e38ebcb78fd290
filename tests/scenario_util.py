"""Tiny machines for hand-worked scenario tests: build, arrange pages, schedule, run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from migrc_bench.config import load_config
from migrc_bench.model import kernel as K
from migrc_bench.model.counters import C
from migrc_bench.model.memory import F_FREE, F_USED
from migrc_bench.model.replay import Replay
from migrc_bench.runner import make_engine
from migrc_bench.trace.native import Region, TraceMeta, write_trace

HEAP = 0x10000000
DRAM_PAGE = 0x08000000  # a separate region the threads spin on (kept on DRAM)

# 32 DRAM pages, 256 CXL pages; min_free_kbytes=8 and watermark_scale_factor=1000 give
# node 0: min 0, low 3, high 6, promo 9; node 1: min 1, low 26, high 51, promo 76.
# space_scale 1e-4: the tiny machine stands for one 10^4 times larger where the kernel
# compares sizes with absolute amounts: kswapd's lru_size >> priority then covers a whole
# 28-folio list at DEF_PRIORITY (with the real sizes it would scan nothing before priority
# 4), and pgdat_free_space_enough's 1 GiB becomes 26 pages (never reached here).
BASE_SETS = [
    'memory.dram="128KiB"', 'memory.cxl="1MiB"', "memory.min_free_kbytes=8",
    "memory.watermark_scale_factor=1000", "tlb.kernel_text_pages=0", "replay.quantum=100",
    "tiering.enabled=true", 'tiering.scan_delay="1000s"', 'trace.generate=""', "machine.kswapd_cpu=0",
    'cost.preset="bare-metal"', 'memory.initial_pte="writable-dirty"', 'replay.time_scale=1.0',
    "replay.space_scale=1e-4",
]


def spin(threads: int, loads: int, extra: dict[int, list[tuple[float, int, int]]] | None = None):
    """Per-thread records: ``loads`` loads of the thread's own DRAM page, with ``extra``
    accesses (position, op, addr) spliced in at the given fraction of the run."""
    out = []
    for t in range(threads):
        recs = [(1, DRAM_PAGE + t * 4096, 8)] * loads
        for frac, op, addr in sorted((extra or {}).get(t, []), reverse=True):
            recs.insert(int(frac * loads), (op, addr, 8))
        out.append(recs)
    return out


def build(tmp: Path, threads_records, heap_pages: int, sets=(), engine: str = "baseline",
          ncpu: int | None = None, extra_regions=()) -> Replay:
    threads = len(threads_records)
    regions = (Region(DRAM_PAGE, DRAM_PAGE + threads * 4096, "anon", True, False),
               Region(HEAP, HEAP + heap_pages * 4096, "heap", True, False), *extra_regions)
    tid = np.concatenate([np.full(len(r), i, np.uint16) for i, r in enumerate(threads_records)])
    rows = [x for r in threads_records for x in r]
    path = tmp / "trace.parquet"
    write_trace(path, TraceMeta("scenario", threads, regions), tid,
                np.array([x[0] for x in rows], np.uint8), np.array([x[1] for x in rows], np.uint64),
                np.array([x[2] for x in rows], np.uint8))
    cfg = load_config(None, BASE_SETS + [f"machine.ncpu={ncpu or threads}", f'engine="{engine}"',
                                         *sets])
    return Replay(cfg, path, engine=make_engine(cfg))


def place(replay: Replay, heap_page: int, nid: int) -> None:
    """Move heap page ``heap_page`` onto node ``nid`` (set-up only, before the run)."""
    m = replay.machine
    pid = int(m.pagemap.lookup(np.array([(HEAP >> 12) + heap_page]))[0])
    old = int(m.pte_pfn[pid])
    if int(m.frame_node[old]) == nid:
        return
    lru = replay.tiering.lru
    lru.remove(int(m.frame_node[old]), old)
    m.frame_state[old] = F_FREE
    m.frame_pid[old] = -1
    m.nodes[int(m.frame_node[old])].free.push_head(old)
    new = int(m.nodes[nid].free.pop(1)[0])
    m.frame_state[new] = F_USED
    m.frame_pid[new] = pid
    m.pte_pfn[pid] = new
    lru.add_head(nid, new)


def heap_layout(replay: Replay, on_dram: range, on_cxl: range) -> None:
    for p in on_cxl:
        place(replay, p, 1)
    for p in on_dram:
        place(replay, p, 0)


def frame_of(replay: Replay, heap_page: int) -> int:
    m = replay.machine
    pid = int(m.pagemap.lookup(np.array([(HEAP >> 12) + heap_page]))[0])
    return int(m.pte_pfn[pid])


def demote(replay: Replay, cpu: int, pages) -> None:
    """What kswapd does with one chunk: isolate the folios and migrate them to node 1."""
    t = replay.tiering
    frames = [frame_of(replay, p) for p in pages]
    for f in frames:
        t.lru.remove(0, f)
    done, failed = replay.engine.migrate_pages(cpu, frames, "demotion", 1)
    for f in failed:
        t.lru.add_head(0, f)
    replay.machine.counters[cpu, C["pgdemote_kswapd"]] += len(done)


def node_of(replay: Replay, heap_page: int) -> int:
    m = replay.machine
    pid = int(m.pagemap.lookup(np.array([(HEAP >> 12) + heap_page]))[0])
    return int(m.frame_node[m.pte_pfn[pid]])


def pte(replay: Replay, heap_page: int) -> int:
    m = replay.machine
    pid = int(m.pagemap.lookup(np.array([(HEAP >> 12) + heap_page]))[0])
    return int(m.pte_flags[pid])


def heap_addr(page: int) -> int:
    return HEAP + page * 4096


ANON = 0x30000000  # outside every region: first touch allocates


__all__ = ["K", "build", "heap_layout", "node_of", "pte", "spin", "heap_addr", "HEAP", "ANON",
           "frame_of", "demote"]
