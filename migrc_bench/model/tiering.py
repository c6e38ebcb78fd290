"""The tiering policy of v6.7: NUMA-balancing promotion (mode 2) and kswapd demotion (K§5).

The scanner and its period live in numa_scan.py, reclaim in vmscan.py; this module holds the
promotion decision (do_numa_page, should_numa_migrate_memory, migrate_misplaced_folio) and
kswapd as a task on a CPU. Kernel periods, thresholds and windows are multiplied by
``replay.time_scale`` and the promotion rate limit is divided by it (model.md §1): a
compressed run sees as many scans, threshold adjustments and rate-limit windows per
modelled second as the real one does per real second times the scale.
"""

from __future__ import annotations

import numpy as np

from . import kernel as K
from .counters import C, T
from .memory import F_USED, Lru
from .migrate_reason import MR_NUMA_MISPLACED
from .numa_scan import NumaScanner
from .sched import base_slice_ns
from .vmscan import MAX_RECLAIM_RETRIES, Reclaim
from .vmscan_file import FileReclaim

NS_PER_MS = 1e6
GIB_PAGES = (1 << 30) >> 12
NUMA_MIGRATION_ADJUST_STEPS = 16
DRAM, CXL = 0, 1


class Tiering:
    def __init__(self, replay, engine):
        self.r = replay
        self.m = m = replay.machine
        self.engine = engine
        cfg = replay.cfg
        tc = cfg.tiering
        ts = cfg.replay.time_scale
        self.ts = ts
        self.mode = tc.numa_balancing
        if self.mode not in (0, 2):
            from ..errors import ConfigError

            raise ConfigError(f"config key 'tiering.numa_balancing': expected 0 (off) or 2 (memory "
                              f"tiering), got {self.mode} (modes 1 and 3 balance between CPU "
                              f"nodes; the model has one)")
        self.demotion = tc.demotion_enabled
        self.scan_period_max = tc.scan_period_max * ts  # the threshold's adjustment window
        self.hot_threshold = tc.hot_threshold * ts
        self.steady = cfg.memory.initial_pte == "steady-state"
        self.enough_pages = max(int(GIB_PAGES * cfg.replay.space_scale), m.nodes[DRAM].pages >> 4)
        self.rate_limit = tc.promote_rate_limit_MBps * (1 << (20 - 12)) * ts  # pages per scaled second
        self.rate_window = 1000 * NS_PER_MS * ts
        self.reclaim_chunk = tc.reclaim_chunk
        self.kswapd_cpu = cfg.machine.kswapd_cpu
        self.kswapd_waker = 0
        self.sched_slice = base_slice_ns(cfg, m.ncpu)
        if self.kswapd_cpu >= m.ncpu:
            from ..errors import ConfigError

            raise ConfigError(f"config key 'machine.kswapd_cpu': expected a CPU in [0, {m.ncpu - 1}], "
                              f"got {self.kswapd_cpu}")
        # promotion state of node 0 (pgdat)
        self.nbp_threshold = 0.0
        self.nbp_th_start = 0.0
        self.nbp_th_nr_cand = 0
        self.nbp_rl_start = 0.0
        self.nbp_rl_nr_cand = 0
        self.pgpromote_candidate = 0
        self.kswapd_pending = False  # kswapd0's; kswapd1's in _pending1
        self.kswapd_runs = 0
        self.kswapd1_runs = 0
        self._kswapd_run: dict | None = None
        self._pending1 = False
        self._kswapd1_run: dict | None = None
        # parameters of the compiled loop's hint-fault fast path (kernel.cold_hint_fault)
        self.fast_hints = True
        self.hint = np.zeros(K.N_HINT, np.float64)
        # LRU of every node; node 0 demotes, node 1 (no demotion target, no swap) reclaims
        # clean page-cache folios, if the trace maps file data at all (vmscan_file.py)
        self.lru = Lru(len(m.frame_node), len(m.nodes), m.frame_nr if m.thp else None)
        in_use = m.frame_state == F_USED
        if m.thp:  # a THP is one folio: its first frame
            pmd = np.flatnonzero(m.page_pmd[:m.n_pages] >= 0)
            tails = pmd[m.page_pmd[pmd] != pmd]
            in_use[m.pte_pfn[tails]] = False
        used = np.flatnonzero(in_use)[::-1]  # first placed = oldest = tail
        for node in m.nodes:
            self.lru.fill(node.nid, used[m.frame_node[used] == node.nid])
        self.numa = NumaScanner(self)
        self.vmscan = Reclaim(self)
        fl = m.page_flags
        self.file_data = bool(np.any(((fl & K.VMA_FILE) != 0) & ((fl & (K.VMA_EXEC | K.VMA_KERNEL)) == 0)))
        self.vmscan1 = FileReclaim(self)
        if self.steady:
            self.nbp_threshold = self.steady_threshold()

    # ---- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        if self.mode & 2:
            self.numa.start()
        self.refresh_hint()

    def steady_threshold(self) -> float:
        """The hot threshold a long run has: numa_promotion_adjust_threshold adds a unit per
        scan_period_max window while the window's candidates stay below 90 % of the rate
        limit's, and a window cannot hold more candidates than hint faults, nor more hint
        faults than PTEs the scanner updates: at most scan_size per task_scan_min() (the
        MAX_SCAN_WINDOW floor). When even that bound is below 90 %, every window adds a unit
        and the threshold sits at its cap, 2 x hot_threshold, after 16/2 windows (8 min of a
        real run); otherwise it depends on the workload and starts at the default (0)."""
        window_scans = self.scan_period_max / self.numa.ns(max(1, self.numa.scan_min()))
        bound = self.numa.scan_pages * window_scans
        ref_cand = self.rate_limit * (self.scan_period_max / (1000 * NS_PER_MS * self.ts))
        return 2 * self.hot_threshold if bound < ref_cand * 9 / 10 else 0.0

    def free_space_enough(self) -> bool:
        """pgdat_free_space_enough: DRAM above promo + max(1 GiB, node pages / 16)."""
        dram = self.m.nodes[DRAM]
        return dram.watermark_ok(dram.wmark.promo + self.enough_pages)

    def refresh_hint(self) -> None:
        """Let the compiled loop settle cold hint faults itself while nothing else can happen:
        DRAM is not 'free enough' (which promotes regardless of hotness), no threshold
        adjustment is due (numa_promotion_adjust_threshold runs in the fault), no checker is
        watching, and the engine has nothing to do when a PTE becomes writable again."""
        quiet = self.engine.numa_restore_is_quiet()
        enough = self.free_space_enough()
        on = self.fast_hints and bool(self.mode & 2) and not enough and quiet and self.r.checker is None
        self.hint[K.H_ENABLED] = 1.0 if on else 0.0
        self.hint[K.H_THRESHOLD] = self.nbp_threshold or self.hot_threshold
        self.hint[K.H_FAULT_NS] = self.m.costs.fault
        self.hint[K.H_ADJUST_AT] = self.nbp_th_start + self.scan_period_max

    def lru_add(self, frame: int, like: int | None = None) -> None:
        """A folio joins its node's LRU: new (inactive, unreferenced), or the destination of a
        migration of ``like`` (folio_migrate_flags copies PG_active and PG_referenced)."""
        lru = self.lru
        lru.active[frame] = lru.active[like] if like is not None else False
        lru.referenced[frame] = lru.referenced[like] if like is not None else False
        lru.add(frame, int(self.m.frame_node[frame]))

    def numa_scan(self) -> None:
        """task_numa_work now (tests drive the scanner by hand with it)."""
        self.numa.task_numa_work()

    # ---- hint faults and promotion (do_numa_page, should_numa_migrate_memory) ------------
    def hint_fault(self, cpu: int, pid: int) -> None:
        m = self.m
        if m.thp and m.page_pmd[pid] >= 0:
            self.huge_pmd_numa_fault(cpu, pid)
            return
        r = self.r
        frame = int(m.pte_pfn[pid])
        nid = self._count_hint_fault(cpu, frame)
        if nid != DRAM and self._should_promote(cpu, pid, float(m.clock[cpu])):
            if self._promote(cpu, pid, frame):
                return
        # not migrated: the PTE is made accessible again in place (writable for anon exclusive)
        fl = int(m.pte_flags[pid]) & ~K.PTE_PROTNONE
        writable = bool(m.page_flags[pid] & K.VMA_WRITE)
        if writable:
            self.engine.before_pte_writable(cpu, pid, "numa")
            fl |= K.PTE_WRITE
        m.pte_flags[pid] = fl | K.PTE_YOUNG
        if writable and r.checker is not None:
            r.checker.on_writable(cpu, pid)

    def huge_pmd_numa_fault(self, cpu: int, pid: int) -> None:
        """do_huge_pmd_numa_page: one hint fault for the PMD; a slow-tier THP is promoted
        whole (should_numa_migrate_memory counts its 512 pages as candidates) or, refused or
        failed, its PMD made accessible again in place (writable in a writable VMA, young).
        task_numa_fault gets HPAGE_PMD_NR pages."""
        m = self.m
        head = int(m.page_pmd[pid])
        frame = int(m.pte_pfn[head])
        nid = self._count_hint_fault(cpu, frame)
        n = int(m.frame_nr[frame])
        if nid != DRAM and self._should_promote(cpu, head, float(m.clock[cpu]), n):
            if self._promote(cpu, head, frame, n):
                return
        sl = slice(head, head + n)
        fl = m.pte_flags[sl] & ~K.PTE_PROTNONE
        if m.page_flags[pid] & K.VMA_WRITE:
            self.engine.before_pte_writable(cpu, head, "numa")
            fl |= K.PTE_WRITE
        m.pte_flags[sl] = fl
        m.pte_flags[pid] |= K.PTE_YOUNG

    def _count_hint_fault(self, cpu: int, frame: int) -> int:
        """The fault's entry and numa_migrate_prep's count; returns the folio's node."""
        m = self.m
        m.counters[cpu, C["pgfault"]] += 1
        m.counters[cpu, C["numa_hint_faults"]] += 1
        m.charge(cpu, m.costs.fault, T["fault"])
        m.times[cpu, T["fault"]] += m.kernel_entry(cpu)
        nid = int(m.frame_node[frame])
        if nid == DRAM:  # all CPUs are on node 0
            m.counters[cpu, C["numa_hint_faults_local"]] += 1
        return nid

    def _should_promote(self, cpu: int, pid: int, now: float, nr: int = 1) -> bool:
        m = self.m
        if self.free_space_enough():
            self.nbp_threshold = 0.0  # workload changed: reset the hot threshold
            return True
        self._adjust_threshold(now)
        th = self.nbp_threshold or self.hot_threshold
        latency = now - m.scan_time[pid]
        if latency >= th:
            return False
        return not self._rate_limited(cpu, now, nr)

    def _adjust_threshold(self, now: float) -> None:
        """numa_promotion_adjust_threshold: once per scan_period_max toward the rate limit."""
        if now - self.nbp_th_start <= self.scan_period_max:
            return
        self.nbp_th_start = now
        ref_cand = self.rate_limit * (self.scan_period_max / (1000 * NS_PER_MS * self.ts))
        diff = self.pgpromote_candidate - self.nbp_th_nr_cand
        ref_th = self.hot_threshold
        unit = ref_th * 2 / NUMA_MIGRATION_ADJUST_STEPS
        th = self.nbp_threshold or ref_th
        if diff > ref_cand * 11 / 10:
            th = max(th - unit, unit)
        elif diff < ref_cand * 9 / 10:
            th = min(th + unit, ref_th * 2)
        self.nbp_th_nr_cand = self.pgpromote_candidate
        self.nbp_threshold = th

    def _rate_limited(self, cpu: int, now: float, nr: int) -> bool:
        """numa_promotion_rate_limit: candidates counted; refuse past the limit in a 1 s window."""
        self.pgpromote_candidate += nr
        self.m.counters[cpu, C["pgpromote_candidate"]] += nr
        if now - self.nbp_rl_start > self.rate_window:
            self.nbp_rl_start = now
            self.nbp_rl_nr_cand = self.pgpromote_candidate
        return self.pgpromote_candidate - self.nbp_rl_nr_cand >= self.rate_limit

    def _promote(self, cpu: int, pid: int, frame: int, nr: int = 1) -> bool:
        """migrate_misplaced_folio: refuse (and wake kswapd) unless DRAM stays above high."""
        m = self.m
        dram = m.nodes[DRAM]
        if not dram.watermark_ok(dram.wmark.high + nr):  # migrate_balanced_pgdat
            self.wake_kswapd(DRAM, cpu)
            return False
        self.lru.remove(CXL, frame)
        done, failed = self.engine.migrate_pages(cpu, [frame], MR_NUMA_MISPLACED, DRAM)
        if failed:
            self.lru.add(frame, CXL)  # folio_putback_lru
            return False
        m.counters[cpu, C["numa_pages_migrated"]] += nr * len(done)
        m.counters[cpu, C["pgpromote_success"]] += nr * len(done)
        # do_numa_page reports the fault on the target node, a top tier one
        self.numa.task_numa_fault(cpu, mem_toptier=True, pages=nr)
        return True

    # ---- kswapd (vmscan.Reclaim) as a task on a CPU -------------------------------------
    def wake_kswapd(self, nid: int, cpu: int = 0) -> None:
        """wakeup_kswapd: a no-op while kswapd runs, or when the node is balanced or
        hopeless (kswapd_failures)."""
        if nid != DRAM:
            self._wake_kswapd1(cpu)
            return
        if self.kswapd_pending or not self.demotion:
            return
        if self.vmscan.kswapd_failures >= MAX_RECLAIM_RETRIES or self.vmscan.balanced():
            return
        self.kswapd_waker = cpu
        self.kswapd_pending = True
        self.r.at(self.r.now(), lambda r: self.kswapd())

    def _wake_kswapd1(self, cpu: int) -> None:
        """kswapd1: only for traces with file data (without, node 1 has nothing to reclaim:
        no swap, no demotion target, and its text stays hot in DRAM)."""
        vm = self.vmscan1
        if not self.file_data or self._pending1 or vm.can_sleep():
            return
        self._pending1 = True
        self.r.at(self.r.now(), lambda r: self.kswapd(CXL, cpu))

    def kswapd(self, nid: int = DRAM, waker: int = -1) -> None:
        """kswapd as a task sharing its CPU with a busy thread under EEVDF.

        Woken, it preempts the thread (it slept, so it is eligible with the earlier deadline)
        and runs balance_pgdat until it may sleep again or has used a base slice of CPU time;
        then the thread gets as long before kswapd runs again. The work is done a quantum of
        CPU time at a time (one list operation after another) so that other CPUs' promotions
        interleave with it. Reclaim therefore lasts as long as it costs -- flush round trips
        included -- and promotions keep being refused meanwhile."""
        m = self.m
        if self._run_of(nid) is None:
            if nid == DRAM:
                self.kswapd_runs += 1
                waker = self.kswapd_waker
            else:
                self.kswapd1_runs += 1
            cpu = self.kswapd_cpu if self.kswapd_cpu >= 0 else waker
            vm = self.vmscan if nid == DRAM else self.vmscan1
            self._set_run(nid, {"work": vm.kswapd(cpu), "slice": 0.0, "cpu": cpu})
        run = self._run_of(nid)
        cpu = run["cpu"]
        t_turn = float(m.clock[cpu])
        if not run.get("on_cpu"):  # __schedule() to kswapd: one context switch
            run["on_cpu"] = True
            m.counters[cpu, C["nr_context_switches"]] += 1
        if not m.lazy[cpu]:  # switched in from the user thread: a kernel entry
            m.times[cpu, T["fault"]] += m.kernel_entry(cpu)
            self.r.flush.switch_to_kernel(cpu)
        m.lazy[cpu] = True  # a kernel thread: the user mm stays loaded, lazily
        t0 = float(m.clock[cpu])
        done = False
        while True:
            try:
                next(run["work"])
            except StopIteration:
                done = True
                break
            if m.clock[cpu] - t0 >= self.r.quantum:
                break
        run["slice"] += float(m.clock[cpu]) - t0
        if done:
            self._set_run(nid, None)
            self._switch_back(cpu, run)
            self.r.rq.ran_other(cpu, float(m.clock[cpu]) - t_turn)
            return
        now, q = self.r.now(), self.r.quantum
        if run["slice"] >= self.sched_slice:
            # the slice is used up: the thread runs as long before kswapd's next turn
            self._switch_back(cpu, run)
            resume = max(now, float(m.clock[cpu])) + run["slice"]
            run["slice"] = 0.0
        else:
            # kswapd keeps the CPU up to the boundary where it goes on, so that the thread
            # does not run in between (a quantization of up to one quantum per turn)
            resume = now + max(0.0, np.ceil((float(m.clock[cpu]) - now) / q)) * q
            gap = resume - float(m.clock[cpu])
            if gap > 0:
                m.charge(cpu, gap, T["fault"])
                run["slice"] += gap
        self.r.rq.ran_other(cpu, float(m.clock[cpu]) - t_turn)
        if nid == DRAM:
            self.r.at(resume, lambda r: self.kswapd())
        else:
            self.r.at(resume, lambda r: self.kswapd(nid))

    def _run_of(self, nid: int) -> dict | None:
        return self._kswapd_run if nid == DRAM else self._kswapd1_run

    def _set_run(self, nid: int, run: dict | None) -> None:
        """kswapd<nid>'s run from wake-up to sleep (None: asleep, no wake-up pending)."""
        if nid == DRAM:
            self._kswapd_run, self.kswapd_pending = run, run is not None
        else:
            self._kswapd1_run, self._pending1 = run, run is not None

    def _switch_back(self, cpu: int, run: dict) -> None:
        """kswapd sleeps or its slice ends: a switch to the CPU's task (or the idle task)."""
        run["on_cpu"] = False
        self.m.counters[cpu, C["nr_context_switches"]] += 1
        if self.r.running[cpu]:
            self.r.flush.switch_back(cpu)

    def direct_reclaim(self, cpu: int) -> None:
        """A user allocation found every node below min: try_to_free_pages on its own CPU."""
        if self.vmscan.try_to_free_pages(cpu) < self.reclaim_chunk and self.file_data:
            self.vmscan1.try_to_free_pages(cpu)  # shrink_zones: the next node of the zonelist
