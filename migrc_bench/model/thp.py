"""PMD-mapped THPs in migration and reclaim: v6.7 mm/huge_memory.c and mm/migrate.c.

A THP is one folio: its first frame stands for it on the LRU and in migration lists
(``Machine.frame_nr`` = 512), its 512 frames are consecutive, and its pages share one PMD
(``Machine.page_pmd``), whose bits are kept in each of the 512 PTE slots (present, PROT_NONE,
write alike; accessed and dirty as the OR over the slots: machine.Machine._map_pmds).

- ``set_pmd_migration_entry``: ``pmdp_invalidate`` flushes at once with ``flush_tlb_range``
  over the 2 MiB (x86: 512 entries at 4 KiB stride, above tlb_single_page_flush_ceiling: a
  full flush of the mm), accessible or not, never into the unmap batch;
- ``remove_migration_pmd``: the new PMD from the migration entry (write as before; young and
  dirty as ``tiering.migration_entry_ad`` says for base pages too);
- the destination: an order-9 block of free frames on the target node (``__GFP_THISNODE``,
  no reclaim), the watermark checked as ``__zone_watermark_ok`` does for order 9;
- ``split_huge_pmd`` + ``split_folio``: another ``pmdp_invalidate`` flush, then 512 base
  folios with the PMD's bits in every PTE.
"""

from __future__ import annotations

import numpy as np

from .machine import HPAGE_PMD_NR
from .memory import F_FREE, F_USED
from . import kernel as K

PMD_BITS = K.PTE_YOUNG | K.PTE_DIRTY


def is_thp(m, frame: int) -> bool:
    return m.thp and bool(m.frame_nr[frame] > 1)


def nr_pages(m, frames) -> int:
    """folio_nr_pages summed over ``frames`` (first frames of folios)."""
    if not m.thp or not len(frames):
        return len(frames)
    return int(m.frame_nr[np.asarray(frames, np.int64)].sum())


def pmd_slice(m, frame: int) -> slice:
    """The page ids of the THP whose first frame is ``frame`` (one mapping: anonymous)."""
    head = int(m.frame_pid[frame])
    return slice(head, head + HPAGE_PMD_NR)


def pmd_flags(m, frame: int) -> int:
    """The PMD's bits: the write bit its slots share, accessed and dirty if any slot has them."""
    return int(np.bitwise_or.reduce(m.pte_flags[pmd_slice(m, frame)]))


def pmd_test_and_clear_young(m, frame: int) -> bool:
    sl = pmd_slice(m, frame)
    young = bool((m.pte_flags[sl] & K.PTE_YOUNG).any())
    m.pte_flags[sl] &= ~K.PTE_YOUNG
    return young


def pmdp_flush(r, cpu: int, frame: int) -> None:
    """flush_tlb_range(vma, haddr, haddr + HPAGE_PMD_SIZE): 512 entries at PAGE_SHIFT stride
    (the ceiling makes it a full flush of the mm unless it is set above 512)."""
    m = r.machine
    head = int(m.frame_pid[frame])
    r.flush.flush_mm_range(cpu, np.array([head], np.int32), npages=HPAGE_PMD_NR,
                           mm=r.flush.mm_of_page(head))


def alloc_thp(r, cpu: int, nid: int, wake_kswapd: bool) -> int | None:
    """An order-9 migration target on node ``nid`` or nothing (alloc_misplaced_dst_folio's
    GFP_TRANSHUGE_LIGHT | __GFP_THISNODE; alloc_migration_target's GFP_TRANSHUGE without
    __GFP_RECLAIM): the low watermark, then (after waking kswapd if the caller may) the min
    one, each less the block's 511 pages beyond one as __zone_watermark_ok counts; and a
    2 MiB-aligned block of free frames."""
    m = r.machine
    node = m.nodes[nid]
    for mark in ("low", "min"):
        if node.watermark_ok(getattr(node.wmark, mark) + HPAGE_PMD_NR - 1):
            first = _free_block(m, node)
            if first is not None:
                node.free.take_block(first, first + HPAGE_PMD_NR)
                for f in range(first, first + HPAGE_PMD_NR):
                    if r.engine is not None:
                        r.engine.on_frame_taken(cpu, f)
                m.frame_state[first:first + HPAGE_PMD_NR] = F_USED
                return first
        if mark == "low" and wake_kswapd and r.tiering is not None:
            r.tiering.wake_kswapd(nid, cpu)
    return None


def _free_block(m, node) -> int | None:
    lo = -(-node.first_frame // HPAGE_PMD_NR) * HPAGE_PMD_NR
    hi = (node.first_frame + node.pages) // HPAGE_PMD_NR * HPAGE_PMD_NR
    if hi <= lo:
        return None
    free = (m.frame_state[lo:hi] == F_FREE).reshape(-1, HPAGE_PMD_NR).all(axis=1)
    at = np.flatnonzero(free)
    return lo + int(at[0]) * HPAGE_PMD_NR if len(at) else None


def free_thp(r, frame: int) -> None:
    """The source THP back to the buddy lists (migrc and LUF never hold a large folio)."""
    m = r.machine
    m.frame_nr[frame] = 1
    for f in range(frame + HPAGE_PMD_NR - 1, frame - 1, -1):
        r.alloc.free(f)


def split(r, cpu: int, frame: int) -> list[int]:
    """split_huge_pmd then split_folio of an isolated THP: the PMD invalidated (its flush),
    every PTE with the PMD's bits, 512 base folios that keep PG_active and PG_referenced."""
    m = r.machine
    sl = pmd_slice(m, frame)
    fl = pmd_flags(m, frame)
    pmdp_flush(r, cpu, frame)
    m.pte_flags[sl] = (m.pte_flags[sl] & ~PMD_BITS) | (fl & PMD_BITS)
    m.page_pmd[sl] = -1
    m.frame_nr[frame] = 1
    pieces = list(range(frame, frame + HPAGE_PMD_NR))
    lru = r.tiering.lru
    lru.active[frame + 1:frame + HPAGE_PMD_NR] = lru.active[frame]
    lru.referenced[frame + 1:frame + HPAGE_PMD_NR] = lru.referenced[frame]
    return pieces
