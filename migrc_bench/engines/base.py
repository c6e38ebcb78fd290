"""migrate_pages() as v6.7 does it, with the few decisions engines differ on as methods.

The shared core (K§1.1, K§1.2; mm/migrate.c migrate_pages_batch, mm/rmap.c
try_to_migrate_one) splits a request into batches of at most ``migrate_batch`` pages; for
each folio allocates the destination (the first that cannot be allocated, -ENOMEM, ends the
request: it alone counts as failed, the rest go back untried), unmaps the PTE (immediate
single-page flush, or a deferred entry in the task's unmap batch; inaccessible PTEs need
neither, commit 4d4b6d66db -- but x86 pte_accessible() is true for a PROT_NONE PTE while an
mmu_gather of the mm is in progress), then flushes the batch once, copies, remaps from the
migration entry and releases the source. Engines override:

- ``defers_flush``: whether an unmap may join the batch (nobatch: never);
- ``add_pending``: what joining the batch records (migrc: read-only entries apart);
- ``flush_unmapped``: try_to_unmap_flush() for the batch;
- ``release_source``: free the source (baseline), hold it (migrc) or tag it (LUF);
- hooks on wp faults, watermark failures, allocation and the pause before reclaim;
- scheduler hooks: the tick and kswapd's context switches (for engines such as LATR).

docs/engines.md documents every hook for engines written outside the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model import kernel as K
from ..model import thp
from ..model.counters import C, T
from ..model.memory import F_USED
from ..model.migrate_reason import MR_DEMOTION, MR_NUMA_MISPLACED, TTU_RECLAIM  # noqa: F401 (re-exported)


# the flush source (counters.FLUSH_SOURCES) of a migrate_pages() call, by its reason
REASON_SOURCE = {MR_DEMOTION: "demotion", MR_NUMA_MISPLACED: "promotion"}


@dataclass
class UnmapBatch:
    """struct tlbflush_unmap_batch: one cpumask, flush_required, writable (K§1.3)."""

    mask: np.ndarray
    flush_required: bool = False
    writable: bool = False

    def clear(self) -> None:
        self.mask[:] = False
        self.flush_required = False
        self.writable = False


@dataclass
class Unmapped:
    """A folio between unmap and remap: the migration entry's bits and both frames."""

    src: int
    dst: int
    pid: int
    writable: bool
    young: bool
    dirty: bool
    accessible: bool
    extra: dict = field(default_factory=dict)


class Engine:
    name = "base"
    # migrc and LUF: read-only, clean PTEs go to a second batch, tlb_ubc_ro (migrc v6 3/7)
    splits_readonly = False

    def __init__(self, cfg):
        self.cfg = cfg
        self.migration_entry_ad = cfg.tiering.migration_entry_ad
        self.batch_cap = cfg.tiering.migrate_batch

    unmap_mm = 0  # the mm of the PTE try_to_migrate_one is unmapping

    def attach(self, replay) -> None:
        self.r = replay
        self.m = replay.machine
        self.flush = replay.flush
        self.tlb_ubc = UnmapBatch(np.zeros(self.m.ncpu, np.bool_))
        self.tlb_ubc_ro = UnmapBatch(np.zeros(self.m.ncpu, np.bool_))

    # ---- lifecycle and reporting ---------------------------------------------------------
    def start(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def interval_gauges(self) -> dict:
        return {}

    def run_figures(self) -> dict:
        return {}

    # ---- hooks (v6.7 defaults: nothing to do) -------------------------------------------
    def numa_restore_is_quiet(self) -> bool:
        """True when before_pte_writable(..., "numa") would do nothing right now."""
        return True

    def before_pte_writable(self, cpu: int, pid: int, why: str) -> None:
        """A fault handler is about to install a writable PTE (why: "wp" or "numa")."""

    def on_watermark_fail(self, cpu: int, node) -> bool:
        """A zone failed its watermark check; True if the engine freed something worth a retry."""
        return False

    def pause_begin(self, cpu: int) -> None:
        """The allocator is about to reclaim directly (migrc pauses and flushes here)."""

    def pause_end(self, cpu: int) -> None:
        pass

    def on_frame_taken(self, cpu: int, frame: int) -> None:
        pass

    # ---- scheduler hooks (model/sched.py; no built-in engine uses them) -------------------
    def on_tick(self, cpu: int) -> None:
        """scheduler_tick() on a busy CPU, once per 1/machine.hz (scaled), at a quantum boundary."""

    def on_context_switch(self, cpu: int, to_kernel: bool) -> None:
        """__schedule() on ``cpu`` before it switches: its thread to kswapd (``to_kernel``) or back."""

    # ---- per-PTE and per-batch decisions ---------------------------------------------------
    def defers_flush(self, initiator: int) -> bool:
        """should_defer_flush: batching is on and another CPU may cache the mm (the mm of
        the PTE being unmapped: ``unmap_mm``)."""
        mask = self.m.mm_cpumasks[self.unmap_mm]
        return bool(mask.any() and (mask.sum() > 1 or not mask[initiator]))

    def add_pending(self, initiator: int, u: Unmapped, pte_flags: int) -> None:
        """set_tlb_ubc_flush_pending for an accessible PTE (arch_tlbbatch_add_pending): into the
        read-only batch when the engine splits it off and the PTE is neither writable nor dirty."""
        ro = self.splits_readonly and not (pte_flags & (K.PTE_WRITE | K.PTE_DIRTY))
        batch = self.tlb_ubc_ro if ro else self.tlb_ubc
        mm = self.unmap_mm  # the PTE's mm: its cpumask, its generation
        batch.mask |= self.m.mm_cpumasks[mm]
        self.flush.inc_mm_gen(mm)
        self.flush.note_batched_unmap(mm)  # mm->tlb_flush_batched
        batch.flush_required = True
        if pte_flags & K.PTE_DIRTY:
            batch.writable = True

    def may_defer(self, u: Unmapped) -> bool:
        """can_migrc: no mapping was writable or dirty, and one accessible PTE was recorded."""
        return u.accessible and not u.writable and not u.dirty

    def take_readonly(self, u: Unmapped, eligible: bool) -> np.ndarray | None:
        """After a folio's unmap: its read-only pending CPUs if it is ``eligible`` and had some;
        otherwise they join the normal batch (fold_ubc) and None is returned."""
        ro = self.tlb_ubc_ro
        mask = None
        if ro.flush_required and eligible and self.may_defer(u):
            mask = ro.mask.copy()
        elif ro.flush_required:
            self.tlb_ubc.mask |= ro.mask
            self.tlb_ubc.flush_required = True
        ro.clear()
        return mask

    def folio_unmapped(self, initiator: int, u: Unmapped, reason: str) -> None:
        """Every mapping of one folio is unmapped (migrc decides eligibility here)."""

    def flush_unmapped(self, initiator: int, batch: list[Unmapped]) -> None:
        """try_to_unmap_flush(): one full flush on the batch's cpumask."""
        if self.tlb_ubc.flush_required:
            self.flush.flush_batch(initiator, self.tlb_ubc.mask)
        self.tlb_ubc.clear()

    def release_source(self, initiator: int, u: Unmapped, reason: str) -> None:
        """The source goes straight back to the allocator (pcp: the head of the list)."""
        if u.extra.get("thp"):
            thp.free_thp(self.r, u.src)
            return
        self.r.alloc.free(u.src)

    # ---- the shared core ------------------------------------------------------------------
    def migrate_pages(self, initiator: int, frames: list[int], reason: str, target: int
                      ) -> tuple[list[int], list[int]]:
        """Migrate isolated folios to node ``target``; returns (destinations, sources not
        migrated). pgmigrate_fail counts the folio that met -ENOMEM (its base pages), not
        those never tried. Batches hold up to ``migrate_batch`` base pages, the folio that
        reaches the limit included (NR_MAX_BATCHED_MIGRATION). A THP whose destination cannot
        be had is split on demotion and its 512 pieces migrated in one more pass after its
        batch; promotion does not split (MR_NUMA_MISPLACED: nosplit), the THP fails. Its
        flushes count under the reason's source (demotion, promotion)."""
        with self.flush.flushing_for(REASON_SOURCE.get(reason, "other")):
            return self._migrate_pages(initiator, frames, reason, target)

    def _migrate_pages(self, initiator: int, frames: list[int], reason: str, target: int
                       ) -> tuple[list[int], list[int]]:
        m = self.m
        done: list[int] = []
        moved: set[int] = set()
        pieces_all: list[int] = []
        split_heads: set[int] = set()
        self.thp_stats = [0, 0, 0]  # nr_thp_succeeded, nr_thp_failed, nr_thp_split
        nomem = 0
        i = 0
        while i < len(frames):
            j, pages = i, 0
            while j < len(frames) and pages < self.batch_cap:
                pages += int(m.frame_nr[frames[j]]) if m.thp else 1
                j += 1
            batch, nomem, pieces = self._migrate_batch(initiator, frames[i:j], reason, target)
            i = j
            done += [u.dst for u in batch]
            moved.update(u.src for u in batch)
            if pieces:  # split_folios: one more pass, MIGRATE_ASYNC
                split_heads.update(pieces[::thp.HPAGE_PMD_NR])
                pieces_all += pieces
                sbatch, snomem, _ = self._migrate_batch(initiator, pieces, reason, target)
                done += [u.dst for u in sbatch]
                moved.update(u.src for u in sbatch)
                m.counters[initiator, C["pgmigrate_fail"]] += snomem
            if nomem:
                break
        m.counters[initiator, C["pgmigrate_success"]] += thp.nr_pages(m, done)
        m.counters[initiator, C["pgmigrate_fail"]] += nomem
        if m.thp:
            for name, n in zip(("thp_migration_success", "thp_migration_fail",
                                "thp_migration_split"), self.thp_stats):
                m.counters[initiator, C[name]] += n
        failed = [f for f in frames if f not in moved and f not in split_heads]
        if pieces_all:
            failed += [f for f in pieces_all if f not in moved]
        if self.r.checker is not None:
            self.r.checker.after_migrate(initiator)
        return done, failed

    def allowed_stale_cpus(self) -> np.ndarray:
        """CPUs allowed to cache translations to held or tagged frames (I4): none here."""
        return np.zeros(self.m.ncpu, np.bool_)

    def _migrate_batch(self, initiator: int, frames: list[int], reason: str, target: int):
        """migrate_pages_batch: (the folios moved, base pages of the folio whose destination
        was not to be had or 0, the pieces of a THP split meanwhile)."""
        # promotion (alloc_misplaced_dst_folio) wakes nobody; demotion (alloc_demote_folio,
        # GFP_NOWAIT) may wake the target's kswapd; neither reclaims
        wake = reason != MR_NUMA_MISPLACED
        batch: list[Unmapped] = []
        nomem = 0
        pieces: list[int] = []
        m = self.m
        for src in frames:
            large = thp.is_thp(m, src)
            if large:
                dst = thp.alloc_thp(self.r, initiator, target, wake)
            else:
                dst = self.r.alloc.alloc_migration_target(initiator, target, wake)
            if dst is None:  # -ENOMEM
                if large:
                    self.thp_stats[1] += 1
                    if reason != MR_NUMA_MISPLACED:  # split, go on with the batch
                        pieces += thp.split(self.r, initiator, src)
                        self.thp_stats[2] += 1
                        continue
                nomem = int(m.frame_nr[src])  # move what is unmapped, then stop
                break
            if large:  # set_pmd_migration_entry: never into the batch, never deferred
                u = self.unmap_pmd(initiator, src, dst)
            else:
                u = self.unmap(initiator, src, dst)
                self.folio_unmapped(initiator, u, reason)
            batch.append(u)
        self.flush_unmapped(initiator, batch)
        for u in batch:
            self.move(initiator, u)
            self.release_source(initiator, u, reason)
        return batch, nomem, pieces

    def unmap_pmd(self, initiator: int, src: int, dst: int) -> Unmapped:
        """try_to_migrate_one on a PMD mapping: set_pmd_migration_entry, whose
        pmdp_invalidate flushes the 2 MiB at once (thp.pmdp_flush) whatever the PMD's state;
        the migration entry keeps write, young and dirty."""
        m = self.m
        fl = thp.pmd_flags(m, src)
        u = Unmapped(src, dst, int(m.frame_pid[src]), bool(fl & K.PTE_WRITE),
                     bool(fl & K.PTE_YOUNG), bool(fl & K.PTE_DIRTY), True, {"thp": True})
        self.unmap_mm = self.flush.mm_of_page(u.pid)
        m.pte_flags[thp.pmd_slice(m, src)] = 0
        m.charge(initiator, m.costs.migrate_page, T["copy"])
        thp.pmdp_flush(self.r, initiator, src)
        return u

    def reclaim_pages(self, initiator: int, frames: list[int]) -> int:
        """shrink_folio_list for clean page-cache folios: try_to_unmap(TTU_BATCH_FLUSH) over
        every mapping (try_to_unmap_one: each PTE into its own mm's batch, reason
        TTU_RECLAIM), one try_to_unmap_flush() for the list, then __remove_mapping: the
        page leaves the page cache (every PTE none, so the next access is a major fault)
        and the folio is released as a migration source is (LUF: freed tagged)."""
        with self.flush.flushing_for("reclaim"):
            return self._reclaim_pages(initiator, frames)

    def _reclaim_pages(self, initiator: int, frames: list[int]) -> int:
        m = self.m
        batch: list[Unmapped] = []
        for f in frames:
            u = self.unmap(initiator, f, -1, T["fault"])
            self.folio_unmapped(initiator, u, TTU_RECLAIM)
            batch.append(u)
        self.flush_unmapped(initiator, batch)
        for u in batch:
            for mapping in u.extra.get("maps") or ((u.pid,),):
                pid = mapping[0]
                m.pte_pfn[pid] = -1
                m.evicted_ver[pid] = int(m.frame_ver[u.src])  # the file's data, read again
            m.frame_maps.pop(u.src, None)
            self.release_source(initiator, u, TTU_RECLAIM)
        if self.r.checker is not None:
            self.r.checker.after_migrate(initiator)
        return len(batch)

    def unmap(self, initiator: int, src: int, dst: int, charge_to: int = T["copy"]) -> Unmapped:
        """try_to_migrate: try_to_migrate_one for every mapping of the folio (the rmap walk:
        a shared file page is mapped once per VMA, of any mm), each PTE into its own mm's
        batch (or flushed at once). The folio is writable, young, dirty or accessible when
        any of its mappings is."""
        m = self.m
        maps = m.mappings(src)
        u = None
        for pid in maps:
            fl = int(m.pte_flags[pid])
            self.unmap_mm = mm = self.flush.mm_of_page(pid)
            accessible = self.flush.pte_accessible(fl, float(m.clock[initiator]), mm)
            bits = (bool(fl & K.PTE_WRITE), bool(fl & K.PTE_YOUNG), bool(fl & K.PTE_DIRTY))
            if u is None:
                u = Unmapped(src, dst, pid, *bits, accessible)
            else:
                u.writable |= bits[0]
                u.young |= bits[1]
                u.dirty |= bits[2]
                u.accessible |= accessible
            if len(maps) > 1:
                u.extra.setdefault("maps", []).append((pid, *bits))
            m.pte_flags[pid] = 0  # migration entry: not present
            if pid == maps[0]:
                m.charge(initiator, m.costs.migrate_page, charge_to)
            if accessible:
                if self.defers_flush(initiator):
                    self.add_pending(initiator, u, fl)
                else:
                    self.flush.flush_mm_range(initiator, np.array([pid], np.int32))
        return u

    def move(self, initiator: int, u: Unmapped) -> None:
        """Copy, then remove_migration_ptes: each mapping's new PTE from its migration entry."""
        m = self.m
        if u.extra.get("thp"):
            self._move_pmd(initiator, u)
            return
        m.frame_ver[u.dst] = m.frame_ver[u.src]
        m.charge(initiator, m.costs.copy_ns(m.nodes[int(m.frame_node[u.dst])]), T["copy"])
        maps = u.extra.get("maps") or ((u.pid, u.writable, u.young, u.dirty),)
        for pid, writable, young, dirty in maps:
            fl = K.PTE_PRESENT
            if writable:
                fl |= K.PTE_WRITE
            if self.migration_entry_ad:
                if young:
                    fl |= K.PTE_YOUNG
                if dirty:
                    fl |= K.PTE_DIRTY
            m.pte_pfn[pid] = u.dst
            m.pte_flags[pid] = fl
        m.frame_state[u.dst] = F_USED
        m.frame_pid[u.dst] = u.pid
        if u.dirty or u.src in m.folio_dirty:  # try_to_migrate_one: folio_mark_dirty
            m.folio_dirty.discard(u.src)
            if m.page_flags[u.pid] & K.VMA_FILE:
                m.folio_dirty.add(u.dst)
        if len(maps) > 1:
            m.frame_maps[u.dst] = [x[0] for x in maps[1:]]
            m.frame_maps.pop(u.src, None)
        self.r.tiering.lru_add(u.dst, like=u.src)
        if self.r.checker is not None:
            for pid, writable, _, _ in maps:
                if writable:
                    self.r.checker.on_writable(initiator, pid)

    def _move_pmd(self, initiator: int, u: Unmapped) -> None:
        """Copy 512 pages, then remove_migration_pmd: one PMD from the migration entry."""
        m = self.m
        n = thp.HPAGE_PMD_NR
        m.frame_ver[u.dst:u.dst + n] = m.frame_ver[u.src:u.src + n]
        m.charge(initiator, m.costs.copy_ns(m.nodes[int(m.frame_node[u.dst])], n), T["copy"])
        sl = slice(u.pid, u.pid + n)
        fl = K.PTE_PRESENT | (K.PTE_WRITE if u.writable else 0)
        m.pte_pfn[sl] = np.arange(u.dst, u.dst + n, dtype=np.int32)
        m.pte_flags[sl] = fl
        if self.migration_entry_ad:
            m.pte_flags[u.pid] |= (K.PTE_YOUNG if u.young else 0) | (K.PTE_DIRTY if u.dirty else 0)
        m.frame_state[u.dst:u.dst + n] = F_USED
        m.frame_pid[u.dst:u.dst + n] = np.arange(u.pid, u.pid + n, dtype=np.int32)
        m.frame_nr[u.dst] = n
        self.thp_stats[0] += 1
        self.r.tiering.lru_add(u.dst, like=u.src)
