"""The NUMA scanner as v6.7 runs it in mode 2 (kernel/sched/fair.c, mm/mprotect.c).

- ``task_numa_work``: the mm is scanned when ``mm->numa_next_scan`` is due, by one of its
  tasks, which sets the next scan ``numa_scan_period`` of its own later; each scan covers
  ``scan_size_mb`` of pages that had something to update (8x that of address space), from
  ``mm->numa_scan_offset``; reaching the end of the address space starts a new pass
  (``reset_ptenuma_scan``: ``mm->numa_scan_seq`` + 1);
- ``change_prot_numa`` per chunk: ``flush_tlb_batched_pending`` first (change_pte_range),
  then every present PTE examined (``cost.pte_update`` each), slow-tier ones made PROT_NONE
  with the scan time recorded, then the changed span flushed (tlb_finish_mmu). The scan's
  mmu_gathers keep ``mm->tlb_flush_pending`` set from its first PTE to its last flush;
- the period is per task: it starts at ``scan_delay`` (init_numa_balancing), becomes
  ``task_scan_start()`` at the task's first NUMA tick, and ``update_task_scan_period()``
  moves it once per pass: ``task_numa_placement()`` runs from ``task_numa_fault()`` when the
  task sees a new ``numa_scan_seq``. In mode 2 only a successful promotion reaches it (it
  reports the top-tier target node; slow-tier faults return early), with
  ``last_cpupid = -1``: private, never local, so the period doubles toward
  ``task_scan_max()``.

Periods are the kernel's integer milliseconds, computed on the real machine's sizes
(``replay.space_scale``) and then multiplied by ``replay.time_scale`` (model.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import kernel as K
from .counters import C, T
from .machine import HPAGE_PMD_NR, MM_SHIFT
from .memory import F_USED

MAX_SCAN_WINDOW = 2560  # MB/s: "never scan more PTEs than MAX_SCAN_WINDOW MB/sec"
NUMA_PERIOD_SLOTS = 10
NUMA_PERIOD_THRESHOLD = 7
HZ_MS = 1000
HUGE_PAGE = 2 << 20


def task_nr_scan_windows(rss_pages: int, scan_pages: int) -> int:
    """round_up(rss, nr_scan_pages) / nr_scan_pages (rss 0 counts as one window)."""
    rss = rss_pages if rss_pages > 0 else scan_pages
    return -(-rss // scan_pages)


def task_scan_min(windows: int, scan_size_mb: float, period_min_ms: int) -> int:
    """max(1000 / (MAX_SCAN_WINDOW / scan_size), period_min / windows), in ms."""
    w = 1
    if scan_size_mb < MAX_SCAN_WINDOW:
        w = max(1, int(MAX_SCAN_WINDOW / scan_size_mb + 1e-9))
    return max(1000 // w, period_min_ms // windows)


def task_scan_max(windows: int, smin: int, period_max_ms: int) -> int:
    """max(task_scan_min, period_max / windows), in ms (no numa_group: all faults private)."""
    return max(smin, period_max_ms // windows)


def update_task_scan_period(period: int, period_max: int, smin: int, smax: int,
                            locality: list[int], shared: int, private: int) -> tuple[int, bool]:
    """update_task_scan_period(): the new period (ms), and whether it took the "no local or
    shared faults, or failed migrations" branch (which doubles the period, pushes
    mm->numa_next_scan and keeps the locality counts) -- otherwise the counts are reset."""
    remote, local, failed = locality
    if local + shared == 0 or failed:
        return min(period_max, period << 1), True
    period_slot = -(-period // NUMA_PERIOD_SLOTS)
    lr_ratio = local * NUMA_PERIOD_SLOTS // (local + remote)
    ps_ratio = private * NUMA_PERIOD_SLOTS // (private + shared)
    if ps_ratio >= NUMA_PERIOD_THRESHOLD:
        diff = max(1, ps_ratio - NUMA_PERIOD_THRESHOLD) * period_slot
    elif lr_ratio >= NUMA_PERIOD_THRESHOLD:
        diff = max(1, lr_ratio - NUMA_PERIOD_THRESHOLD) * period_slot
    else:
        diff = -(NUMA_PERIOD_THRESHOLD - max(lr_ratio, ps_ratio)) * period_slot
    return min(max(period + diff, smin), smax), False


@dataclass
class NumaTask:
    """The NUMA-balancing part of one task_struct (one thread, pinned to its CPU)."""

    numa_scan_period: float          # ms, unscaled (whole ms once task_scan_start() set it)
    numa_scan_period_max: int = 0
    numa_scan_seq: int = 0
    ticked: bool = False             # task_tick_numa has set task_scan_start()
    locality: list[int] = field(default_factory=lambda: [0, 0, 0])  # remote, local, failed
    faults_buf: int = 0              # numa_faults[NUMA_MEMBUF][node 0][private]
    faults_mem: int = 0              # numa_faults[NUMA_MEM][node 0][private]
    has_faults: bool = False         # p->numa_faults allocated
    preferred_nid: int = -1
    numa_migrate_retry: float = 0.0  # ns
    node_stamp: float = 0.0          # ns of runtime before the task may scan again
    mm: int = 0                      # the task's mm


class NumaScanner:
    def __init__(self, tiering):
        self.t = tiering
        self.r = tiering.r
        self.m = tiering.m
        cfg = tiering.r.cfg
        tc = cfg.tiering
        self.ts = cfg.replay.time_scale
        self.space_scale = cfg.replay.space_scale
        self.scan_delay_ms = tc.scan_delay / 1e6  # not divided: no need to round to ms
        self.period_min_ms = _ms(tc.scan_period_min)
        self.period_max_ms = _ms(tc.scan_period_max)
        self.scan_size_real = tc.scan_size_mb / self.space_scale
        self.scan_pages = max(1, int(tc.scan_size_mb * (1 << (20 - 12))))
        # one per task (trace thread), with its mm
        rq = tiering.r.rq
        self.tasks = [NumaTask(self.scan_delay_ms, mm=int(mm)) for mm in rq.task_mm]
        # mm state, per mm: numa_next_scan, numa_scan_seq, numa_scan_offset
        nmm = self.m.nmm
        self.mm_next_scan = [0.0] * nmm
        self.mm_scan_seq = [0] * nmm
        self.mm_scan_offset = [0] * nmm
        self.mm_scans = [0] * nmm
        self.scans = 0
        self._tokens = [0] * nmm
        self.steady = tiering.steady
        if self.steady:
            # where a long run has the scanner: every task at task_scan_max() (the period
            # doubles once per pass from task_scan_start() and stays there), faults recorded
            smax = [self.scan_max(mm) for mm in range(nmm)]
            for p in self.tasks:
                p.numa_scan_period = p.numa_scan_period_max = smax[p.mm]
                p.ticked = p.has_faults = True
                p.preferred_nid = 0

    @property
    def numa_scan_seq(self) -> int:
        """mm 0's numa_scan_seq (a one-process trace's only mm)."""
        return self.mm_scan_seq[0]

    @property
    def numa_next_scan(self) -> float:
        return self.mm_next_scan[0]

    # ---- periods ------------------------------------------------------------------------
    def ns(self, ms: float) -> float:
        return ms * 1e6 * self.ts

    def rss(self, mm: int = 0) -> int:
        """get_mm_rss(): the mm's resident pages (user frames in use, of its pages)."""
        m = self.m
        used = m.frame_state == F_USED
        if m.nmm == 1:
            return int(np.count_nonzero(used))
        return int(np.count_nonzero(m.page_mm(m.frame_pid[used]) == mm))

    def windows(self, mm: int = 0) -> int:
        return task_nr_scan_windows(self.rss(mm), self.scan_pages)

    def scan_min(self, mm: int = 0) -> int:
        return task_scan_min(self.windows(mm), self.scan_size_real, self.period_min_ms)

    def scan_max(self, mm: int = 0) -> int:
        w = self.windows(mm)
        return task_scan_max(w, task_scan_min(w, self.scan_size_real, self.period_min_ms),
                             self.period_max_ms)

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """The first scan of each mm: after scan_delay from fork, or now in a steady-state
        window."""
        for mm in range(self.m.nmm):
            self._schedule(0.0 if self.steady else self.ns(self.scan_delay_ms), mm)

    def _schedule(self, t_ns: float, mm: int = 0) -> None:
        """mm->numa_next_scan = t; a scan is due then (earlier schedules lapse)."""
        self.mm_next_scan[mm] = t_ns
        self._tokens[mm] += 1
        token = self._tokens[mm]
        self.r.at(t_ns, lambda r: self._due(token, mm))

    def _due(self, token: int, mm: int = 0) -> None:
        if token == self._tokens[mm]:
            if mm:
                self.task_numa_work(mm)
            else:  # (as tests wrap it: task_numa_work() scans mm 0)
                self.task_numa_work()

    def _runtime(self, cpu: int) -> float:
        """The CPU time of the task running on ``cpu`` (its sum_exec_runtime)."""
        return self.r.rq.runtime(cpu)

    def _running_cpus(self, mm: int) -> np.ndarray:
        """CPUs whose current task is a task of ``mm`` that still runs."""
        r = self.r
        running = np.flatnonzero(r.running[: r.threads])
        if self.m.nmm > 1:
            running = running[r.rq.task_mm[r.rq.cur_task[running]] == mm]
        return running

    def _scan_cpu(self, mm: int = 0) -> int | None:
        """The task whose tick reaches task_numa_work first: round robin over the running
        threads of the mm (the winner's node_stamp moves on, so another task likely wins next
        time) that have run 32 times as long as their last scan took since it ended."""
        running = self._running_cpus(mm)
        if len(running) == 0:
            return None
        for k in range(len(running)):
            cpu = int(running[(self.mm_scans[mm] + k) % len(running)])
            if self._runtime(cpu) >= self._task(cpu).node_stamp:
                return cpu
        return -1

    def _task(self, cpu: int) -> NumaTask:
        return self.tasks[int(self.r.rq.cur_task[cpu])]

    # ---- task_numa_work ----------------------------------------------------------------
    def task_numa_work(self, mm: int = 0) -> None:
        cpu = self._scan_cpu(mm)
        r, m = self.r, self.m
        if cpu is None:
            if r.rq.waiting(mm):  # the mm's tasks wait for a CPU: its next tick there
                self._schedule(r.now() + r.quantum, mm)
            return
        if cpu < 0:  # every task is still paying off its last scan: the first one to finish
            wait = min(self._task(c).node_stamp - self._runtime(c)
                       for c in self._running_cpus(mm))
            self._schedule(r.now() + max(wait, r.quantum), mm)
            return
        for p in self.tasks:  # task_tick_numa: the first tick after scan_delay of runtime
            if not p.ticked and p.mm == mm:
                p.ticked = True
                p.numa_scan_period = self.scan_min(mm)  # task_scan_start(), no numa_group
        p = self._task(cpu)
        now = r.now()
        self._schedule(now + self.ns(p.numa_scan_period), mm)
        self.scans += 1
        self.mm_scans[mm] += 1
        m.times[cpu, T["fault"]] += m.kernel_entry(cpu)
        t0 = float(m.clock[cpu])
        vmas = r.vmas()
        if m.nmm > 1:  # the VMAs of the mm this CPU runs (key-space addresses: mm << 57)
            vmas = [v for v in vmas if v[0] >> (MM_SHIFT + 12) == mm]
        if vmas and self.mm_scan_offset[mm] >= vmas[-1][1]:
            self._reset_scan(mm)
        pages = self.scan_pages
        virtpages = pages * 8
        start = self.mm_scan_offset[mm]
        reached_end = True
        for vstart, vend, pids, vpns in vmas:
            if vend <= start:
                continue
            start = max(start, vstart)
            while start < vend:
                end = min(vend, _align_up(start + pages * 4096, HUGE_PAGE))
                updated = self._change_prot_numa(cpu, pids, vpns, start, end, now, mm)
                chunk = (end - start) >> 12
                if updated:
                    pages -= chunk
                virtpages -= chunk
                start = end
                if pages <= 0 or virtpages <= 0:
                    reached_end = False
                    break
            if not reached_end:
                break
        if reached_end:
            self._reset_scan(mm)
        else:
            self.mm_scan_offset[mm] = start
        t1 = float(m.clock[cpu])
        if t1 > t0:
            r.flush.open_pending_window(t0, t1, mm)
        # at least 32x as much time on other code as on this scan (the 3 % cap)
        p.node_stamp = self._runtime(cpu) + 32 * (t1 - t0)

    def _reset_scan(self, mm: int = 0) -> None:
        """reset_ptenuma_scan: a new pass of the address space."""
        self.mm_scan_seq[mm] += 1
        self.mm_scan_offset[mm] = 0

    def _change_prot_numa(self, cpu: int, pids: np.ndarray, vpns: np.ndarray, start: int,
                          end: int, now: float, mm: int = 0) -> int:
        """change_prot_numa over [start, end): the batched-pending check of change_pte_range,
        the PTE walk, PROT_NONE for present slow-tier PTEs (scan time recorded), the flush."""
        m = self.m
        lo, hi = np.searchsorted(vpns, [start >> 12, end >> 12])
        sel = pids[lo:hi]
        if m.thp and (m.page_pmd[sel] >= 0).any():
            return self._change_prot_numa_thp(cpu, sel, now, mm)
        fl = m.pte_flags[sel]
        present = (fl & K.PTE_PRESENT) != 0
        walked = int(np.count_nonzero(present))
        if walked == 0:  # no page table here
            return 0
        self.r.flush.flush_tlb_batched_pending(cpu, mm)
        m.charge(cpu, walked * m.costs.pte_update, T["fault"])
        frames = m.pte_pfn[sel]
        ok = present & ((fl & K.PTE_PROTNONE) == 0)
        ok &= m.frame_node[np.maximum(frames, 0)] != 0  # mode 2: top-tier folios are skipped
        hit = sel[ok]
        if len(hit) == 0:
            return 0
        # pte_modify(PAGE_NONE): the write bit goes, dirty and young stay
        m.pte_flags[hit] = (m.pte_flags[hit] & ~K.PTE_WRITE) | K.PTE_PROTNONE
        m.scan_time[hit] = now
        m.counters[cpu, C["numa_pte_updates"]] += len(hit)
        hv = m.page_vpn[hit]
        span = int(hv.max() - hv.min() + 1)  # mmu_gather flushes [first, last] changed address
        with self.r.flush.flushing_for("numa_scan"):
            self.r.flush.flush_mm_range(cpu, hit, npages=span)
        return len(hit)

    def _change_prot_numa_thp(self, cpu: int, sel: np.ndarray, now: float, mm: int) -> int:
        """change_prot_numa over a chunk with huge PMDs: change_huge_pmd makes a slow-tier
        PMD PROT_NONE as one entry (pte_update once, the folio's access time once,
        numa_pte_updates += HPAGE_PMD_NR, numa_huge_pte_updates += 1); the gather then
        flushes its [first, last] span at PMD stride when only PMDs changed
        (tlb_get_unmap_shift), at 4 KiB stride when a PTE changed too."""
        m = self.m
        heads = m.page_pmd[sel]
        huge = heads >= 0
        first = huge & (heads == sel)  # one entry per PMD
        entries = sel[~huge | first]
        fl = m.pte_flags[entries]
        present = (fl & K.PTE_PRESENT) != 0
        walked = int(np.count_nonzero(present))
        if walked == 0:
            return 0
        self.r.flush.flush_tlb_batched_pending(cpu, mm)
        m.charge(cpu, walked * m.costs.pte_update, T["fault"])
        frames = m.pte_pfn[entries]
        ok = present & ((fl & K.PTE_PROTNONE) == 0)
        ok &= m.frame_node[np.maximum(frames, 0)] != 0
        hit = entries[ok]
        if len(hit) == 0:
            return 0
        is_pmd = m.page_pmd[hit] >= 0
        nr = np.where(is_pmd, m.frame_nr[m.pte_pfn[hit]], 1)
        changed = np.concatenate([np.arange(p, p + n, dtype=np.int32) for p, n in zip(hit, nr)])
        m.pte_flags[changed] = (m.pte_flags[changed] & ~K.PTE_WRITE) | K.PTE_PROTNONE
        m.scan_time[changed] = now
        m.counters[cpu, C["numa_pte_updates"]] += len(changed)
        m.counters[cpu, C["numa_huge_pte_updates"]] += int(is_pmd.sum())
        hv = m.page_vpn[changed]
        span = int(hv.max() - hv.min() + 1)
        if is_pmd.all():  # PMD_SHIFT stride: one entry per 2 MiB of the span
            span = -(-span // HPAGE_PMD_NR)
        with self.r.flush.flushing_for("numa_scan"):
            self.r.flush.flush_mm_range(cpu, hit, npages=span)
        return len(changed)

    # ---- task_numa_fault -> task_numa_placement -> update_task_scan_period -------------
    def task_numa_fault(self, cpu: int, mem_toptier: bool, local: bool = False,
                        failed: bool = False, pages: int = 1) -> None:
        """task_numa_fault() for the hint fault of the task on ``cpu``. Mode 2: a fault on a
        slow-tier node returns at once (a failed promotion leaves the folio there)."""
        if not mem_toptier or not self.r.running[cpu]:
            return
        p = self._task(cpu)
        p.has_faults = True
        now = float(self.m.clock[cpu])
        if now > p.numa_migrate_retry:
            self._placement(p, now)
            self._migrate_preferred(p, now)
        if failed:
            p.locality[2] += pages
        p.faults_buf += pages  # last_cpupid == -1: a private fault
        p.locality[1 if local else 0] += pages

    def _placement(self, p: NumaTask, now: float) -> None:
        """task_numa_placement(): once per numa_scan_seq."""
        seq = self.mm_scan_seq[p.mm]
        if p.numa_scan_seq == seq:
            return
        p.numa_scan_seq = seq
        smin, smax = self.scan_min(p.mm), self.scan_max(p.mm)
        p.numa_scan_period_max = smax
        private, shared = p.faults_buf, 0
        p.faults_mem = p.faults_mem // 2 + private  # decay, then this window's faults
        p.faults_buf = 0
        if p.faults_mem:
            p.preferred_nid = 0  # the only node with CPUs and faults
        period, doubled = update_task_scan_period(p.numa_scan_period, p.numa_scan_period_max,
                                                  smin, smax, p.locality, shared, private)
        p.numa_scan_period = period
        if doubled:
            self._schedule(now + self.ns(period), p.mm)
        else:
            p.locality = [0, 0, 0]

    def _migrate_preferred(self, p: NumaTask, now: float) -> None:
        """numa_migrate_preferred(): sets the retry time once the task has a preferred node
        (the task already runs there: node 0 holds every CPU)."""
        if p.preferred_nid < 0 or not p.has_faults:
            return
        p.numa_migrate_retry = now + self.ns(min(HZ_MS, p.numa_scan_period / 16))


def _ms(ns: float) -> int:
    return int(round(ns / 1e6))


def _align_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a
