"""migrc v6 on v6.7 (K§3.2): defer the flush of read-only folios, holding their sources.

What it adds to the v6.7 core, patch by patch:
- rmap (3/7): a read-only batch ``tlb_ubc_ro`` beside the normal one; a PTE that is writable
  or dirty goes to the normal batch;
- eligibility (6/7): reason MR_DEMOTION or MR_NUMA_MISPLACED, a base page (always here),
  no writable or dirty mapping, at least one accessible one; not while paused;
- one global pending cpumask ``migrc_ubc`` and one global list of held sources; per-node
  pending counts that watermark checks treat as free;
- publish before the batch's flush, unless a batched flush is in flight (``migrc_flushing``:
  the pending CPUs are flushed with the normal batch instead);
- the hook after every batched flush: drop the flushed CPUs from the mask; when it is empty,
  release every held source ("avoid redundant CPUs", v5);
- forced flush-and-free on every write-protect fault, on a watermark failure of a zone with
  pending pages, and before direct reclaim (the pause, 7/7);
- released sources go to the tail of the free lists (5/7, FPI_TO_TAIL).
"""

from __future__ import annotations

import numpy as np

from ..model.counters import C
from ..model.memory import F_HELD
from .base import MR_DEMOTION, MR_NUMA_MISPLACED, Engine, Unmapped

MIGRC_REASONS = (MR_DEMOTION, MR_NUMA_MISPLACED)


class Migrc(Engine):
    name = "migrc"
    splits_readonly = True

    def attach(self, replay) -> None:
        super().attach(replay)
        n = self.m.ncpu
        self.migrc_ubc = np.zeros(n, np.bool_)
        self.migrc_folios: list[int] = []
        self.pause_cnt = 0
        self.pending_peak = 0
        self._call: dict | None = None
        self.flush.after_batch_flush.append(self._after_batch_flush)

    # ---- eligibility ---------------------------------------------------------------------
    def folio_unmapped(self, initiator: int, u: Unmapped, reason: str) -> None:
        call = self._call_state(reason)
        mask = self.take_readonly(u, call["use"])
        if mask is not None:
            u.extra["migrc"] = True
            call["pending"] |= mask

    def _call_state(self, reason: str) -> dict:
        if self._call is None:
            self._call = {"use": reason in MIGRC_REASONS and self.pause_cnt == 0,
                          "pending": np.zeros(self.m.ncpu, np.bool_)}
        return self._call

    # ---- publish, flush, hold ------------------------------------------------------------
    def flush_unmapped(self, initiator: int, batch: list[Unmapped]) -> None:
        call, self._call = self._call, None
        if call is not None and call["pending"].any():
            if self.flush.batch_flush_in_flight(float(self.m.clock[initiator])):
                # migrc_flushing: a flush that started before these CPUs were added must not
                # clear them; flush them with the normal batch and hold nothing from this call
                self.tlb_ubc.mask |= call["pending"]
                self.tlb_ubc.flush_required = True
                for u in batch:
                    u.extra.pop("migrc", None)
                self.m.counters[initiator, C["migrc_flush_race"]] += 1
            else:
                self.migrc_ubc |= call["pending"]
        super().flush_unmapped(initiator, batch)

    def release_source(self, initiator: int, u: Unmapped, reason: str) -> None:
        if not u.extra.get("migrc"):
            super().release_source(initiator, u, reason)
            return
        m = self.m
        if self.r.checker is not None:
            self.r.checker.on_defer(initiator, u, reason, MIGRC_REASONS)
        m.frame_state[u.src] = F_HELD
        m.frame_pid[u.src] = -1
        m.nodes[int(m.frame_node[u.src])].pending += 1
        self.migrc_folios.append(u.src)
        m.counters[initiator, C["migrc_deferred_pages"]] += 1
        self.pending_peak = max(self.pending_peak, len(self.migrc_folios))

    def _after_batch_flush(self, initiator: int, mask: np.ndarray) -> None:
        """arch_tlbbatch_done: the flushed CPUs leave the mask; empty mask ⇒ release all."""
        self.migrc_ubc &= ~mask
        if not self.migrc_ubc.any() and self.migrc_folios:
            self._release_all(initiator)

    def _release_all(self, cpu: int) -> None:
        m = self.m
        for f in self.migrc_folios:
            m.nodes[int(m.frame_node[f])].pending -= 1
            self.r.alloc.free(f, tail=True)
        m.counters[cpu, C["migrc_released_pages"]] += len(self.migrc_folios)
        self.migrc_folios = []

    def flush_free_folios(self, cpu: int, counter: str) -> bool:
        """migrc_flush_free_folios: a real flush of the pending mask, then release everything."""
        if not self.migrc_folios and not self.migrc_ubc.any():
            return False
        self.m.counters[cpu, C[counter]] += 1
        mask = self.migrc_ubc.copy()
        with self.flush.flushing_for("migrc"):
            self.flush.flush_batch(cpu, mask)  # the hook clears the mask and releases
        if self.migrc_folios:
            self._release_all(cpu)
        return True

    # ---- forced flushes ------------------------------------------------------------------
    def before_pte_writable(self, cpu: int, pid: int, why: str) -> None:
        if why == "wp":  # v6 hooks do_wp_page only, for any folio
            self.flush_free_folios(cpu, "migrc_flush_wp_fault")

    def on_watermark_fail(self, cpu: int, node) -> bool:
        if node.pending == 0:
            return False
        return self.flush_free_folios(cpu, "migrc_flush_alloc")

    def pause_begin(self, cpu: int) -> None:
        self.pause_cnt += 1
        self.flush_free_folios(cpu, "migrc_flush_pause")

    def pause_end(self, cpu: int) -> None:
        self.pause_cnt -= 1

    def allowed_stale_cpus(self) -> np.ndarray:
        return self.migrc_ubc.copy()

    # ---- reporting -----------------------------------------------------------------------
    def interval_gauges(self) -> dict:
        return {"migrc_pending_pages": len(self.migrc_folios)}

    def run_figures(self) -> dict:
        return {"migrc_pending_pages_peak": self.pending_peak}
