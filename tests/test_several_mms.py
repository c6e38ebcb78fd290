"""Several processes and more tasks than CPUs: ASID slots, switch flushes, flushes of one mm.

Each scenario has exact counters, and the replays also go through the reference model
(counter for counter, clock for clock). A slice of 1 ns is shorter than any access, so a
task runs exactly one access per turn: the turns, and hence the switches, are known.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from migrc_bench.model import kernel as K
from migrc_bench.model.counters import C
from migrc_bench.model.machine import MM_SHIFT
from migrc_bench.model.reference import Event
from test_reference_equivalence import HEAP, REGIONS, run_fast, same_as_reference

LOAD = (1, HEAP, 8)
BASE = ['replay.quantum=5000', 'memory.dram="256KiB"', 'memory.cxl="256KiB"',
        "memory.min_free_kbytes=8", 'memory.initial_pte="writable-dirty"',
        "tlb.kernel_text_pages=0", 'cost.preset="bare-metal"',
        # fully associative TLBs: the processes' pages at one address never evict each other
        "tlb.dtlb_entries=16", "tlb.dtlb_ways=16", "tlb.stlb_entries=64", "tlb.stlb_ways=64"]
ONE_CPU_SLICED = BASE + ["machine.ncpu=1", 'machine.sched_base_slice="1ns"',
                         'machine.context_switch_cost="100ns"']


def entries_of(replay, cpu: int, mm: int) -> int:
    """TLB entries of ``mm``'s pages on ``cpu``."""
    m = replay.machine
    tags = m.tlb_tag[cpu]
    tags = tags[tags >= 0]
    user = (m.page_flags[tags] & K.VMA_KERNEL) == 0
    return int(np.count_nonzero((m.page_vpn[tags[user]] >> MM_SHIFT) == mm))


def test_two_processes_alternate_and_reuse_their_asids():
    """Two processes on one CPU, one access per turn: 19 switches; mm 1's first switch takes
    ASID slot 1 (a flush); after that each finds its slot up to date: no flush, and each
    process's page is walked once (its PCID keeps its entries across switches)."""
    t = same_as_reference([[LOAD] * 10, [LOAD] * 10], ONE_CPU_SLICED, [], thread_mm=[0, 1])
    assert t["nr_context_switches"] == 19
    assert t["tlb_flush_on_task_switch"] == 1
    assert t["dtlb_load_misses"] == 2 and t["dtlb_hits"] == 18
    assert t["nr_tlb_remote_flush"] == 0 and t["tlb_shootdown_irqs"] == 0


def test_threads_of_one_process_switch_without_a_cr3_write():
    """Three threads of one process on one CPU: switches, but no switch_mm flush, and the
    page they share is walked once."""
    t = same_as_reference([[LOAD] * 4] * 3, ONE_CPU_SLICED, [], thread_mm=[0, 0, 0])
    assert t["nr_context_switches"] == 11
    assert t["tlb_flush_on_task_switch"] == 0
    assert t["dtlb_load_misses"] == 1


def test_a_stale_generation_flushes_at_the_switch_and_only_that_pcid():
    """After the replay CPU 0 has mm 1 loaded (its last task) and both mms' entries cached.
    A flush of mm 0 sends nothing (CPU 0 left mm 0's cpumask at the switch) but moves mm 0's
    generation; switching to mm 0 finds its slot stale: one switch flush, which drops mm 0's
    entries (its PCID) and keeps mm 1's."""
    out = []
    with tempfile.TemporaryDirectory() as d:
        fast, _, _ = run_fast([[LOAD] * 3, [LOAD] * 3], ONE_CPU_SLICED, [], Path(d) / "t.parquet",
                              REGIONS, [0, 1], out)
    r = out[0]
    m, fl = r.machine, r.flush
    assert int(m.loaded_mm[0]) == 1 and not m.mm_cpumasks[0, 0] and m.mm_cpumasks[1, 0]
    assert entries_of(r, 0, 0) > 0 and entries_of(r, 0, 1) > 0
    before = m.counters.copy()
    fl.flush_mm_range(0, None, mm=0)
    assert (m.counters == before).all()  # no IPI, no local flush: mm 0 is not loaded here
    assert entries_of(r, 0, 0) > 0
    kept = entries_of(r, 0, 1)
    fl.switch_mm(0, 0)
    assert m.counters[0, C["tlb_flush_on_task_switch"]] == fast.totals["tlb_flush_on_task_switch"] + 1
    assert entries_of(r, 0, 0) == 0 and entries_of(r, 0, 1) == kept
    assert int(m.cpu_gen[0]) == int(m.mm_gens[0])
    # back to mm 1: its slot (1) is up to date, no flush
    n = int(m.counters[0, C["tlb_flush_on_task_switch"]])
    fl.switch_mm(0, 1)
    assert int(m.counters[0, C["tlb_flush_on_task_switch"]]) == n
    assert int(m.loaded_asid[0]) == 1 and entries_of(r, 0, 1) == kept


def test_a_seventh_mm_evicts_a_slot_round_robin():
    """Seven processes on one CPU, two turns each: the first round fills ASID slots 1-5 and
    then wraps, the 7th mm taking slot 0 from mm 0; in the second round every mm finds its
    slot taken by the one after it (round-robin, not LRU): 13 switch flushes, and every
    page is walked twice. With six processes the slots suffice: 5 flushes, one walk each."""
    seven = same_as_reference([[LOAD] * 2] * 7, ONE_CPU_SLICED, [], thread_mm=list(range(7)))
    assert seven["nr_context_switches"] == 13
    assert seven["tlb_flush_on_task_switch"] == 13
    assert seven["dtlb_load_misses"] == 14
    six = same_as_reference([[LOAD] * 2] * 6, ONE_CPU_SLICED, [], thread_mm=list(range(6)))
    assert six["nr_context_switches"] == 11
    assert six["tlb_flush_on_task_switch"] == 5
    assert six["dtlb_load_misses"] == 6


TWO_CPUS = BASE + ["machine.ncpu=2", "replay.quantum=50"]


def test_a_flush_of_one_mm_leaves_the_other_mms_entries():
    """Two processes on two CPUs; a full flush of mm 0 at 300 ns: CPU 0 flushes locally and
    walks its page again; CPU 1 (mm 1) is not in mm 0's cpumask: no IPI, its entry stays."""
    events = [Event(300.0, "full", 0, (), (True, True), mm=0)]
    with tempfile.TemporaryDirectory() as d:
        fast, _, _ = run_fast([[LOAD] * 40, [LOAD] * 40], TWO_CPUS, events, Path(d) / "t.parquet",
                              REGIONS, [0, 1])
    cpu0, cpu1 = fast.cpus
    assert cpu0["nr_tlb_local_flush_all"] == 1 and cpu0["dtlb_load_misses"] == 2
    assert cpu1["dtlb_load_misses"] == 1 and cpu1["dtlb_flush"] == 0
    assert fast.totals["nr_tlb_remote_flush"] == 0 and fast.totals["tlb_shootdown_irqs"] == 0
    same_as_reference([[LOAD] * 40, [LOAD] * 40], TWO_CPUS, events, thread_mm=[0, 1])


def test_a_batched_flush_reaches_a_cpu_running_another_mm_which_does_not_flush():
    """arch_tlbbatch_flush carries no mm: CPU 1, in the batch's mask (it ran the unmapped mm
    when the batch was built) but running mm 1 whose generation it has, counts the IPI and
    flushes nothing (flush_tlb_func: local_tlb_gen == mm_tlb_gen)."""
    events = [Event(300.0, "batch", 0, (), (False, True))]
    with tempfile.TemporaryDirectory() as d:
        fast, _, _ = run_fast([[LOAD] * 40, [LOAD] * 40], TWO_CPUS, events, Path(d) / "t.parquet",
                              REGIONS, [0, 1])
    cpu0, cpu1 = fast.cpus
    assert cpu0["nr_tlb_remote_flush"] == 1
    assert cpu1["nr_tlb_remote_flush_received"] == 1 and cpu1["tlb_shootdown_irqs"] == 1
    assert cpu1["dtlb_flush"] == 0 and cpu1["dtlb_load_misses"] == 1
    same_as_reference([[LOAD] * 40, [LOAD] * 40], TWO_CPUS, events, thread_mm=[0, 1])


def _stale_reuse_violations(broken: bool) -> int:
    """CPU 1 alternates a thread of mm 1 and one of mm 0; when it has mm 1 loaded, CPU 0
    (mm 0) unmaps mm 0's heap page and frees its frame: CPU 1 is not in mm 0's cpumask, so
    its mm-0 entry stays, stale, in mm 0's PCID; switching back to mm 0 must flush it (the
    slot's generation is behind). ``broken``: a switch_mm that skips that flush."""
    from migrc_bench.config import load_config
    from migrc_bench.model.flush import FlushMechanism
    from migrc_bench.model.replay import Replay
    from migrc_bench.model.scenario import apply_event
    from migrc_bench.trace.native import write_trace
    from test_reference_equivalence import v2_meta

    thread_mm = [0, 1, 0, 0]  # CPU 0: threads 0 and 2 (mm 0); CPU 1: 1 (mm 1) and 3 (mm 0)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.parquet"
        tid = np.repeat(np.arange(4, dtype=np.uint16), 60)
        write_trace(path, v2_meta(4, thread_mm), tid, np.ones(240, np.uint8),
                    np.full(240, HEAP, np.uint64), np.full(240, 8, np.uint8),
                    np.array([100 + thread_mm[t] for t in tid.tolist()], np.uint32))
        cfg = load_config(None, BASE + ["machine.ncpu=2", "replay.quantum=20",
                                        'machine.sched_base_slice="1ns"', 'trace.generate=""',
                                        "tiering.enabled=false"])
        r = Replay(cfg, path, check_invariants=True)
        if broken:
            r.flush.choose_new_asid = lambda cpu, mm, gen: (
                FlushMechanism.choose_new_asid(r.flush, cpu, mm, gen)[0], False)
        done = []

        def unmap_when_cpu1_runs_mm1(replay):
            if replay.machine.loaded_mm[1] != 1 or replay.machine.clock[1] < 200:
                replay.at(replay.now() + replay.quantum, unmap_when_cpu1_runs_mm1)
                return
            assert entries_of(replay, 1, 0) > 0  # mm 0's entry, in its (not loaded) PCID
            apply_event(replay, Event(0.0, "unmap", 0, (HEAP >> 12,), mm=0))
            done.append(True)

        r.at(100.0, unmap_when_cpu1_runs_mm1)
        res = r.run()
    assert done
    assert res.totals["tlb_shootdown_irqs"] == 0  # CPU 1 was not in mm 0's cpumask
    return res.totals["invariant_violations"]


def test_the_checker_catches_a_stale_entry_of_a_not_loaded_mm():
    """With switch_mm's generation check, no violation; without it (a test double), CPU 1
    reads mm 0's page through the stale translation to the freed frame: I1."""
    assert _stale_reuse_violations(broken=False) == 0
    assert _stale_reuse_violations(broken=True) > 0


def test_each_mm_is_scanned_and_promoted_from(tmp_path, capsys):
    """Tiering on a merge of two traces as processes, 4 tasks on one CPU: task_numa_work runs
    for each mm (its own numa_next_scan, offset and pass); mm 1's pages, placed after mm 0's
    (first touch: mm 0 fills DRAM), start on CXL and are promoted; every mm is checked: no
    violation."""
    from migrc_bench.config import load_config
    from migrc_bench.runner import make_engine
    from migrc_bench.model.replay import Replay
    from results_util import cli, make_trace

    a = make_trace(tmp_path / "a.parquet", n=20000, seed=1)
    b = make_trace(tmp_path / "b.parquet", n=20000, seed=2)
    ab = tmp_path / "ab.parquet"
    assert cli(["trace", "merge", a, b, "-o", ab, "--quiet"], capsys)[0] == 0
    cfg = load_config(Path(__file__).parents[1] / "configs" / "ci.toml",
                      ["machine.ncpu=1", 'memory.dram="80%"', 'trace.generate=""'])
    r = Replay(cfg, ab, make_engine(cfg), check_invariants=True)
    promoted = []
    migrate = r.engine.migrate_pages

    def traced(cpu, frames, reason, target):
        promoted.extend(int(r.machine.page_mm(int(r.machine.frame_pid[f]))) for f in frames
                        if target == 0)
        return migrate(cpu, frames, reason, target)

    r.engine.migrate_pages = traced
    res = r.run()
    numa = r.tiering.numa
    assert numa.mm_scans[0] > 0 and numa.mm_scans[1] > 0
    assert numa.mm_scan_seq[0] > 0 and numa.mm_scan_seq[1] > 0
    assert promoted.count(1) > 10
    assert res.totals["invariant_violations"] == 0
    assert res.totals["nr_context_switches"] > 0


def test_the_numa_scanner_skips_read_only_file_mappings(tmp_path):
    """task_numa_work skips a VMA with vm_file and VM_READ without VM_WRITE (v6.7/v6.8:
    NUMAB_SKIP_SHARED_RO): a read-only file region is no VMA of the scan, and its pages do
    not fall into the anonymous ones; a writable file mapping is scanned."""
    from migrc_bench.config import load_config
    from migrc_bench.model.replay import Replay
    from migrc_bench.trace.native import Region, TraceMeta, write_trace
    from migrc_bench.trace.processes import FileMapping, Process

    WEIGHTS, SHM = 0x7F0000000000, 0x7F1000000000
    regions = (Region(HEAP, HEAP + 4 * 4096, "heap", True, False, pid=7),
               Region(WEIGHTS, WEIGHTS + 8 * 4096, "file", False, False, pid=7,
                      file=FileMapping("weights")),
               Region(SHM, SHM + 2 * 4096, "file", True, False, pid=7, file=FileMapping("shm")))
    addr = np.array([HEAP, WEIGHTS, WEIGHTS + 4096, SHM], np.uint64)
    path = write_trace(tmp_path / "t.parquet", TraceMeta("t", 1, regions, processes=(Process(7, (0,)),)),
                       np.zeros(4, np.uint16), np.ones(4, np.uint8), addr, np.full(4, 8, np.uint8),
                       np.full(4, 7, np.uint32))
    cfg = load_config(None, ['trace.generate=""', "machine.ncpu=1", 'memory.dram="1MiB"',
                             'memory.cxl="1MiB"', "memory.min_free_kbytes=8"])
    r = Replay(cfg, path)
    starts = [v[0] for v in r.vmas()]
    assert starts == [HEAP, SHM]
    assert sum(len(v[2]) for v in r.vmas()) == 4 + 2


def test_more_processes_than_the_page_keys_hold_is_a_clear_error(tmp_path, capsys):
    from results_util import cli
    from migrc_bench.trace.native import Region, TraceMeta, write_trace
    from migrc_bench.trace.processes import Process

    n = 65
    meta = TraceMeta("t", n, tuple(Region(HEAP, HEAP + 4096, "heap", True, False, pid=1 + k)
                                   for k in range(n)),
                     processes=tuple(Process(1 + k, (k,)) for k in range(n)))
    path = write_trace(tmp_path / "t.parquet", meta, np.arange(n, dtype=np.uint16),
                       np.ones(n, np.uint8), np.full(n, HEAP, np.uint64), np.full(n, 8, np.uint8),
                       np.arange(1, n + 1, dtype=np.uint32))
    code, out, err = cli(["run", path, "--no-save", "--set", "machine.ncpu=2"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "65 processes; the model keys the pages of at most 64" in err


def test_kswapd_time_is_not_taken_from_a_tasks_slice(tmp_path):
    """The slice is the task's own CPU time: kswapd's turn on the CPU moves the slice's end
    by as long; a CPU with one task keeps its endless slice."""
    from migrc_bench.config import load_config
    from migrc_bench.model.replay import Replay
    from migrc_bench.runner import make_engine
    from migrc_bench.trace.native import write_trace
    from test_reference_equivalence import v2_meta

    tid = np.array([0, 1, 2], np.uint16)
    path = write_trace(tmp_path / "t.parquet", v2_meta(3, [0, 1, 0]), tid, np.ones(3, np.uint8),
                       np.full(3, HEAP, np.uint64), np.full(3, 8, np.uint8),
                       np.array([100, 101, 100], np.uint32))
    cfg = load_config(None, BASE + ["machine.ncpu=2", 'trace.generate=""',
                                    'machine.sched_base_slice="1us"'])
    r = Replay(cfg, path, make_engine(cfg))
    assert r.rq.slice_end.tolist() == [1000.0, np.inf]
    r.rq.ran_other(0, 250.0)
    r.rq.ran_other(1, 250.0)
    assert r.rq.slice_end.tolist() == [1250.0, np.inf]
