"""LUF RFC v12 (K§3.3): free read-only sources at once, tagged; flush when a tag is reused.

- unmap: read-only, clean, accessible mappings go to a read-only batch as in migrc, for
  any migration reason (LUF extends the idea to every unmap of read-only folios);
- the sources are freed immediately (vmstat unchanged), each tagged with its batch's cpumask
  and a generation ``ugen`` taken from the global ``luf_ugen``;
- every full flush of the mm stamps the ``ugen_done`` of the CPUs it was sent to with the
  current generation (a lazy CPU skipped by the IPI flushes before it runs the mm again), so
  a CPU that has flushed since a tag was made owes nothing for it;
- when a tagged page leaves the free lists, the CPUs of its mask not yet done are flushed
  (``luf_alloc_flushes``), together with every CPU still owing for the other tagged pages of
  that node (v12 shoots down per zone in a batch); if all are done ("diet"), no flush at all;
- cancel points: a write-protect fault (a fault that makes a PTE writable) flushes every CPU
  still owing for this mm (``luf_cancel_flushes``). A NUMA hint fault that restores a PTE
  writable is not one: the scan that made it PROT_NONE flushed every CPU's translation of
  that page, so nothing stale can alias it (the checker's I2 verifies this at each restore).

Simplifications (docs/modelling.md): one batch per migrate call instead of the 65536-entry
``luf_batch`` hash (no key collisions to merge); tagged pages are freed to the tail of the
free lists, standing in for v12's separate pending list that is used last.
"""

from __future__ import annotations

import numpy as np

from ..model.counters import C
from ..model.memory import F_TAGGED
from .base import Engine, Unmapped


class Luf(Engine):
    name = "luf"
    splits_readonly = True

    def attach(self, replay) -> None:
        super().attach(replay)
        n = self.m.ncpu
        self.luf_ugen = 0
        self.ugen_done = np.zeros(n, np.int64)
        self.tags: dict[int, tuple[np.ndarray, int]] = {}  # frame -> (cpumask, ugen)
        self.tagged_peak = 0
        self._pending = np.zeros(n, np.bool_)
        self.flush.after_full_flush.append(self._stamp)

    def _stamp(self, mask: np.ndarray) -> None:
        """Every flush takes the current generation; its CPUs are done up to it afterwards."""
        self.ugen_done[mask] = self.luf_ugen

    def folio_unmapped(self, initiator: int, u: Unmapped, reason: str) -> None:
        mask = self.take_readonly(u, True)  # LUF: any unmap of a read-only folio
        if mask is not None:
            u.extra["luf"] = True
            self._pending |= mask

    def flush_unmapped(self, initiator: int, batch: list[Unmapped]) -> None:
        # the call's batch: a new generation; flushes from now on (this one included) count
        self.luf_ugen += 1
        self._call_tag = (self._pending.copy(), self.luf_ugen)
        self._pending[:] = False
        super().flush_unmapped(initiator, batch)

    def release_source(self, initiator: int, u: Unmapped, reason: str) -> None:
        if not u.extra.get("luf"):
            super().release_source(initiator, u, reason)
            return
        mask, ugen = self._call_tag
        if self.r.checker is not None:
            self.r.checker.on_defer(initiator, u, reason, (reason,))
        owing = mask & (self.ugen_done < ugen)
        self.r.alloc.free(u.src, tail=True)
        if owing.any():  # the batch's own flush may already have covered every CPU
            self.m.frame_state[u.src] = F_TAGGED
            self.tags[u.src] = (owing, ugen)
            self.m.counters[initiator, C["luf_tagged_pages"]] += 1
            self.tagged_peak = max(self.tagged_peak, len(self.tags))

    def _owing(self, mask: np.ndarray, ugen: int) -> np.ndarray:
        return mask & (self.ugen_done < ugen)

    def on_frame_taken(self, cpu: int, frame: int) -> None:
        """A tagged page leaves the free lists: flush, once, every CPU that still owes a flush
        for any tagged page of its node ("luf tlb shootdown per zone in batched manner")."""
        tag = self.tags.pop(frame, None)
        if tag is None:
            return
        if not self._owing(*tag).any():
            return
        node = self.m.frame_node
        need = np.zeros(self.m.ncpu, np.bool_)
        for f, (mask, ugen) in self.tags.items():
            if node[f] == node[frame]:
                need |= self._owing(mask, ugen)
        need |= self._owing(*tag)
        self.m.counters[cpu, C["luf_alloc_flushes"]] += 1
        self.luf_ugen += 1
        with self.flush.flushing_for("luf"):
            self.flush.flush_batch(cpu, need)
        self.ugen_done[need] = np.maximum(self.ugen_done[need], self.luf_ugen)

    def before_pte_writable(self, cpu: int, pid: int, why: str) -> None:
        if why != "wp" or not self.tags:
            return
        need = np.zeros(self.m.ncpu, np.bool_)
        for mask, ugen in self.tags.values():
            need |= self._owing(mask, ugen)
        if need.any():
            self.m.counters[cpu, C["luf_cancel_flushes"]] += 1
            self.luf_ugen += 1
            with self.flush.flushing_for("luf"):
                self.flush.flush_batch(cpu, need)
            self.ugen_done[need] = np.maximum(self.ugen_done[need], self.luf_ugen)
        self._untag_done()

    def _untag_done(self) -> None:
        m = self.m
        for f in [f for f, (mask, ugen) in self.tags.items() if not self._owing(mask, ugen).any()]:
            del self.tags[f]
            if m.frame_state[f] == F_TAGGED:
                m.frame_state[f] = 0

    def allowed_stale_cpus(self) -> np.ndarray:
        need = np.zeros(self.m.ncpu, np.bool_)
        for mask, ugen in self.tags.values():
            need |= self._owing(mask, ugen)
        return need

    def interval_gauges(self) -> dict:
        return {"luf_tagged_now": len(self.tags)}

    def run_figures(self) -> dict:
        return {"luf_tagged_pages_peak": self.tagged_peak}
