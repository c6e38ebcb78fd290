"""The NUMA scan period and the hot threshold as v6.7 moves them (kernel/sched/fair.c).

task_scan_min/max from the RSS and the scan size, the MAX_SCAN_WINDOW floor on the real
machine's sizes, update_task_scan_period's rules, the doubling once per pass that mode 2's
promotions cause, numa_promotion_adjust_threshold's steps, pgdat_free_space_enough's reset,
and where a steady-state start puts both.
"""

from __future__ import annotations

import pytest

from migrc_bench.model.numa_scan import (task_nr_scan_windows, task_scan_max, task_scan_min,
                                         update_task_scan_period)
from scenario_util import build, heap_layout, spin, heap_addr

MS = 1e6


def test_task_scan_min_and_max_for_the_seed_machine():
    """5.5 GiB resident at 256 MB a scan: 22 windows; the floor of MAX_SCAN_WINDOW (2560 MB/s
    = 100 ms per 256 MB) beats 1000/22 ms; the maximum is 60000/22 ms."""
    windows = task_nr_scan_windows(5632 << 8, 256 << 8)
    assert windows == 22
    smin = task_scan_min(windows, 256.0, 1000)
    assert smin == 100
    assert task_scan_max(windows, smin, 60000) == 2727
    # the same sizes scaled by 1/100 must be given unscaled (2.56 MB / 0.01): scaled, the
    # floor would be 1 ms and the minimum 1000/22 = 45 ms
    assert task_scan_min(windows, 2.56, 1000) == 45


def test_update_task_scan_period_rules():
    # no local and no shared faults (mode 2's promotions): double, up to the maximum
    assert update_task_scan_period(1000, 30000, 100, 30000, [5, 0, 0], 0, 5) == (2000, True)
    assert update_task_scan_period(20000, 30000, 100, 30000, [5, 0, 0], 0, 5) == (30000, True)
    # failed migrations: double too
    assert update_task_scan_period(1000, 30000, 100, 30000, [5, 5, 1], 0, 5)[0] == 2000
    # mostly private faults: slower by (ps_ratio - 7) slots of period/10
    assert update_task_scan_period(1000, 30000, 100, 30000, [2, 8, 0], 0, 10) == (1300, False)
    # private and local both below 7/10: faster
    assert update_task_scan_period(1000, 30000, 100, 30000, [8, 2, 0], 7, 3) == (600, False)
    # clamped to task_scan_min
    assert update_task_scan_period(150, 30000, 100, 30000, [8, 2, 0], 7, 3) == (100, False)


def _touching(tmp_path, sets, gap=300, loads=30000, heap=200):
    """One thread spinning on its DRAM page and touching a new slow-tier page every ``gap``
    loads: each touch of a page the last pass made PROT_NONE is a hint fault, hot (the
    threshold is 1 s x time_scale) and promoted while DRAM has room; the scan's PTE walk is
    free, so it does not hold the scanning task back (the 32x runtime rule)."""
    touches = [(i * gap / loads, 1, heap_addr(i)) for i in range(1, loads // gap)]
    r = build(tmp_path, spin(1, loads, {0: touches}), heap_pages=heap,
              sets=['tiering.hot_threshold="1000s"', 'cost.pte_update="0ns"', *sets])
    heap_layout(r, on_dram=range(0), on_cxl=range(0, heap))
    return r


def test_period_doubles_once_per_pass_up_to_task_scan_max(tmp_path):
    """RSS 201 pages at 16 pages a scan (13 windows); scan size 0.0625 MB stands for 625 MB
    (space_scale 1e-4): floor 1000 / int(2560 / 625) = 250 ms, 1000 / 13 = 76 ms, so
    task_scan_min = 250 ms and task_scan_max = 60000 / 13 = 4615 ms (x time_scale 1e-5).
    The first scan comes after scan_delay (10 us), the next one task_scan_start (2.5 us)
    later; every promotion that follows the start of a new pass doubles the period and puts
    the next scan one period after it."""
    r = _touching(tmp_path, ["replay.time_scale=1e-5", 'tiering.scan_delay="1000ms"',
                             "tiering.scan_size_mb=0.0625", "replay.space_scale=1e-4"])
    numa = r.tiering.numa
    assert (numa.windows(), numa.scan_min(), numa.scan_max()) == (13, 250, 4615)
    scans, placements = [], []
    work, place = numa.task_numa_work, numa._placement

    def traced_work():
        scans.append((r.now(), numa.numa_scan_seq))
        work()

    def traced_place(p, now):
        seq = p.numa_scan_seq
        place(p, now)
        if p.numa_scan_seq != seq:
            placements.append((now, p.numa_scan_period, numa.numa_next_scan))

    numa.task_numa_work, numa._placement = traced_work, traced_place
    r.run()
    assert scans[0][0] == 10_000 and scans[1][0] == 12_500
    periods = [p for _, p, _ in placements]
    assert periods[:6] == [500, 1000, 2000, 4000, 4615, 4615]
    # update_task_scan_period pushes the next scan one period past the fault, and that scan
    # happens at the first quantum boundary at or after it (unless a later placement moved it)
    for k, (now, period, next_scan) in enumerate(placements):
        assert next_scan == pytest.approx(now + period * MS * 1e-5)
        t = next((t for t, _ in scans if t > now), None)
        if t is not None and (k + 1 == len(placements) or placements[k + 1][0] > t):
            assert next_scan <= t < next_scan + 100


def _threshold_run(tmp_path, sets):
    return _touching(tmp_path, ["replay.time_scale=1e-5", 'tiering.scan_delay="100ms"',
                                'tiering.scan_period_max="2000ms"', 'tiering.hot_threshold="1000ms"',
                                *sets])


def test_hot_threshold_climbs_in_steps_to_twice_the_default(tmp_path):
    """numa_promotion_adjust_threshold, at the first slow-tier hint fault of each
    scan_period_max window (2000 ms x 1e-5 = 20 us): the default rate limit (65536 MB/s) is
    never approached, so every window adds 2 x 1000 / 16 = 125 ms, up to 2000 ms."""
    r = _threshold_run(tmp_path, [])
    steps = []
    adjust = r.tiering._adjust_threshold

    def traced(now):
        before = r.tiering.nbp_th_start
        adjust(now)
        if r.tiering.nbp_th_start != before:
            steps.append(round(r.tiering.nbp_threshold / 1e-5 / MS))

    r.tiering._adjust_threshold = traced
    r.run()
    assert steps[:10] == [1125, 1250, 1375, 1500, 1625, 1750, 1875, 2000, 2000, 2000]


def test_free_space_enough_resets_the_threshold(tmp_path):
    """space_scale 1e-5: 1 GiB stands for 2 pages, so DRAM (31 of 32 pages free) is above
    promo (9) + max(2, 32 / 16): every slow-tier fault promotes, and the threshold is reset."""
    r = build(tmp_path, spin(2, 2000, {1: [(0.5, 1, heap_addr(3))]}), heap_pages=10,
              sets=["replay.space_scale=1e-5", "replay.time_scale=1e-6",
                    'tiering.scan_period_min="1e9s"'])
    heap_layout(r, on_dram=range(0), on_cxl=range(0, 10))
    r.tiering.nbp_threshold = 1e-3  # as if adjusted earlier
    r.at(5_000, lambda rr: rr.tiering.numa_scan())
    t = r.run().totals
    assert t["pgpromote_success"] == 1
    assert t["pgpromote_candidate"] == 0  # neither the hotness test nor the rate limit ran
    assert r.tiering.nbp_threshold == 0.0


def test_steady_state_start_has_the_threshold_and_period_of_a_long_run(tmp_path):
    """A steady-state start: the threshold at its cap (the scanner cannot produce 90 % of
    the rate limit's candidates in a window), every task at task_scan_max, a scan due now."""
    r = _touching(tmp_path, ["replay.time_scale=1e-5", 'memory.initial_pte="steady-state"',
                             "tiering.scan_size_mb=0.0625", 'tiering.hot_threshold="1000ms"'])
    numa = r.tiering.numa
    assert r.tiering.nbp_threshold == pytest.approx(2 * 1000 * MS * 1e-5)
    assert [p.numa_scan_period for p in numa.tasks] == [numa.scan_max()] == [4615]
    first = []
    work = numa.task_numa_work
    numa.task_numa_work = lambda: (first.append(r.now()), work())
    r.run()
    assert first[0] == 100  # the first quantum boundary
    assert first[1] - first[0] == pytest.approx(4615 * MS * 1e-5, abs=100)
