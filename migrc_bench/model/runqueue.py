"""More tasks than CPUs: per-CPU run queues, base slices and context switches (model.md §5).

Tasks are the trace's threads. Task t runs on CPU t mod ncpu (no migration between CPUs: the
load balancer is not modelled); with no more threads than CPUs that is today's one thread
per CPU, every queue holds one task, its slice never ends and nothing here ever runs.

Each CPU runs its queue round-robin, a task until it has used ``sched_base_slice`` of CPU
time (kernel/sched/fair.c, v6.7: EEVDF with equal weights and RUN_TO_PARITY gives each
runnable task one base slice per turn, in turn: update_deadline() at the slice's end and
pick_eevdf() take the next; lag and place_entity() are not modelled). The slice ends exactly
(as with HRTICK; without it the kernel notices at the next tick, up to 1/HZ later). A task
whose trace ends leaves its queue. Each switch to a different task is one
``nr_context_switches`` (__schedule()'s rq->nr_switches++, /proc/stat ``ctxt``), costs
``machine.context_switch_cost`` on the CPU, and goes through switch_mm_irqs_off() for the
next task's mm (flush.FlushMechanism.switch_mm): threads of one mm switch without a CR3
write; another mm takes an ASID slot, flushed when stale.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .counters import C, T
from .sched import base_slice_ns


class RunQueues:
    def __init__(self, replay, task_mm: np.ndarray):
        self.r = replay
        m = replay.machine
        self.m = m
        self.task_mm = task_mm
        ncpu = m.ncpu
        ntask = len(task_mm)
        self.queues = [deque(t for t in range(ntask) if t % ncpu == c) for c in range(ncpu)]
        self.cur_task = np.array([q[0] if q else 0 for q in self.queues], np.int64)
        self.rq_len = np.array([len(q) for q in self.queues], np.int64)
        self.slice = base_slice_ns(replay.cfg, ncpu)
        self.switch_cost = float(replay.cfg.machine.context_switch_cost)
        self.slice_end = np.where(self.rq_len > 1, self.slice, np.inf)
        # sum_exec_runtime: each task's CPU time up to its last switch-out, and the CPU's busy
        # time when its current task came in (a task alone on its CPU: the CPU's busy time)
        self.task_runtime = np.zeros(ntask, np.float64)
        self.busy_in = np.zeros(ncpu, np.float64)

    def place(self) -> None:
        """The first task of each queue is running at the start: its mm loaded in ASID slot 0
        (initialize_tlbstate_and_flush(): next_asid = 1), the CPU in its mm_cpumask."""
        m = self.m
        for c, q in enumerate(self.queues):
            m.next_asid[c] = 1
            if q:
                mm = int(self.task_mm[q[0]])
                m.loaded_mm[c] = mm
                m.asid_mm[c, 0] = mm
                m.asid_gen[c, 0] = m.mm_gens[mm]
                m.cpu_gen[c] = m.mm_gens[mm]
                m.mm_cpumasks[mm, c] = True

    def on_switch(self, cpu: int) -> None:
        """The loop stopped ``cpu`` (R_SWITCH): its task used up its slice (to the queue's
        tail) or ended (it leaves); the next task in the queue runs."""
        q = self.queues[cpu]
        t = q.popleft()
        buf, feeder = self.r.buffers, self.r.feeder
        if not buf.queued(t) and feeder.stream_open[t]:
            feeder.refill(t)  # whether the task has records left
        if buf.queued(t) or feeder.stream_open[t]:
            q.append(t)
        self.rq_len[cpu] = len(q)
        self.switch_to(cpu, q[0])

    def runtime(self, cpu: int) -> float:
        """The CPU time of the task running on ``cpu``."""
        t = int(self.cur_task[cpu])
        return float(self.task_runtime[t] + self.m.times[cpu, T["busy"]] - self.busy_in[cpu])

    def ran_other(self, cpu: int, ns: float) -> None:
        """kswapd (another task) had ``cpu`` for ``ns``: the current task's slice is CPU time
        of its own, so its end moves as far (a task alone on its CPU has no end)."""
        if self.rq_len[cpu] > 1:
            self.slice_end[cpu] += ns

    def waiting(self, mm: int) -> bool:
        """Whether a task of ``mm`` is still on some run queue."""
        return any(self.task_mm[t] == mm for q in self.queues for t in q)

    def switch_to(self, cpu: int, task: int) -> None:
        m = self.m
        if task != self.cur_task[cpu]:
            prev = int(self.cur_task[cpu])
            self.task_runtime[prev] += m.times[cpu, T["busy"]] - self.busy_in[cpu]
            m.counters[cpu, C["nr_context_switches"]] += 1
            for hook in self.r.flush.on_context_switch:
                hook(cpu, False)
            self.r.flush.switch_mm(cpu, int(self.task_mm[task]))
            m.charge(cpu, self.switch_cost)
            self.cur_task[cpu] = task
            self.busy_in[cpu] = m.times[cpu, T["busy"]]
        self.slice_end[cpu] = m.clock[cpu] + self.slice if self.rq_len[cpu] > 1 else np.inf
