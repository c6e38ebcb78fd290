"""The invariant checker's scans of every CPU's TLB arrays (invariants.py): which CPUs could
still translate to a frame, and which cache a page pointing at another frame.

Both look at 2 MiB entries as well as 4 KiB ones (memory.thp): a 2 MiB entry is keyed by the
PMD's first page and holds its first frame, so it translates to 512 frames and to 512 pages.
The L1 arrays of 2 MiB entries (kernel.G_ITLB2, G_DTLB2) hold nothing else; in the unified
STLB an entry is a 2 MiB one when it sits outside its key's 4 KiB set (a 4 KiB entry is
always in the set of its own vpn), or in a set that is both and its key heads a PMD mapping
now (no 4 KiB entry of a PMD-mapped page is ever filled).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernel import G_DTLB, G_DTLB2, G_ITLB, G_ITLB2, G_STLB, PMD_SHIFT_PAGES
from .machine import HPAGE_PMD_NR as HPAGE_NR


@njit(cache=True, forceinline=True, _nrt=False)
def _entry_pages(geo, page_vpn, page_pmd, thp, k, i):
    """How many pages (1 or 512) the entry in slot ``i`` keyed by page ``k`` translates."""
    if not thp:
        return 1
    if i >= geo[G_ITLB2]:
        return HPAGE_NR
    if i < geo[G_STLB]:
        return 1
    sets = geo[G_STLB + 1]
    s = (i - geo[G_STLB]) // geo[G_STLB + 2]
    vpn = page_vpn[k]
    if s != (vpn & (sets - 1)):
        return HPAGE_NR
    if s == ((vpn >> PMD_SHIFT_PAGES) & (sets - 1)) and page_pmd[k] == k:
        return HPAGE_NR
    return 1


@njit(cache=True, _nrt=False)
def cpus_caching_frame_mm(tag, pfn, geo, page_vpn, page_pmd, thp, mm_shift, exempt, frame,
                          state, frame_state, out):
    """out[c] = True when CPU c holds a translation of a mm not ``exempt[c, mm]`` to ``frame``
    (state < 0) or to any frame in ``state`` (I3, I4 with several mms; kernel text: mm 127)."""
    for c in range(tag.shape[0]):
        out[c] = False
        for i in range(tag.shape[1]):
            k = tag[c, i]
            if k < 0:
                continue
            first = pfn[c, i]
            n = _entry_pages(geo, page_vpn, page_pmd, thp, np.int64(k), i)  # one signature
            hit = False
            if state < 0:
                hit = first <= frame < first + n
            else:
                for f in range(first, first + n):
                    if frame_state[f] == state:
                        hit = True
                        break
            if hit and not exempt[c, page_vpn[k] >> mm_shift]:
                out[c] = True
                break


@njit(cache=True, _nrt=False)
def cpus_aliasing_page(tag, pfn, geo, page_vpn, page_pmd, thp, pid, vpn, frame, out):
    """out[c] = True when CPU c caches page ``pid`` pointing somewhere other than ``frame``:
    a 4 KiB entry of the page, or a 2 MiB entry of the aligned 2 MiB range around it (its
    first page ``pid - vpn % 512``: a THP's pages have consecutive ids)."""
    head = pid - (vpn & (HPAGE_NR - 1))
    huge = thp and head >= 0 and page_vpn[head] == page_vpn[pid] - (vpn & (HPAGE_NR - 1))
    hvpn = vpn >> PMD_SHIFT_PAGES
    for c in range(tag.shape[0]):
        out[c] = False
        for lvl in (G_ITLB, G_DTLB, G_STLB):
            base = geo[lvl] + (vpn & (geo[lvl + 1] - 1)) * geo[lvl + 2]
            for i in range(base, base + geo[lvl + 2]):
                if tag[c, i] == pid and pfn[c, i] != frame and \
                        _entry_pages(geo, page_vpn, page_pmd, thp, pid, i) == 1:
                    out[c] = True
        if not huge:
            continue
        for lvl in (G_ITLB2, G_DTLB2, G_STLB):
            if geo[lvl + 2] == 0:
                continue
            base = geo[lvl] + (hvpn & (geo[lvl + 1] - 1)) * geo[lvl + 2]
            for i in range(base, base + geo[lvl + 2]):
                if tag[c, i] == head and pfn[c, i] + (pid - head) != frame and \
                        _entry_pages(geo, page_vpn, page_pmd, thp, head, i) == HPAGE_NR:
                    out[c] = True
