"""``replay.warmup``: the first N accesses of each thread run but are not counted.

The feeder hands each thread exactly its first N accesses; when that CPU's buffer runs dry
at the boundary, its counters, stall times and clock are recorded, and the results subtract
them: TLBs, page table, LRU and the kernel's state carry over, the counts start from zero.
CPUs without a thread are recorded when the last thread is warm, and so are the interval
rows: ``intervals.parquet`` starts there. Run-level gauges (migrc's and LUF's peaks) and
invariant violations cover the whole replay.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .counters import C


class Warmup:
    def __init__(self, replay, accesses: int):
        m = replay.machine
        self.r = replay
        self.accesses = accesses
        self.warm = np.zeros(m.ncpu, np.bool_)
        self.counters = np.zeros_like(m.counters)
        self.times = np.zeros_like(m.times)
        self.clock = np.zeros_like(m.clock)
        self.by_source = np.zeros_like(replay.flush.by_source)
        replay.feeder.warm_left[: replay.threads] = accesses

    def on_dry(self, cpu: int) -> None:
        """The loop found ``cpu``'s buffer empty: record it if that is its warm-up's end."""
        if self.warm[cpu] or self.r.feeder.warm_left[cpu] != 0:
            return
        self._record(np.array([cpu]))
        threads = self.r.threads
        if self.warm[:threads].all():
            self._record(np.flatnonzero(~self.warm))
            self.r.restart_intervals()

    def _record(self, cpus: np.ndarray) -> None:
        m = self.r.machine
        self.warm[cpus] = True
        self.counters[cpus] = m.counters[cpus]
        self.times[cpus] = m.times[cpus]
        self.clock[cpus] = m.clock[cpus]
        self.by_source[cpus] = self.r.flush.by_source[cpus]

    def counted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(counters, times, start clock per CPU) of the counted part of the run."""
        m = self.r.machine
        counters = m.counters - self.counters
        acc = C["accesses"]
        empty = np.flatnonzero(~self.warm[: self.r.threads] | (counters[: self.r.threads, acc] == 0))
        if len(empty):
            t = int(empty[0])
            raise ConfigError(f"config key 'replay.warmup': expected fewer accesses than each "
                              f"thread replays, got {self.accesses} (thread {t} replays "
                              f"{int(m.counters[t, acc])}): nothing would be counted")
        return counters, m.times - self.times, self.clock

    def counted_by_source(self) -> np.ndarray:
        """The flush core's per-source counts of the counted part (as ``counted``)."""
        return self.r.flush.by_source - self.by_source
