"""v6.7 with 7e12beb8ca2a reverted: every PTE is cleared with its own single-page flush.

migrate_pages() then calls try_to_migrate() without TTU_BATCH_FLUSH, so each accessible
PTE goes through ptep_clear_flush() -> flush_tlb_page(): one flush_tlb_mm_range of one page
(a remote flush per PTE when other CPUs run the mm). Inaccessible PTEs are still skipped.
"""

from __future__ import annotations

from .base import Engine


class NoBatch(Engine):
    name = "nobatch"

    def defers_flush(self, initiator: int) -> bool:
        return False
