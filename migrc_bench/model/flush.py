"""The one TLB-flush mechanism every path and engine uses (K§1.3, K§1.4; arch/x86/mm/tlb.c v6.7).

Three entry points mirror the kernel's:
- ``flush_mm_range``: flush_tlb_mm_range (mprotect, NUMA scan, single-page flush_tlb_page),
  with tlb_single_page_flush_ceiling turning long ranges into full flushes;
- ``flush_batch``: arch_tlbbatch_flush (the batched unmap flush of migration and reclaim),
  always a full flush of the loaded mm on a captured cpumask;
- ``switch_back``: a lazy CPU returning to the mm catches up on its TLB generation
  (``switch_to_kernel`` is the way in: kswapd takes the CPU, the mm stays loaded lazily).
Beside them the mm's two flush-related states: ``mm->tlb_flush_batched`` (batched unmaps
not yet seen by ``flush_tlb_batched_pending``) and ``mm->tlb_flush_pending`` (an mmu_gather
in progress, during which x86 ``pte_accessible()`` is true for a PROT_NONE PTE).
Counting follows the kernel: ``nr_tlb_remote_flush`` once per multi-CPU call,
``nr_tlb_remote_flush_received`` on every IPI'd CPU before it checks anything, the
initiator's ``nr_tlb_local_flush_*`` only when it really flushes; lazy CPUs get no IPI.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import kernel as K
from .counters import C, T

GEN_INVALID = 0  # TLB_GENERATION_INVALID: batched flushes carry no target generation


@dataclass(frozen=True)
class FlushInfo:
    """flush_tlb_info: full, or these pages; the generation it brings CPUs to (or invalid)."""

    pids: np.ndarray | None  # None: TLB_FLUSH_ALL
    new_gen: int
    npages: int = 0  # pages the range covers (the kernel counts the span, not the PTEs changed)
    freed_tables: bool = False  # flush_tlb_mm(): lazy CPUs get the IPI too

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
        # mm->tlb_flush_batched: set_tlb_ubc_flush_pending counts "pending", and only
        # flush_tlb_batched_pending() catches "flushed" up (try_to_unmap_flush does not)
        self.batched_pending = 0
        self.batched_flushed = 0
        # (start, end) on the scanning CPU's clock of each mmu_gather (change_prot_numa) in
        # progress: mm->tlb_flush_pending is set from tlb_gather_mmu to tlb_finish_mmu
        self.pending_windows: deque[tuple[float, float]] = deque(maxlen=64)
        # Called with (cpu, to_kernel) before kswapd switches in on a CPU (to_kernel) or back
        # out: __schedule's context switch, for engines that act there (model/sched.py).
        self.on_context_switch: list[Callable[[int, bool], None]] = []

    # ---- generations -------------------------------------------------------------------
    def inc_mm_gen(self) -> int:
        """inc_mm_tlb_gen: every PTE change that needs a flush moves the mm's generation."""
        self.m.mm_gen += 1
        return self.m.mm_gen

    # ---- entry points ------------------------------------------------------------------
    def flush_mm_range(self, initiator: int, pids: np.ndarray | None, npages: int | None = None,
                       freed_tables: bool = False) -> None:
        """flush_tlb_mm_range on the mm's cpumask; ``pids`` None means the whole mm.

        ``npages`` is the length of the address range when it covers more than ``pids``
        (the pages in between have nothing cached, but the kernel still invalidates them).
        """
        m = self.m
        new_gen = self.inc_mm_gen()
        if pids is not None:
            npages = len(pids) if npages is None else npages
            if npages > self.ceiling:
                pids = None
        info = FlushInfo(None if pids is None else np.asarray(pids, np.int32), new_gen,
                         npages or 0, freed_tables)
        self._dispatch(initiator, m.mm_cpumask.copy(), info)

    def flush_tlb_mm(self, initiator: int) -> None:
        """flush_tlb_mm(): flush_tlb_mm_range(mm, 0, TLB_FLUSH_ALL, 0, freed_tables=true)."""
        self.flush_mm_range(initiator, None, freed_tables=True)

    def note_batched_unmap(self) -> None:
        """set_tlb_ubc_flush_pending: the "pending" half of mm->tlb_flush_batched moves on."""
        self.batched_pending += 1

    def flush_tlb_batched_pending(self, initiator: int) -> bool:
        """flush_tlb_batched_pending (mm/rmap.c), called under the PTL by mprotect's
        change_pte_range, zap, mremap and madvise: after a batched unmap of the mm that no
        such caller has seen yet, a full flush_tlb_mm() -- whether or not the batch itself
        was flushed since (x86 arch_flush_tlb_batched_pending). True if it flushed."""
        if self.batched_pending == self.batched_flushed:
            return False
        self.flush_tlb_mm(initiator)
        self.batched_flushed = self.batched_pending
        return True

    def open_pending_window(self, t0: float, t1: float) -> None:
        """An mmu_gather ran from ``t0`` to ``t1`` (inc/dec_tlb_flush_pending)."""
        self.pending_windows.append((t0, t1))

    def tlb_flush_pending(self, t: float) -> bool:
        """mm_tlb_flush_pending(): some mmu_gather of the mm is in progress at time ``t``."""
        return any(t0 <= t < t1 for t0, t1 in self.pending_windows)

    def pte_accessible(self, pte_flags: int, t: float) -> bool:
        """x86 pte_accessible(): present, or PROT_NONE while the mm has a flush pending."""
        if not pte_flags & K.PTE_PRESENT:
            return False
        return not pte_flags & K.PTE_PROTNONE or self.tlb_flush_pending(t)

    def flush_batch(self, initiator: int, mask: np.ndarray) -> None:
        """arch_tlbbatch_flush: a full flush on the batch's cpumask, no target generation."""
        mask = mask.copy()
        for hook in self.before_batch_flush:
            hook(initiator, mask)
        t0 = float(self.m.clock[initiator])
        if mask.any():
            self._dispatch(initiator, mask, FlushInfo(None, GEN_INVALID))
        self.batch_windows.append((t0, float(self.m.clock[initiator])))
        for hook in self.after_batch_flush:
            hook(initiator, mask)

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
        m = self.m
        m.lazy[cpu] = False
        m.mm_cpumask[cpu] = True  # switch_mm_irqs_off: back in the mm's cpumask
        if m.cpu_gen[cpu] < m.mm_gen:
            self._invalidate(cpu, None)
            m.cpu_gen[cpu] = m.mm_gen
            one = np.zeros(m.ncpu, np.bool_)
            one[cpu] = True
            for hook in self.after_full_flush:
                hook(one)
            m.charge(cpu, m.costs.flush_full, T["ipi"])

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
            m.counters[cpu, C["nr_tlb_remote_flush_received"]] += 1
            m.counters[cpu, C["tlb_shootdown_irqs"]] += 1
            m.charge(cpu, m.costs.ipi_receive, T["ipi"])
            m.times[cpu, T["ipi"]] += m.kernel_entry(cpu)
        if m.lazy[cpu]:
            # a lazy CPU switches to init_mm instead of flushing (and leaves mm_cpumask);
            # its generation stays behind, so it flushes when it switches back
            m.mm_cpumask[cpu] = False
            return
        local_gen = int(m.cpu_gen[cpu])
        mm_gen = m.mm_gen
        if info.new_gen != GEN_INVALID and info.new_gen <= local_gen:
            return
        if local_gen == mm_gen:
            return
        partial = (not info.full) and info.new_gen == local_gen + 1 and info.new_gen == mm_gen
        if partial:
            npages = info.npages
            self._invalidate(cpu, info.pids, npages)
            if local:
                m.counters[cpu, C["nr_tlb_local_flush_one"]] += npages
            m.charge(cpu, npages * m.costs.flush_one, T["ipi"])
        else:
            self._invalidate(cpu, None)
            if local:
                m.counters[cpu, C["nr_tlb_local_flush_all"]] += 1
            m.charge(cpu, m.costs.flush_full, T["ipi"])
        m.cpu_gen[cpu] = mm_gen

    def _invalidate(self, cpu: int, pids: np.ndarray | None, npages: int = 1) -> None:
        """The hardware side: drop translations and count the perf flush events."""
        m = self.m
        if pids is None:
            K.invalidate_all(m.tlb_tag, cpu, m.page_flags, self.keep_kernel_text)
            n = 1
        else:
            for pid in pids:
                K.invalidate_page(m.tlb_tag, m.tlb_geo, cpu, int(pid), int(m.page_vpn[pid]))
            n = npages
        m.counters[cpu, C["itlb_flush"]] += n * self.events_per_flush
        m.counters[cpu, C["dtlb_flush"]] += n
        m.counters[cpu, C["stlb_flush"]] += n
