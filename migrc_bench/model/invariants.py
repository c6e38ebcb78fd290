"""The invariant checker (model.md §7, K§6) behind ``--check-invariants``.

I1 and the store half of I2 are checked by the compiled loop on every use of a cached
translation (kernel.check_use); the rest is checked here, at the moments they can break:

- I2: a PTE becomes writable while some CPU caches the page pointing at another frame;
- I3: a frame is handed to a new owner while some CPU may still translate to it;
- I4: a CPU outside the engine's pending mask caches a held (or tagged) frame, or the
  per-node pending count differs from the frames held there;
- I5: a folio was deferred although a mapping was writable, dirty or inaccessible, or for a
  migration reason migrc v6 does not defer;
- I6: free + held + used ≠ capacity on a node, received > remote × (ncpu − 1), or
  pgmigrate_success ≠ promotions + demotions.

Every mm is checked (a stale translation in any of them). The entries of mm X on CPU c are
exempt from I2-I4 while c will flush them before it uses them again, exactly as the kernel
relies on (switch_mm_irqs_off): X is loaded and c is lazy with its generation behind X's;
or X is not loaded and its ASID slot on c has a generation behind X's, or X has no slot
there (a new slot is flushed). Never while c holds X's entries under X's global ASID and the
broadcasts reach c (machine.flush invlpgb: every CPU; rar: the CPUs of X's cpumask): no
switch flushes them, the broadcasts must have.
The first violations are kept with the event that broke the rule.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import kernel as K
from .counters import C
from .machine import MM_SHIFT, VPN_OF_KEY
from .memory import F_FREE, F_HELD, F_TAGGED, F_USED
from .tlb_scan import cpus_aliasing_page, cpus_caching_frame_mm

KEEP = 16
CODE_TEXT = {
    K.V_STALE_FRAME: "I1: read through a stale translation to frame {frame}, which is neither "
                     "held nor tagged-free (current frame {pte_frame})",
    K.V_DIVERGED: "I1: read through a stale translation to frame {frame} whose content differs "
                  "from the current frame {pte_frame}",
    K.V_STALE_WRITE: "I1/I2: store through a stale writable translation to frame {frame} "
                     "(current frame {pte_frame})",
    K.V_WRITABLE_TLB: "I2: store through a writable translation while the PTE is read-only "
                      "(frame {frame})",
}


@dataclass
class Violation:
    rule: str
    cpu: int
    addr: int
    frame: int
    t_ns: float
    detail: str

    def __str__(self) -> str:
        return (f"{self.rule} at t={self.t_ns / 1e6:.6f} ms on cpu {self.cpu}, "
                f"address 0x{self.addr:x}, frame {self.frame}: {self.detail}")


class Checker:
    def __init__(self, replay):
        self.r = replay
        self.m = replay.machine
        self.found: list[Violation] = []
        self.count = 0
        self.by_rule: Counter[str] = Counter()
        self._mask = np.zeros(self.m.ncpu, np.bool_)

    # ---- helpers -----------------------------------------------------------------------
    def _exempt(self) -> np.ndarray:
        """(ncpu, 128) bool: whether CPU c's entries of mm X may be stale (see above)."""
        m = self.m
        ex = np.zeros((m.ncpu, 128), np.bool_)
        ex[:, : m.nmm] = True  # no slot: flushed when the mm next takes one
        cpus, slots = np.nonzero(m.asid_mm >= 0)
        mms = m.asid_mm[cpus, slots]
        ex[cpus, mms] = m.asid_gen[cpus, slots] < m.mm_gens[mms]
        c = np.flatnonzero(m.loaded_mm >= 0)
        mms = m.loaded_mm[c]
        ex[c, mms] = m.lazy[c] & (m.cpu_gen[c] < m.mm_gens[mms])
        kept = self.r.flush.kept_current()  # global-ASID entries the broadcasts keep current
        if kept is not None:
            ex[:, : m.nmm] &= ~kept
        return ex

    def _caching(self, frame: int, state: int = -1) -> np.ndarray:
        """CPUs holding a non-exempt translation to ``frame`` (or to any frame in ``state``)."""
        m = self.m
        cpus_caching_frame_mm(m.tlb_tag, m.tlb_pfn, m.tlb_geo, m.page_vpn, m.page_pmd, m.thp,
                              MM_SHIFT, self._exempt(), frame, state, m.frame_state, self._mask)
        return self._mask

    def _add(self, rule: str, cpu: int, pid: int, frame: int, detail: str, t: float | None = None) -> None:
        self.count += 1
        self.by_rule[rule] += 1
        if len(self.found) < KEEP:
            addr = (int(self.m.page_vpn[pid]) & VPN_OF_KEY) << 12 if pid >= 0 else 0
            when = float(self.m.clock[cpu]) if t is None else t
            self.found.append(Violation(rule, cpu, addr, frame, when, detail))

    # ---- event checks -------------------------------------------------------------------
    def on_alloc(self, cpu: int, frame: int) -> None:
        """I3: the frame leaves the free lists; nobody may still translate to it."""
        m = self.m
        bad = self._caching(frame)
        if bad.any():
            c = int(np.flatnonzero(bad)[0])
            self._add("I3", c, -1, frame, f"frame {frame} reallocated while cpu(s) "
                      f"{np.flatnonzero(bad).tolist()} still cache a translation to it", m.clock[cpu])

    def on_writable(self, cpu: int, pid: int) -> None:
        """I2: a PTE becomes writable; no CPU may cache the page pointing at another frame."""
        m = self.m
        frame = int(m.pte_pfn[pid])
        cpus_aliasing_page(m.tlb_tag, m.tlb_pfn, m.tlb_geo, m.page_vpn, m.page_pmd, m.thp, pid,
                           int(m.page_vpn[pid]), frame, self._mask)
        bad = self._mask & ~self._exempt()[:, int(m.page_vpn[pid]) >> MM_SHIFT]
        if bad.any():
            self._add("I2", cpu, pid, frame, f"PTE made writable while cpu(s) "
                      f"{np.flatnonzero(bad).tolist()} cache a stale alias of the page")

    def on_defer(self, cpu: int, u, reason: str, allowed_reasons) -> None:
        """I5: only read-only, clean folios with an accessible mapping are deferred."""
        why = []
        if u.writable:
            why.append("a writable mapping")
        if u.dirty:
            why.append("a dirty mapping")
        if not u.accessible:
            why.append("no accessible mapping")
        if reason not in allowed_reasons:
            why.append(f"reason {reason}")
        if why:
            self._add("I5", cpu, u.pid, u.src, "deferred a folio with " + ", ".join(why))

    def after_migrate(self, cpu: int) -> None:
        """I4: every CPU caching a held/tagged frame is one the engine still owes a flush."""
        m = self.m
        allowed = self.r.engine.allowed_stale_cpus() if self.r.engine is not None else None
        for state, name in ((F_HELD, "held"), (F_TAGGED, "tagged")):
            bad = self._caching(-1, state).copy()
            if allowed is not None:
                bad &= ~allowed
            if bad.any():
                self._add("I4", int(np.flatnonzero(bad)[0]), -1, -1,
                          f"cpu(s) {np.flatnonzero(bad).tolist()} cache a {name} frame but are "
                          f"not in the engine's pending mask")
        for node in m.nodes:
            lo, hi = node.first_frame, node.first_frame + node.pages
            held = int(np.count_nonzero(m.frame_state[lo:hi] == F_HELD))
            if held != node.pending:
                self._add("I4", cpu, -1, -1, f"node {node.nid} pending count {node.pending} but "
                          f"{held} frames held")

    def finish(self) -> None:
        """I6 accounting, and the loop's own I1/I2 records."""
        m = self.m
        kept = min(int(m.viol_n[0]), len(m.viol))
        loop_found = []
        for k in range(kept):
            code, cpu, pid, frame, pte_frame, t = (int(x) for x in m.viol[k])
            rule = "I1" if code != K.V_WRITABLE_TLB else "I2"
            self.count += 1
            self.by_rule[rule] += 1
            loop_found.append(Violation(rule, cpu, (int(m.page_vpn[pid]) & VPN_OF_KEY) << 12,
                                        frame, float(t),
                                        CODE_TEXT[code].format(frame=frame, pte_frame=pte_frame)))
        self.count += int(m.viol_n[0]) - kept
        self.by_rule["I1"] += int(m.viol_n[0]) - kept
        self.found = sorted(self.found + loop_found, key=lambda v: v.t_ns)[:KEEP]
        tot = m.counters.sum(axis=0)
        for node in m.nodes:
            lo, hi = node.first_frame, node.first_frame + node.pages
            states = m.frame_state[lo:hi]
            free = int(np.count_nonzero((states == F_FREE) | (states == F_TAGGED)))
            used = int(np.count_nonzero(states == F_USED))
            held = int(np.count_nonzero(states == F_HELD))
            if free != node.nr_free or free + held + used != node.pages:
                self._add("I6", 0, -1, -1, f"node {node.nid}: free {node.nr_free} (states say "
                          f"{free}) + held {held} + used {used} != capacity {node.pages}")
        if tot[C["nr_tlb_remote_flush_received"]] > tot[C["nr_tlb_remote_flush"]] * (m.ncpu - 1):
            self._add("I6", 0, -1, -1, "more flush IPIs received than remote flushes could send")
        migrated = tot[C["pgpromote_success"]] + tot[C["pgdemote_kswapd"]] + tot[C["pgdemote_direct"]]
        if tot[C["pgmigrate_success"]] != migrated:
            self._add("I6", 0, -1, -1, f"pgmigrate_success {tot[C['pgmigrate_success']]} != "
                      f"promotions + demotions {migrated}")

    def report(self) -> str:
        lines = [f"{self.count} invariant violation(s); first:"] if self.count else []
        lines += [f"  {v}" for v in self.found[:5]]
        return "\n".join(lines)
