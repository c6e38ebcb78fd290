"""Broadcast TLB invalidation as flush mechanisms: AMD INVLPGB (v6.15) and Intel RAR (RFC).

``machine.flush`` picks the mechanism (default: the one ``machine.preset`` implies); "ipi" is
flush.FlushMechanism itself, v6.7's IPIs. Both broadcast mechanisms share the global ASIDs
of v6.15 (arch/x86/mm/tlb.c, Rik van Riel's "AMD broadcast TLB invalidation" series, v15,
merged for v6.15 as d504d1247e36, be88a1dd6112, 4afeb0ed1753, 0b7eb55cb706 and others):

- ``consider_global_asid()``: after an IPI flush of an mm without one (flush_tlb_mm_range's
  flush_tlb_multi branch), if ``(current->pid & 0x1f) == (jiffies & 0x1f)`` and
  ``mm_active_cpus_exceeds(mm, 3)`` (more than 3 CPUs of its cpumask run it, not lazily),
  ``use_global_asid()`` gives it one from the pool [TLB_NR_DYN_ASIDS, MAX_ASID_AVAILABLE):
  ``allocate_global_asid()`` takes the next free one after the last, and when the search
  reaches the end ``reset_global_asid_space()`` flushes every non-global entry everywhere
  first (the first allocation already does: last_global_asid starts at MAX_ASID_AVAILABLE).
  The mm starts in ASID transition;
- a CPU takes the global ASID when it next loads the mm (switch_mm_irqs_off: choose_new_asid
  returns it with need_flush false; prev == next with mm_needs_global_asid reloads) or when
  a flush IPI reaches it (flush_tlb_func reloads, then returns: global ASIDs are kept up to
  date by the broadcasts);
- ``flush_tlb_mm_range()`` of a global-ASID mm calls ``broadcast_tlb_flush()``: the
  mechanism's invalidation, then ``finish_asid_transition()`` (while some CPU running the mm
  is still on a dynamic ASID, flush_tlb_multi to the whole cpumask, lazy CPUs included; once
  none is, the transition ends), then the wait.

INVLPGB: a full flush is one INVLPGB of the PCID, a range one per ``tlb.invlpgb_count_max``
pages (x2 with PTI: user and kernel PCIDs), then TLBSYNC; ``arch_tlbbatch_flush()`` of a
batch that unmapped pages is one ``invlpgb_flush_all_nonglobals()`` (every PCID of every
CPU, then TLBSYNC) instead of IPIs (0b7eb55cb706). None of it counts a vmstat event.

RAR (RFC v4 5/8 "x86/mm: Introduce Remote Action Request"; user flushes as RFC v3 7/7, v4 7/8
could not be retrieved): ``smp_call_rar_many(mm_cpumask, pcid, start, end)`` writes one payload
(slot cpu % 64), sends the RAR vector to every target (the initiator included) and waits for
each to report RAR_SUCCESS; no handler runs on a target. A request covers ``pages =
(end - start + PAGE_SIZE) / PAGE_SIZE`` pages while ``pages < RAR_INVLPG_MAX_PAGES`` (63),
else the whole PCID. Global-ASID CPUs not in the mm's cpumask are not flushed, so a CPU
loading a global-ASID mm it was not in the cpumask of flushes it (choose_new_asid's
new_cpu). ``arch_tlbbatch_flush()`` is ``rar_full_flush(batch cpumask)``: every entry,
globals included, on the targets. No vmstat event either (no handler, no received count).

Simplifications (docs/modelling.md): ``current->pid`` of the task on the initiating CPU is
PID_BASE + its task index; jiffies count from INITIAL_JIFFIES at the model's time zero in
periods of 1/machine.hz x replay.time_scale; the costs on the targets of a broadcast are
not modelled (hardware; none published); MAX_ASID_AVAILABLE is PTI's 2046 (compiled in).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import kernel as K
from .counters import C, T
from .flush import BROADCASTS, FlushInfo, FlushMechanism
from .machine import TLB_NR_DYN_ASIDS
from .presets import PRESET_FLUSH

PID_BASE = 1000           # current->pid of task t: PID_BASE + t (only its low 5 bits matter)
ACTIVE_CPUS_THRESHOLD = 3  # consider_global_asid(): mm_active_cpus_exceeds(mm, 3)
MAX_ASID_AVAILABLE = (1 << 11) - 2  # (1 << CR3_AVAIL_PCID_BITS) - 2, PTI compiled in
RAR_INVLPG_MAX_PAGES = 63


def initial_jiffies(hz: int) -> int:
    """INITIAL_JIFFIES, ((unsigned long)(unsigned int)(-300 * HZ)): 5 minutes before a wrap."""
    return (1 << 32) - 300 * hz


class GlobalAsidFlush(FlushMechanism):
    """The global ASIDs both broadcast mechanisms use; subclasses say how a flush travels."""

    flush_on_new_cpu = False  # choose_new_asid flushes a global ASID on a CPU new to the mm

    def __init__(self, machine):
        super().__init__(machine)
        m = machine
        cfg = m.cfg
        self.pti = bool(cfg.tlb.pti)
        self.global_asid = np.zeros(m.nmm, np.int64)  # mm->context.global_asid (0: none)
        self.asid_transition = np.zeros(m.nmm, np.bool_)
        # the CPU's TLB holds the mm's entries under its global PCID (it has loaded it)
        self.gpcid = np.zeros((m.ncpu, m.nmm), np.bool_)
        self.global_asid_used: set[int] = set()
        self.global_asid_freed: set[int] = set()  # no mm exits in a replay: stays empty
        self.last_global_asid = MAX_ASID_AVAILABLE
        self.global_asid_available = MAX_ASID_AVAILABLE - TLB_NR_DYN_ASIDS - 1
        self.jiffy_ns = 1e9 / cfg.machine.hz * cfg.replay.time_scale
        self.jiffies0 = initial_jiffies(cfg.machine.hz)
        self.current_task: np.ndarray | None = None  # the replay's run queues set it
        self.ipis_on_global = 0  # flush IPIs to CPUs on a global ASID, out of transition

    # ---- state -------------------------------------------------------------------------
    def kept_current(self) -> np.ndarray:
        # a CPU's entries under a global PCID are not flushed when it loads the mm again
        kept = self.gpcid & (self.global_asid > 0)[None, :]
        if self.flush_on_new_cpu:  # RAR reaches the cpumask only; others flush at load
            kept &= self.m.mm_cpumasks.T
        return kept

    def run_figures(self) -> dict:
        return {"global_asids": int((self.global_asid > 0).sum()),
                "tlb_ipis_global_asid": self.ipis_on_global}

    # ---- global ASID allocation (d504d1247e36, 4afeb0ed1753) -----------------------------
    def current_pid(self, cpu: int) -> int:
        task = int(self.current_task[cpu]) if self.current_task is not None else cpu
        return PID_BASE + task

    def jiffies(self, cpu: int) -> int:
        return self.jiffies0 + math.floor(float(self.m.clock[cpu]) / self.jiffy_ns)

    def consider_global_asid(self, initiator: int, mm: int) -> None:
        if (self.current_pid(initiator) & 0x1F) != (self.jiffies(initiator) & 0x1F):
            return
        if self.mm_active_cpus_exceeds(mm, ACTIVE_CPUS_THRESHOLD):
            self.use_global_asid(initiator, mm)

    def mm_active_cpus_exceeds(self, mm: int, threshold: int) -> bool:
        m = self.m
        mask = m.mm_cpumasks[mm]
        if int(mask.sum()) <= threshold:
            return False
        return int((mask & (m.loaded_mm == mm) & ~m.lazy).sum()) > threshold

    def use_global_asid(self, initiator: int, mm: int) -> None:
        if self.global_asid[mm] or not self.global_asid_available:
            return  # has one; or "No more global ASIDs left"
        asid = self.allocate_global_asid(initiator)
        if asid:
            self.asid_transition[mm] = True  # mm_assign_global_asid: before the ASID
            self.global_asid[mm] = asid

    def allocate_global_asid(self, initiator: int) -> int:
        if self.last_global_asid >= MAX_ASID_AVAILABLE - 1:
            self.reset_global_asid_space(initiator)
        asid = self.last_global_asid
        while asid < MAX_ASID_AVAILABLE and asid in self.global_asid_used:
            asid += 1
        if asid >= MAX_ASID_AVAILABLE:
            return 0
        self.global_asid_used.add(asid)
        self.last_global_asid = asid
        self.global_asid_available -= 1
        return asid

    def reset_global_asid_space(self, initiator: int) -> None:
        """The wrap-around: a flush of everything non-global makes freed ASIDs reusable."""
        self.flush_all_nonglobals(initiator)
        self.global_asid_used -= self.global_asid_freed
        self.global_asid_freed.clear()
        self.last_global_asid = TLB_NR_DYN_ASIDS

    # ---- CPUs taking the global ASID ---------------------------------------------------
    def _load_global(self, cpu: int, mm: int) -> None:
        """CR3 reloaded with the mm's global ASID, need_flush false. The CPU's entries of the
        mm under its dynamic PCID are unreachable from now on (dropped here; uncounted, no
        instruction flushes them); the dynamic slot no longer holds anything of use."""
        m = self.m
        if not self.gpcid[cpu, mm]:
            self._invalidate(cpu, None, (mm,), count=False)
            m.asid_mm[cpu][m.asid_mm[cpu] == mm] = -1
            self.gpcid[cpu, mm] = True

    def switch_mm(self, cpu: int, next_mm: int) -> None:
        """switch_mm_irqs_off with global ASIDs (be88a1dd6112): a global-ASID mm is loaded
        without a flush (RAR: unless the CPU was not in its cpumask)."""
        m = self.m
        if not self.global_asid[next_mm]:
            super().switch_mm(cpu, next_mm)
            return
        prev = int(m.loaded_mm[cpu])
        m.lazy[cpu] = False
        if prev == next_mm:
            m.mm_cpumasks[next_mm, cpu] = True
            self._load_global(cpu, next_mm)  # mm_needs_global_asid: reload; else nothing
            return
        new_cpu = not m.mm_cpumasks[next_mm, cpu]
        if prev >= 0:
            if not self.gpcid[cpu, prev] or not self.global_asid[prev]:
                m.asid_gen[cpu, m.loaded_asid[cpu]] = m.cpu_gen[cpu]
            m.mm_cpumasks[prev, cpu] = False
        m.mm_cpumasks[next_mm, cpu] = True
        m.loaded_mm[cpu] = next_mm
        self._load_global(cpu, next_mm)
        if self.flush_on_new_cpu and new_cpu:
            self._switch_flush(cpu, (next_mm,))

    def _handler(self, cpu: int, info: FlushInfo, local: bool) -> None:
        """flush_tlb_func (be88a1dd6112): a CPU running a global-ASID mm reloads onto the
        global ASID if it is not on it yet, and returns: the broadcasts keep it current."""
        m = self.m
        loaded = int(m.loaded_mm[cpu])
        if loaded < 0 or not self.global_asid[loaded] or info.mm not in (None, loaded):
            super()._handler(cpu, info, local)
            return
        if not local:
            if self.gpcid[cpu, loaded] and not self.asid_transition[loaded]:
                self.ipis_on_global += 1
            self._take_ipi(cpu)
        self._load_global(cpu, loaded)

    # ---- flush_tlb_mm_range ------------------------------------------------------------
    def _flush_mm(self, initiator: int, info: FlushInfo) -> None:
        m = self.m
        mm = info.mm
        if self.global_asid[mm]:
            self.broadcast_tlb_flush(initiator, info)
            return
        others = m.mm_cpumasks[mm].copy()
        others[initiator] = False
        super()._flush_mm(initiator, info)
        if others.any():
            self.consider_global_asid(initiator, mm)

    def broadcast_tlb_flush(self, initiator: int, info: FlushInfo) -> None:
        mask = self.m.mm_cpumasks[info.mm].copy()
        self._broadcast(initiator, info)
        self.finish_asid_transition(initiator, info)
        self._wait(initiator)
        if info.full:
            self._after_full(mask)

    def finish_asid_transition(self, initiator: int, info: FlushInfo) -> None:
        m = self.m
        mm = info.mm
        if not self.asid_transition[mm]:
            return
        mask = m.mm_cpumasks[mm]
        for cpu in np.flatnonzero(mask):
            if m.loaded_mm[cpu] == mm and not self.gpcid[cpu, mm]:
                # native_flush_tlb_multi in transition: on_each_cpu_mask, lazy CPUs too
                self._flush_multi(initiator, mask.copy(), dataclasses.replace(info, freed_tables=True))
                return
        self.asid_transition[mm] = False

    # ---- the mechanism ---------------------------------------------------------------------
    def _drop_range(self, cpus, info: FlushInfo) -> None:
        """The targets' invalidation (hardware, uncounted): the mm's PCID, whole or ranged."""
        for cpu in cpus:
            if info.full:
                self._invalidate(int(cpu), None, (info.mm,), count=False)
            elif len(info.pids):
                self._invalidate(int(cpu), info.pids, count=False)

    def _broadcast(self, initiator: int, info: FlushInfo) -> None:
        raise NotImplementedError

    def _wait(self, initiator: int) -> None:
        pass

    def flush_all_nonglobals(self, initiator: int) -> None:
        raise NotImplementedError


class InvlpgbFlush(GlobalAsidFlush):
    """AMD INVLPGB + TLBSYNC (v6.15)."""


    def __init__(self, machine):
        super().__init__(machine)
        self.count_max = int(machine.cfg.tlb.invlpgb_count_max)

    def _issue(self, initiator: int, n: int) -> None:
        m = self.m
        m.counters[initiator, C["invlpgb_issued"]] += n
        self.by_source[initiator, BROADCASTS, self.source] += n
        m.charge(initiator, n * m.costs.invlpgb, T["ipi"])

    def _wait(self, initiator: int) -> None:
        """__tlbsync(): wait for this CPU's INVLPGBs to complete everywhere."""
        m = self.m
        m.counters[initiator, C["tlbsync"]] += 1
        m.charge(initiator, m.costs.tlbsync, T["ipi"])

    def _broadcast(self, initiator: int, info: FlushInfo) -> None:
        """broadcast_tlb_flush's INVLPGBs: one per PCID for TLB_FLUSH_ALL, else one per
        invlpgb_count_max pages of the range; on every CPU holding the global PCID."""
        n = 1 if info.full else -(-max(info.npages, 1) // self.count_max)
        self._issue(initiator, 2 * n if self.pti else n)
        self._drop_range(np.flatnonzero(self.gpcid[:, info.mm]), info)

    def _flush_batch_mask(self, initiator: int, mask: np.ndarray) -> None:
        """arch_tlbbatch_flush with batch->unmapped_pages: invlpgb_flush_all_nonglobals()."""
        self.flush_all_nonglobals(initiator)
        self._after_full(mask)

    def flush_all_nonglobals(self, initiator: int) -> None:
        """invlpgb_flush_all_nonglobals(): every PCID of every CPU, then TLBSYNC. No CPU's
        ctxs[].tlb_gen moves: dynamic-ASID CPUs still flush at their next switch-back."""
        m = self.m
        self._issue(initiator, 1)
        for cpu in range(m.ncpu):
            K.invalidate_all(m.tlb_tag, cpu, m.page_flags, self.keep_kernel_text)
        self._wait(initiator)


class RarFlush(GlobalAsidFlush):
    """Intel Remote Action Request (RFC v4; user flushes as in RFC v3 7/7)."""

    flush_on_new_cpu = True

    def _request(self, initiator: int, mask: np.ndarray, n: int = 1) -> None:
        """smp_call_rar_many() ``n`` times: payload, the RAR vector to every target (x2APIC:
        one ICR write each, as an IPI's), and the wait for every target's RAR_SUCCESS."""
        m = self.m
        c = m.costs
        remote = int(mask.sum()) - int(mask[initiator])
        m.counters[initiator, C["rar_requests"]] += n
        self.by_source[initiator, BROADCASTS, self.source] += n
        m.charge(initiator, n * (c.rar_request + remote * c.ipi_send + c.vmexit + c.rar_wait),
                 T["ipi"])

    def _broadcast(self, initiator: int, info: FlushInfo) -> None:
        """rar_tlb_flush(): one request on mm_cpumask (x2 with PTI), ranged while pages < 63."""
        mm = info.mm
        mask = self.m.mm_cpumasks[mm].copy()
        if not mask.any():
            return
        if not info.full and info.npages + 1 >= RAR_INVLPG_MAX_PAGES:
            info = dataclasses.replace(info, pids=None)  # RAR_INVPCID_PCID: the whole PCID
        self._request(initiator, mask, 2 if self.pti else 1)
        self._drop_range(np.flatnonzero(mask & self.gpcid[:, mm]), info)

    def _flush_batch_mask(self, initiator: int, mask: np.ndarray) -> None:
        """arch_tlbbatch_flush: rar_full_flush(cpumask), RAR_INVPCID_ALL (globals too) on the
        targets, the initiator among them."""
        m = self.m
        self._request(initiator, mask)
        for cpu in np.flatnonzero(mask):
            K.invalidate_all(m.tlb_tag, int(cpu), m.page_flags, False)
        if mask[initiator]:  # and invpcid_flush_all_nonglobals() locally
            m.charge(initiator, m.costs.flush_full, T["ipi"])
        self._after_full(mask)

    def flush_all_nonglobals(self, initiator: int) -> None:
        """reset_global_asid_space() under RAR: flush_tlb_all(), counted as a remote flush,
        rar_flush_all() to every online CPU."""
        m = self.m
        m.counters[initiator, C["nr_tlb_remote_flush"]] += 1
        everyone = np.ones(m.ncpu, np.bool_)
        self._request(initiator, everyone)
        for cpu in range(m.ncpu):
            K.invalidate_all(m.tlb_tag, cpu, m.page_flags, False)


MECHANISMS = {"ipi": FlushMechanism, "invlpgb": InvlpgbFlush, "rar": RarFlush}


def flush_kind(cfg) -> str:
    """machine.flush, or the mechanism machine.preset implies."""
    return cfg.machine.flush or PRESET_FLUSH[cfg.machine.preset]


def make_flush(machine) -> FlushMechanism:
    """The flush mechanism of the machine's config."""
    return MECHANISMS[flush_kind(machine.cfg)](machine)
