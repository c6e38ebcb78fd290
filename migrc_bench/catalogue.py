"""Counters as people read them: row groups and their order, which direction is better, and
how a value is printed. Shared by compare, check and the tables of every command."""

from __future__ import annotations

import math
from numbers import Integral, Real

from .model.counters import COUNTERS, RUN_FIGURES, SOURCE_FIGURES

# Row groups, in display order. Counters not listed (newer writers, engine figures) go to
# "other"; a group is shown only when it has a row.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("flushes", ("nr_tlb_remote_flush", "nr_tlb_remote_flush_received", "nr_tlb_local_flush_all",
                 "nr_tlb_local_flush_one", "itlb_flush", "dtlb_flush", "stlb_flush",
                 "tlb_shootdown_irqs", "tlb_flush_on_task_switch", "invlpgb_issued", "tlbsync",
                 "rar_requests", "tlb_ipis_global_asid") + SOURCE_FIGURES),
    ("TLB misses", ("itlb_misses", "dtlb_load_misses", "dtlb_store_misses", "itlb_l1_misses",
                    "dtlb_l1_misses", "stlb_misses", "itlb_hits", "dtlb_hits", "stlb_hits")),
    ("migration", ("pgmigrate_success", "pgmigrate_fail", "numa_pages_migrated",
                   "pgpromote_success", "pgpromote_candidate", "pgdemote_kswapd",
                   "pgdemote_direct", "numa_pte_updates", "numa_hint_faults",
                   "numa_hint_faults_local", "pgfault", "numa_hit", "numa_miss",
                   "thp_migration_success", "thp_migration_fail", "thp_migration_split",
                   "numa_huge_pte_updates")),
    ("reclaim", ("pgsteal_kswapd", "pgsteal_direct", "pgmajfault")),
    ("time", ("runtime_s", "cpu_time_s", "stall_walk_s", "stall_mem_s", "stall_ipi_s",
              "stall_fault_s", "stall_copy_s")),
    ("migrc", ("migrc_deferred_pages", "migrc_released_pages", "migrc_pending_pages_peak",
               "migrc_flush_wp_fault", "migrc_flush_alloc", "migrc_flush_pause",
               "migrc_flush_race", "luf_tagged_pages", "luf_tagged_pages_peak",
               "luf_alloc_flushes", "luf_cancel_flushes")),
    ("scheduler", ("nr_context_switches",)),
    ("harness", ("accesses", "instructions", "loads", "stores", "invariant_violations",
                 "wall_s", "accesses_per_s")),
)
GROUP_OF = {c: g for g, names in GROUPS for c in names}
GROUP_NAMES = tuple(g for g, _ in GROUPS) + ("other",)
ORDER = {c: i for i, c in enumerate(c for _, names in GROUPS for c in names)}

# Which direction is better. Lower is better unless listed here.
#  - neutral: counts of work the policy chose to do, or of the input. More migrations
#    (pgmigrate_success, pgpromote_success, demotions) is not better or worse by itself: migrc
#    raised pgmigrate_success by 14.9 % in the seed as a side effect; whether that helped shows
#    in runtime and misses. The same for hits (they move with the number of lookups), scans
#    and hint faults (the scanner's rate, not the engine's), and migrc/LUF bookkeeping.
#  - higher: accesses_per_s (the harness's own replay speed; wall-clock, noisy).
NEUTRAL = frozenset({
    "accesses", "instructions", "loads", "stores", "itlb_hits", "dtlb_hits", "stlb_hits",
    "pgmigrate_success", "numa_pages_migrated", "pgpromote_success", "pgpromote_candidate",
    "pgdemote_kswapd", "numa_pte_updates", "numa_hint_faults", "numa_hint_faults_local",
    "numa_hit", "migrc_deferred_pages", "migrc_released_pages", "migrc_pending_pages_peak",
    "luf_tagged_pages", "luf_tagged_pages_peak", "nr_context_switches", "global_asids",
    "thp_migration_success", "numa_huge_pte_updates", "pgsteal_kswapd",
})
HIGHER = frozenset({"accesses_per_s"})
# Unknown counters: neutral (we cannot know which way is good).
KNOWN = frozenset(COUNTERS) | frozenset(RUN_FIGURES) | frozenset(ORDER)


def better(counter: str) -> str:
    """'lower', 'higher' or 'neutral'."""
    if counter in HIGHER:
        return "higher"
    if counter in NEUTRAL or counter not in KNOWN:
        return "neutral"
    return "lower"


def group_of(counter: str) -> str:
    return GROUP_OF.get(counter, "other")



def sort_key(counter: str) -> tuple[int, int, str]:
    """Display order: by group, then the catalogue's order, then by name."""
    return (GROUP_NAMES.index(group_of(counter)), ORDER.get(counter, 10**6), counter)


def fmt_value(v: float | int | None) -> str:
    """One number as a table shows it: counts with thousands separators, whatever their
    type (a count read back as a float, a numpy integer), other figures to 6 digits."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, Integral):
        return f"{int(v):,}"
    if isinstance(v, Real):
        x = float(v)
        if x == 0:
            return "0"
        if not math.isfinite(x):
            return str(x)
        if x.is_integer() and abs(x) < 1e18 or abs(x) >= 1e5:  # 6 digits: no decimals left
            return f"{x:,.0f}"
        return f"{x:.6g}"
    return str(v)
