"""The one TLB-flush mechanism every path and engine uses (K§1.3, K§1.4; arch/x86/mm/tlb.c v6.7).

Three entry points mirror the kernel's:
- ``flush_mm_range``: flush_tlb_mm_range (mprotect, NUMA scan, single-page flush_tlb_page),
  with tlb_single_page_flush_ceiling turning long ranges into full flushes;
- ``flush_batch``: arch_tlbbatch_flush (the batched unmap flush of migration and reclaim),
  always a full flush of the loaded mm on a captured cpumask;
- ``switch_mm``: switch_mm_irqs_off, the CR3 switch of a context switch: per-CPU ASID
  slots (choose_new_asid), a flush when the slot's generation is stale or the slot is new;
  ``switch_back`` is its lazy case, a CPU returning to its mm after kswapd
  (``switch_to_kernel`` is the way in: kswapd takes the CPU, the mm stays loaded lazily).
Flushes target one mm (flush_tlb_info.mm): its generation, its cpumask; a CPU that has
another mm loaded returns after counting the IPI, and a full flush drops the loaded mm's
entries only (flush_tlb_local: the current PCID). Batched flushes carry no mm and flush
whatever mm each CPU has loaded, if that mm's generation is ahead of the CPU's.
Beside them the mm's two flush-related states: ``mm->tlb_flush_batched`` (batched unmaps
not yet seen by ``flush_tlb_batched_pending``) and ``mm->tlb_flush_pending`` (an mmu_gather
in progress, during which x86 ``pte_accessible()`` is true for a PROT_NONE PTE).
Counting follows the kernel: ``nr_tlb_remote_flush`` once per multi-CPU call,
``nr_tlb_remote_flush_received`` on every IPI'd CPU before it checks anything, the
initiator's ``nr_tlb_local_flush_*`` only when it really flushes; lazy CPUs get no IPI.
Each IPI (and each broadcast instruction or request) is also counted under the source that
asked for the flush: callers name themselves with ``flushing_for`` (counters.FLUSH_SOURCES).
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import kernel as K
from .counters import FLUSH_SOURCES, C, T
from .machine import MM_SHIFT, TLB_NR_DYN_ASIDS

GEN_INVALID = 0  # TLB_GENERATION_INVALID: batched flushes carry no target generation
SOURCE = {name: i for i, name in enumerate(FLUSH_SOURCES)}
IPIS, BROADCASTS = 0, 1  # the units counted per source: IPIs received, broadcasts issued


@dataclass(frozen=True)
class FlushInfo:
    """flush_tlb_info: full, or these pages; the generation it brings CPUs to (or invalid)."""

    pids: np.ndarray | None  # None: TLB_FLUSH_ALL
    new_gen: int
    npages: int = 0  # pages the range covers (the kernel counts the span, not the PTEs changed)
    freed_tables: bool = False  # flush_tlb_mm(): lazy CPUs get the IPI too
    mm: int | None = None  # the mm flushed; None: arch_tlbbatch_flush's (info->mm NULL)

    @property
    def full(self) -> bool:
        return self.pids is None


class FlushMechanism:
    def __init__(self, machine):
        self.m = machine
        cfg = machine.cfg
        self.ceiling = cfg.tlb.single_page_flush_ceiling
        self.events_per_flush = cfg.tlb.itlb_flush_events_per_flush
        self.keep_kernel_text = not cfg.tlb.pti
        # Called after every batched flush with (initiator, flushed cpumask): migrc's hook.
        self.after_batch_flush: list[Callable[[int, np.ndarray], None]] = []
        self.before_batch_flush: list[Callable[[int, np.ndarray], None]] = []
        # (start, end) of recent batched flushes on the initiator's clock: while one is in
        # flight, migrc must not publish new pending CPUs (the migrc_flushing race rule).
        self.batch_windows: deque[tuple[float, float]] = deque(maxlen=64)
        # Called with the CPU mask after every full flush of the mm has been dispatched to it:
        # each CPU in it has flushed, is up to date, or is lazy and flushes before it runs the
        # mm again (LUF's ugen_done stamps).
        self.after_full_flush: list[Callable[[np.ndarray], None]] = []
        # mm->tlb_flush_batched per mm: set_tlb_ubc_flush_pending counts "pending", and only
        # flush_tlb_batched_pending() catches "flushed" up (try_to_unmap_flush does not)
        self.batched_pending_mm = [0] * machine.nmm
        self.batched_flushed_mm = [0] * machine.nmm
        # (start, end) on the scanning CPU's clock of each mmu_gather (change_prot_numa) in
        # progress, per mm: mm->tlb_flush_pending is set from tlb_gather_mmu to tlb_finish_mmu
        self.pending_windows_mm: list[deque[tuple[float, float]]] = [
            deque(maxlen=64) for _ in range(machine.nmm)]
        self.pending_windows = self.pending_windows_mm[0]
        # Called with (cpu, to_kernel) before kswapd switches in on a CPU (to_kernel) or back
        # out: __schedule's context switch, for engines that act there (model/sched.py).
        self.on_context_switch: list[Callable[[int, bool], None]] = []
        # per CPU, per unit (IPIS on the receiver, BROADCASTS on the initiator), per source
        self.by_source = np.zeros((machine.ncpu, 2, len(FLUSH_SOURCES)), np.int64)
        self.source = SOURCE["other"]

    @contextmanager
    def flushing_for(self, source: str):
        """Count the flushes made inside the block under ``source`` (a FLUSH_SOURCES name);
        blocks nest, the innermost wins (an engine's flush during a demotion's allocation)."""
        outer, self.source = self.source, SOURCE[source]
        try:
            yield
        finally:
            self.source = outer

    # ---- generations -------------------------------------------------------------------
    def inc_mm_gen(self, mm: int = 0) -> int:
        """inc_mm_tlb_gen: every PTE change that needs a flush moves the mm's generation."""
        gens = self.m.mm_gens
        gens[mm] += 1
        return int(gens[mm])

    def mm_of_page(self, pid: int) -> int:
        """The mm of page ``pid`` (a one-process trace: 0)."""
        return 0 if self.m.nmm == 1 else int(self.m.page_vpn[pid] >> MM_SHIFT)

    def mm_of(self, pids: np.ndarray | None) -> int:
        """The mm of the pages ``pids`` (one mm; a one-process trace: 0)."""
        if self.m.nmm == 1 or pids is None or len(pids) == 0:
            return 0
        return int(self.m.page_vpn[int(pids[0])] >> MM_SHIFT)

    # ---- entry points ------------------------------------------------------------------
    def flush_mm_range(self, initiator: int, pids: np.ndarray | None, npages: int | None = None,
                       freed_tables: bool = False, mm: int | None = None) -> None:
        """flush_tlb_mm_range on the mm's cpumask; ``pids`` None means the whole mm.

        ``npages`` is the length of the address range when it covers more than ``pids``
        (the pages in between have nothing cached, but the kernel still invalidates them).
        ``mm``: the mm flushed (default: that of ``pids``, or mm 0 for the whole mm).
        """
        m = self.m
        if mm is None:
            mm = self.mm_of(pids)
        new_gen = self.inc_mm_gen(mm)
        if pids is not None:
            npages = len(pids) if npages is None else npages
            if npages > self.ceiling:
                pids = None
        info = FlushInfo(None if pids is None else np.asarray(pids, np.int32), new_gen,
                         npages or 0, freed_tables, mm)
        self._flush_mm(initiator, info)

    def _flush_mm(self, initiator: int, info: FlushInfo) -> None:
        """flush_tlb_mm_range's choice of how: IPIs on the mm's cpumask (model/broadcast.py
        overrides it for mms with a global ASID)."""
        self._dispatch(initiator, self.m.mm_cpumasks[info.mm].copy(), info)

    def flush_tlb_mm(self, initiator: int, mm: int = 0) -> None:
        """flush_tlb_mm(): flush_tlb_mm_range(mm, 0, TLB_FLUSH_ALL, 0, freed_tables=true)."""
        self.flush_mm_range(initiator, None, freed_tables=True, mm=mm)

    def note_batched_unmap(self, mm: int = 0) -> None:
        """set_tlb_ubc_flush_pending: the "pending" half of mm->tlb_flush_batched moves on."""
        self.batched_pending_mm[mm] += 1

    def flush_tlb_batched_pending(self, initiator: int, mm: int = 0) -> bool:
        """flush_tlb_batched_pending (mm/rmap.c), called under the PTL by mprotect's
        change_pte_range, zap, mremap and madvise: after a batched unmap of the mm that no
        such caller has seen yet, a full flush_tlb_mm() -- whether or not the batch itself
        was flushed since (x86 arch_flush_tlb_batched_pending). True if it flushed."""
        if self.batched_pending_mm[mm] == self.batched_flushed_mm[mm]:
            return False
        with self.flushing_for("batched_pending"):
            self.flush_tlb_mm(initiator, mm)
        self.batched_flushed_mm[mm] = self.batched_pending_mm[mm]
        return True

    def open_pending_window(self, t0: float, t1: float, mm: int = 0) -> None:
        """An mmu_gather of ``mm`` ran from ``t0`` to ``t1`` (inc/dec_tlb_flush_pending)."""
        self.pending_windows_mm[mm].append((t0, t1))

    def tlb_flush_pending(self, t: float, mm: int = 0) -> bool:
        """mm_tlb_flush_pending(): some mmu_gather of the mm is in progress at time ``t``."""
        return any(t0 <= t < t1 for t0, t1 in self.pending_windows_mm[mm])

    def pte_accessible(self, pte_flags: int, t: float, mm: int = 0) -> bool:
        """x86 pte_accessible(): present, or PROT_NONE while the mm has a flush pending."""
        if not pte_flags & K.PTE_PRESENT:
            return False
        return not pte_flags & K.PTE_PROTNONE or self.tlb_flush_pending(t, mm)

    def flush_batch(self, initiator: int, mask: np.ndarray) -> None:
        """arch_tlbbatch_flush: a full flush on the batch's cpumask, no target generation."""
        mask = mask.copy()
        for hook in self.before_batch_flush:
            hook(initiator, mask)
        t0 = float(self.m.clock[initiator])
        if mask.any():
            self._flush_batch_mask(initiator, mask)
        self.batch_windows.append((t0, float(self.m.clock[initiator])))
        for hook in self.after_batch_flush:
            hook(initiator, mask)

    def _flush_batch_mask(self, initiator: int, mask: np.ndarray) -> None:
        """arch_tlbbatch_flush's flush of a non-empty batch: IPIs (flush_tlb_multi)."""
        self._dispatch(initiator, mask, FlushInfo(None, GEN_INVALID))

    def kept_current(self) -> np.ndarray | None:
        """(ncpu, nmm) bool: entries no switch will flush, which the mechanism keeps current
        (global ASIDs, model/broadcast.py); None: none such (the checker's exemption)."""
        return None

    def run_figures(self) -> dict:
        return {"global_asids": 0, "tlb_ipis_global_asid": 0}

    def source_figures(self, by_source: np.ndarray | None = None) -> dict:
        """tlb_ipis_<source> and tlb_broadcasts_<source> of ``by_source`` (default: the whole
        replay; the replay passes the counted part after a warm-up)."""
        tot = (self.by_source if by_source is None else by_source).sum(axis=0)
        return {f"tlb_{unit}_{name}": int(tot[u, i])
                for u, unit in ((IPIS, "ipis"), (BROADCASTS, "broadcasts"))
                for i, name in enumerate(FLUSH_SOURCES)}

    def batch_flush_in_flight(self, t: float) -> bool:
        """Whether some batched flush's IPI round trip spans modelled time ``t``."""
        return any(t0 <= t < t1 for t0, t1 in self.batch_windows)

    def switch_to_kernel(self, cpu: int) -> None:
        """A kernel thread (kswapd) switches in on ``cpu``: the user mm stays loaded, lazily."""
        for hook in self.on_context_switch:
            hook(cpu, True)
        self.m.lazy[cpu] = True

    def switch_back(self, cpu: int) -> None:
        """A lazy CPU switches back to the mm: flush if its generation fell behind."""
        for hook in self.on_context_switch:
            hook(cpu, False)
        self.switch_mm(cpu, int(self.m.loaded_mm[cpu]))

    def switch_mm(self, cpu: int, next_mm: int) -> None:
        """switch_mm_irqs_off(prev, next) on ``cpu`` (arch/x86/mm/tlb.c, v6.7/v6.8).

        Same mm: no CR3 write, unless the CPU was lazy and its generation fell behind.
        Another mm: the CPU leaves the old mm's cpumask (v6.7 clears the bit; later kernels
        keep it lazily), joins the new one's, reads its generation, and choose_new_asid()
        picks the slot: the mm's own (a flush only if its tlb_gen is behind) or the next one
        round-robin (a flush: the slot's previous owner's entries go, that PCID is reused).
        A flush is a CR3 write without NOFLUSH: the slot's PCID only, the others keep theirs.
        """
        m = self.m
        prev = int(m.loaded_mm[cpu])
        was_lazy = bool(m.lazy[cpu])
        m.lazy[cpu] = False
        if prev == next_mm:
            m.mm_cpumasks[next_mm, cpu] = True
            if not was_lazy or m.cpu_gen[cpu] == m.mm_gens[next_mm]:
                return
            asid, need_flush = int(m.loaded_asid[cpu]), True
            drop = (next_mm,)
        else:
            if prev >= 0:
                m.asid_gen[cpu, m.loaded_asid[cpu]] = m.cpu_gen[cpu]
                m.mm_cpumasks[prev, cpu] = False
            m.mm_cpumasks[next_mm, cpu] = True
            asid, need_flush = self.choose_new_asid(cpu, next_mm, int(m.mm_gens[next_mm]))
            old = int(m.asid_mm[cpu, asid])
            drop = (next_mm,) if old in (-1, next_mm) else (old, next_mm)
        m.loaded_mm[cpu] = next_mm
        m.loaded_asid[cpu] = asid
        if not need_flush:
            m.cpu_gen[cpu] = m.asid_gen[cpu, asid]
            return
        m.asid_mm[cpu, asid] = next_mm
        m.cpu_gen[cpu] = m.asid_gen[cpu, asid] = m.mm_gens[next_mm]
        self._switch_flush(cpu, drop)

    def _switch_flush(self, cpu: int, drop: tuple[int, ...]) -> None:
        """load_new_mm_cr3(need_flush): CR3 without NOFLUSH drops the PCID's entries (the mms
        ``drop``); the tlb:tlb_flush TLB_FLUSH_ON_TASK_SWITCH event."""
        m = self.m
        self._invalidate(cpu, None, drop)
        m.counters[cpu, C["tlb_flush_on_task_switch"]] += 1
        one = np.zeros(m.ncpu, np.bool_)
        one[cpu] = True
        self._after_full(one)
        m.charge(cpu, m.costs.flush_full, T["ipi"])

    def choose_new_asid(self, cpu: int, mm: int, next_gen: int) -> tuple[int, bool]:
        """choose_new_asid(): (slot, need_flush). The mm's slot if it has one, flushed when
        its tlb_gen is behind; else this_cpu_add_return(next_asid, 1) - 1, wrapping to 0 at
        TLB_NR_DYN_ASIDS (round-robin, not LRU: the evicted mm flushes when it comes back)."""
        m = self.m
        for asid in range(TLB_NR_DYN_ASIDS):
            if m.asid_mm[cpu, asid] == mm:
                return asid, bool(m.asid_gen[cpu, asid] < next_gen)
        asid = int(m.next_asid[cpu])
        m.next_asid[cpu] = asid + 1
        if asid >= TLB_NR_DYN_ASIDS:
            asid = 0
            m.next_asid[cpu] = 1
        return asid, True

    # ---- the machinery -----------------------------------------------------------------
    def _dispatch(self, initiator: int, mask: np.ndarray, info: FlushInfo) -> None:
        m = self.m
        others = mask.copy()
        others[initiator] = False
        if others.any():
            self._flush_multi(initiator, mask, info)
        elif mask[initiator] and (info.freed_tables or not m.lazy[initiator]):
            self._handler(initiator, info, local=True)
        else:
            return
        if info.full:
            self._after_full(mask)

    def _after_full(self, mask: np.ndarray) -> None:
        """The hooks told of a full flush of the CPUs in ``mask`` (engines that track what
        each CPU may still cache)."""
        for hook in self.after_full_flush:
            hook(mask)

    def _flush_multi(self, initiator: int, mask: np.ndarray, info: FlushInfo) -> None:
        """native_flush_tlb_multi: counted once; lazy CPUs skipped unless page tables were
        freed (flush_tlb_mm: on_each_cpu_mask sends to every CPU of the mask)."""
        m = self.m
        m.counters[initiator, C["nr_tlb_remote_flush"]] += 1
        targets = [c for c in np.flatnonzero(mask) if info.freed_tables or not m.lazy[c]]
        ipis = 0
        for cpu in targets:
            if cpu == initiator:
                self._handler(cpu, info, local=True)
            else:
                ipis += 1
                self._handler(int(cpu), info, local=False)
        if ipis:
            c = m.costs
            m.charge(initiator, ipis * c.ipi_send + c.vmexit + c.ipi_wait, T["ipi"])

    def _handler(self, cpu: int, info: FlushInfo, local: bool) -> None:
        """flush_tlb_func on one CPU."""
        m = self.m
        if not local:
            self._take_ipi(cpu)
        loaded = int(m.loaded_mm[cpu])
        if info.mm is not None and info.mm != loaded:
            return  # f->mm != loaded_mm: the CPU runs another mm now
        if loaded < 0:
            return  # init_mm: nothing of a user mm to flush
        if m.lazy[cpu]:
            # a lazy CPU switches to init_mm instead of flushing (and leaves mm_cpumask);
            # its generation stays behind, so it flushes when it switches back
            m.mm_cpumasks[loaded, cpu] = False
            return
        local_gen = int(m.cpu_gen[cpu])
        mm_gen = int(m.mm_gens[loaded])
        if info.new_gen != GEN_INVALID and info.new_gen <= local_gen:
            return
        if local_gen == mm_gen:
            return
        partial = (not info.full) and info.new_gen == local_gen + 1 and info.new_gen == mm_gen
        if partial:
            npages = info.npages
            self._invalidate(cpu, info.pids, npages=npages)
            if local:
                m.counters[cpu, C["nr_tlb_local_flush_one"]] += npages
            m.charge(cpu, npages * m.costs.flush_one, T["ipi"])
        else:
            self._invalidate(cpu, None, (loaded,))
            if local:
                m.counters[cpu, C["nr_tlb_local_flush_all"]] += 1
            m.charge(cpu, m.costs.flush_full, T["ipi"])
        m.cpu_gen[cpu] = mm_gen

    def _take_ipi(self, cpu: int) -> None:
        """A flush IPI arrives (flush_tlb_func, remote): counted before any check, paid for."""
        m = self.m
        m.counters[cpu, C["nr_tlb_remote_flush_received"]] += 1
        m.counters[cpu, C["tlb_shootdown_irqs"]] += 1
        self.by_source[cpu, IPIS, self.source] += 1
        m.charge(cpu, m.costs.ipi_receive, T["ipi"])
        m.times[cpu, T["ipi"]] += m.kernel_entry(cpu)

    def _invalidate(self, cpu: int, pids: np.ndarray | None, mms: tuple[int, ...] = (0,),
                    npages: int = 1, count: bool = True) -> None:
        """The hardware side: drop translations and count the perf flush events (``count``;
        not for a remote broadcast, which the CPU itself did not execute). A full flush drops
        the entries of the mms ``mms`` (their PCIDs), and kernel text unless it is global (no
        PTI); with one mm, every user entry is that mm's."""
        m = self.m
        if pids is None:
            if m.nmm == 1:
                K.invalidate_all(m.tlb_tag, cpu, m.page_flags, self.keep_kernel_text)
            else:
                for mm in mms:
                    K.invalidate_mm(m.tlb_tag, cpu, m.page_vpn, mm, MM_SHIFT, m.page_flags,
                                    self.keep_kernel_text)
            n = 1
        else:
            for pid in pids:
                head = int(m.page_pmd[pid]) if m.thp else -1
                if head >= 0:  # INVLPG inside a huge page drops its 2 MiB translation
                    K.invalidate_huge(m.tlb_tag, m.tlb_geo, cpu, head,
                                      int(m.page_vpn[head]) >> K.PMD_SHIFT_PAGES)
                else:
                    K.invalidate_page(m.tlb_tag, m.tlb_geo, cpu, int(pid), int(m.page_vpn[pid]))
            n = npages
        if not count:
            return
        m.counters[cpu, C["itlb_flush"]] += n * self.events_per_flush
        m.counters[cpu, C["dtlb_flush"]] += n
        m.counters[cpu, C["stlb_flush"]] += n
