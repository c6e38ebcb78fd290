"""Virtual page number → dense page id, and trace batches → per-thread page-id streams.

Addresses in a trace are sparse (code low, heap, stacks high); the model's arrays are dense.
Pages of the trace's regions get contiguous ids per region (a range lookup, no hashing);
other pages go through a compiled open-addressing hash table in order of first appearance,
so ids are deterministic. Page-crossing accesses are split in two. Each row's op comes out
packed with the page's vpn modulo 2^30, as the compiled loop's buffers hold it (kernel.py).

The trace reader thread (prefetch.py) maps batches while the replay may look pages up: every
method holds the map's lock, and the compiled functions release the GIL.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

from ..trace.native import DTYPES
from .kernel import VPN_MASK
from .rawptr import address, store_int32, store_uint32

PAGE_SHIFT = 12
_MULT = np.uint64(0x9E3779B97F4A7C15)


# The per-access functions run without NRT: passing arrays between compiled functions
# otherwise costs reference-count traffic on every call (measured: 10x slower).
@njit(cache=True, forceinline=True, _nrt=False)
def _slot(keys, vpn):
    mask = keys.shape[0] - 1
    h = np.int64((np.uint64(vpn) * _MULT) >> np.uint64(33)) & mask
    while keys[h] != -1 and keys[h] != vpn:
        h = (h + 1) & mask
    return h


@njit(cache=True, nogil=True)
def _insert_all(keys, vals, old_keys, old_vals):
    for i in range(old_keys.shape[0]):
        if old_keys[i] != -1:
            h = _slot(keys, old_keys[i])
            keys[h] = old_keys[i]
            vals[h] = old_vals[i]


@njit(cache=True, forceinline=True, _nrt=False)
def _in_ranges(r_start, r_end, r_base, vpn, hint):
    """Range index holding vpn (trying ``hint`` first), or -1."""
    if hint >= 0 and r_start[hint] <= vpn < r_end[hint]:
        return hint
    lo, hi = 0, r_start.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if r_start[mid] <= vpn:
            lo = mid + 1
        else:
            hi = mid
    k = lo - 1
    if k >= 0 and vpn < r_end[k]:
        return k
    return -1


@njit(cache=True, forceinline=True, _nrt=False)
def op_word(kind, vpn):
    """A buffer row's op word: the access kind in bits 0-1, the page's low vpn bits above them
    (kernel.VPN_BITS: all a TLB set index needs; pending.py rebuilds parked rows' with it)."""
    return kind | ((vpn & VPN_MASK) << 2)


@njit(cache=True, forceinline=True, _nrt=False)
def _page_id(keys, vals, r_start, r_end, r_base, vpn, n_pages, new_vpns, hints, which):
    """(page id, new page count) for one vpn, registering it in the hash when new."""
    pid, n_pages, k = _range_or_hash(keys, vals, r_start, r_end, r_base, vpn, n_pages, new_vpns,
                                     hints[which])
    if k >= 0:
        hints[which] = k
    return pid, n_pages


@njit(cache=True, nogil=True, _nrt=False)
def _count_rows(addr, size):
    n = 0
    for i in range(addr.shape[0]):
        a = np.int64(addr[i])
        n += 1 + (((a + max(np.int64(size[i]), 1) - 1) >> PAGE_SHIFT) - (a >> PAGE_SHIFT))
    return n


@njit(cache=True, nogil=True, _nrt=False)
def _map(addr, size, tid, op, keys, vals, r_start, r_end, r_base, n_pages, new_vpns,
         out_pid, out_tid, out_op, hints):
    """Fill out_* (one row per page touched); returns the new page count.

    ``hints`` holds the last range hit per op kind (fetches, loads, stores, modifies).
    """
    j = 0
    for i in range(addr.shape[0]):
        a = np.int64(addr[i])
        vpn = a >> PAGE_SHIFT
        last = (a + max(np.int64(size[i]), 1) - 1) >> PAGE_SHIFT
        o = op[i]
        for v in range(vpn, last + 1):
            pid, n_pages = _page_id(keys, vals, r_start, r_end, r_base, v, n_pages, new_vpns,
                                    hints, o & 3)
            out_pid[j] = pid
            out_tid[j] = tid[i]
            out_op[j] = op_word(np.int64(o), v)
            j += 1
    return n_pages


@njit(cache=True, forceinline=True, _nrt=False)
def _range_or_hash(keys, vals, r_start, r_end, r_base, vpn, n_pages, new_vpns, hint):
    """(page id, new page count, range index or -1) for one vpn (range ``hint`` tried first),
    registering it in the hash when new."""
    k = _in_ranges(r_start, r_end, r_base, vpn, hint)
    if k >= 0:
        return r_base[k] + (vpn - r_start[k]), n_pages, k
    pid, n_pages = _hashed(keys, vals, vpn, n_pages, new_vpns)
    return pid, n_pages, k


@njit(cache=True, forceinline=True, _nrt=False)
def _hashed(keys, vals, vpn, n_pages, new_vpns):
    """(page id, new page count) of a page outside the ranges, registered when new."""
    h = _slot(keys, vpn)
    if keys[h] == -1:
        keys[h] = vpn
        vals[h] = n_pages
        new_vpns[n_pages] = vpn
        n_pages += 1
    return np.int64(vals[h]), n_pages


@njit(cache=True, nogil=True, _nrt=False)
def _records_per_thread(tid, threads, rows):
    """Add each thread's records of a batch to ``rows``, a run of one thread at a time;
    returns False at a thread id >= ``threads``."""
    t_cur = np.int64(-1)
    start = 0
    for i in range(tid.shape[0]):
        t = np.int64(tid[i])
        if t != t_cur:
            if t >= threads:
                return False
            if t_cur >= 0:
                rows[t_cur] += i - start
            t_cur = t
            start = i
    if t_cur >= 0:
        rows[t_cur] += tid.shape[0] - start
    return True


@njit(cache=True, nogil=True, _nrt=False)
def _rows_per_thread(addr, size, tid, threads, rows):
    """Add each thread's rows of a batch (an access crossing a page is two) to ``rows``."""
    for i in range(addr.shape[0]):
        a = np.int64(addr[i])
        rows[np.int64(tid[i])] += 1 + (((a + max(np.int64(size[i]), 1) - 1) >> PAGE_SHIFT)
                                       - (a >> PAGE_SHIFT))


@njit(cache=True, nogil=True, _nrt=False)
def _map_threads(addr, size, tid, op, keys, vals, r_start, r_end, r_base, n_pages, new_vpns,
                 dst_pid, dst_op, dst_cap, cursor, hints, room, res):
    """Page ids in file order, one pass, each row written to its thread's arrays (addresses
    ``dst_pid[t]``, ``dst_op[t]``: rawptr.py, room for ``dst_cap[t]`` rows), in order; the
    rows each thread got are left in ``cursor`` (zeros on entry). ``res`` receives (new
    page count, 0; or -2 when more than ``room`` pages are new, -3 when a thread's arrays
    are full: the caller makes room and maps the batch again; the pages registered so far
    keep their ids, so the result is the same). ``hints`` holds the last range used per op
    kind (fetch, load, store, modify), indexed without a branch. A thread's rows come in
    runs (its chunks of work): its arrays and position are taken up at each run's start."""
    ranged = r_start.shape[0] > 0
    limit = n_pages + room
    t_cur = np.int64(-1)
    j = np.int64(0)
    cap = np.int64(0)
    out_pid = out_op = np.int64(0)
    for i in range(addr.shape[0]):
        a = np.int64(addr[i])
        t = np.int64(tid[i])
        if t != t_cur:
            if t_cur >= 0:
                cursor[t_cur] = j
            t_cur = t
            j = cursor[t]
            cap = dst_cap[t]
            out_pid = dst_pid[t]
            out_op = dst_op[t]
        vpn = a >> PAGE_SHIFT
        last = (a + max(np.int64(size[i]), 1) - 1) >> PAGE_SHIFT
        o = np.int64(op[i]) & 3
        k = hints[o]
        v = vpn
        while True:
            if ranged and r_start[k] <= v and v < r_end[k]:
                pid = r_base[k] + (v - r_start[k])
            else:
                kk = _in_ranges(r_start, r_end, r_base, v, -1)
                if kk >= 0:
                    k = kk
                    hints[o] = kk
                    pid = r_base[k] + (v - r_start[k])
                else:  # (the hash table is not read with no room: map_ranged)
                    if n_pages >= limit:
                        res[0] = n_pages
                        res[1] = -2
                        return
                    pid, n_pages = _hashed(keys, vals, v, n_pages, new_vpns)
            if j == cap:
                res[0] = n_pages
                res[1] = -3
                return
            store_int32(out_pid, j, pid)
            store_uint32(out_op, j, op_word(np.int64(o), v))
            j += 1
            if v >= last:
                break
            v += 1
    if t_cur >= 0:
        cursor[t_cur] = j
    res[0] = n_pages
    res[1] = 0


@njit(cache=True, nogil=True, _nrt=False)
def _lookup_many(keys, vals, r_start, r_end, r_base, vpns, out):
    hint = -1
    for i in range(vpns.shape[0]):
        k = _in_ranges(r_start, r_end, r_base, vpns[i], hint)
        if k >= 0:
            hint = k
            out[i] = r_base[k] + (vpns[i] - r_start[k])
            continue
        h = _slot(keys, vpns[i])
        out[i] = vals[h] if keys[h] == vpns[i] else -1


def _room_per_thread(tid: np.ndarray, threads: int) -> np.ndarray:
    """Room for each thread's rows of a batch: its records and a little more for accesses
    that cross a page (two rows each, rare; _map_once sizes exactly when they do not fit). A
    thread id of ``threads`` or more is a ValueError."""
    rows = np.zeros(threads, np.int64)
    if not _records_per_thread(tid, threads, rows):
        raise ValueError(f"thread id {int(tid.max())} of {threads} threads")
    return np.where(rows > 0, rows + (rows >> 5) + 64, 0)


def _thread_arrays(cap: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """Each thread's (page ids, op words) arrays with room for ``cap[t]`` rows, and their
    addresses (threads with no room get none)."""
    arrays: list = [None] * len(cap)
    dst_pid = np.zeros(len(cap), np.int64)
    dst_op = np.zeros(len(cap), np.int64)
    for t in np.flatnonzero(cap).tolist():
        arrays[t] = (np.empty(cap[t], np.int32), np.empty(cap[t], np.uint32))
        dst_pid[t], dst_op[t] = address(arrays[t][0]), address(arrays[t][1])
    return arrays, dst_pid, dst_op


class PageMap:
    """Grows as new pages appear; ``vpns[:n]`` lists the vpn of each id."""

    def __init__(self, capacity: int = 1 << 16):
        """``capacity``: pages expected in all (ranges included); the hash starts small."""
        cap = 1 << 17
        self.keys = np.full(cap, -1, np.int64)
        self.vals = np.zeros(cap, np.int32)
        self.vpns = np.zeros(max(16, capacity), np.int64)
        self.n = 0
        self.ranged = 0  # ids handed out by add_range (not in the hash table)
        self.r_start = np.zeros(0, np.int64)
        self.r_end = np.zeros(0, np.int64)
        self.r_base = np.zeros(0, np.int64)
        self._lock = threading.Lock()

    def _reserve(self, extra: int, hashed: bool = True) -> None:
        need = self.n + extra
        hash_need = self.n - self.ranged + (extra if hashed else 0)
        if hash_need * 2 > self.keys.shape[0]:
            cap = 1 << int(hash_need * 4 - 1).bit_length()
            keys = np.full(cap, -1, np.int64)
            vals = np.zeros(cap, np.int32)
            _insert_all(keys, vals, self.keys, self.vals)
            self.keys, self.vals = keys, vals
        if need > self.vpns.shape[0]:
            vpns = np.zeros(max(need, 2 * self.vpns.shape[0]), np.int64)
            vpns[: self.n] = self.vpns[: self.n]
            self.vpns = vpns

    def add_range(self, start_vpn: int, npages: int) -> int:
        """Register npages contiguous pages at once (a trace region); returns the first id.

        The range must not overlap a registered range or hashed page.
        """
        with self._lock:
            return self._add_range(start_vpn, npages)

    def _add_range(self, start_vpn: int, npages: int) -> int:
        if npages <= 0:
            return self.n
        end = start_vpn + npages
        k = np.searchsorted(self.r_start, start_vpn)
        if (k > 0 and self.r_end[k - 1] > start_vpn) or (k < len(self.r_start) and self.r_start[k] < end):
            raise ValueError("overlapping page ranges")
        hashed = self.keys[self.keys >= 0]
        if ((hashed >= start_vpn) & (hashed < end)).any():
            raise ValueError("range overlaps pages already registered")
        base = self.n
        self._reserve(npages, hashed=False)
        self.vpns[base:base + npages] = np.arange(start_vpn, end, dtype=np.int64)
        self.n += npages
        self.ranged += npages
        self.r_start = np.insert(self.r_start, k, start_vpn)
        self.r_end = np.insert(self.r_end, k, end)
        self.r_base = np.insert(self.r_base, k, base)
        return base

    def vpns_of(self, first: int, end: int) -> np.ndarray:
        """The vpns of ids [first, end) (a copy: the array may be replaced as the map grows)."""
        with self._lock:
            return self.vpns[first:end].copy()

    def add_vpns(self, vpns: np.ndarray) -> np.ndarray:
        """Register pages in the given order (those already known keep their id); return ids."""
        vpns = np.asarray(vpns, np.int64)
        zeros = np.zeros(len(vpns), np.uint8)
        pid, _, _, _ = self.map_batch(vpns << PAGE_SHIFT, zeros, np.zeros(len(vpns), np.uint16), zeros)
        return pid

    def lookup(self, vpns: np.ndarray) -> np.ndarray:
        """Page ids of ``vpns``, -1 for pages not registered."""
        vpns = np.asarray(vpns, np.int64)
        with self._lock:
            if self.ranged == self.n:  # ranges only (a trace's regions before its replay):
                return self._lookup_ranges(vpns)  # numpy spares numba's first-call set-up
            out = np.empty(len(vpns), np.int32)
            _lookup_many(self.keys, self.vals, self.r_start, self.r_end, self.r_base, vpns, out)
        return out

    def _lookup_ranges(self, vpns: np.ndarray) -> np.ndarray:
        """What ``_lookup_many`` gives when every id is in a range (an empty hash table)."""
        k = np.searchsorted(self.r_start, vpns, side="right") - 1
        inside = k >= 0
        k[~inside] = 0
        if len(self.r_start):
            inside &= vpns < self.r_end[k]
            ids = self.r_base[k] + (vpns - self.r_start[k])
        else:
            ids = np.zeros(len(vpns), np.int64)
        return np.where(inside, ids, -1).astype(np.int32)

    def map_threads(self, addr: np.ndarray, size: np.ndarray, tid: np.ndarray, op: np.ndarray,
                    threads: int) -> tuple[list[tuple[np.ndarray, np.ndarray] | None], int, int]:
        """Page ids and (packed) ops of each thread (``parts[t]``: arrays of its own, or None);
        returns (parts, first new id, ids end). A thread id of ``threads`` or more is a
        ValueError."""
        cap = _room_per_thread(tid, threads)
        with self._lock:
            first_new = self.n
            extra = len(addr)  # new pages: room for one per access, more only when needed
            while True:
                self._reserve(extra)
                room = min(self.keys.shape[0] // 2 - (self.n - self.ranged),
                           self.vpns.shape[0] - self.n)
                parts, status, cap = self._map_once(addr, size, tid, op, cap, room)
                if status == 0:
                    break
                if status == -2:
                    extra = int(cap.sum())
            end = self.n
        return parts, first_new, end

    def map_ranged(self, addr: np.ndarray, size: np.ndarray, tid: np.ndarray, op: np.ndarray,
                   threads: int) -> list[tuple[np.ndarray, np.ndarray] | None] | None:
        """What map_threads gives for a batch all of whose pages are in the ranges, or None
        for any other. Without the lock, and while another thread maps (prefetch.py): ids in
        the ranges are fixed whatever was mapped before, and the hash table is not read."""
        parts, status, _ = self._map_once(addr, size, tid, op,
                                          _room_per_thread(tid, threads), 0)
        return parts if status == 0 else None

    def _map_once(self, addr, size, tid, op, cap: np.ndarray, room: int):
        """One mapping pass into arrays with room ``cap``: (parts, 0, cap); or (None, -2,
        cap) when more than ``room`` pages are new, (None, -3, exact room) when a thread's
        rows do not fit its room (pages registered so far are kept, with the same ids: the
        caller makes room and maps again). With ``room`` 0 (map_ranged) nothing is
        registered, and a thread's rows that do not fit are counted and mapped again here."""
        res = np.zeros(2, np.int64)
        while True:
            arrays, dst_pid, dst_op = _thread_arrays(cap)
            cursor = np.zeros(len(cap), np.int64)
            _map_threads(addr, size, tid, op, self.keys, self.vals, self.r_start, self.r_end,
                         self.r_base, self.n, self.vpns, dst_pid, dst_op, cap, cursor,
                         np.zeros(4, np.int64), room, res)
            if room:
                self.n = int(res[0])
            if res[1] == -3:  # more page-crossing accesses than room for them
                cap = np.zeros(len(cap), np.int64)
                _rows_per_thread(addr, size, tid, len(cap), cap)
                if room:  # (the room for new pages is the caller's to count again)
                    return None, -3, cap
                continue
            if res[1] == -2:
                return None, -2, cap
            break
        parts: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(cap)
        for t in np.flatnonzero(cursor).tolist():
            n = int(cursor[t])
            pid, opw = arrays[t]
            parts[t] = (pid[:n], opw[:n]) if n < len(pid) else (pid, opw)
        return parts, 0, cap

    def load_compiled(self) -> None:
        """Load map_threads' compiled code now (an empty batch of the trace's column types).

        The first compiled call of a process sets numba up (~0.1 s, holding its compiler
        lock); made here before the replay loads its loop, it lets the trace reader thread
        map its first batch while the loop's code is still loading, not after."""
        empty = {c: np.empty(0, t) for c, t in DTYPES.items()}
        for a in empty.values():  # read-only, as a trace file's columns come from pyarrow
            a.flags.writeable = False  # (a writable array is another signature to compile)
        self.map_threads(empty["addr"], empty["size"], empty["tid"], empty["op"], 1)

    def map_batch(self, addr: np.ndarray, size: np.ndarray, tid: np.ndarray, op: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Page ids per access (crossing accesses split); returns (pid, tid, packed op, first
        new id)."""
        rows = int(_count_rows(addr, size))
        out_pid = np.empty(rows, np.int32)
        out_tid = np.empty(rows, np.uint16)
        out_op = np.empty(rows, np.uint32)
        with self._lock:
            self._reserve(rows)
            first_new = self.n
            self.n = _map(addr, size, tid, op, self.keys, self.vals, self.r_start, self.r_end,
                          self.r_base, self.n, self.vpns, out_pid, out_tid, out_op,
                          np.full(4, -1, np.int64))
        return out_pid, out_tid, out_op, first_new
