"""Counter names (model.md §6) and their column index in the per-CPU counter arrays.

Counts live in one int64 array of shape (ncpu, N_COUNTERS) and stall times in one float64
array of shape (ncpu, N_TIMES), so the compiled kernel and the Python paths update the same
memory and a run's totals are column sums.
"""

from __future__ import annotations

COUNTERS: tuple[str, ...] = (
    # harness
    "accesses", "instructions", "loads", "stores",
    # TLB lookups per level (ChampSim-style hits/misses) and perf-like walk-completed misses
    "itlb_hits", "itlb_l1_misses", "dtlb_hits", "dtlb_l1_misses", "stlb_hits", "stlb_misses",
    "itlb_misses", "dtlb_load_misses", "dtlb_store_misses",
    # flushes (vmstat with CONFIG_DEBUG_TLBFLUSH, perf tlb events, /proc/interrupts)
    "nr_tlb_remote_flush", "nr_tlb_remote_flush_received", "nr_tlb_local_flush_all",
    "nr_tlb_local_flush_one", "itlb_flush", "dtlb_flush", "stlb_flush", "tlb_shootdown_irqs",
    # faults and allocation
    "pgfault", "numa_hit", "numa_miss",
    # tiering and migration
    "pgmigrate_success", "pgmigrate_fail", "numa_pages_migrated", "pgpromote_success",
    "pgpromote_candidate", "pgdemote_kswapd", "pgdemote_direct", "numa_pte_updates",
    "numa_hint_faults", "numa_hint_faults_local",
    # migrc / LUF
    "migrc_deferred_pages", "migrc_released_pages", "migrc_flush_wp_fault", "migrc_flush_alloc",
    "migrc_flush_pause", "migrc_flush_race", "luf_tagged_pages", "luf_alloc_flushes",
    "luf_cancel_flushes",
    # scheduler: /proc/stat ctxt (rq->nr_switches), and switch_mm_irqs_off's flushes (the
    # tlb:tlb_flush tracepoint's TLB_FLUSH_ON_TASK_SWITCH with pages -1; no vmstat item)
    "nr_context_switches", "tlb_flush_on_task_switch",
    # broadcast flushes (machine.flush invlpgb / rar): INVLPGB instructions and TLBSYNC waits
    # the initiators issued, RAR requests (smp_call_rar_many) sent; no vmstat item counts them
    "invlpgb_issued", "tlbsync", "rar_requests",
    # reclaim of page-cache folios (vmstat pgsteal_kswapd, pgsteal_direct) and their re-reads
    "pgsteal_kswapd", "pgsteal_direct", "pgmajfault",
    # THP (vmstat; thp_migration_* count THPs, pgmigrate_* above count base pages)
    "thp_migration_success", "thp_migration_fail", "thp_migration_split", "numa_huge_pte_updates",
)
C = {name: i for i, name in enumerate(COUNTERS)}
N_COUNTERS = len(COUNTERS)

# Stall-time accumulators in ns; "busy" is every ns a CPU spent (user + kernel).
TIMES: tuple[str, ...] = ("busy", "walk", "mem", "ipi", "fault", "copy")
T = {name: i for i, name in enumerate(TIMES)}
N_TIMES = len(TIMES)

# Run-level figures that are not per-CPU sums.
RUN_FIGURES: tuple[str, ...] = (
    "runtime_s", "cpu_time_s", "stall_walk_s", "stall_mem_s", "stall_ipi_s", "stall_fault_s",
    "stall_copy_s", "migrc_pending_pages_peak", "wall_s", "accesses_per_s", "invariant_violations",
    # broadcast flushes: mms given a global ASID, and flush IPIs that reached a CPU running one
    # on it after its ASID transition (the broadcasts should leave none)
    "global_asids", "tlb_ipis_global_asid",
)

# Who asked for a flush (model/flush.py ``flushing_for``), in the kernel's vocabulary:
# reclaim: shrink_folio_list -> try_to_unmap_flush of clean page-cache folios;
# demotion: demote_folio_list -> migrate_pages(MR_DEMOTION)'s batch (and immediate) flushes;
# promotion: migrate_misplaced_folio -> migrate_pages(MR_NUMA_MISPLACED) after a hint fault;
# numa_scan: task_numa_work -> change_prot_numa's flush_tlb_range;
# batched_pending: flush_tlb_batched_pending (change_pte_range after a batched unmap);
# referenced: folio_referenced -> pmdp_clear_flush_young of a young THP (LRU aging);
# migrc, luf: the engines' deferred flushes when they happen (allocation, wp fault, pause);
# other: anything else (scenario events, other migrate reasons, plug-in engines).
FLUSH_SOURCES: tuple[str, ...] = ("reclaim", "demotion", "promotion", "numa_scan",
                                  "batched_pending", "referenced", "migrc", "luf", "other")
# Per source: the flush IPIs received (they sum to tlb_shootdown_irqs) and, for broadcast
# mechanisms, the INVLPGB instructions or RAR requests issued (they sum to invlpgb_issued +
# rar_requests). Run figures, not per-CPU COUNTERS.
SOURCE_FIGURES: tuple[str, ...] = (tuple(f"tlb_ipis_{s}" for s in FLUSH_SOURCES)
                                   + tuple(f"tlb_broadcasts_{s}" for s in FLUSH_SOURCES))
RUN_FIGURES += SOURCE_FIGURES

# Counters that are per-CPU in cpus.parquet (all of COUNTERS) plus the stall times.
CPU_COLUMNS: tuple[str, ...] = COUNTERS + tuple(f"stall_{t}_s" for t in TIMES if t != "busy") + ("cpu_time_s",)
