"""The kernel's ``enum migrate_reason`` (include/linux/migrate_mode.h, v6.7), with the names
mm/debug.c ``migrate_reason_names[]`` and the migrate tracepoints print for them.

A reason is the model's vocabulary, not an engine's: the tiering policy passes
``MR_NUMA_MISPLACED`` (promotion, migrate_misplaced_folio) or ``MR_DEMOTION`` (kswapd,
demote_folio_list) to ``migrate_pages()``, and migrc defers the flush only for these two.
"""

from __future__ import annotations

MR_COMPACTION = "compaction"
MR_MEMORY_FAILURE = "memory_failure"
MR_MEMORY_HOTPLUG = "memory_hotplug"
MR_SYSCALL = "syscall_or_cpuset"
MR_MEMPOLICY_MBIND = "mempolicy_mbind"
MR_NUMA_MISPLACED = "numa_misplaced"
MR_CONTIG_RANGE = "contig_range"
MR_LONGTERM_PIN = "longterm_pin"
MR_DEMOTION = "demotion"

MIGRATE_REASONS = (MR_COMPACTION, MR_MEMORY_FAILURE, MR_MEMORY_HOTPLUG, MR_SYSCALL,
                   MR_MEMPOLICY_MBIND, MR_NUMA_MISPLACED, MR_CONTIG_RANGE, MR_LONGTERM_PIN,
                   MR_DEMOTION)

# Not an enum migrate_reason: what engines see for try_to_unmap(TTU_BATCH_FLUSH) from
# shrink_folio_list (reclaim of clean page-cache folios, vmscan_file.py). LUF v12 defers these
# unmaps of read-only folios too; migrc v6 covers migration only.
TTU_RECLAIM = "reclaim"
