"""Reclaim of node 0 as v6.7's mm/vmscan.c does it, on the anonymous LRU lists.

``balance_pgdat`` (kswapd) walks priorities from DEF_PRIORITY down: at each step it checks
the balance once (``pgdat_balanced``, the promo watermark in mode 2), ages the active list
when the inactive one is low (``kswapd_age_node``), and shrinks the node with
``nr_to_reclaim = max(high watermark, SWAP_CLUSTER_MAX)`` (``kswapd_shrink_node``):
``shrink_lruvec`` scans ``get_scan_count()``'s share of ``lru_size >> priority`` of each list
in chunks of SWAP_CLUSTER_MAX, inactive then active, until the share is scanned or
``nr_to_reclaim`` pages are reclaimed, then rebalances the lists (``inactive_is_low``).

- ``shrink_inactive_list``: ``folio_check_references`` per folio (young PTE bit tested and
  cleared without a flush, PG_referenced tested and cleared): referenced once -> kept on the
  inactive list with PG_referenced; referenced again -> activated; not referenced -> demoted
  with one ``migrate_pages(MR_DEMOTION)`` call for the chunk (``shrink_folio_list``); a folio
  that fails to demote is activated (no swap: ``add_to_swap`` fails);
- ``shrink_active_list``: every anon folio goes back to the inactive list,
  ``folio_referenced`` clearing its young bit (anon folios are never rotated);
- ``get_scan_count``: SCAN_FRACT with swappiness 60 against the anon and file reclaim costs
  (``lru_note_cost``); the model has no file pages, so anon gets ap / (ap + fp) of its
  share, SCAN_ANON when ``file_is_tiny``, nothing when demotion is off (no swap).

Sizes compared with the kernel's absolute amounts (``lru_size >> priority``,
``inactive_is_low``'s GiB) are the real machine's: model pages / ``replay.space_scale``;
the per-step count is then at most the whole list. Work is a generator that yields after
every list operation, so that kswapd's CPU time can be spread over quanta (tiering.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generator

from .migrate_reason import MR_DEMOTION
from . import kernel as K
from .counters import C, T
from . import thp

DEF_PRIORITY = 12
MAX_RECLAIM_RETRIES = 16
SWAPPINESS = 60
MAX_SWAPPINESS = 200
DEACTIVATE_ANON = 1
GIB_SHIFT = 30 - 12
DRAM, CXL = 0, 1

Work = Generator[None, None, None]


@dataclass
class ScanControl:
    """struct scan_control: what one reclaim run has asked for and done so far."""

    nr_to_reclaim: int
    kswapd: bool
    priority: int = DEF_PRIORITY
    nr_scanned: int = 0
    nr_reclaimed: int = 0
    may_deactivate: int = 0
    file_is_tiny: bool = False
    anon_cost: int = 0
    file_cost: int = 0


class Reclaim:
    """Node 0's lruvec (the two anon lists of ``Lru``), its reclaim costs and kswapd state."""

    nid = DRAM

    def __init__(self, tiering):
        self.t = tiering
        self.m = tiering.m
        self.lru = tiering.lru
        self.space_scale = tiering.r.cfg.replay.space_scale
        self.chunk = tiering.reclaim_chunk  # SWAP_CLUSTER_MAX (tiering.reclaim_chunk)
        self.anon_cost = 0  # lruvec->anon_cost
        self.file_cost = 0  # lruvec->file_cost (no file pages: stays 0)
        self.kswapd_failures = 0

    # ---- helpers ------------------------------------------------------------------------
    def real(self, pages: int) -> int:
        return int(pages / self.space_scale + 1e-9)

    def can_demote(self) -> bool:
        return bool(self.t.demotion)

    def inactive_is_low(self) -> bool:
        inactive, active = self.list_size(False), self.list_size(True)
        gb = self.real(inactive + active) >> GIB_SHIFT
        ratio = math.isqrt(10 * gb) if gb else 1
        return inactive * ratio < active

    def list_size(self, active: bool) -> int:
        """The size of the LRU list this reclaim scans (node 0: the anon lists)."""
        return self.lru.count(self.nid, active)

    def balanced(self) -> bool:
        """pgdat_balanced: the promo watermark in tiering mode (for every node), else high."""
        node = self.m.nodes[self.nid]
        return node.watermark_ok(node.wmark.promo if self.t.mode & 2 else node.wmark.high)

    def can_sleep(self) -> bool:
        """prepare_kswapd_sleep: balanced, or a hopeless node."""
        return self.kswapd_failures >= MAX_RECLAIM_RETRIES or self.balanced()

    # ---- kswapd -----------------------------------------------------------------------
    def kswapd(self, cpu: int) -> Work:
        """The kswapd thread from one wake-up to its next sleep: balance_pgdat again and
        again while kswapd_try_to_sleep finds the node unbalanced (and not hopeless)."""
        while True:
            yield from self.balance_pgdat(cpu)
            if self.can_sleep():
                return

    def balance_pgdat(self, cpu: int) -> Work:
        dram = self.m.nodes[self.nid]
        sc = ScanControl(nr_to_reclaim=0, kswapd=True)
        while sc.priority >= 1:
            if self.balanced():
                return
            raise_priority = True
            yield from self.kswapd_age_node(sc, cpu)
            sc.nr_scanned = 0
            before = sc.nr_reclaimed
            # kswapd_shrink_node
            sc.nr_to_reclaim = max(dram.wmark.high, self.chunk)
            yield from self.shrink_node(sc, cpu)
            if max(sc.nr_scanned, sc.nr_reclaimed - before) >= sc.nr_to_reclaim:
                raise_priority = False
            if raise_priority or sc.nr_reclaimed == before:
                sc.priority -= 1
        if not sc.nr_reclaimed:
            self.kswapd_failures += 1

    def kswapd_age_node(self, sc: ScanControl, cpu: int) -> Work:
        if self.can_demote() and self.inactive_is_low():
            self.shrink_active_list(self.chunk, cpu)
            yield

    # ---- direct reclaim -----------------------------------------------------------------
    def try_to_free_pages(self, cpu: int) -> int:
        """do_try_to_free_pages for an order-0 allocation: SWAP_CLUSTER_MAX pages wanted,
        priorities from DEF_PRIORITY to 0, done once enough is reclaimed."""
        sc = ScanControl(nr_to_reclaim=self.chunk, kswapd=False)
        while sc.priority >= 0:
            sc.nr_scanned = 0
            for _ in self.shrink_node(sc, cpu):
                pass
            if sc.nr_reclaimed >= sc.nr_to_reclaim:
                break
            sc.priority -= 1
        return sc.nr_reclaimed

    # ---- shrink_node -> shrink_lruvec -> shrink_list -------------------------------------
    def shrink_node(self, sc: ScanControl, cpu: int) -> Work:
        before = sc.nr_reclaimed
        self.prepare_scan_control(sc)
        yield from self.shrink_lruvec(sc, cpu)
        if sc.nr_reclaimed > before:
            self.kswapd_failures = 0

    def prepare_scan_control(self, sc: ScanControl) -> None:
        sc.anon_cost, sc.file_cost = self.anon_cost, self.file_cost
        if self.inactive_is_low():  # no refaults without swap: the ratio decides
            sc.may_deactivate |= DEACTIVATE_ANON
        else:
            sc.may_deactivate &= ~DEACTIVATE_ANON
        dram = self.m.nodes[DRAM]
        anon = self.real(self.lru.count(DRAM, False))
        sc.file_is_tiny = (dram.nr_free <= dram.wmark.high and not sc.may_deactivate & DEACTIVATE_ANON
                           and bool(anon >> sc.priority))

    def get_scan_count(self, sc: ScanControl) -> tuple[int, int]:
        """(inactive, active) anon folios to scan at this priority."""
        if not self.can_demote():  # no swap and no demotion target: SCAN_FILE
            return 0, 0
        equal = sc.priority == 0 or sc.file_is_tiny  # SCAN_EQUAL / SCAN_ANON
        if not equal:  # SCAN_FRACT
            total = sc.anon_cost + sc.file_cost
            anon_cost, file_cost = total + sc.anon_cost, total + sc.file_cost
            total = anon_cost + file_cost
            ap = SWAPPINESS * (total + 1) // (anon_cost + 1)
            fp = (MAX_SWAPPINESS - SWAPPINESS) * (total + 1) // (file_cost + 1)
        out = []
        for active in (False, True):
            size = self.lru.count(DRAM, active)
            scan = min(self.real(size) >> sc.priority, size)
            out.append(scan if equal else scan * ap // (ap + fp))
        return out[0], out[1]

    active_keeps_scanning = False  # the anon lists: only inactive anon keeps the loop going

    def may_deactivate(self, sc: ScanControl) -> bool:
        return bool(sc.may_deactivate & DEACTIVATE_ANON)

    def shrink_lruvec(self, sc: ScanControl, cpu: int) -> Work:
        nr_inactive, nr_active = self.get_scan_count(sc)
        proportional = not sc.kswapd and sc.priority == DEF_PRIORITY
        reclaimed = 0
        # the kernel's loop runs while inactive anon, active file or inactive file is left
        while nr_inactive or (self.active_keeps_scanning and nr_active):
            if nr_inactive:
                n = min(nr_inactive, self.chunk)
                nr_inactive -= n
                reclaimed += self.shrink_inactive_list(n, sc, cpu)
                yield
            if nr_active:
                n = min(nr_active, self.chunk)
                nr_active -= n
                if self.may_deactivate(sc):
                    self.shrink_active_list(n, cpu)
                    yield
            if reclaimed < sc.nr_to_reclaim or proportional:
                continue
            break  # no proportional rescan of the other lists
        sc.nr_reclaimed += reclaimed
        if self.can_demote() and self.inactive_is_low():
            self.shrink_active_list(self.chunk, cpu)
            yield

    def isolate(self, active: bool, n: int) -> list[int]:
        """isolate_lru_folios: up to ``n`` folios from the tail of the list this reclaim scans."""
        return self.lru.isolate(self.nid, active, n)

    def isolate_charged(self, active: bool, n: int, cpu: int) -> list[int]:
        """isolate() with each folio's look (isolation, folio_referenced) charged."""
        isolated = self.isolate(active, n)
        if isolated:
            self.m.charge(cpu, len(isolated) * self.m.costs.lru_scan, T["fault"])
        return isolated

    def shrink_inactive_list(self, n: int, sc: ScanControl, cpu: int) -> int:
        """Isolate up to ``n`` folios from the inactive tail; shrink_folio_list."""
        lru = self.lru
        isolated = self.isolate_charged(False, n, cpu)
        if not isolated:
            return 0
        nr_isolated = thp.nr_pages(self.m, isolated)  # base pages, as the kernel counts
        sc.nr_scanned += nr_isolated
        candidates, back = [], []
        for f in isolated:
            ref = self.folio_check_references(f, cpu)
            if ref == "activate":
                lru.active[f] = True
            (candidates if ref == "reclaim" else back).append(f)
        done = self.shrink_folio_list(candidates, back, sc, cpu)
        for f in back:  # move_folios_to_lru: the head of each folio's list
            lru.add(f, self.nid)
        self.lru_note_cost(nr_isolated - done)
        return done

    def shrink_folio_list(self, folios: list[int], back: list[int], sc: ScanControl, cpu: int) -> int:
        """The folios no reference keeps: demoted with one migrate_pages(MR_DEMOTION) call;
        the rest join ``back``, activated (no swap to fall back on: activate_locked)."""
        done: list[int] = []
        if folios and self.can_demote():
            done, folios = self.t.engine.migrate_pages(cpu, folios, MR_DEMOTION, CXL)
        for f in folios:
            self.lru.active[f] = True
        back.extend(folios)
        nr_done = thp.nr_pages(self.m, done)  # base pages
        self.m.counters[cpu, C["pgdemote_kswapd" if sc.kswapd else "pgdemote_direct"]] += nr_done
        return nr_done

    def folio_check_references(self, f: int, cpu: int = 0) -> str:
        """folio_referenced(): referenced_ptes counts the folio's mappings with a young PTE
        (each bit cleared, no flush on x86 -- but a young PMD is cleared with
        pmdp_clear_flush_young, which flushes its 2 MiB); more than one activates the folio
        at once."""
        m, lru = self.m, self.lru
        referenced_ptes = 0
        if thp.is_thp(m, f):
            referenced_ptes = int(self.pmd_referenced(f, cpu))
        else:
            for pid in m.mappings(f):
                if m.pte_flags[pid] & K.PTE_YOUNG:
                    m.pte_flags[pid] &= ~K.PTE_YOUNG
                    referenced_ptes += 1
        referenced_folio = bool(lru.referenced[f])
        lru.referenced[f] = False
        if referenced_ptes:
            lru.referenced[f] = True
            return "activate" if referenced_folio or referenced_ptes > 1 else "keep"
        return "reclaim"

    def shrink_active_list(self, n: int, cpu: int) -> None:
        m, lru = self.m, self.lru
        isolated = self.isolate_charged(True, n, cpu)
        for f in isolated:
            if thp.is_thp(m, f):
                self.pmd_referenced(f, cpu)
            else:
                for pid in m.mappings(f):  # folio_referenced, then deactivated regardless
                    m.pte_flags[pid] &= ~K.PTE_YOUNG
            lru.active[f] = False
            lru.add(f, DRAM)

    def pmd_referenced(self, f: int, cpu: int) -> bool:
        """folio_referenced_one on a PMD mapping: x86 pmdp_clear_flush_young flushes the
        2 MiB when the PMD was young."""
        young = thp.pmd_test_and_clear_young(self.m, f)
        if young:
            with self.t.r.flush.flushing_for("referenced"):
                thp.pmdp_flush(self.t.r, cpu, f)
        return young

    def lru_note_cost(self, nr_rotated: int) -> None:
        """lru_note_cost(anon, nr_io = 0, nr_rotated), with the decay of old costs."""
        self.anon_cost += nr_rotated
        lrusize = self.lru.count(DRAM, False) + self.lru.count(DRAM, True)
        if self.anon_cost + self.file_cost > lrusize // 4:
            self.anon_cost //= 2
            self.file_cost //= 2
