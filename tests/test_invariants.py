"""The invariant checker: silent on every safe engine under random load, loud on an unsafe one."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest

from migrc_bench.cli.main import main
from scenario_util import ANON, DRAM_PAGE, HEAP, build, heap_addr, spin

SAFE = ("nobatch", "baseline", "migrc", "luf")


@st.composite
def workloads(draw, min_threads: int = 2, max_threads: int = 4):
    threads = draw(st.integers(min_threads, max_threads))
    heap = draw(st.integers(6, 30))
    recs = []
    for t in range(threads):
        n = draw(st.integers(50, 400))
        ops = draw(st.lists(st.tuples(st.sampled_from([1, 1, 1, 2, 3, 0]),
                                      st.integers(0, heap + 3)), min_size=n, max_size=n))
        rows = []
        for op, page in ops:
            if op == 0:
                rows.append((1, DRAM_PAGE + t * 4096, 8))  # a read of the thread's own page
            elif page < heap:
                rows.append((op, heap_addr(page), 8))
            else:
                rows.append((op, ANON + (page - heap) * 4096, 8))
        recs.append(rows)
    sets = [
        f'memory.initial_pte="{draw(st.sampled_from(["writable-dirty", "writable-clean", "readonly-clean"]))}"',
        f"replay.time_scale={draw(st.sampled_from([2e-6, 5e-6, 2e-5]))}",
        f"tiering.migration_entry_ad={'true' if draw(st.booleans()) else 'false'}",
        f"replay.quantum={draw(st.sampled_from([50, 200, 1000]))}",
        'tiering.scan_delay="1000ms"',
    ]
    kswapd_times = draw(st.lists(st.integers(500, 20_000), max_size=4))
    return recs, heap, sets, kswapd_times


def run_checked(recs, heap, sets, kswapd_times, engine, global_asid: bool = False):
    """``global_asid``: the mm holds a global ASID from the start (granted before the trace
    began; its CPUs move onto it in the transition), under a broadcast flush mechanism."""
    with tempfile.TemporaryDirectory() as d:
        r = build(Path(d), recs, heap_pages=heap, sets=sets, engine=engine)
        from migrc_bench.model.invariants import Checker

        r.check = True
        r.checker = Checker(r)
        if global_asid:
            r.flush.use_global_asid(0, 0)
        for t in kswapd_times:
            r.at(t, lambda rr: rr.tiering.wake_kswapd(0) or rr.tiering.kswapd())
        res = r.run()
    return res, r.checker


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.sampled_from(SAFE))
def test_safe_engines_never_violate(workload, engine):
    recs, heap, sets, kswapd_times = workload
    res, checker = run_checked(recs, heap, sets, kswapd_times, engine)
    assert checker.count == 0, checker.report()
    assert res.totals["invariant_violations"] == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(4, 5), st.sampled_from(SAFE), st.sampled_from(["invlpgb", "rar"]), st.booleans())
def test_safe_engines_never_violate_under_broadcast_flushes(workload, engine, mech, granted):
    """INVLPGB and RAR with 4-5 threads (more than 3 CPUs run the mm: a global ASID can be
    granted), or with the mm on a global ASID from the start: broadcasts, the transition's
    IPIs and batched flushes of every CPU (INVLPGB) or the batch's (RAR) replace the IPIs."""
    recs, heap, sets, kswapd_times = workload
    res, checker = run_checked(recs, heap, sets + [f'machine.flush="{mech}"'], kswapd_times,
                               engine, global_asid=granted)
    assert checker.count == 0, checker.report()
    if granted:
        assert res.totals["global_asids"] == 1


def unsafe_workload():
    # thread 1 reads heap pages (caching writable translations), thread 2 writes them; kswapd
    # demotes them twice over (young bits get one second chance) while they stay cached
    extra = {1: [(0.1 + 0.001 * i, 1, heap_addr(i)) for i in range(20)]
             + [(0.8 + 0.001 * i, 1, heap_addr(i)) for i in range(20)],
             2: [(0.05 + 0.001 * i, 2, heap_addr(i)) for i in range(10)]
             + [(0.6 + 0.001 * i, 2, heap_addr(i)) for i in range(20)]}
    return spin(4, 2000, extra)


@pytest.mark.parametrize("mech", ["ipi", "invlpgb", "rar"])
def test_checker_catches_migrc_unsafe(mech):
    """Under every flush mechanism: the broadcasts flush more CPUs, never the deferred ones."""
    res, checker = run_checked(unsafe_workload(), 24, [f'machine.flush="{mech}"'], [30_000],
                               "migrc-unsafe", global_asid=mech != "ipi")
    assert res.totals["global_asids"] == (mech != "ipi")
    assert res.totals["migrc_deferred_pages"] > 0
    assert checker.by_rule["I1"] > 0      # a store through a stale writable translation
    assert checker.by_rule["I2"] > 0      # a PTE made writable beside a stale alias
    assert checker.by_rule["I5"] > 0      # writable folios deferred
    first = checker.found[0]
    assert first.rule in ("I1", "I2", "I5") and first.addr >= HEAP - (1 << 28)


@pytest.mark.parametrize("mech", ["ipi", "invlpgb", "rar"])
def test_same_workload_is_clean_with_migrc(mech):
    res, checker = run_checked(unsafe_workload(), 24, [f'machine.flush="{mech}"'], [30_000],
                               "migrc", global_asid=mech != "ipi")
    assert checker.count == 0, checker.report()


def test_run_check_invariants_exit_status(tmp_path, capsys):
    """Through the CLI: migrc-unsafe exits 1 naming the first violation; migrc exits 0."""
    from migrc_bench.config import DEFAULT_CONFIG
    from migrc_bench.trace.xsbench import generate_xsbench

    trace = tmp_path / "x.parquet"
    generate_xsbench(trace, size="small", lookups=300, mode="event", threads=4, seed=3)
    base = ["run", str(trace), "--config", str(DEFAULT_CONFIG), "--no-save", "--quiet",
            "--check-invariants", "--set", "machine.ncpu=4",
            "--set", "tiering.enabled=true", "--set", "replay.time_scale=1e-5",
            "--set", 'memory.dram="30%"', "--set", 'memory.initial_pte="readonly-clean"',
            # the few hint faults of so short a trace come a while after their scan: make
            # them hot, so promotions are refused and kswapd demotes
            "--set", 'tiering.hot_threshold="100s"']
    assert main(base + ["--engine", "migrc"]) == 0
    capsys.readouterr()
    assert main(base + ["--engine", "migrc-unsafe", "--set", 'memory.initial_pte="writable-dirty"']) == 1
    err = capsys.readouterr().err
    assert "invariant violation" in err and "I" in err
