"""The scheduler hooks: a tick per busy CPU every 1/machine.hz (scaled), kswapd's context
switches, and nothing at all for engines that do not hook them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from scenario_util import build, heap_addr, spin

PROBE = '''
from migrc_bench.engines import Engine


class Probe(Engine):
    name = "probe"

    def attach(self, replay):
        super().attach(replay)
        self.ticks = []
        self.switches = []

    def on_tick(self, cpu):
        self.ticks.append((self.r.now(), cpu, bool(self.r.running[cpu])))

    def on_context_switch(self, cpu, to_kernel):
        self.switches.append((cpu, to_kernel, bool(self.m.lazy[cpu])))
'''


def probe_file(tmp: Path) -> str:
    path = tmp / "probe.py"
    path.write_text(textwrap.dedent(PROBE))
    return f"{path}:Probe"


def kswapd_workload():
    # thread 1 reads heap pages so that kswapd has something to demote
    return spin(3, 3000, {1: [(0.1 + 0.001 * i, 1, heap_addr(i)) for i in range(20)]})


def test_ticks_every_period_on_busy_cpus_only(tmp_path):
    sets = ["machine.hz=1000", "replay.time_scale=1e-4", "replay.quantum=20"]  # a tick per 100 ns
    r = build(tmp_path, spin(3, 4000)[:2] + [spin(1, 400)[0]], heap_pages=8, sets=sets,
              engine=probe_file(tmp_path))
    res = r.run()
    assert r.sched.period == 100.0
    ticks = r.engine.ticks
    assert all(busy for _, _, busy in ticks)                     # idle CPUs do not tick
    per_cpu = {c: [t for t, cc, _ in ticks if cc == c] for c in range(3)}
    assert len(per_cpu[2]) < len(per_cpu[0]) / 3                 # thread 2 finished early
    times = np.array(per_cpu[0])
    assert (np.diff(times) >= 100.0 - 1e-9).all()                # at most one per period
    assert (np.diff(times) <= 100.0 + 20.0 + 1e-9).all()         # at the first boundary after
    expected = res.totals["runtime_s"] * 1e9 / 100.0
    assert abs(len(times) - expected) <= 2


def test_a_period_below_the_quantum_ticks_at_every_boundary(tmp_path):
    r = build(tmp_path, spin(2, 2000), heap_pages=8, sets=["replay.quantum=500"],
              engine=probe_file(tmp_path))  # time_scale 1: a tick per 4 ms, far beyond the run
    r.run()
    assert r.engine.ticks == []
    r = build(tmp_path, spin(2, 2000), heap_pages=8,
              sets=["replay.quantum=500", "replay.time_scale=1e-7"], engine=probe_file(tmp_path))
    r.run()
    times = sorted({t for t, _, _ in r.engine.ticks})
    assert len(times) > 3 and np.allclose(np.diff(times), 500.0)


def test_the_next_tick_is_always_after_now(tmp_path):
    from migrc_bench.model.sched import next_tick

    period = 1e9 / 300 * 0.01  # hz 300, the seed's time_scale: 33,333.33 ns
    assert period * (2_100_000.0 // period + 1) <= 2_100_000.0  # the rounding this is about
    assert 2_100_000.0 < next_tick(2_100_000.0, period) <= 2_100_000.0 + period
    # end to end: with hz 300 and time_scale 7e-6 (a tick per 23.3 ns), the boundary at
    # 1,050 ns used to reschedule its tick at 1,050 ns itself, over and over
    sets = ["machine.hz=300", "replay.time_scale=7e-6", "replay.quantum=50"]
    r = build(tmp_path, spin(2, 2000), heap_pages=8, sets=sets, engine=probe_file(tmp_path))
    seen = set()

    def once_per_boundary(cpu):
        assert (r.now(), cpu) not in seen, f"a second tick at {r.now()} ns"
        seen.add((r.now(), cpu))

    r.engine.on_tick = once_per_boundary
    res = r.run()
    assert any(t == 1_050.0 for t, _ in seen)
    assert abs(len({t for t, _ in seen}) - res.totals["runtime_s"] * 1e9 / 50.0) <= 2


def test_kswapd_switches_in_and_back_out(tmp_path):
    r = build(tmp_path, kswapd_workload(), heap_pages=24, engine=probe_file(tmp_path))
    r.at(30_000, lambda rr: rr.tiering.wake_kswapd(0) or rr.tiering.kswapd())
    res = r.run()
    assert res.totals["pgdemote_kswapd"] > 0
    sw = r.engine.switches
    assert sw and sw[0] == (0, True, False)          # thread -> kswapd on CPU 0, before lazy
    assert (0, False, True) in sw                    # kswapd -> thread, before the switch back
    kinds = [to_kernel for _, to_kernel, _ in sw]
    assert all(a != b for a, b in zip(kinds, kinds[1:]))  # in, out, in, out ...


def test_engines_without_the_hooks_schedule_nothing(tmp_path):
    for engine in ("baseline", "migrc", "luf", "nobatch"):
        r = build(tmp_path, kswapd_workload(), heap_pages=24, engine=engine,
                  sets=["replay.time_scale=1e-7"])
        assert not r.sched.hooks_tick and r.flush.on_context_switch == []
        r.sched.start()
        assert r._events == []
