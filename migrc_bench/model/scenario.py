"""Scheduled kernel actions for tests and scenarios, applied to the fast model.

The reference model applies the same ``Event`` records its own way; the hypothesis test
feeds both and compares.
"""

from __future__ import annotations

import numpy as np

from . import kernel as K
from .counters import T
from .machine import MM_SHIFT
from .reference import Event


def _pids(replay, vpns, mm: int = 0) -> np.ndarray:
    """Page ids of the vpns of ``mm``, -1 for pages the replay has not met yet."""
    return replay.machine.lookup_pages(np.asarray(vpns, np.int64) | (mm << MM_SHIFT))


def apply_event(replay, ev: Event) -> None:
    m = replay.machine
    fl = replay.flush
    mm = ev.mm
    if ev.kind == "full":
        fl.flush_mm_range(ev.cpu, None, mm=mm)
        return
    if ev.kind == "batch":
        fl.flush_batch(ev.cpu, np.array(ev.mask, np.bool_))
        return
    if ev.kind == "batched":
        fl.note_batched_unmap(mm)
        return
    if ev.kind == "pending":
        fl.flush_tlb_batched_pending(ev.cpu, mm)
        return
    if ev.kind == "mm":
        fl.flush_tlb_mm(ev.cpu, mm)
        return
    pids = _pids(replay, ev.vpns, mm)
    known = pids[pids >= 0]
    # a range covers every page named, seen or not (pages never seen cannot be cached)
    npages = len(ev.vpns)
    if ev.kind == "range":
        fl.flush_mm_range(ev.cpu, known, npages, mm=mm)
    elif ev.kind == "wrprotect":
        present = known[(m.pte_flags[known] & K.PTE_PRESENT) != 0]
        m.pte_flags[present] &= ~K.PTE_WRITE
        fl.flush_mm_range(ev.cpu, known, npages, mm=mm)
    elif ev.kind == "mprotect":
        m.times[ev.cpu, T["fault"]] += m.kernel_entry(ev.cpu)
        fl.flush_tlb_batched_pending(ev.cpu, mm)
        present = known[(m.pte_flags[known] & K.PTE_PRESENT) != 0]
        m.pte_flags[present] &= ~K.PTE_WRITE
        m.charge(ev.cpu, len(present) * m.costs.pte_update, T["fault"])
        fl.flush_mm_range(ev.cpu, known, npages, mm=mm)
    elif ev.kind == "unmap":
        present = known[(m.pte_flags[known] & K.PTE_PRESENT) != 0]
        frames = [f for f, pid in zip(m.pte_pfn[present].tolist(), present.tolist())
                  if m.drop_mapping(f, pid)]  # a shared file page stays while mapped
        m.pte_flags[present] = 0
        m.pte_pfn[present] = -1
        fl.flush_mm_range(ev.cpu, known, npages, mm=mm)
        for f in frames:
            m.frame_state[f] = 0
            m.frame_pid[f] = -1
            m.nodes[int(m.frame_node[f])].free.push_head(int(f))
    else:
        raise AssertionError(ev.kind)


def schedule(replay, events) -> None:
    for ev in events:
        replay.at(ev.t_ns, lambda r, ev=ev: apply_event(r, ev))
