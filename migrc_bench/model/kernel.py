"""The compiled per-access loop: TLB lookups, page walks, access costs, quantum scheduling.

Everything that happens once per access is here, over plain numpy arrays; everything that
happens once per fault, flush or kernel activity is Python (replay.py, flush.py, engines).
The loop stops and returns a reason code whenever Python must act: a fault, an empty
per-CPU buffer, or the stop time (next kernel activity) being reached.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .rawptr import load_int32, load_uint32

# The small helpers of the loop are marked ``forceinline``: LLVM inlines them (alwaysinline)
# into each caller, while numba types and lowers each of them once per signature. numba's own
# ``inline="always"`` copies their IR into every caller and types it again there: the same
# machine code, but about a third more compilation on first use (19.2 -> 13.1 s, issue 15).
# Arguments whose value is a constant are passed as np.int64 / np.bool_ so that a literal
# does not make numba compile a second signature of the helper.

# PTE flag bits (pte_flags)
PTE_PRESENT = np.uint8(1)
PTE_PROTNONE = np.uint8(2)
PTE_WRITE = np.uint8(4)
PTE_DIRTY = np.uint8(8)
PTE_YOUNG = np.uint8(16)

# page (VMA) flag bits (page_flags)
VMA_WRITE = np.uint8(1)
VMA_EXEC = np.uint8(2)
VMA_KERNEL = np.uint8(4)
VMA_FILE = np.uint8(8)  # a file mapping: its pages are page-cache folios (file LRU)

# access kinds as in the trace
OP_IFETCH, OP_LOAD, OP_STORE, OP_MODIFY = 0, 1, 2, 3

# A row of a CPU's buffer: the page id, and a word holding the op (bits 0-1) and the page's vpn
# modulo 2^VPN_BITS (bits 2-31): enough for the set index of any TLB level (at most 2^24 sets),
# so the loop never reads the vpn of a page from the (large, randomly accessed) page arrays.
VPN_BITS = 30
VPN_MASK = (1 << VPN_BITS) - 1
# Chunks of rows queued per task (feeder.Buffers: a ring the loop reads by address); a power
# of two.
SEGMENTS = 8

# reasons the loop returns
R_STOP = 0          # every running CPU reached t_stop
R_NEED_DATA = 1     # cpu's buffer is empty and its stream may have more
R_FAULT_MISSING = 2  # page not present: first-touch allocation
R_FAULT_HINT = 3    # PROT_NONE PTE: NUMA hint fault
R_FAULT_WP = 4      # store to a non-writable translation
R_ALL_DONE = 5      # no CPU has work left
R_SWITCH = 6        # cpu's task used up its slice, or ended, while others wait on its run queue

# counter columns (must match counters.COUNTERS order)
from .counters import C as _C, T as _T  # noqa: E402

C_ACCESSES = _C["accesses"]
C_INSTR = _C["instructions"]
C_LOADS = _C["loads"]
C_STORES = _C["stores"]
C_ITLB_HITS = _C["itlb_hits"]
C_ITLB_L1_MISSES = _C["itlb_l1_misses"]
C_DTLB_HITS = _C["dtlb_hits"]
C_DTLB_L1_MISSES = _C["dtlb_l1_misses"]
C_STLB_HITS = _C["stlb_hits"]
C_STLB_MISSES = _C["stlb_misses"]
C_ITLB_MISSES = _C["itlb_misses"]
C_DTLB_LOAD_MISSES = _C["dtlb_load_misses"]
C_DTLB_STORE_MISSES = _C["dtlb_store_misses"]
C_ITLB_FLUSH = _C["itlb_flush"]
C_DTLB_FLUSH = _C["dtlb_flush"]
C_STLB_FLUSH = _C["stlb_flush"]
C_PGFAULT = _C["pgfault"]
C_HINT_FAULTS = _C["numa_hint_faults"]
T_BUSY = _T["busy"]
T_FAULT = _T["fault"]
T_WALK = _T["walk"]
T_MEM = _T["mem"]

# cost vector indices (costs.py builds it)
K_CPI_NS = 0        # ns per instruction outside memory stalls
K_STLB_HIT_NS = 1
K_WALK_NS = 2       # already multiplied by the nested factor
K_MISS_RATE = 3
K_WALK_PMD_NS = 4   # a walk that ends at a huge PMD (one level shorter)
N_COST = 5


# TLB geometry vector: per level (iTLB, dTLB, STLB) the first slot, the sets and the ways.
# All levels of one CPU share one row of the tlb_* arrays: no per-level array objects to
# pick at run time (which would cost reference-count traffic in the hot loop).
G_ITLB, G_DTLB, G_STLB = 0, 3, 6
# The L1 arrays of 2 MiB translations (thp): their slots follow the STLB's; an entry is keyed by
# the page id of the PMD's first page and indexed by the 2 MiB page number (vpn >> 9); the
# STLB holds both sizes, a 2 MiB entry indexed the same way.
G_ITLB2, G_DTLB2 = 9, 12
PMD_SHIFT_PAGES = 9  # HPAGE_PMD_ORDER: 512 base pages


@njit(cache=True, forceinline=True, _nrt=False)
def _lookup(tag, lru, geo, lvl, c, vpn, key, stamp):
    """The way of the set holding ``key`` (stamped as used), or -1. Every way is compared,
    without an early exit: which way hits is data-dependent, a branch on it mispredicts
    (a page is cached at most once per level, so the match, if any, is unique)."""
    base = geo[lvl] + (vpn & (geo[lvl + 1] - 1)) * geo[lvl + 2]
    found = -1
    for i in range(base, base + geo[lvl + 2]):
        found = i if tag[c, i] == key else found
    if found >= 0:
        lru[c, found] = stamp
    return found


@njit(cache=True, forceinline=True, _nrt=False)
def _fill(tag, pfn, wr, lru, geo, lvl, c, vpn, key, frame, writable, stamp):
    base = geo[lvl] + (vpn & (geo[lvl + 1] - 1)) * geo[lvl + 2]
    victim = base
    oldest = lru[c, base]
    for i in range(base, base + geo[lvl + 2]):
        if tag[c, i] == -1:
            victim = i
            break
        if lru[c, i] < oldest:
            oldest = lru[c, i]
            victim = i
    tag[c, victim] = key
    pfn[c, victim] = frame
    wr[c, victim] = writable
    lru[c, victim] = stamp
    return victim


@njit(cache=True, forceinline=True, _nrt=False)
def _drop(tag, geo, c, key, sv, lvl):
    """Drop ``key`` from its set (index ``sv``) of one level on one CPU."""
    base = geo[lvl] + (sv & (geo[lvl + 1] - 1)) * geo[lvl + 2]
    for i in range(base, base + geo[lvl + 2]):
        if tag[c, i] == key:
            tag[c, i] = -1


@njit(cache=True, _nrt=False)
def invalidate_page(tag, geo, c, key, vpn):
    """INVLPG of one user page on one CPU: every level."""
    for lvl in (G_ITLB, G_DTLB, G_STLB):
        _drop(tag, geo, c, key, vpn, lvl)


@njit(cache=True, _nrt=False)
def invalidate_huge(tag, geo, c, head, hvpn):
    """INVLPG of an address inside a PMD mapping on one CPU: its 2 MiB translation, every level."""
    for lvl in (G_ITLB2, G_DTLB2, G_STLB):
        _drop(tag, geo, c, head, hvpn, lvl)


@njit(cache=True, _nrt=False)
def invalidate_all(tag, c, page_flags, keep_kernel):
    """Full flush of the mm on one CPU: every entry, except global kernel text when not PTI."""
    for i in range(tag.shape[1]):
        k = tag[c, i]
        if k >= 0:
            if keep_kernel and (page_flags[k] & VMA_KERNEL):
                continue
            tag[c, i] = -1


@njit(cache=True, _nrt=False)
def invalidate_mm(tag, c, page_vpn, mm, mm_shift, page_flags, keep_kernel):
    """Full flush of one mm's PCID on one CPU (several mms): the entries of pages keyed to
    ``mm``, and kernel text unless it is global (not PTI)."""
    for i in range(tag.shape[1]):
        k = tag[c, i]
        if k >= 0:
            if page_flags[k] & VMA_KERNEL:
                if not keep_kernel:
                    tag[c, i] = -1
            elif (page_vpn[k] >> mm_shift) == mm:
                tag[c, i] = -1


# invariant violation codes recorded by the checked loop (model.md §7 I1, I2)
V_STALE_FRAME = 1    # a stale translation to a frame that is neither held nor tagged-free
V_DIVERGED = 2       # a stale translation to a held/tagged frame whose content differs
V_STALE_WRITE = 3    # a store through a stale writable translation
V_WRITABLE_TLB = 4   # a store through a writable translation whose PTE is not writable
N_VIOL_KEPT = 16


@njit(cache=True, _nrt=False)
def _record(viol, viol_n, code, c, pid, frame, pte_frame, t):
    k = viol_n[0]
    if k < viol.shape[0]:
        viol[k, 0] = code
        viol[k, 1] = c
        viol[k, 2] = pid
        viol[k, 3] = frame
        viol[k, 4] = pte_frame
        viol[k, 5] = np.int64(t)
    viol_n[0] = k + 1


@njit(cache=True, _nrt=False)
def check_use(c, pid, kind, frame, writable, pte_pfn, pte_flags, frame_state, frame_ver,
              viol, viol_n, t):
    """I1/I2 on one use of a cached translation."""
    p = pte_pfn[pid]
    fl = pte_flags[pid]
    current = p == frame and (fl & PTE_PRESENT) != 0 and (fl & PTE_PROTNONE) == 0
    if current:
        if kind == OP_STORE and writable and (fl & PTE_WRITE) == 0:
            _record(viol, viol_n, np.int64(V_WRITABLE_TLB), c, pid, frame, p, t)
        return
    if kind == OP_STORE:
        if writable:
            _record(viol, viol_n, np.int64(V_STALE_WRITE), c, pid, frame, p, t)
        return  # a read-only stale translation faults on a store: not a use
    st = frame_state[frame]
    if st != 2 and st != 3:  # F_HELD, F_TAGGED
        _record(viol, viol_n, np.int64(V_STALE_FRAME), c, pid, frame, p, t)
    elif p >= 0 and frame_ver[frame] != frame_ver[p]:  # p < 0: a clean file page reclaimed
        _record(viol, viol_n, np.int64(V_DIVERGED), c, pid, frame, p, t)


@njit(cache=True, forceinline=True, _nrt=False)
def _translate(c, pid, kind, key, sv, off, big, tag, pfn, wr, lru, geo, stamp, pte_pfn,
               pte_flags, counters, times, cost, check, frame_state, frame_ver, viol, viol_n, t):
    """The lookup of translate_slot for a 4 KiB page (``big`` False: key = pid, set index
    from ``sv`` = vpn, ``off`` 0) or for a page inside a PMD mapping (``big``: key = the
    PMD's first page, ``sv`` = its 2 MiB page number, ``off`` = pid - key): the L1 array of
    that size, then the STLB (both sizes), then a walk (a PMD's one level shorter). A 2 MiB
    entry holds the first page's frame (a THP's frames are consecutive); the PMD's bits are
    kept in each of its 512 PTE slots (A and D: set in the slot of the page used)."""
    if big:
        l1 = G_ITLB2 if kind == OP_IFETCH else G_DTLB2
    else:
        l1 = G_ITLB if kind == OP_IFETCH else G_DTLB
    extra = 0.0
    hit = 0
    i = _lookup(tag, lru, geo, l1, c, sv, key, stamp)
    if i >= 0:
        hit = 1
        frame = np.int64(pfn[c, i]) + off
        writable = wr[c, i]
        if check:
            check_use(c, pid, kind, frame, writable, pte_pfn, pte_flags, frame_state, frame_ver,
                      viol, viol_n, t)
    else:
        if kind == OP_IFETCH:
            counters[c, C_ITLB_L1_MISSES] += 1
        else:
            counters[c, C_DTLB_L1_MISSES] += 1
        i2 = _lookup(tag, lru, geo, np.int64(G_STLB), c, sv, key, stamp)
        if i2 >= 0:
            counters[c, C_STLB_HITS] += 1
            frame = np.int64(pfn[c, i2]) + off
            writable = wr[c, i2]
            if check:
                check_use(c, pid, kind, frame, writable, pte_pfn, pte_flags, frame_state,
                          frame_ver, viol, viol_n, t)
            i = _fill(tag, pfn, wr, lru, geo, l1, c, sv, key, frame - off, writable, stamp)
            extra = cost[K_STLB_HIT_NS]
        else:
            fl = pte_flags[pid]
            if (fl & PTE_PRESENT) == 0:
                return -R_FAULT_MISSING, -1, extra, hit
            if fl & PTE_PROTNONE:
                return -R_FAULT_HINT, -1, extra, hit
            if kind == OP_STORE and (fl & PTE_WRITE) == 0:
                return -R_FAULT_WP, -1, extra, hit
            counters[c, C_STLB_MISSES] += 1
            if kind == OP_IFETCH:
                counters[c, C_ITLB_MISSES] += 1
            elif kind == OP_LOAD:
                counters[c, C_DTLB_LOAD_MISSES] += 1
            else:
                counters[c, C_DTLB_STORE_MISSES] += 1
            fl |= PTE_YOUNG
            if kind == OP_STORE:
                fl |= PTE_DIRTY
            pte_flags[pid] = fl
            frame = np.int64(pte_pfn[pid])
            writable = np.uint8(1) if (fl & PTE_WRITE) else np.uint8(0)
            _fill(tag, pfn, wr, lru, geo, np.int64(G_STLB), c, sv, key, frame - off, writable,
                  stamp)
            i = _fill(tag, pfn, wr, lru, geo, l1, c, sv, key, frame - off, writable, stamp)
            extra = cost[K_WALK_PMD_NS] if big else cost[K_WALK_NS]
            times[c, T_WALK] += extra
    if kind == OP_STORE:
        if writable == 0:
            # x86 drops the faulting translation; the handler then decides (wp or spurious)
            if big:
                invalidate_huge(tag, geo, c, key, sv)
            else:
                invalidate_page(tag, geo, c, key, sv)
            return -R_FAULT_WP, -1, extra, hit
        if frame == pte_pfn[pid]:
            pte_flags[pid] |= PTE_DIRTY
    return frame, i, extra, hit


@njit(cache=True, _nrt=False)
def translate_huge(c, pid, head, kind, tag, pfn, wr, lru, geo, stamp, vpn, pte_pfn, pte_flags,
                   counters, times, cost, check, frame_state, frame_ver, viol, viol_n, t):
    """translate_slot for a page inside a PMD mapping (not inlined: the 4 KiB path stays as
    short as it was)."""
    return _translate(c, pid, kind, head, vpn >> PMD_SHIFT_PAGES, pid - head, np.bool_(True),
                      tag, pfn, wr, lru, geo, stamp, pte_pfn, pte_flags, counters, times, cost,
                      check, frame_state, frame_ver, viol, viol_n, t)


@njit(cache=True, forceinline=True, _nrt=False)
def translate_slot(c, pid, kind, tag, pfn, wr, lru, geo, stamp, vpn, pte_pfn, pte_flags,
                   counters, times, cost, check, frame_state, frame_ver, viol, viol_n, t,
                   page_pmd, thp):
    """One TLB lookup (kind 0 ifetch, 1 load, 2 store) of page ``pid``, whose vpn (or its low
    VPN_BITS: all a set index needs) is ``vpn``. Returns (frame >= 0, or -(reason); the L1
    slot that now holds the translation, -1 on a fault; the busy ns it cost; 1 if it hit the
    L1). The caller adds the busy ns and counts the L1 hit: the loop keeps both in locals.
    ``thp``: some pages are PMD-mapped (``page_pmd[pid]``: the PMD's first page, or -1)."""
    if thp:
        head = page_pmd[pid]
        if head >= 0:
            return translate_huge(c, pid, head, kind, tag, pfn, wr, lru, geo, stamp, vpn,
                                  pte_pfn, pte_flags, counters, times, cost, check, frame_state,
                                  frame_ver, viol, viol_n, t)
    return _translate(c, pid, kind, pid, vpn, np.int64(0), np.bool_(False), tag, pfn, wr, lru,
                      geo, stamp, pte_pfn, pte_flags, counters, times, cost, check, frame_state,
                      frame_ver, viol, viol_n, t)


@njit(cache=True, _nrt=False)
def translate_call(c, pid, kind, tag, pfn, wr, lru, geo, stamp, vpn, pte_pfn, pte_flags,
                   counters, times, cost, check, frame_state, frame_ver, viol, viol_n, t,
                   page_pmd, thp):
    """translate_slot as a call, for the loop's rare paths (one inlined copy is enough)."""
    return translate_slot(c, pid, kind, tag, pfn, wr, lru, geo, stamp, vpn, pte_pfn, pte_flags,
                          counters, times, cost, check, frame_state, frame_ver, viol, viol_n, t,
                          page_pmd, thp)


@njit(cache=True, forceinline=True, _nrt=False)
def translate(c, pid, kind, tag, pfn, wr, lru, geo, stamp, page_vpn, pte_pfn, pte_flags,
              counters, times, cost, check, frame_state, frame_ver, viol, viol_n, t, no_pmd):
    """One TLB lookup (kind 0 ifetch, 1 load, 2 store). Returns frame >= 0, or -(reason)."""
    # thp False: kernel text is never PMD-mapped, and page_pmd is not read (any int32 array
    # will do); np.bool_ and a writable array give translate_call the run loop's signature, so
    # it is compiled once (a literal False and the read-only global array compiled it twice:
    # ~4 s of the first run after install)
    f, _, extra, hit = translate_call(c, pid, kind, tag, pfn, wr, lru, geo, stamp, page_vpn[pid],
                                      pte_pfn, pte_flags, counters, times, cost, check,
                                      frame_state, frame_ver, viol, viol_n, t, no_pmd,
                                      np.bool_(False))
    times[c, T_BUSY] += extra
    if hit:
        counters[c, C_ITLB_HITS if kind == OP_IFETCH else C_DTLB_HITS] += 1
    return f


# hint-fault fast path parameters (tiering.py fills them; H_ENABLED 0 sends every fault to
# Python; so does a fault after H_ADJUST_AT, when numa_promotion_adjust_threshold is due)
H_ENABLED, H_THRESHOLD, H_FAULT_NS, H_ADJUST_AT = 0, 1, 2, 3
N_HINT = 4


@njit(cache=True, _nrt=False)
def cold_hint_fault(c, pid, hint, scan_time, clock, page_flags, pte_pfn, pte_flags, frame_node,
                    counters, times, kpids, kpos, kcount, tag, pfn, wr, lru, geo, stamps, page_vpn,
                    cost, frame_state, frame_ver, viol, viol_n, page_pmd, thp):
    """do_numa_page for the common case, without leaving the loop: a slow-tier page whose
    scan was longer ago than the hot threshold is not promoted; its PTE is made accessible
    again in place (writable for a writable VMA, young). Anything else returns False and goes
    to Python (tiering.Tiering.hint_fault), which does exactly the same for this case."""
    if hint[H_ENABLED] == 0.0 or clock[c] > hint[H_ADJUST_AT]:
        return False
    if thp and page_pmd[pid] >= 0:  # do_huge_pmd_numa_page: Python
        return False
    f = pte_pfn[pid]
    if frame_node[f] == 0 or clock[c] - scan_time[pid] < hint[H_THRESHOLD]:
        return False
    counters[c, C_PGFAULT] += 1
    counters[c, C_HINT_FAULTS] += 1
    ns = hint[H_FAULT_NS]
    times[c, T_BUSY] += ns
    times[c, T_FAULT] += ns
    clock[c] += ns
    ns = kernel_text_fetch(c, kpids, kpos, kcount, tag, pfn, wr, lru, geo, stamps, page_vpn,
                           pte_pfn, pte_flags, counters, times, cost, frame_state, frame_ver, viol,
                           viol_n)
    clock[c] += ns
    times[c, T_FAULT] += ns
    fl = pte_flags[pid] & ~PTE_PROTNONE
    if page_flags[pid] & VMA_WRITE:
        fl |= PTE_WRITE
    pte_flags[pid] = fl | PTE_YOUNG
    return True


# The same-page filter: per CPU and L1 (F_ITLB, F_DTLB) the slot of the last translation the
# loop used there (-1: none). A page is cached at most once per level, so when that slot still
# holds the page being accessed, it is the entry the set scan would find: the hit is taken
# without the scan (and without reading the page's vpn). When a CPU starts running the loop
# reads which page the slot holds now, so anything done to its TLB in between (a flush, a
# store-through-read-only drop, kernel text evicting the entry) can never make it stale.
F_ITLB, F_DTLB = 0, 1


@njit(cache=True, forceinline=True, _nrt=False)
def _reuse(c, pid, kind, slot, frame, writable, lru, stamp, check, pte_pfn, pte_flags,
           frame_state, frame_ver, viol, viol_n, t):
    """A use of the L1 entry in ``slot`` that the same-page filter found: what a hit of the set
    scan does there (the LRU stamp, the invariant check, a store's dirty bit)."""
    lru[c, slot] = stamp
    if check:
        check_use(c, pid, kind, frame, writable, pte_pfn, pte_flags, frame_state, frame_ver,
                  viol, viol_n, t)
    if kind == OP_STORE and frame == pte_pfn[pid]:
        pte_flags[pid] |= PTE_DIRTY


@njit(cache=True, forceinline=True, _nrt=False)
def _filter_entry(tag, pfn, wr, c, slot):
    """What the filter's ``slot`` holds now: page (-1 none), frame, writable."""
    page = tag[c, slot] if slot >= 0 else -1
    if page < 0:
        return page, 0, np.uint8(0)
    return page, pfn[c, slot], wr[c, slot]


@njit(cache=True, forceinline=True, _nrt=False)
def _write_back(counters, times, c, n_acc, n_instr, n_loads, n_stores, n_ihit, n_dhit, busy,
                tmem):
    """Write back the access counts and times a running CPU kept in locals."""
    counters[c, C_ACCESSES] += n_acc
    counters[c, C_INSTR] += n_instr
    counters[c, C_LOADS] += n_loads
    counters[c, C_STORES] += n_stores
    counters[c, C_ITLB_HITS] += n_ihit
    counters[c, C_DTLB_HITS] += n_dhit
    times[c, T_BUSY] = busy
    times[c, T_MEM] = tmem


@njit(cache=True, nogil=True, _nrt=False)
def run_loop(seg_pid, seg_op, seg_len, seg_first, seg_n, head, stream_open, running, clock,
             q_end, quantum, t_stop, tag, pfn, wr, lru, geo, stamps, page_vpn, page_flags,
             pte_pfn, pte_flags, frame_node, frame_ver, node_lat, counters, times, cost, check,
             frame_state, viol, viol_n, out, hint, scan_time, kpids, kpos, kcount, last,
             cur_task, slice_end, rq_len, page_pmd, thp):
    """Replay accesses quantum by quantum until Python must act; returns a reason code.

    ``q_end[0]`` is the end of the current quantum; CPUs run in index order inside it, each
    until its clock reaches the quantum's end. A task's rows are read from the chunks queued
    in ``seg_*`` (feeder.Buffers), by address, from row ``head`` of chunk ``seg_first``.
    ``out`` receives (cpu, pid, op) of a fault; ``last`` is the same-page filter (F_ITLB,
    F_DTLB slots per CPU). No GIL: the trace reader thread runs meanwhile. CPU c runs task
    ``cur_task[c]`` (chunk queues and streams are per task) until ``slice_end[c]`` (+inf
    while it is alone on its run queue); when the slice is used up, or the task ends while
    ``rq_len[c]`` > 1, the loop returns R_SWITCH and Python switches tasks
    (model/runqueue.py).
    """
    ncpu = clock.shape[0]
    cpi_ns = cost[K_CPI_NS]
    miss_rate = cost[K_MISS_RATE]
    while True:
        qe = q_end[0]
        for c in range(ncpu):
            if not running[c]:
                continue
            t = cur_task[c]
            se = slice_end[c]
            lim = qe if qe < se else se
            switch = False
            # this CPU's hot state lives in locals while it runs and is written back whenever
            # the loop leaves it (quantum end, empty buffer, fault): fewer memory round trips
            h = head[t]
            sn = seg_n[t]
            sf = seg_first[t]
            pp = seg_pid[t, sf]
            po = seg_op[t, sf]
            tl = seg_len[t, sf] if sn else np.int64(0)
            st = stamps[c]
            clk = clock[c]
            busy = times[c, T_BUSY]
            tmem = times[c, T_MEM]
            # typed zeros: a literal 0 would give _write_back a signature of its own
            n_acc = n_instr = n_loads = n_stores = n_ihit = n_dhit = np.int64(0)
            # the filter's entries as they are now: page (-1 none), frame, writable, mem cost
            isl = last[c, F_ITLB]
            ip, ifr, iwr = _filter_entry(tag, pfn, wr, c, isl)
            dsl = last[c, F_DTLB]
            dp, dfr, dwr = _filter_entry(tag, pfn, wr, c, dsl)
            dmem = miss_rate * node_lat[frame_node[dfr]] if dp >= 0 else 0.0
            while clk < lim:
                if h == tl:
                    if sn > 1:  # the next chunk queued
                        sn -= 1
                        sf = (sf + 1) & (SEGMENTS - 1)
                        seg_n[t] = sn
                        seg_first[t] = sf
                        pp = seg_pid[t, sf]
                        po = seg_op[t, sf]
                        tl = seg_len[t, sf]
                        h = 0
                        continue
                    if stream_open[t]:
                        head[t] = h
                        stamps[c] = st
                        clock[c] = clk
                        _write_back(counters, times, c, n_acc, n_instr, n_loads, n_stores,
                                    n_ihit, n_dhit, busy, tmem)
                        last[c, F_ITLB] = isl
                        last[c, F_DTLB] = dsl
                        out[0] = c
                        return R_NEED_DATA
                    if rq_len[c] > 1:  # others wait: Python switches to the next one
                        switch = True
                        break
                    running[c] = False
                    break
                pid = load_int32(pp, h)
                w = load_uint32(po, h)
                op = w & 3
                vl = np.int64(w >> 2)
                st += 1
                t0 = busy
                kind = OP_IFETCH if op == OP_IFETCH else (OP_STORE if op == OP_STORE else OP_LOAD)
                f = -1
                slow = True
                if kind == OP_IFETCH:
                    if pid == ip:  # same page as the last fetch: that iTLB entry
                        slow = False
                        n_ihit += 1
                        f = ifr
                        _reuse(c, pid, kind, isl, f, iwr, lru, st, check, pte_pfn, pte_flags,
                               frame_state, frame_ver, viol, viol_n, clk)
                elif pid == dp and (kind == OP_LOAD or dwr):  # the last data page's entry
                    slow = False
                    n_dhit += 1
                    f = dfr
                    _reuse(c, pid, kind, dsl, f, dwr, lru, st, check, pte_pfn, pte_flags,
                           frame_state, frame_ver, viol, viol_n, clk)
                if slow:  # one call site: the set scans, refills and walks are compiled once
                    f, s, extra, hit = translate_slot(
                        c, pid, kind, tag, pfn, wr, lru, geo, st, vl, pte_pfn, pte_flags,
                        counters, times, cost, check, frame_state, frame_ver, viol, viol_n, clk,
                        page_pmd, thp)
                    busy += extra
                    if kind == OP_IFETCH:
                        n_ihit += hit
                        if f >= 0:  # the filter's iTLB entry is now this one
                            isl, ip, ifr, iwr = s, pid, f, wr[c, s]
                    else:
                        n_dhit += hit
                        if f >= 0:  # and its dTLB entry
                            dsl, dp, dfr, dwr = s, pid, f, wr[c, s]
                            dmem = miss_rate * node_lat[frame_node[f]]
                if f >= 0 and op == OP_MODIFY:  # lackey's M: the load, then the store
                    kind = np.int64(OP_STORE)
                    if dwr:  # the load just used this page's entry
                        n_dhit += 1
                        _reuse(c, pid, kind, dsl, f, dwr, lru, st, check, pte_pfn, pte_flags,
                               frame_state, frame_ver, viol, viol_n, clk)
                    else:  # through the read-only entry: dropped, a fault (rare: not inlined)
                        f, s, extra, hit = translate_call(
                            c, pid, kind, tag, pfn, wr, lru, geo, st, vl, pte_pfn, pte_flags,
                            counters, times, cost, check, frame_state, frame_ver, viol, viol_n,
                            clk, page_pmd, thp)
                        busy += extra
                        n_dhit += hit
                if f < 0:
                    clk += busy - t0
                    stamps[c] = st
                    clock[c] = clk
                    _write_back(counters, times, c, n_acc, n_instr, n_loads, n_stores, n_ihit,
                                n_dhit, busy, tmem)
                    last[c, F_ITLB] = isl
                    last[c, F_DTLB] = dsl
                    n_acc = n_instr = n_loads = n_stores = n_ihit = n_dhit = np.int64(0)
                    if f == -R_FAULT_HINT and cold_hint_fault(
                            c, pid, hint, scan_time, clock, page_flags, pte_pfn, pte_flags,
                            frame_node, counters, times, kpids, kpos, kcount, tag, pfn, wr, lru,
                            geo, stamps, page_vpn, cost, frame_state, frame_ver, viol, viol_n,
                            page_pmd, thp):
                        st = stamps[c]
                        clk = clock[c]
                        busy = times[c, T_BUSY]
                        # kernel text went through this CPU's iTLB: read the filter afresh
                        ip, ifr, iwr = _filter_entry(tag, pfn, wr, c, isl)
                        continue  # settled here: retry the access
                    head[t] = h
                    out[0] = c
                    out[1] = pid
                    out[2] = op
                    return -f
                if op == OP_IFETCH:
                    n_instr += 1
                    busy += cpi_ns
                else:
                    if op == OP_LOAD:
                        n_loads += 1
                    else:
                        n_stores += 1
                        if check:  # new content: only the invariant checker compares it
                            frame_ver[f] += 1
                        if op == OP_MODIFY:
                            n_loads += 1
                    busy += dmem
                    tmem += dmem
                n_acc += 1
                clk += busy - t0
                h += 1
            head[t] = h
            stamps[c] = st
            clock[c] = clk
            _write_back(counters, times, c, n_acc, n_instr, n_loads, n_stores, n_ihit, n_dhit,
                        busy, tmem)
            last[c, F_ITLB] = isl
            last[c, F_DTLB] = dsl
            if switch or (running[c] and clk >= se):
                out[0] = c
                return R_SWITCH
        any_running = False
        for c in range(ncpu):
            if running[c]:
                any_running = True
        if not any_running:
            return R_ALL_DONE
        if q_end[0] >= t_stop:
            return R_STOP
        q_end[0] += quantum


@njit(cache=True, _nrt=False)
def kernel_text_fetch(c, kpids, kpos, kcount, tag, pfn, wr, lru, geo, stamps, page_vpn, pte_pfn,
                      pte_flags, counters, times, cost, frame_state, frame_ver, viol, viol_n):
    """A kernel entry on CPU c (fault, IPI, kswapd, scan): fetch ``kcount`` kernel text pages
    via the iTLB, continuing CPU c's round through the pool ``kpids``."""
    t0 = times[c, T_BUSY]
    n = kpids.shape[0]
    if n == 0:
        return 0.0
    for _ in range(kcount):
        i = kpos[c]
        kpos[c] = i + 1 if i + 1 < n else 0
        stamps[c] += 1
        translate(c, kpids[i], np.int64(OP_IFETCH), tag, pfn, wr, lru, geo, stamps[c], page_vpn,
                  pte_pfn, pte_flags, counters, times, cost, np.bool_(False), frame_state,
                  frame_ver, viol, viol_n, 0.0, kpids)
    return times[c, T_BUSY] - t0
