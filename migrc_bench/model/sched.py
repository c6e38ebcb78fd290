"""The scheduler events an engine can hook: the periodic tick and kswapd's context switches.

With no more threads than CPUs each thread has its CPU; more share CPUs by run queues
(model/runqueue.py, which also calls ``on_context_switch`` at each task switch). Beside them:

- ``Engine.on_tick(cpu)`` stands for scheduler_tick() (kernel/sched/core.c, v6.7), which the
  timer interrupt runs on every busy CPU once per jiffy, 1/CONFIG_HZ (``machine.hz``, default
  250: kernel/Kconfig.hz's default HZ_250). Idle CPUs do not tick (CONFIG_NO_HZ_IDLE, the
  default of kernel/time/Kconfig): only CPUs whose thread still runs get the call. The tick
  period is a kernel period, so it is multiplied by ``replay.time_scale`` like the others
  (model.md §1). Ticks are aligned across CPUs (no ``skew_tick``) and run at the first quantum
  boundary at or after their time, CPUs in index order; a boundary sees at most one tick, so a
  period shorter than the quantum means a tick at every boundary.
- ``Engine.on_context_switch(cpu, to_kernel)`` stands for __schedule() on the CPU, before
  context_switch(): called by ``FlushMechanism.switch_to_kernel`` when kswapd takes the CPU
  (the user mm stays loaded, lazily) and by ``FlushMechanism.switch_back`` when the thread
  gets it back.

Nothing is scheduled or called for an engine that does not override a hook, so the built-in
engines replay exactly as they would without this module.
"""

from __future__ import annotations

import math

import numpy as np


def base_slice_ns(cfg, ncpu: int) -> float:
    """sysctl_sched_base_slice: ``machine.sched_base_slice``, or 0.75 ms x (1 + ilog2(min(ncpu,
    8))) (sched_update_scaling with SCHED_TUNABLESCALING_LOG, get_update_sysctl_factor caps
    the CPUs at 8). Not scaled by replay.time_scale: how often tasks switch against the
    (unscaled) cost of a switch is physical."""
    slice_ns = cfg.machine.sched_base_slice
    if slice_ns is None:
        slice_ns = 750_000.0 * min(ncpu, 8).bit_length()
    return float(slice_ns)


def overrides(engine, hook: str) -> bool:
    """Whether ``engine``'s class replaces the base Engine's (empty) ``hook``: the MRO's first
    definition is not its last one, Engine's (the model does not import the engines above it)."""
    defs = [vars(k)[hook] for k in type(engine).__mro__ if hook in vars(k)]
    return len(defs) > 1 and defs[0] is not defs[-1]


class Scheduler:
    def __init__(self, replay, engine):
        self.r = replay
        self.engine = engine
        cfg = replay.cfg
        self.period = 1e9 / cfg.machine.hz * cfg.replay.time_scale  # ns between ticks
        self.ticks = 0
        self.hooks_tick = overrides(engine, "on_tick")
        if overrides(engine, "on_context_switch"):
            replay.flush.on_context_switch.append(engine.on_context_switch)

    def start(self) -> None:
        if self.hooks_tick:
            self.r.at(self.period, self._tick)

    def _tick(self, replay) -> None:
        """One jiffy on every busy CPU; the next one is the first tick time after now."""
        now = replay.now()
        self.ticks += 1
        for cpu in np.flatnonzero(replay.running):
            self.engine.on_tick(int(cpu))
        replay.at(next_tick(now, self.period), self._tick)


def next_tick(now: float, period: float) -> float:
    """The first tick time (a multiple of ``period``) after ``now``.

    ``floor(now / period) + 1`` alone can give ``now`` itself: with hz 300 and time_scale 0.01
    (period 33,333.33 ns) and ``now`` 2.1 ms, ``now / period`` rounds to just below 63 and
    63 periods round to 2.1 ms. A tick at ``now`` runs again at the same boundary, forever.
    """
    k = math.floor(now / period) + 1
    while k * period <= now:
        k += 1
    return k * period
