"""A set of distinct 4 KiB pages with what the trace did to each: the kinds of access it saw,
how many accesses it had and when it was first touched (``trace info`` and the pre-pass).

An open-addressing hash table compiled with numba: one pass over each batch, memory
proportional to the distinct pages (not to the trace), which fits traces with up to tens of
millions of distinct pages. Merging ``numpy.unique`` results per batch would re-sort the
growing set every batch instead.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .native import PAGE_SHIFT

EMPTY = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # page numbers are < 2**52
FETCH, READ, WRITE = 1, 2, 4
OP_FLAGS = np.array([FETCH, READ, WRITE, READ | WRITE], np.uint8)  # ifetch, load, store, modify
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@nb.njit(cache=True, boundscheck=False)
def _insert(keys, flags, counts, seq, count, limit, shift, op, addr, size, start, last_page,
            last_slot):
    """Add the pages of records ``start..``: OR the access kind into the page's flags, count
    the access, and number new pages in order of first touch. Stop early (returning the record
    to resume at) when the table holds ``limit`` keys. Returns (count, next_record).

    ``last_page``/``last_slot`` remember, per op, the page last seen and its slot: fetches and
    data accesses alternate between a few pages, so most records need no probe."""
    mask = keys.shape[0] - 1
    n = op.shape[0]
    for i in range(start, n):
        o = op[i]
        f = OP_FLAGS[o]
        a = addr[i]
        first = a >> np.uint64(PAGE_SHIFT)
        s = np.uint64(size[i]) if size[i] > 0 else np.uint64(1)
        end = a + s - np.uint64(1)
        last = end >> np.uint64(PAGE_SHIFT) if end >= a else first
        if first == last and first == last_page[o]:
            counts[last_slot[o]] += 1  # the same page as this op's last record: flags already set
            continue
        if first != last and count + 2 > limit:
            return count, i  # room for both pages first: a record is never counted twice
        p = first
        while True:
            slot = (p * _GOLDEN) >> np.uint64(shift)
            while True:
                k = keys[slot]
                if k == p:
                    flags[slot] |= f
                    break
                if k == EMPTY:
                    if count >= limit:
                        return count, i
                    keys[slot] = p
                    flags[slot] = f
                    seq[slot] = count
                    count += 1
                    break
                slot = (slot + np.uint64(1)) & np.uint64(mask)
            counts[slot] += 1
            if p == last:
                break
            p = last
        last_page[o] = last
        last_slot[o] = slot
    return count, n


@nb.njit(cache=True, boundscheck=False)
def count_records(op, tid, by_op, by_thread):
    """Records per op and per thread id (one pass, no temporary arrays)."""
    for i in range(op.shape[0]):
        by_op[op[i]] += 1
        by_thread[tid[i]] += 1


@nb.njit(cache=True)
def _rehash(keys, flags, counts, seq, new_keys, new_flags, new_counts, new_seq, shift):
    mask = new_keys.shape[0] - 1
    for j in range(keys.shape[0]):
        p = keys[j]
        if p != EMPTY:
            slot = (p * _GOLDEN) >> np.uint64(shift)
            while new_keys[slot] != EMPTY:
                slot = (slot + np.uint64(1)) & np.uint64(mask)
            new_keys[slot] = p
            new_flags[slot] = flags[j]
            new_counts[slot] = counts[j]
            new_seq[slot] = seq[j]


class PageSet:
    """Distinct pages touched, each with FETCH/READ/WRITE bits OR-ed over all its accesses,
    its access count (an access over a page boundary counts on both pages) and its rank in
    first-touch order."""

    def __init__(self, bits: int = 16):
        self._alloc(bits)
        self.count = 0

    def _alloc(self, bits: int) -> None:
        self.bits = bits
        self.keys = np.full(1 << bits, EMPTY, np.uint64)
        self.flags = np.zeros(1 << bits, np.uint8)
        self.counts = np.zeros(1 << bits, np.int64)
        self.seq = np.zeros(1 << bits, np.int64)

    def add(self, op: np.ndarray, addr: np.ndarray, size: np.ndarray) -> None:
        """Add every page touched by these records (an access over a page boundary touches two)."""
        start = 0
        n = len(op)
        last_page = np.full(4, EMPTY, np.uint64)  # slots move when the table grows: per call
        last_slot = np.zeros(4, np.uint64)
        while start < n:
            limit = (1 << self.bits) // 2  # load factor <= 1/2 keeps probes short
            self.count, start = _insert(self.keys, self.flags, self.counts, self.seq, self.count,
                                        limit, 64 - self.bits, op, addr, size, start,
                                        last_page, last_slot)
            if start < n:
                self._grow()
                last_page[:] = EMPTY

    def _grow(self) -> None:
        old = self.keys, self.flags, self.counts, self.seq
        self._alloc(self.bits + 1)
        _rehash(*old, self.keys, self.flags, self.counts, self.seq, 64 - self.bits)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """(pages, flags), sorted by page."""
        used = self.keys != EMPTY
        pages, flags = self.keys[used], self.flags[used]
        order = np.argsort(pages)
        return pages[order], flags[order]

    def in_touch_order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pages, flags, access counts), in order of first touch."""
        used = np.flatnonzero(self.keys != EMPTY)
        used = used[np.argsort(self.seq[used])]
        return self.keys[used], self.flags[used], self.counts[used]

    def __len__(self) -> int:
        return self.count
