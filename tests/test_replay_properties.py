"""Replay properties: determinism, convergence in the quantum, the hint-fault fast path, and
replaying a single-thread trace as N threads."""

from __future__ import annotations

import numpy as np
import pytest

from migrc_bench.config import load_config
from migrc_bench.model.replay import Replay
from migrc_bench.runner import make_engine
from migrc_bench.trace.native import Region, TraceMeta, write_trace
from migrc_bench.trace.xsbench import generate_xsbench

# the scanner's PTE walk free, so that the time-scaled scanner is not held to 3 % of the CPU
SMALL = ["machine.ncpu=4", 'memory.dram="30%"', "replay.time_scale=2e-5", 'trace.generate=""',
         'cost.pte_update="0ns"']


@pytest.fixture(scope="module")
def xs_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("xs") / "small.parquet"
    generate_xsbench(path, size="small", mode="event", lookups=2000, threads=4, seed=7)
    return path


def replay(path, sets, fast_hints=True):
    cfg = load_config(None, SMALL + list(sets))
    r = Replay(cfg, path, engine=make_engine(cfg))
    if r.tiering is not None:
        r.tiering.fast_hints = fast_hints
    return r.run()


def counters(res):
    return {k: v for k, v in res.totals.items() if k not in ("wall_s", "accesses_per_s")}


def test_same_inputs_same_counters(xs_trace):
    a = replay(xs_trace, ['engine="migrc"'])
    b = replay(xs_trace, ['engine="migrc"'])
    assert counters(a) == counters(b)
    assert a.totals["pgmigrate_success"] > 0 and a.totals["numa_hint_faults"] > 0


@pytest.mark.parametrize("engine", ["baseline", "migrc"])
def test_hint_fast_path_matches_python_path(xs_trace, engine):
    fast = replay(xs_trace, [f'engine="{engine}"'], fast_hints=True)
    slow = replay(xs_trace, [f'engine="{engine}"'], fast_hints=False)
    assert counters(fast) == counters(slow)
    assert fast.totals["numa_hint_faults"] > 100


def test_results_converge_as_the_quantum_shrinks(xs_trace):
    """Runtime and TLB misses settle as the quantum shrinks: successive halvings move them less."""
    quanta = ["40us", "10us", "2500ns", "625ns"]
    runs = [replay(xs_trace, ["tiering.enabled=false", f"replay.quantum={q!r}".replace("'", '"')])
            for q in quanta]
    rt = np.array([r.totals["runtime_s"] for r in runs])
    steps = np.abs(np.diff(rt)) / rt[-1]
    assert steps[-1] < 0.01                       # the last refinement moves runtime < 1 %
    assert steps[-1] <= steps[0] + 1e-12          # and less than the first one did
    misses = [r.totals["dtlb_load_misses"] for r in runs]
    assert abs(misses[-1] - misses[-2]) / misses[-1] < 0.01


def test_single_thread_trace_replayed_as_threads(tmp_path):
    n = 4000
    addr = (0x10000000 + (np.arange(n) % 64) * 4096).astype(np.uint64)
    path = tmp_path / "one.parquet"
    write_trace(path, TraceMeta("test", 1, (Region(0x10000000, 0x10000000 + 64 * 4096, "heap", True, False),)),
                np.zeros(n, np.uint16), np.ones(n, np.uint8), addr, np.full(n, 8, np.uint8))
    res = replay(path, ["tiering.enabled=false", "replay.threads=4", 'memory.dram="1MiB"',
                        'memory.cxl="8GiB"', "memory.min_free_kbytes=0",
                        "memory.watermark_scale_factor=10"])
    per_cpu = [c["accesses"] for c in res.cpus]
    assert per_cpu == [n, n, n, n]                # each thread replays the whole stream
    assert res.totals["accesses"] == 4 * n
