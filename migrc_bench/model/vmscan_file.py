"""Reclaim of clean page-cache folios on the lowest tier (node 1), as v6.7's mm/vmscan.c does it.

The CXL node has no demotion target and the machine no swap, so ``get_scan_count()`` finds
``!can_reclaim_anon_pages()`` and scans the file LRU alone (SCAN_FILE). kswapd1
(``balance_pgdat`` for node 1, woken by ``wakeup_kswapd`` from an allocation or a demotion
target that fails the low watermark) and direct reclaim (``do_try_to_free_pages`` over the
zonelist's nodes) shrink it in SWAP_CLUSTER_MAX chunks:

- ``shrink_inactive_list`` -> ``shrink_folio_list``: ``folio_check_references`` per folio
  (referenced by more than one mapping, or again, or a VM_EXEC file folio: activated;
  referenced once: kept with PG_referenced; else reclaimed). A clean folio is unmapped with
  ``try_to_unmap(folio, TTU_BATCH_FLUSH)`` over every mapping (``try_to_unmap_one``: each PTE
  into its own mm's batch, the mask the union of their mm_cpumasks), one
  ``try_to_unmap_flush()`` ends the list, then ``__remove_mapping`` takes the folio out of the
  page cache and it is freed. The engine decides what the unmap records and when the flush
  happens (engines/base.py ``reclaim_pages``): LUF defers read-only folios, migrc and the
  baseline flush.
- A dirty file folio would be written back (``pageout``); the model has no writeback, so it
  stays on the inactive list (kept). Anonymous folios are never isolated here (no swap).
- ``shrink_active_list`` on the file list when it is larger than the inactive one
  (``inactive_is_low``): referenced VM_EXEC file folios stay active, the rest go inactive.

The model keeps one pair of LRU lists per node for both kinds of folio; this reclaim takes
only the file folios from them, in list order, as if they were on lists of their own.
"""

from __future__ import annotations

import numpy as np

from . import kernel as K
from .counters import C
from .vmscan import ScanControl, Reclaim

CXL = 1


class FileReclaim(Reclaim):
    """Node 1's file LRU, kswapd1's state and its share of direct reclaim."""

    nid = CXL

    # ---- which folios are on the file LRU ------------------------------------------------
    def is_file(self, f: int) -> bool:
        pid = int(self.m.frame_pid[f])
        return pid >= 0 and bool(self.m.page_flags[pid] & K.VMA_FILE)

    def list_size(self, active: bool) -> int:
        lru, m = self.lru, self.m
        frames = np.flatnonzero(lru.on == 2 * self.nid + int(active))
        pids = m.frame_pid[frames]
        return int(np.count_nonzero((pids >= 0) & ((m.page_flags[np.maximum(pids, 0)] & K.VMA_FILE) != 0)))

    def isolate(self, active: bool, n: int) -> list[int]:
        """isolate_lru_folios on the file list: up to ``n`` file folios, oldest first."""
        lru = self.lru
        out: list[int] = []
        f = lru.tail[2 * self.nid + int(active)]
        while f >= 0 and len(out) < n:
            prev = int(lru.prev[f])
            if self.is_file(f):
                lru.remove(self.nid, f)
                out.append(f)
            f = prev
        return out

    # ---- policy ------------------------------------------------------------------------
    def can_demote(self) -> bool:
        return False  # the lowest tier: next_demotion_node() is NUMA_NO_NODE

    def prepare_scan_control(self, sc: ScanControl) -> None:
        sc.file_is_tiny = False

    def get_scan_count(self, sc: ScanControl) -> tuple[int, int]:
        """SCAN_FILE: ``lru_size >> priority`` of each file list (real sizes)."""
        out = []
        for active in (False, True):
            size = self.list_size(active)
            out.append(min(self.real(size) >> sc.priority, size))
        return out[0], out[1]

    active_keeps_scanning = True  # the file lists: active file keeps shrink_lruvec going

    def may_deactivate(self, sc: ScanControl) -> bool:
        return self.inactive_is_low()  # DEACTIVATE_FILE

    def folio_check_references(self, f: int, cpu: int = 0) -> str:
        ref = super().folio_check_references(f, cpu)
        if ref == "keep" and self.m.page_flags[int(self.m.frame_pid[f])] & K.VMA_EXEC:
            return "activate"  # VM_EXEC file folios are activated on one reference
        return ref

    def shrink_folio_list(self, folios: list[int], back: list[int], sc: ScanControl, cpu: int) -> int:
        """Clean folios: try_to_unmap, one flush, __remove_mapping (engines/base.py
        reclaim_pages); dirty ones stay (no writeback)."""
        free = []
        for f in folios:
            (back if self.dirty(f) else free).append(f)
        done = self.t.engine.reclaim_pages(cpu, free) if free else 0
        self.m.counters[cpu, C["pgsteal_kswapd" if sc.kswapd else "pgsteal_direct"]] += done
        return done

    def dirty(self, f: int) -> bool:
        """PG_dirty, or a dirty PTE that try_to_unmap would transfer to it."""
        m = self.m
        return f in m.folio_dirty or any(m.pte_flags[pid] & K.PTE_DIRTY for pid in m.mappings(f))

    def shrink_active_list(self, n: int, cpu: int) -> None:
        m, lru = self.m, self.lru
        for f in self.isolate_charged(True, n, cpu):
            young = False
            for pid in m.mappings(f):
                young |= bool(m.pte_flags[pid] & K.PTE_YOUNG)
                m.pte_flags[pid] &= ~K.PTE_YOUNG
            exec_ = bool(m.page_flags[int(m.frame_pid[f])] & K.VMA_EXEC)
            lru.active[f] = young and exec_  # referenced VM_EXEC file folios stay active
            lru.add(f, self.nid)

    def lru_note_cost(self, nr_rotated: int) -> None:
        pass  # one list scanned: the anon/file balance has nothing to weigh
