"""Broadcast TLB flushes (machine.flush invlpgb / rar): scenarios with exact counters.

Five threads of one process on five CPUs, each loading heap pages A and B in turn. With HZ 250
and time_scale 1 the whole run is one jiffy, INITIAL_JIFFIES & 31 == 8, and task 0's
current->pid (1000) & 31 == 8: an IPI flush from CPU 0 passes consider_global_asid's gate,
one from CPU 1 (pid 1001) does not. Every scenario also runs through the reference model
(same_as_reference), counter for counter.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from migrc_bench.model.reference import Event
from test_reference_equivalence import HEAP, REGIONS, run_fast, same_as_reference

A, B = HEAP >> 12, (HEAP >> 12) + 1
FIVE = [[(1, HEAP, 8), (1, HEAP + 4096, 8)] * 400 for _ in range(5)]  # ~22 us each
SETS = ["machine.ncpu=5", "machine.hz=250", "replay.time_scale=1.0", "tlb.kernel_text_pages=0",
        "tlb.pti=false", 'memory.dram="128KiB"', 'memory.cxl="512KiB"', "memory.min_free_kbytes=8",
        "replay.quantum=100", 'memory.initial_pte="writable-dirty"', 'cost.preset="bare-metal"']
GRANT = Event(200.0, "full", 0)  # an IPI flush of the whole mm from task 0


def totals(mech: str, events, sets=(), traces=FIVE):
    return same_as_reference(traces, SETS + [f'machine.flush="{mech}"', *sets], events)


def replay_of(mech: str, events, sets=(), traces=FIVE):
    out = []
    with tempfile.TemporaryDirectory() as d:
        run_fast(traces, SETS + [f'machine.flush="{mech}"', *sets], events, Path(d) / "t.parquet",
                 REGIONS, replay_out=out)
    return out[0]


@pytest.mark.parametrize("mech", ["invlpgb", "rar"])
def test_global_asid_granted(mech):
    """The IPI flush (4 CPUs IPI'd) is followed by the grant; the first allocation wraps the
    empty pool, which flushes every CPU first (INVLPGB: one INVLPGB + TLBSYNC; RAR:
    flush_tlb_all, counted as a remote flush, one request to all)."""
    t = totals(mech, [GRANT])
    assert t["global_asids"] == 1
    assert t["nr_tlb_remote_flush_received"] == 4
    if mech == "invlpgb":
        assert (t["nr_tlb_remote_flush"], t["invlpgb_issued"], t["tlbsync"]) == (1, 1, 1)
    else:
        assert (t["nr_tlb_remote_flush"], t["rar_requests"]) == (2, 1)
    # 10 first-touch walks, then A and B again on each CPU after the flush
    assert t["dtlb_load_misses"] == 20


def test_no_grant_off_the_gate_or_below_four_cpus():
    """Task 1 (pid 1001) misses the jiffy; three CPUs running the mm are not more than 3."""
    assert totals("invlpgb", [Event(200.0, "full", 1)])["global_asids"] == 0
    three = totals("invlpgb", [GRANT], ["machine.ncpu=3"], FIVE[:3])
    assert three["global_asids"] == 0 and three["invlpgb_issued"] == 0
    assert totals("ipi", [GRANT])["global_asids"] == 0


@pytest.mark.parametrize("mech", ["invlpgb", "rar"])
def test_mm_in_asid_transition(mech):
    """The first broadcast after the grant finds every CPU on its dynamic ASID: IPIs to the
    whole cpumask (one remote flush, 4 received), each CPU reloads onto the global ASID; the
    second finds none left and ends the transition: no IPI at all."""
    events = [GRANT, Event(6000.0, "range", 0, (A,)), Event(10000.0, "range", 0, (A,))]
    t = totals(mech, events)
    assert t["nr_tlb_remote_flush_received"] == 8 and t["tlb_ipis_global_asid"] == 0
    if mech == "invlpgb":
        assert (t["nr_tlb_remote_flush"], t["invlpgb_issued"], t["tlbsync"]) == (2, 3, 3)
    else:
        assert (t["nr_tlb_remote_flush"], t["rar_requests"]) == (3, 3)
    # + A and B on each CPU after moving to the global PCID, + A after the last range
    assert t["dtlb_load_misses"] == 20 + 10 + 5
    r = replay_of(mech, events)
    assert not r.flush.asid_transition[0] and r.flush.gpcid[:, 0].all()
    r = replay_of(mech, events[:2])
    assert r.flush.asid_transition[0]  # still in transition after the first broadcast


@pytest.mark.parametrize("pages,pti,expect", [(1, False, 1), (10, False, 3), (10, True, 6),
                                              (33, False, 9), (34, False, 1), (34, True, 2)])
def test_ranged_broadcast_in_count_max_chunks(pages, pti, expect):
    """broadcast_tlb_flush with invlpgb_count_max = 4: one INVLPGB per 4 pages of the range
    (x2 with PTI: user and kernel PCIDs); above the 33-page ceiling one for the whole PCID."""
    events = [GRANT, Event(6000.0, "range", 0, (A,)), Event(10000.0, "range", 0, (A,)),
              Event(14000.0, "range", 0, tuple(A + i for i in range(pages)))]
    sets = ["tlb.invlpgb_count_max=4", f"tlb.pti={'true' if pti else 'false'}"]
    before = totals("invlpgb", events[:3], sets)
    after = totals("invlpgb", events, sets)
    assert after["invlpgb_issued"] - before["invlpgb_issued"] == expect
    assert after["tlbsync"] - before["tlbsync"] == 1
    assert after["nr_tlb_remote_flush"] == before["nr_tlb_remote_flush"] == 2


def test_batched_unmap_flushes_every_cpu_without_ipis():
    """arch_tlbbatch_flush of a batch naming CPU 1 only: an IPI there under "ipi" (which
    finds the mm's generation unchanged: no event here bumped it); under
    INVLPGB one invlpgb_flush_all_nonglobals(): every CPU loses its entries, no IPI; under RAR
    one request to the batch's CPUs, no IPI either."""
    batch = [Event(200.0, "batch", 0, (), (False, True, False, False, False))]
    ipi, inv, rar = (totals(m, batch) for m in ("ipi", "invlpgb", "rar"))
    assert (ipi["nr_tlb_remote_flush"], ipi["nr_tlb_remote_flush_received"]) == (1, 1)
    assert ipi["dtlb_load_misses"] == 10  # CPU 1's generation is current: nothing to flush
    assert (inv["nr_tlb_remote_flush"], inv["nr_tlb_remote_flush_received"]) == (0, 0)
    assert (inv["invlpgb_issued"], inv["tlbsync"], inv["dtlb_load_misses"]) == (1, 1, 20)
    assert (rar["nr_tlb_remote_flush"], rar["nr_tlb_remote_flush_received"]) == (0, 0)
    assert (rar["rar_requests"], rar["dtlb_load_misses"]) == (1, 12)


@pytest.mark.parametrize("pages,whole", [(61, False), (62, True)])
def test_rar_request_over_the_page_limit_is_whole_pcid(pages, whole):
    """A RAR request covers (end - start + PAGE_SIZE) / PAGE_SIZE pages while that is below
    RAR_INVLPG_MAX_PAGES (63): 61 pages stay a ranged request (B, outside it, stays cached),
    62 become a whole-PCID invalidation (B goes too). One request either way."""
    events = [GRANT, Event(6000.0, "range", 0, (A,)), Event(10000.0, "range", 0, (A,)),
              Event(14000.0, "range", 0, (A,) + tuple(B + 1 + i for i in range(pages - 1)))]
    sets = ["tlb.single_page_flush_ceiling=100"]
    before = totals("rar", events[:3], sets)
    after = totals("rar", events, sets)
    assert after["rar_requests"] - before["rar_requests"] == 1
    assert after["dtlb_load_misses"] - before["dtlb_load_misses"] == (10 if whole else 5)
    assert after["nr_tlb_remote_flush_received"] == before["nr_tlb_remote_flush_received"]


def test_presets_imply_a_mechanism_and_machine_flush_overrides():
    """zen4 implies INVLPGB (Zen 3 and later have it), the Intel presets IPIs; machine.flush
    wins over the preset; the zen4 geometry is the labelled Zen 2 one."""
    from migrc_bench.config import load_config
    from migrc_bench.model.broadcast import InvlpgbFlush, RarFlush, flush_kind
    from migrc_bench.model.flush import FlushMechanism

    assert flush_kind(load_config(None, ['machine.preset="zen4"'])) == "invlpgb"
    assert flush_kind(load_config(None, ['machine.preset="sapphire-rapids"'])) == "ipi"
    assert flush_kind(load_config(None, ['machine.preset="zen4"', 'machine.flush="ipi"'])) == "ipi"
    assert type(replay_of("ipi", []).flush) is FlushMechanism
    assert type(replay_of("invlpgb", []).flush) is InvlpgbFlush
    assert type(replay_of("rar", []).flush) is RarFlush
    from migrc_bench.model.machine import tlb_geometry

    g = tlb_geometry(load_config(None, ['machine.preset="zen4"'] + [
        f"tlb.{level}_{what}=0" for level in ("itlb", "dtlb", "stlb") for what in ("entries", "ways")]))
    assert (g.itlb_entries, g.itlb_ways, g.stlb_entries, g.stlb_ways) == (64, 64, 2048, 16)
    assert "unsourced" in g.source and "Zen 2" in g.source


def test_bad_mechanism_is_one_line_exit_2(capsys):
    from migrc_bench.cli.main import main

    assert main(["config", "show", "--set", 'machine.flush="ipis"']) == 2
    err = capsys.readouterr().err.strip()
    assert "machine.flush" in err and "'ipi', 'invlpgb', 'rar'" in err and "\n" not in err


def test_config_show_names_the_implied_mechanism(capsys):
    from migrc_bench.cli.main import main

    assert main(["config", "show", "--format", "csv", "--set", 'machine.preset="zen4"']) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("machine.flush"))
    assert "invlpgb: machine.preset zen4" in line


@pytest.mark.parametrize("mech", ["invlpgb", "rar"])
@pytest.mark.parametrize("engine", ["baseline", "migrc", "luf"])
def test_several_processes_on_global_asids_keep_the_invariants(tmp_path, mech, engine):
    """Three processes (2 threads each) on 2 CPUs with tiering on, every mm on a global ASID
    from the start: tasks switch between mms without flushes (INVLPGB) or with RAR's new-CPU
    flush, broadcasts replace the IPIs, and the checker (every mm) finds nothing."""
    from migrc_bench.cli.main import main
    from migrc_bench.config import load_config
    from migrc_bench.model.replay import Replay
    from migrc_bench.runner import make_engine
    from results_util import make_trace

    parts = [str(make_trace(tmp_path / f"{k}.parquet", n=20000, seed=k + 1)) for k in range(3)]
    merged = tmp_path / "abc.parquet"
    assert main(["trace", "merge", *parts, "-o", str(merged), "--quiet"]) == 0
    cfg = load_config("ci", ["machine.ncpu=2", f"engine={engine}", 'memory.dram="40%"',
                             f'machine.flush="{mech}"'])
    r = Replay(cfg, merged, engine=make_engine(cfg), check_invariants=True)
    for mm in range(3):
        r.flush.use_global_asid(0, mm)
    t = r.run().totals
    assert t["invariant_violations"] == 0, r.checker.report()
    assert t["global_asids"] == 3 and t["tlb_ipis_global_asid"] == 0
    assert t["nr_tlb_remote_flush_received"] == 0 and t["nr_context_switches"] > 0
    assert t["invlpgb_issued" if mech == "invlpgb" else "rar_requests"] > 100
    # the flushes by source (tiering's demotions, promotions, scans and the engines') add up
    from migrc_bench.model.counters import FLUSH_SOURCES
    assert sum(t[f"tlb_ipis_{s}"] for s in FLUSH_SOURCES) == t["tlb_shootdown_irqs"]
    assert (sum(t[f"tlb_broadcasts_{s}"] for s in FLUSH_SOURCES)
            == t["invlpgb_issued"] + t["rar_requests"])
    # "other": the set-up's first grant, whose pool reset flushes every CPU once
    assert t["tlb_broadcasts_numa_scan"] > 0 and t["tlb_broadcasts_other"] == 1
