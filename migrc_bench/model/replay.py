"""The replay driver (model.md §5): runs the compiled loop and does the kernel's work between calls.

The compiled loop replays accesses CPU by CPU inside quanta and returns whenever Python must
act. Faults are handled at the faulting CPU's clock; kernel activities (tiering scans,
kswapd, interval sampling, scheduled test events) run at quantum boundaries in time order.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..cache import file_sha256
from ..config import Config
from ..errors import ConfigError, TraceError
from ..trace.native import TraceReader, as_reader
from ..trace.prepass import trace_profile
from . import kernel as K
from .counters import C, COUNTERS, T, TIMES
from .feeder import BUFFER_ROWS, Buffers, Feeder
from .alloc import Allocator
from .broadcast import make_flush
from .jit_cache import compile_clock
from .machine import HPAGE_PMD_NR, MAX_MMS, VPN_OF_KEY, Machine, needs_profile
from .runqueue import RunQueues
from .warmup import Warmup

ProgressFn = Callable[[int, float], None]  # (accesses so far, modelled ns)


@dataclass
class RunResult:
    """What one replay produced: totals, per-CPU counters and interval rows."""

    engine: str
    trace_path: str
    config: Config
    totals: dict[str, Any]
    cpus: list[dict[str, Any]]
    intervals: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)
    identity: Any = None  # engines.loader.EngineIdentity: name, source file and its sha256


@dataclass(order=True)
class _Event:
    t_ns: float
    seq: int
    fn: Callable[["Replay"], None] = field(compare=False)


class Replay:
    """One run of one trace through one machine and engine."""

    def __init__(self, cfg: Config, trace: "str | Path | TraceReader", engine=None,
                 progress: ProgressFn | None = None, check_invariants: bool = False,
                 trace_sha256: str | None = None):
        self.cfg = cfg
        self.reader = as_reader(trace)  # a file, or a source with its protocol (trace/stream.py)
        meta = self.reader.meta
        threads = cfg.replay.threads or max(1, meta.threads)
        if cfg.replay.threads and meta.threads > 1 and cfg.replay.threads != meta.threads:
            raise ConfigError(f"config key 'replay.threads': {cfg.replay.threads} threads asked, but "
                              f"the trace already has {meta.threads}; replay.threads only "
                              f"multiplies a single-thread trace")
        if threads > cfg.machine.ncpu and cfg.replay.warmup:
            raise ConfigError(f"config key 'replay.warmup': the trace runs {threads} threads on "
                              f"{cfg.machine.ncpu} CPUs, and a warm-up is counted per CPU: "
                              f"give replay.warmup = 0 or at least {threads} CPUs")
        if len(meta.processes) > MAX_MMS:
            raise TraceError(self.reader.path, f"metadata migrc_bench.processes: "
                             f"{len(meta.processes)} processes; the model keys the pages of at "
                             f"most {MAX_MMS} (machine.MAX_MMS)")
        if self.reader.num_rows == 0:
            raise TraceError(self.reader.path, "the trace is empty")
        self.threads = threads
        self.trace_sha256 = trace_sha256  # hashed here only when the pre-pass is needed
        profile = None
        if needs_profile(cfg, meta):
            self.trace_sha256 = trace_sha256 or file_sha256(self.reader.path)
            profile = trace_profile(self.reader, self.trace_sha256)
        self.machine = m = Machine(cfg, meta, profile=profile)
        m.place_initial()
        task_mm = m.task_mms(threads)
        self.rq = RunQueues(self, task_mm)
        self.rq.place()  # a CPU that ran the mm keeps its bit (lazy when idle)
        self.flush = make_flush(m)
        self.flush.current_task = self.rq.cur_task  # current->pid (consider_global_asid)
        # per-task queues of chunks: as many rows queued in all as BUFFER_ROWS per CPU (how
        # many are queued changes nothing the replay computes, only how often it is refilled)
        self.buffers = Buffers(max(m.ncpu, threads),
                               max(BUFFER_ROWS >> 4, BUFFER_ROWS * m.ncpu // max(m.ncpu, threads)))
        self.feeder = Feeder(self.reader, m, self.buffers, threads, cfg.replay.max_accesses,
                             cfg.replay.reader_thread, task_mm if m.nmm > 1 else None)
        self.running = np.zeros(m.ncpu, np.bool_)
        self.running[:threads] = True
        self.quantum = float(cfg.replay.quantum)
        self.q_end = np.array([self.quantum], np.float64)
        self.interval_ns = float(cfg.replay.interval)
        self.intervals: list[dict[str, Any]] = []
        self._last_totals = np.zeros(len(COUNTERS), np.int64)
        self._last_times = np.zeros(len(TIMES), np.float64)
        self._next_interval = self.interval_ns
        self._events: list[_Event] = []
        self._seq = 0
        self.progress = progress
        self.check = check_invariants
        self.checker = None
        if check_invariants:
            from .invariants import Checker

            self.checker = Checker(self)
        self.alloc = Allocator(self)
        self.warmup = Warmup(self, cfg.replay.warmup) if cfg.replay.warmup else None
        self.engine = engine
        self.tiering = None
        self.sched = None
        self._vmas_cache: tuple[int, list] | None = None
        if engine is not None:
            from .sched import Scheduler
            from .tiering import Tiering

            engine.attach(self)
            self.tiering = Tiering(self, engine)
            self.sched = Scheduler(self, engine)

    # ---- scheduling --------------------------------------------------------------------
    def at(self, t_ns: float, fn: Callable[["Replay"], None]) -> None:
        """Run ``fn(replay)`` at the first quantum boundary at or after ``t_ns``."""
        self._seq += 1
        heapq.heappush(self._events, _Event(float(t_ns), self._seq, fn))

    def now(self) -> float:
        """The current quantum boundary: when kernel activities run."""
        return float(self.q_end[0])

    def now_cpu(self, cpu: int) -> float:
        return float(self.machine.clock[cpu])

    def vmas(self) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
        """(start, end, page ids, their vpns) of the data VMAs in address order, for the NUMA scanner.

        Trace regions other than code; pages outside every region form one anonymous VMA
        per run of pages closer than 2 MiB. Read-only file text is skipped as the kernel does,
        and so is any read-only file mapping (task_numa_work, v6.7/v6.8 kernel/sched/fair.c:
        ``vma->vm_file && (vm_flags & (VM_READ|VM_WRITE)) == VM_READ``, NUMAB_SKIP_SHARED_RO).
        """
        m = self.machine
        n = m.n_pages
        if self._vmas_cache is not None and self._vmas_cache[0] == n:
            return self._vmas_cache[1]
        pids = np.arange(n, dtype=np.int32)
        pids = pids[(m.page_flags[:n] & (K.VMA_KERNEL | K.VMA_EXEC)) == 0]
        vpns = m.page_vpn[pids]
        order = np.argsort(vpns, kind="stable")
        pids, vpns = pids[order], vpns[order]
        vmas: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        inside = np.zeros(len(pids), bool)
        for r in m.regions:
            if r.kind == "code" or r.exec:
                continue
            sel = (vpns >= r.start >> 12) & (vpns <= (r.end - 1) >> 12)
            inside |= sel
            if r.file is not None and not r.writable:
                continue  # task_numa_work: read-only file mappings are not scanned
            if sel.any():
                vmas.append((r.start, r.end, pids[sel], vpns[sel]))
        rest_p, rest_v = pids[~inside], vpns[~inside]
        if len(rest_p):
            breaks = np.flatnonzero(np.diff(rest_v) > 512) + 1
            for chunk_p, chunk_v in zip(np.split(rest_p, breaks), np.split(rest_v, breaks)):
                vmas.append((int(chunk_v[0]) << 12, (int(chunk_v[-1]) + 1) << 12, chunk_p, chunk_v))
        vmas.sort(key=lambda v: v[0])
        self._vmas_cache = (n, vmas)
        return vmas

    def _next_stop(self) -> float:
        t = self._next_interval
        if self._events:
            t = min(t, self._events[0].t_ns)
        return t

    # ---- faults ------------------------------------------------------------------------
    def _fault_missing(self, cpu: int, pid: int) -> None:
        """First touch: allocate on the CPU's node, falling back down the zonelist."""
        m = self.machine
        m.counters[cpu, C["pgfault"]] += 1
        m.charge(cpu, m.costs.fault, T["fault"])
        m.times[cpu, T["fault"]] += m.kernel_entry(cpu)
        if m.page_flags[pid] & K.VMA_FILE and m.out_of_page_cache(pid):
            self._fault_file(cpu, pid)
            return
        frame = self.alloc.alloc_user(cpu, preferred=0)
        m.pte_pfn[pid] = frame
        fl = K.PTE_PRESENT
        if m.page_flags[pid] & K.VMA_WRITE:
            fl |= K.PTE_WRITE
        m.pte_flags[pid] = fl
        m.frame_pid[frame] = pid
        m.frame_ver[frame] += 1  # zeroed page: new content
        if self.tiering is not None:
            self.tiering.lru_add(frame)

    def _fault_file(self, cpu: int, pid: int) -> None:
        """filemap_fault: the page-cache folio if another mapping holds it (a minor fault),
        else a major fault that reads the page into a new folio (cost.major_fault): one
        left out of memory at the start, or reclaimed since (its data as it was)."""
        m = self.machine
        frame = m.page_cache_frame(pid)
        ver = m.evicted_ver.pop(pid, None)
        m.left_out.discard(pid)
        if frame >= 0:
            m.frame_maps.setdefault(frame, []).append(pid)
        else:
            m.counters[cpu, C["pgmajfault"]] += 1
            m.charge(cpu, m.costs.major_fault, T["fault"])
            frame = self.alloc.alloc_user(cpu, preferred=0)
            m.frame_pid[frame] = pid
            if ver is None:
                m.frame_ver[frame] += 1
            else:
                m.frame_ver[frame] = ver
            if self.tiering is not None:
                self.tiering.lru_add(frame)
        m.pte_pfn[pid] = frame
        m.pte_flags[pid] = K.PTE_PRESENT | (K.PTE_WRITE if m.page_flags[pid] & K.VMA_WRITE else 0)

    def _fault_wp(self, cpu: int, pid: int) -> None:
        """Write to a read-only translation: spurious, or do_wp_page (reuse: one exclusive mm)."""
        m = self.machine
        m.counters[cpu, C["pgfault"]] += 1
        m.charge(cpu, m.costs.fault, T["fault"])
        m.times[cpu, T["fault"]] += m.kernel_entry(cpu)
        fl = m.pte_flags[pid]
        if fl & K.PTE_WRITE:
            return  # spurious: the CPU held an older read-only translation
        if not m.page_flags[pid] & K.VMA_WRITE:
            vpn = int(m.page_vpn[pid]) & VPN_OF_KEY
            raise TraceError(self.reader.path, f"store to read-only page 0x{vpn << 12:x} "
                             f"(a region marked not writable)")
        if self.engine is not None:
            self.engine.before_pte_writable(cpu, pid, "wp")
        head = int(m.page_pmd[pid]) if m.thp else -1
        if head >= 0:  # do_huge_pmd_wp_page: the whole PMD becomes writable
            m.pte_flags[head:head + HPAGE_PMD_NR] |= K.PTE_WRITE
        m.pte_flags[pid] = fl | K.PTE_WRITE | K.PTE_DIRTY | K.PTE_YOUNG
        if self.checker is not None:
            self.checker.on_writable(cpu, pid)

    def _fault_hint(self, cpu: int, pid: int) -> None:
        if self.tiering is None:
            raise AssertionError("PROT_NONE PTE without the tiering policy")
        self.tiering.hint_fault(cpu, pid)

    # ---- the loop ----------------------------------------------------------------------
    def run(self) -> RunResult:
        """Replay the whole trace. ``wall_s`` leaves out compiling the loop (a first run's)."""
        try:
            with compile_clock() as compiling:
                wall0 = time.perf_counter()
                self._run()
                wall = time.perf_counter() - wall0
        finally:
            self.feeder.close()
        return self._result(max(0.0, wall - compiling.seconds))

    def _loop(self, running: np.ndarray, t_stop: float, out: np.ndarray, hint: np.ndarray) -> int:
        m = self.machine
        b = self.buffers
        return K.run_loop(
            b.seg_pid, b.seg_op, b.seg_len, b.seg_first, b.seg_n, b.head,
            self.feeder.stream_open, running, m.clock, self.q_end, self.quantum, t_stop,
            *m.tlb_args(), m.stamps, m.page_vpn, m.page_flags, m.pte_pfn, m.pte_flags,
            m.frame_node, m.frame_ver, m.node_lat, m.counters, m.times, m.cost_vec,
            self.check, m.frame_state, m.viol, m.viol_n, out, hint, m.scan_time,
            m.kernel_pids, m.kernel_pos, m.kernel_per_entry, m.tlb_last, self.rq.cur_task,
            self.rq.slice_end, self.rq.rq_len, m.page_pmd, m.thp)

    def _run(self) -> None:
        m = self.machine
        out = np.zeros(3, np.int64)
        hint = self.tiering.hint if self.tiering is not None else np.zeros(K.N_HINT, np.float64)
        self.feeder.start()
        # load the compiled mapping, then the loop (a call with no CPU running does nothing),
        # while the reader thread reads and maps the first batches
        m.pagemap.load_compiled()
        self._loop(np.zeros_like(self.running), 0.0, out, hint)
        self.feeder.prime()
        if self.engine is not None:
            self.engine.start()
            self.tiering.start()
            self.sched.start()
        t_stop = self._next_stop()
        while True:
            reason = self._loop(self.running, t_stop, out, hint)
            self._update_lazy()
            if reason == K.R_NEED_DATA:
                if self.warmup is not None:
                    self.warmup.on_dry(int(out[0]))
                self.feeder.refill(int(self.rq.cur_task[int(out[0])]))
                continue
            if reason == K.R_SWITCH:
                self.rq.on_switch(int(out[0]))
                continue
            if reason == K.R_FAULT_MISSING:
                self._fault_missing(int(out[0]), int(out[1]))
            elif reason == K.R_FAULT_WP:
                self._fault_wp(int(out[0]), int(out[1]))
            elif reason == K.R_FAULT_HINT:
                self._fault_hint(int(out[0]), int(out[1]))
            elif reason == K.R_STOP:
                self._boundary()
                if self.progress is not None:
                    self.progress(int(m.counters[:, C["accesses"]].sum()), self.now())
            elif reason == K.R_ALL_DONE:
                break
            if self.tiering is not None:
                self.tiering.refresh_hint()
            t_stop = self._next_stop()
        self._finish_intervals()
        if self.engine is not None:
            self.engine.finish()
        if self.checker is not None:
            self.checker.finish()

    def _update_lazy(self) -> None:
        """A CPU whose thread finished runs the idle task: lazy TLB, mm still loaded."""
        n = min(self.threads, self.machine.ncpu)
        running = self.running[:n]
        if not running.all():
            self.machine.lazy[:n] |= ~running

    def _boundary(self) -> None:
        t = self.now()
        while self._events and self._events[0].t_ns <= t:
            ev = heapq.heappop(self._events)
            ev.fn(self)
        if t >= self._next_interval:
            self._sample_interval(t)
            while self._next_interval <= t:
                self._next_interval += self.interval_ns

    def restart_intervals(self) -> None:
        """Interval rows start afresh from now (the end of the warm-up)."""
        m = self.machine
        self.intervals = []
        self._last_totals = m.counters.sum(axis=0)
        self._last_times = m.times.sum(axis=0)

    def _sample_interval(self, t_ns: float) -> None:
        m = self.machine
        totals = m.counters.sum(axis=0)
        times = m.times.sum(axis=0)
        row: dict[str, Any] = {"interval": len(self.intervals), "t_s": t_ns / 1e9}
        delta = totals - self._last_totals
        row.update({name: int(delta[i]) for i, name in enumerate(COUNTERS)})
        tdelta = times - self._last_times
        row.update({f"stall_{n}_s": float(tdelta[i]) / 1e9 for i, n in enumerate(TIMES) if n != "busy"})
        row["cpu_time_s"] = float(tdelta[T["busy"]]) / 1e9
        if self.engine is not None:
            row.update(self.engine.interval_gauges())
        self.intervals.append(row)
        self._last_totals = totals
        self._last_times = times

    def _finish_intervals(self) -> None:
        m = self.machine
        end = float(m.clock[: self.threads].max())
        if (m.counters.sum(axis=0) != self._last_totals).any() or not self.intervals:
            self._sample_interval(max(end, self.now() if not self.intervals else end))

    def _result(self, wall_s: float) -> RunResult:
        m = self.machine
        replayed = int(m.counters[:, C["accesses"]].sum())
        counters, times, start = (self.warmup.counted() if self.warmup is not None
                                  else (m.counters, m.times, np.zeros(m.ncpu)))
        totals: dict[str, Any] = {name: int(v) for name, v in zip(COUNTERS, counters.sum(axis=0))}
        tsum = times.sum(axis=0)
        runtime_ns = float((m.clock - start)[: self.threads].max())
        totals.update({
            "runtime_s": runtime_ns / 1e9,
            "cpu_time_s": float(tsum[T["busy"]]) / 1e9,
            **{f"stall_{n}_s": float(tsum[i]) / 1e9 for i, n in enumerate(TIMES) if n != "busy"},
            "migrc_pending_pages_peak": 0,
            "wall_s": wall_s,
            "accesses_per_s": replayed / wall_s if wall_s > 0 else 0.0,
            "invariant_violations": 0,
            **self.flush.run_figures(),
            **self.flush.source_figures(None if self.warmup is None
                                        else self.warmup.counted_by_source()),
        })
        if self.engine is not None:
            totals.update(self.engine.run_figures())
        if self.checker is not None:
            totals["invariant_violations"] = self.checker.count
        cpus = []
        for c in range(m.ncpu):
            row: dict[str, Any] = {"cpu": c}
            row.update({name: int(counters[c, i]) for i, name in enumerate(COUNTERS)})
            row.update({f"stall_{n}_s": float(times[c, i]) / 1e9 for i, n in enumerate(TIMES) if n != "busy"})
            row["cpu_time_s"] = float(times[c, T["busy"]]) / 1e9
            cpus.append(row)
        extra = {
            "threads": self.threads,
            "dram_pages": m.nodes[0].pages,
            "cxl_pages": m.nodes[1].pages,
            "footprint_bytes": m.footprint_bytes,
            "time_scale": self.cfg.replay.time_scale,
            "trace_rows": self.feeder.read_rows,
            # the effective TLBs (a tlb.* key of 0 in the config means the preset's size)
            **{k: v for k, v in dataclasses.asdict(m.geometry).items() if k != "source"},
        }
        if self.checker is not None:
            extra["violations"] = [str(v) for v in self.checker.found]
        return RunResult(self.cfg.engine,
                         str(self.reader.path), self.cfg, totals, cpus, self.intervals, extra)
