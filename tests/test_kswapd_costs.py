"""kswapd's cost and scheduling: what it pays per folio and per flush, and how it shares a
CPU with the thread it was woken on. These set how fast demotion can free DRAM, which is
what limits promotions when kswapd falls behind (docs/reproduction.md)."""

from __future__ import annotations

from migrc_bench.model.counters import T
from scenario_util import build, spin


def _kswapd_run(tmp_path, name, sets=(), engine="baseline", heap_pages=24):
    d = tmp_path / name
    d.mkdir()
    r = build(d, spin(4, 4000), heap_pages=heap_pages, sets=list(sets), engine=engine)
    r.at(5_000, lambda rr: rr.tiering.kswapd())
    return r, r.run().totals


def test_flush_pays_one_vmexit_per_call_not_per_target(tmp_path):
    """A guest's flush is one PV send-IPI hypercall for all targets: the initiator's IPI time
    grows by cost.vmexit once, whatever the number of CPUs it sends to."""
    base = ['cost.vmexit="0ns"', 'cost.ipi_send="300ns"', 'cost.ipi_wait="3us"']
    r0, t0 = _kswapd_run(tmp_path, "a", base)
    r1, t1 = _kswapd_run(tmp_path, "b", base[1:] + ['cost.vmexit="1500ns"'])
    assert t0["nr_tlb_remote_flush"] == t1["nr_tlb_remote_flush"] == 1
    assert t1["nr_tlb_remote_flush_received"] == 3
    ipi0 = r0.machine.times[0, T["ipi"]]
    ipi1 = r1.machine.times[0, T["ipi"]]
    assert abs((ipi1 - ipi0) - 1500.0) < 1e-6


def _turns(tmp_path, base_slice: str):
    """Run kswapd in chunks of 4 with the given base slice, recording each turn:
    (start boundary, CPU clock when it starts, when it stops); and the totals."""
    d = tmp_path / "turns"
    d.mkdir()
    r = build(d, spin(4, 4000), heap_pages=24, engine="baseline",
              sets=["tiering.reclaim_chunk=4", f'machine.sched_base_slice="{base_slice}"',
                    'cost.lru_scan="2us"'])
    turns = []
    orig = r.tiering.kswapd

    def traced():
        start, clock = r.now(), float(r.machine.clock[0])
        orig()
        turns.append((start, clock, float(r.machine.clock[0])))

    r.tiering.kswapd = traced
    r.at(5_000, lambda rr: rr.tiering.kswapd())
    return turns, r.run().totals


def test_kswapd_keeps_its_cpu_for_a_base_slice(tmp_path):
    """With a base slice longer than the whole balance run, kswapd works chunk after chunk
    without letting the thread in: each turn starts where the previous one left the CPU."""
    turns, t = _turns(tmp_path, "1s")
    assert len(turns) >= 3 and t["pgdemote_kswapd"] >= 5
    for (_, _, stop), (start, _, _) in zip(turns, turns[1:]):
        assert start == stop  # no gap: the thread did not run


def test_kswapd_and_thread_share_the_cpu_equally(tmp_path):
    """With a tiny base slice, every turn is followed by as much time for the thread."""
    turns, _ = _turns(tmp_path, "1ns")
    assert len(turns) >= 3
    for (_, clock, stop), (nxt, _, _) in zip(turns, turns[1:]):
        used = stop - clock  # the turn's CPU time (its kernel entry included)
        assert stop + 0.9 * used <= nxt <= stop + used + 100  # the thread's equal share first
