"""The tiering policy of v6.7: NUMA-balancing promotion (mode 2) and kswapd demotion (K§5).

Kernel periods, thresholds and windows are multiplied by ``replay.time_scale`` and the
promotion rate limit is divided by it (model.md §1): a compressed run sees as many scans,
threshold adjustments and rate-limit windows per modelled second as the real one does per
real second times the scale.
"""

from __future__ import annotations

import numpy as np

from . import kernel as K
from .counters import C, T
from .memory import F_USED, Lru
from .migrate_reason import MR_DEMOTION, MR_NUMA_MISPLACED

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
        self.scan_delay = tc.scan_delay * ts
        self.scan_period = tc.scan_delay * ts  # init_numa_balancing: period starts at scan_delay
        self.scan_period_max = tc.scan_period_max * ts
        self.scan_pages = max(1, int(tc.scan_size_mb * (1 << (20 - 12))))
        self.hot_threshold = tc.hot_threshold * ts
        self.rate_limit = tc.promote_rate_limit_MBps * (1 << (20 - 12)) * ts  # pages per scaled second
        self.rate_window = 1000 * NS_PER_MS * ts
        self.reclaim_chunk = tc.reclaim_chunk
        self.kswapd_cpu = cfg.machine.kswapd_cpu
        self.kswapd_waker = 0
        slice_ns = cfg.machine.sched_base_slice
        if slice_ns is None:  # sched_update_scaling, SCHED_TUNABLESCALING_LOG: 1 + ilog2(n)
            slice_ns = 750_000.0 * min(m.ncpu, 8).bit_length()
        self.sched_slice = float(slice_ns)
        if self.kswapd_cpu >= m.ncpu:
            from ..errors import ConfigError

            raise ConfigError(f"config key 'machine.kswapd_cpu': expected a CPU in [0, {m.ncpu - 1}], "
                              f"got {self.kswapd_cpu}")
        # NUMA scanner state (mm->numa_scan_offset) and promotion state of node 0 (pgdat)
        self.scan_offset = 0
        self.scans = 0
        self.nbp_threshold = 0.0
        self.nbp_th_start = 0.0
        self.nbp_th_nr_cand = 0
        self.nbp_rl_start = 0.0
        self.nbp_rl_nr_cand = 0
        self.pgpromote_candidate = 0
        self.kswapd_pending = False
        self.kswapd_runs = 0
        self._kswapd_run: dict | None = None
        # parameters of the compiled loop's hint-fault fast path (kernel.cold_hint_fault)
        self.fast_hints = True
        self.hint = np.zeros(K.N_HINT, np.float64)
        # LRU of every node; only node 0 is reclaimed (node 1 has no demotion target, no swap)
        self.lru = Lru(len(m.frame_node), len(m.nodes))
        used = np.flatnonzero(m.frame_state == F_USED)[::-1]  # first placed = oldest = tail
        for node in m.nodes:
            self.lru.fill(node.nid, used[m.frame_node[used] == node.nid])

    # ---- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        if self.mode & 2:
            self.r.at(self.scan_delay, lambda r: self.numa_scan())
        self.refresh_hint()

    def on_boundary(self, now: float) -> None:
        """Kernel housekeeping that only needs quantum resolution."""
        self._adjust_threshold(now)

    def refresh_hint(self) -> None:
        """Let the compiled loop settle cold hint faults itself while nothing else can happen:
        DRAM is not 'free enough' (which promotes regardless of hotness), no checker is
        watching, and the engine has nothing to do when a PTE becomes writable again."""
        m = self.m
        dram = m.nodes[DRAM]
        enough = dram.watermark_ok(dram.wmark.promo + max(GIB_PAGES, dram.pages >> 4))
        quiet = self.engine.numa_restore_is_quiet()
        on = self.fast_hints and bool(self.mode & 2) and not enough and quiet and self.r.checker is None
        self.hint[K.H_ENABLED] = 1.0 if on else 0.0
        self.hint[K.H_THRESHOLD] = self.nbp_threshold or self.hot_threshold
        self.hint[K.H_FAULT_NS] = m.costs.fault

    def lru_add(self, frame: int) -> None:
        self.lru.add_head(int(self.m.frame_node[frame]), frame)

    # ---- NUMA scanner (task_numa_work + change_prot_numa) ---------------------------------
    def _scan_cpu(self) -> int | None:
        """The thread whose tick reaches task_numa_work first: round robin over running threads."""
        r = self.r
        running = np.flatnonzero(r.running[: r.threads])
        if len(running) == 0:
            return None
        return int(running[self.scans % len(running)])

    def numa_scan(self) -> None:
        cpu = self._scan_cpu()
        if cpu is None:
            return
        self.scans += 1
        m = self.m
        m.times[cpu, T["fault"]] += m.kernel_entry(cpu)
        vmas = self.r.vmas()
        now = self.r.now()
        pages = self.scan_pages
        virtpages = pages * 8
        start = self.scan_offset
        reached_end = True
        for vstart, vend, pids, vpns in vmas:
            if vend <= start:
                continue
            start = max(start, vstart)
            while start < vend:
                end = min(vend, _align_up(start + pages * 4096, 2 << 20))
                updated = self._change_prot_numa(cpu, pids, vpns, start, end, now)
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
        self.scan_offset = 0 if reached_end else start
        self.r.at(now + self.scan_period, lambda r: self.numa_scan())

    def _change_prot_numa(self, cpu: int, pids: np.ndarray, vpns: np.ndarray, start: int, end: int,
                          now: float) -> int:
        """PROT_NONE the slow-tier PTEs in [start, end), record the scan time, flush the range."""
        m = self.m
        lo, hi = np.searchsorted(vpns, [start >> 12, end >> 12])
        sel = pids[lo:hi]
        if len(sel) == 0:
            return 0
        fl = m.pte_flags[sel]
        frames = m.pte_pfn[sel]
        ok = ((fl & K.PTE_PRESENT) != 0) & ((fl & K.PTE_PROTNONE) == 0)
        ok &= m.frame_node[np.maximum(frames, 0)] != DRAM  # mode 2: top-tier folios are skipped
        hit = sel[ok]
        if len(hit) == 0:
            return 0
        # pte_modify(PAGE_NONE): the write bit goes, dirty and young stay
        m.pte_flags[hit] = (m.pte_flags[hit] & ~K.PTE_WRITE) | K.PTE_PROTNONE
        m.scan_time[hit] = now
        m.counters[cpu, C["numa_pte_updates"]] += len(hit)
        m.charge(cpu, len(hit) * m.costs.pte_update, T["fault"])
        hv = m.page_vpn[hit]
        span = int(hv.max() - hv.min() + 1)  # mmu_gather flushes [first, last] changed address
        self.r.flush.flush_mm_range(cpu, hit, npages=span)
        return len(hit)

    # ---- hint faults and promotion (do_numa_page, should_numa_migrate_memory) ------------
    def hint_fault(self, cpu: int, pid: int) -> None:
        m = self.m
        r = self.r
        m.counters[cpu, C["pgfault"]] += 1
        m.counters[cpu, C["numa_hint_faults"]] += 1
        m.charge(cpu, m.costs.fault, T["fault"])
        m.times[cpu, T["fault"]] += m.kernel_entry(cpu)
        frame = int(m.pte_pfn[pid])
        nid = int(m.frame_node[frame])
        if nid == DRAM:  # all CPUs are on node 0
            m.counters[cpu, C["numa_hint_faults_local"]] += 1
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

    def _should_promote(self, cpu: int, pid: int, now: float) -> bool:
        m = self.m
        dram = m.nodes[DRAM]
        enough = max(GIB_PAGES, dram.pages >> 4)
        if dram.watermark_ok(dram.wmark.promo + enough):  # pgdat_free_space_enough
            return True
        # (numa_promotion_adjust_threshold runs at quantum boundaries: on_boundary)
        th = self.nbp_threshold or self.hot_threshold
        latency = now - m.scan_time[pid]
        if latency >= th:
            return False
        return not self._rate_limited(cpu, now, 1)

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

    def _promote(self, cpu: int, pid: int, frame: int) -> bool:
        """migrate_misplaced_folio: refuse (and wake kswapd) unless DRAM stays above high."""
        m = self.m
        dram = m.nodes[DRAM]
        if not dram.watermark_ok(dram.wmark.high + 1):  # migrate_balanced_pgdat
            self.wake_kswapd(DRAM, cpu)
            return False
        self.lru.remove(CXL, frame)
        done, failed = self.engine.migrate_pages(cpu, [frame], MR_NUMA_MISPLACED, DRAM)
        if failed:
            self.lru.add_head(CXL, frame)
            return False
        m.counters[cpu, C["numa_pages_migrated"]] += len(done)
        m.counters[cpu, C["pgpromote_success"]] += len(done)
        return True

    # ---- kswapd (balance_pgdat on node 0 to the promo watermark) -------------------------
    def wake_kswapd(self, nid: int, cpu: int = 0) -> None:
        """wakeup_kswapd: a no-op while kswapd is already running or the node is balanced."""
        if nid != DRAM or self.kswapd_pending or not self.demotion:
            return
        if self._balanced():
            return
        self.kswapd_waker = cpu
        self.kswapd_pending = True
        self.r.at(self.r.now(), lambda r: self.kswapd())

    def _balanced(self) -> bool:
        dram = self.m.nodes[DRAM]
        mark = dram.wmark.promo if self.mode & 2 else dram.wmark.high
        return dram.watermark_ok(mark)

    def kswapd(self) -> None:
        """kswapd (balance_pgdat) as a task sharing its CPU with a busy thread under EEVDF.

        Woken, it preempts the thread (it slept, so it is eligible with the earlier deadline)
        and works chunk after chunk until node 0 is balanced, two passes over the LRU are done,
        or it has used a base slice of CPU time; then the thread gets as long before kswapd
        runs again. The work is done a quantum of CPU time at a time so that other CPUs'
        promotions interleave with it. Reclaim therefore lasts as long as it costs -- flush
        round trips included -- and promotions keep being refused meanwhile."""
        m = self.m
        if self._kswapd_run is None:
            self.kswapd_runs += 1
            self._kswapd_run = {"scanned": 0, "limit": 2 * self.lru.size[DRAM], "slice": 0.0,
                                "cpu": self.kswapd_cpu if self.kswapd_cpu >= 0 else self.kswapd_waker}
        run = self._kswapd_run
        cpu = run["cpu"]
        if not m.lazy[cpu]:  # switched in from the user thread: a kernel entry
            m.times[cpu, T["fault"]] += m.kernel_entry(cpu)
            self.r.flush.switch_to_kernel(cpu)
        m.lazy[cpu] = True  # a kernel thread: the user mm stays loaded, lazily
        t0 = float(m.clock[cpu])
        done = False
        while True:
            if self._balanced() or run["scanned"] >= run["limit"]:
                done = True
                break
            if self._shrink_chunk(cpu, "pgdemote_kswapd") < 0:
                done = True
                break
            run["scanned"] += self.reclaim_chunk
            if m.clock[cpu] - t0 >= self.r.quantum:
                break
        run["slice"] += float(m.clock[cpu]) - t0
        if done:
            self._kswapd_run = None
            self.kswapd_pending = False
            self._switch_back(cpu)
            return
        self.kswapd_pending = True
        now, q = self.r.now(), self.r.quantum
        if run["slice"] >= self.sched_slice:
            # the slice is used up: the thread runs as long before kswapd's next turn
            self._switch_back(cpu)
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
        self.r.at(resume, lambda r: self.kswapd())

    def _switch_back(self, cpu: int) -> None:
        if self.r.running[cpu]:
            self.r.flush.switch_back(cpu)

    def direct_reclaim(self, cpu: int) -> None:
        """A user allocation found every node below min: reclaim one chunk itself."""
        self._shrink_chunk(cpu, "pgdemote_direct")

    def _shrink_chunk(self, cpu: int, counter: str) -> int:
        """Isolate ≤32 folios from the tail; referenced ones rotate, the rest are demoted."""
        m = self.m
        isolated = self.lru.take_tail(DRAM, self.reclaim_chunk)
        if not isolated:
            return -1
        m.charge(cpu, len(isolated) * m.costs.lru_scan, T["fault"])
        demote = []
        for f in isolated:
            pid = int(m.frame_pid[f])
            if m.pte_flags[pid] & K.PTE_YOUNG:
                m.pte_flags[pid] &= ~K.PTE_YOUNG  # folio_referenced: young cleared, no flush on x86
                self.lru.add_head(DRAM, f)
            else:
                demote.append(f)
        # a referenced folio is activated; shrink_active_list isolates and checks it once more
        # before it is back on the inactive list: that pass is paid here
        m.charge(cpu, (len(isolated) - len(demote)) * m.costs.lru_scan, T["fault"])
        if not demote or not self.demotion:
            for f in demote:
                self.lru.add_head(DRAM, f)
            return 0
        done, failed = self.engine.migrate_pages(cpu, demote, MR_DEMOTION, CXL)
        for f in failed:
            self.lru.add_head(DRAM, f)
        m.counters[cpu, C[counter]] += len(done)
        return len(done)


def _align_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a
