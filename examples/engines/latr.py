"""LATR, lazy translation coherence (Kumar et al., ASPLOS'18), applied to page migration.

A migrc-bench engine written the way a user writes one: a file outside the package that
imports only the public engine interface, ``migrc_bench.engines``. Run it with

    migrc-bench compare --engines baseline,migrc,examples/engines/latr.py:Latr
    migrc-bench run --engine examples/engines/latr.py:Latr --check-invariants --no-save

What LATR does, from its code release (github.com/sslab-gatech/latr, Linux 4.10,
CONFIG_LAZY_TLB_SHOOTDOWN):

- the initiator flushes its own TLB and, instead of sending IPIs, posts the shootdown (mm,
  range, cpumask) as an entry of its per-CPU ring of 256 (native_flush_save_state); when the
  ring is full it falls back to IPIs;
- every CPU, in scheduler_tick() and in __schedule() before a context switch, walks every
  CPU's ring, flushes locally for each entry naming it and clears its bit
  (native_flush_saved_states); an entry whose mask is empty is done;
- a background thread wakes once a second and sends the IPIs itself for entries still pending
  after two of its passes (background_tlb_invalidate, TLB_SHOOTDOWN_MAX = 2);
- the memory a shootdown protects is freed only later (CONFIG_LAZY_MEM_FREE keeps munmap'ed
  pages on a lazy list until no CPU can reach them any more).

Applied to migration here:

- only read-only, clean folios are lazy (``splits_readonly``: the read-only batch of migrc v6
  3/7). A stale read-only translation reads the source, whose content equals the
  destination's, for as long as the source is not freed. A writable or dirty folio is not:
  a store through a stale writable entry would land in the source after the copy and be lost,
  so those are flushed at once, with IPIs, as v6.7 does;
- each source is held until every CPU named by its entry has processed it, then freed;
- a write fault on a page with a pending entry, and an allocation that finds a zone short
  (the model counts held pages as free, as it does migrc's), cannot wait for the ticks: they
  send that entry's IPIs at once. These two fallbacks are this port's, not LATR's.

docs/engines.md walks through this file and says what the model leaves out of LATR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from migrc_bench.engines import F_HELD, Engine, Unmapped

RING_ENTRIES = 256           # LAZY_TLB_NUM_ENTRIES: each CPU's ring of posted shootdowns
SHOOTDOWN_MAX = 2            # TLB_SHOOTDOWN_MAX: background passes before the IPI fallback
BACKGROUND_PERIOD_NS = 1e9   # the background thread sleeps HZ jiffies: one second (scaled)

FIGURES = ("latr_posted", "latr_processed", "latr_local_flushes", "latr_released_pages",
           "latr_fallback_ring", "latr_fallback_background", "latr_fallback_wp",
           "latr_fallback_alloc", "latr_held_pages_peak")


@dataclass(eq=False)  # entries are told apart by identity (list.remove), never by value
class Shootdown:
    """lazytlb_shootdown_t: one posted shootdown (a full flush of the mm) and what it protects."""

    initiator: int
    mask: np.ndarray                                   # CPUs that have not processed it yet
    sources: list[int] = field(default_factory=list)   # held source frames
    pages: list[int] = field(default_factory=list)     # their pages (page ids)
    refs: int = 0                                      # background passes it has seen


class Latr(Engine):
    name = "latr"
    splits_readonly = True  # read-only, clean PTEs go to tlb_ubc_ro: the lazy part

    def attach(self, replay) -> None:
        super().attach(replay)
        n = self.m.ncpu
        self.entries: list[Shootdown] = []          # every CPU's ring, in posting order
        self.ring_used = np.zeros(n, np.int64)      # valid entries in each CPU's ring
        self.owed = np.zeros(n, np.int64)           # entries each CPU has still to process
        self.by_page: dict[int, list[Shootdown]] = {}
        self.held = 0
        self.figures = dict.fromkeys(FIGURES, 0)
        self._one = np.eye(n, dtype=np.bool_)       # one-CPU masks for local flushes
        self._lazy_part = np.zeros(n, np.bool_)     # this batch's read-only CPUs
        self._entry: Shootdown | None = None        # the entry this batch posted

    def start(self) -> None:
        super().start()
        self._background_ns = BACKGROUND_PERIOD_NS * self.cfg.replay.time_scale
        self.r.at(self._background_ns, self._background)

    # ---- unmap: the read-only part is posted, not sent ----------------------------------
    def folio_unmapped(self, initiator: int, u: Unmapped, reason: str) -> None:
        mask = self.take_readonly(u, True)  # any reason: LATR is not tied to one caller
        if mask is not None:
            u.extra["latr"] = True
            self._lazy_part |= mask

    def flush_unmapped(self, initiator: int, batch: list[Unmapped]) -> None:
        ro_cpus, self._lazy_part = self._lazy_part, np.zeros_like(self._lazy_part)
        self._entry = None
        if ro_cpus.any():
            if self.ring_used[initiator] >= RING_ENTRIES:
                # the ring is full: IPIs now, with the writable part, and nothing is held
                self.tlb_ubc.mask |= ro_cpus
                self.tlb_ubc.flush_required = True
                self._unmark(batch)
                self.figures["latr_fallback_ring"] += 1
            else:
                if ro_cpus[initiator]:
                    # the initiator flushes its own TLB at once (flush_tlb_func, locally)
                    self.flush.flush_batch(initiator, self._one[initiator])
                # CPUs in lazy TLB mode get no IPI in v6.7 either: they flush when they switch
                # back to the mm (their TLB generation is behind)
                others = ro_cpus & ~self.m.lazy
                others[initiator] = False
                if others.any():
                    self._entry = self._post(initiator, others)
                else:
                    self._unmark(batch)
        super().flush_unmapped(initiator, batch)  # the writable part: IPIs, as v6.7

    def _post(self, initiator: int, mask: np.ndarray) -> Shootdown:
        """native_flush_save_state: an entry in the initiator's ring."""
        entry = Shootdown(initiator, mask.copy())
        self.entries.append(entry)
        self.ring_used[initiator] += 1
        self.owed[mask] += 1
        self.figures["latr_posted"] += 1
        return entry

    @staticmethod
    def _unmark(batch: list[Unmapped]) -> None:
        for u in batch:
            u.extra.pop("latr", None)

    def release_source(self, initiator: int, u: Unmapped, reason: str) -> None:
        if self._entry is None or not u.extra.get("latr"):
            super().release_source(initiator, u, reason)
            return
        self._hold(initiator, self._entry, u, reason)

    def _hold(self, initiator: int, entry: Shootdown, u: Unmapped, reason: str) -> None:
        """The lazy free: the source stays allocated until every CPU of the entry processed it."""
        if self.r.checker is not None:
            self.r.checker.on_defer(initiator, u, reason, (reason,))
        m = self.m
        m.frame_state[u.src] = F_HELD
        m.frame_pid[u.src] = -1
        m.nodes[int(m.frame_node[u.src])].pending += 1
        entry.sources.append(u.src)
        entry.pages.append(u.pid)
        self.by_page.setdefault(u.pid, []).append(entry)
        self.held += 1
        self.figures["latr_held_pages_peak"] = max(self.figures["latr_held_pages_peak"], self.held)

    # ---- processing: at the tick and at a context switch --------------------------------
    def on_tick(self, cpu: int) -> None:
        self._process(cpu)

    def on_context_switch(self, cpu: int, to_kernel: bool) -> None:
        self._process(cpu)

    def _process(self, cpu: int) -> None:
        """native_flush_saved_states: one local flush covers every entry naming this CPU (each
        is a full flush of the one mm). A CPU in lazy TLB mode flushes nothing now; its
        generation is behind, so it flushes when it switches back (the checker allows that)."""
        if not self.owed[cpu]:
            return
        self.flush.flush_batch(cpu, self._one[cpu])
        self.figures["latr_local_flushes"] += 1
        done = []
        for entry in self.entries:
            if entry.mask[cpu]:
                entry.mask[cpu] = False
                self.owed[cpu] -= 1
                self.figures["latr_processed"] += 1
                if not entry.mask.any():
                    done.append(entry)
        for entry in done:
            self._complete(entry)

    def _complete(self, entry: Shootdown) -> None:
        """Every CPU has processed the entry: its ring slot is free, its sources are freed."""
        self.entries.remove(entry)
        self.ring_used[entry.initiator] -= 1
        m = self.m
        for frame, page in zip(entry.sources, entry.pages):
            m.nodes[int(m.frame_node[frame])].pending -= 1
            self.r.alloc.free(frame)
            waiting = self.by_page[page]
            waiting.remove(entry)
            if not waiting:
                del self.by_page[page]
        self.held -= len(entry.sources)
        self.figures["latr_released_pages"] += len(entry.sources)

    # ---- fallbacks: IPIs for entries that cannot wait ------------------------------------
    def _fallback(self, cpu: int, entries: list[Shootdown], why: str) -> None:
        """native_flush_tlb_fallback: the IPIs the entries' CPUs have not had yet, then done."""
        mask = np.zeros(self.m.ncpu, np.bool_)
        for entry in entries:
            mask |= entry.mask
        if mask.any():
            self.flush.flush_batch(cpu, mask)
        for entry in entries:
            self.owed[entry.mask] -= 1
            entry.mask[:] = False
            self._complete(entry)
        self.figures[why] += 1

    def _background(self, replay) -> None:
        """background_tlb_invalidate: entries pending for SHOOTDOWN_MAX passes get IPIs."""
        stale = []
        for entry in self.entries:
            entry.refs += 1
            if entry.refs >= SHOOTDOWN_MAX:
                stale.append(entry)
        if stale:
            self._fallback(stale[0].initiator, stale, "latr_fallback_background")
        replay.at(replay.now() + self._background_ns, self._background)

    def before_pte_writable(self, cpu: int, pid: int, why: str) -> None:
        # a write fault must not make the page writable while a CPU may still read its source;
        # a NUMA restore needs nothing: the scan that made the PTE PROT_NONE flushed the page
        if why == "wp" and pid in self.by_page:
            self._fallback(cpu, list(self.by_page[pid]), "latr_fallback_wp")

    def on_watermark_fail(self, cpu: int, node) -> bool:
        if node.pending == 0:
            return False
        frame_node = self.m.frame_node
        holding = [e for e in self.entries if any(frame_node[f] == node.nid for f in e.sources)]
        self._fallback(cpu, holding, "latr_fallback_alloc")
        return True

    # ---- what the checker and the results see --------------------------------------------
    def allowed_stale_cpus(self) -> np.ndarray:
        mask = np.zeros(self.m.ncpu, np.bool_)
        for entry in self.entries:
            mask |= entry.mask
        return mask

    def interval_gauges(self) -> dict:
        return {"latr_held_pages": self.held}

    def run_figures(self) -> dict:
        return dict(self.figures)
