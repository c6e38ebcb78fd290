"""The worked example examples/engines/latr.py: it keeps every invariant, its mechanism does what
the guide says, and a copy that frees sources before every CPU processed the shootdown is
caught by the invariant checker (what --check-invariants runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from migrc_bench.cli.main import main
from migrc_bench.model.counters import C
from migrc_bench.model.memory import F_HELD
from scenario_util import build, demote, frame_of, heap_addr, heap_layout, spin
from test_invariants import run_checked, workloads

LATR = Path(__file__).resolve().parents[1] / "examples" / "engines" / "latr.py"
SPEC = f"{LATR}:Latr"
HOLD = "        self._hold(initiator, self._entry, u, reason)\n"


def broken_copy(tmp: Path) -> str:
    """LATR with its one line that holds a source replaced by an immediate free."""
    text = LATR.read_text()
    assert HOLD in text and 'name = "latr"' in text
    text = text.replace(HOLD, "        super().release_source(initiator, u, reason)  # BROKEN\n")
    text = text.replace('name = "latr"', 'name = "latr-early-free"')
    path = tmp / "latr_early_free.py"
    path.write_text(text)
    return f"{path}:Latr"


@pytest.fixture(scope="module")
def xs_trace(tmp_path_factory):
    from migrc_bench.trace.xsbench import generate_xsbench

    trace = tmp_path_factory.mktemp("latr") / "x.parquet"
    generate_xsbench(trace, size="small", lookups=300, mode="event", threads=4, seed=3)
    return trace


# the CI machine (4 CPUs, 30 % DRAM, time scaled and space not, a free PTE walk: every flush
# path runs on a small trace), with read-only clean PTEs for LATR to defer
ARGS = ["--config", "ci", "--no-save", "--check-invariants", "--set",
        'memory.initial_pte="readonly-clean"', "--format", "json"]


def run_json(argv, capsys):
    import json

    code = main(argv)
    cap = capsys.readouterr()
    return code, (json.loads(cap.out) if cap.out.strip() else None), cap.err


def test_latr_replays_with_no_invariant_violation(xs_trace, capsys):
    code, doc, err = run_json(["run", str(xs_trace), "--engine", SPEC, *ARGS], capsys)
    assert code == 0, err
    c = doc["counters"]
    assert c["invariant_violations"] == 0
    assert c["latr_posted"] > 0 and c["latr_released_pages"] > 0  # it did defer, and free
    assert c["latr_local_flushes"] > 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_latr_never_violates_under_random_load(workload):
    recs, heap, sets, kswapd_times = workload
    res, checker = run_checked(recs, heap, sets, kswapd_times, SPEC)
    assert checker.count == 0, checker.report()


def readers_workload():
    # threads 1 and 2 read heap pages 0-19 (caching read-only translations) early and late;
    # kswapd at 30 us demotes them (their young bits get one second chance) in between
    return spin(3, 3000, {t: [(0.05 + 0.001 * i, 1, heap_addr(i)) for i in range(20)]
                          + [(0.6 + 0.001 * i, 1, heap_addr(i)) for i in range(20)]
                          for t in (1, 2)})


def test_the_broken_copy_is_caught_and_latr_is_not(tmp_path):
    sets = ['memory.initial_pte="readonly-clean"']  # time_scale 1: no tick during the run
    res, checker = run_checked(readers_workload(), 24, sets, [30_000], broken_copy(tmp_path))
    assert res.totals["latr_posted"] > 0 and res.totals["latr_released_pages"] == 0
    assert checker.by_rule["I1"] > 0, checker.report()  # reads through stale entries to freed frames
    first = checker.found[0]
    assert first.rule == "I1" and "neither held nor tagged" in first.detail
    res, checker = run_checked(readers_workload(), 24, sets, [30_000], SPEC)
    assert res.totals["latr_posted"] > 0 and res.totals["latr_held_pages_peak"] > 0
    assert checker.count == 0, checker.report()


def test_a_read_only_demotion_is_posted_held_and_freed_at_the_ticks(tmp_path):
    """Three CPUs cache read-only translations of pages 0-9; CPU 0 demotes them. No IPI is
    sent; the sources are held until CPUs 1 and 2 have each flushed once at their tick."""
    sets = ['memory.initial_pte="readonly-clean"', "replay.time_scale=1e-4"]  # a tick per 400 ns
    r = build(tmp_path, readers_workload(), heap_pages=24, sets=sets, engine=SPEC)
    heap_layout(r, on_dram=range(10), on_cxl=range(10, 24))
    log = {}

    def act(rr):
        m = rr.machine
        log["src"] = [frame_of(rr, p) for p in range(10)]
        log["before"] = m.counters.sum(axis=0).copy()
        demote(rr, 0, range(10))
        log["after"] = m.counters.sum(axis=0).copy()
        log["held"] = [int(m.frame_state[f]) for f in log["src"]]
        log["mask"] = rr.engine.entries[0].mask.copy()

    r.at(1000, act)
    r.run()
    d = log["after"] - log["before"]
    assert d[C["pgmigrate_success"]] == 10
    assert d[C["nr_tlb_remote_flush"]] == 0 and d[C["nr_tlb_remote_flush_received"]] == 0
    assert log["held"] == [F_HELD] * 10
    assert log["mask"].tolist() == [False, True, True]  # the initiator flushed itself
    e = r.engine
    assert e.figures["latr_posted"] == 1 and e.figures["latr_processed"] == 2
    assert e.figures["latr_released_pages"] == 10 and e.held == 0 and e.entries == []
    assert all(int(r.machine.frame_state[f]) != F_HELD for f in log["src"])
    assert r.machine.nodes[0].pending == 0


def test_a_write_fault_on_a_pending_page_sends_its_ipis(tmp_path):
    """A store to a demoted page before the ticks: the fault cannot wait, the IPIs go now."""
    extra = {1: [(0.05, 1, 0x10000000)], 2: [(0.05, 1, 0x10000000), (0.4, 2, 0x10000000)]}
    sets = ['memory.initial_pte="readonly-clean"', "replay.time_scale=1.0"]  # no tick in the run
    r = build(tmp_path, spin(3, 3000, extra), heap_pages=4, sets=sets, engine=SPEC)
    heap_layout(r, on_dram=range(4), on_cxl=range(0))
    r.check = True
    from migrc_bench.model.invariants import Checker

    r.checker = Checker(r)
    r.at(1000, lambda rr: demote(rr, 0, [0]))
    res = r.run()
    assert r.checker.count == 0, r.checker.report()
    assert res.totals["latr_fallback_wp"] == 1 and res.totals["latr_released_pages"] == 1
    assert res.totals["nr_tlb_remote_flush"] >= 1
    assert np.count_nonzero(r.machine.frame_state == F_HELD) == 0 and r.engine.entries == []


def test_a_page_migrated_twice_waits_on_two_entries(tmp_path):
    """Demoted, then promoted back before any tick: two entries hold two sources of one page;
    the ticks complete both (entries are told apart by identity, not by value)."""
    sets = ['memory.initial_pte="readonly-clean"', "replay.time_scale=1e-4"]
    r = build(tmp_path, readers_workload(), heap_pages=24, sets=sets, engine=SPEC)
    heap_layout(r, on_dram=range(10), on_cxl=range(10, 24))
    log = {}

    def act(rr):
        demote(rr, 0, [0, 1])
        dst = frame_of(rr, 0)
        rr.tiering.lru.remove(1, dst)
        done, _ = rr.engine.migrate_pages(0, [dst], "numa_misplaced", 0)
        log["entries"] = len(rr.engine.entries)
        log["waiting"] = len(rr.engine.by_page[int(rr.machine.frame_pid[frame_of(rr, 0)])])
        log["held"] = rr.engine.held

    r.at(50_000, act)
    r.run()
    assert log == {"entries": 2, "waiting": 2, "held": 3}
    assert r.engine.entries == [] and r.engine.by_page == {} and r.engine.held == 0
    assert r.engine.figures["latr_released_pages"] == 3


def test_entries_with_equal_masks_are_still_different_entries():
    """Completing a later entry before an earlier one removes it by identity (a value
    comparison of numpy masks would raise)."""
    import sys

    from migrc_bench.engines.loader import resolve

    cls, _ = resolve(SPEC, Path.cwd())
    shootdown = sys.modules[cls.__module__].Shootdown
    a, b = shootdown(0, np.ones(3, np.bool_)), shootdown(0, np.ones(3, np.bool_))
    entries = [a, b]
    entries.remove(b)
    assert len(entries) == 1 and entries[0] is a
