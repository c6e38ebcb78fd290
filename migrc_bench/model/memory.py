"""Memory nodes: frames, free lists and the kernel's watermark formulas (K§5.2)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PAGE_SIZE = 4096

# frame states
F_FREE, F_USED, F_HELD, F_TAGGED, F_KERNEL = 0, 1, 2, 3, 4


class FreeList:
    """A buddy free list reduced to what the model needs: take from the head, free to head or tail.

    migrc frees delayed (cache-cold) sources to the tail (FPI_TO_TAIL); ordinary frees go to the
    head, as pcp does. A ring buffer keeps both O(1) with no Python objects per frame.
    """

    def __init__(self, frames: np.ndarray):
        self.cap = max(1, len(frames))
        self.buf = np.empty(self.cap, np.int32)
        self.buf[: len(frames)] = frames
        self.head = 0
        self.size = len(frames)

    def __len__(self) -> int:
        return self.size

    def pop_one(self) -> int:
        """The head frame (the common case: one page, no array)."""
        if not self.size:
            raise IndexError("free list exhausted")
        frame = int(self.buf[self.head])
        self.head = self.head + 1 if self.head + 1 < self.cap else 0
        self.size -= 1
        return frame

    def pop(self, n: int = 1) -> np.ndarray:
        if n > self.size:
            raise IndexError("free list exhausted")
        if self.head + n <= self.cap:  # no wrap: a slice
            out = self.buf[self.head:self.head + n].copy()
        else:
            out = self.buf[(self.head + np.arange(n)) % self.cap]
        self.head = (self.head + n) % self.cap
        self.size -= n
        return out

    def push_tail(self, frame: int) -> None:
        assert self.size < self.cap
        self.buf[(self.head + self.size) % self.cap] = frame
        self.size += 1

    def push_head(self, frame: int) -> None:
        assert self.size < self.cap
        self.head = (self.head - 1) % self.cap
        self.buf[self.head] = frame
        self.size += 1

    def take_block(self, lo: int, hi: int) -> None:
        """Remove frames [lo, hi) (all free) from the list: a 2 MiB block for a THP."""
        order = (self.head + np.arange(self.size)) % self.cap
        frames = self.buf[order]
        keep = frames[(frames < lo) | (frames >= hi)]
        assert len(keep) == self.size - (hi - lo)
        self.buf[: len(keep)] = keep
        self.head = 0
        self.size = len(keep)

    def peek(self) -> int:
        return int(self.buf[self.head])


@dataclass
class Watermarks:
    min: int
    low: int
    high: int
    promo: int


@dataclass
class Node:
    nid: int
    first_frame: int
    pages: int
    latency_ns: float
    copy_bw: float  # bytes/s into this node
    has_cpus: bool
    wmark: Watermarks = field(default_factory=lambda: Watermarks(0, 0, 0, 0))
    free: FreeList = field(init=False)
    pending: int = 0  # migrc-held sources counted as free in watermark checks (K§3.2)

    def __post_init__(self) -> None:
        self.free = FreeList(np.arange(self.first_frame, self.first_frame + self.pages, dtype=np.int32))

    @property
    def nr_free(self) -> int:
        return len(self.free)

    def free_for_watermark(self) -> int:
        return len(self.free) + self.pending

    def watermark_ok(self, mark: int) -> bool:
        """zone_watermark_ok for order 0: free pages (migrc-held counted as free) above the mark."""
        return self.free_for_watermark() > mark


def min_free_kbytes(total_pages: int) -> int:
    """init_per_zone_wmark_min: int_sqrt(lowmem_kbytes * 16), clamped to [128, 262144]."""
    lowmem_kb = total_pages * PAGE_SIZE // 1024
    return int(min(max(math.isqrt(lowmem_kb * 16), 128), 262144))


def set_watermarks(nodes: list[Node], min_free_kb: int, watermark_scale_factor: int) -> None:
    """__setup_per_zone_wmarks: min split by size; gap = max(min/4, managed·wsf/10000)."""
    total = sum(n.pages for n in nodes)
    min_pages_total = min_free_kb * 1024 // PAGE_SIZE
    for n in nodes:
        zmin = min_pages_total * n.pages // total
        gap = max(zmin // 4, n.pages * watermark_scale_factor // 10000)
        n.wmark = Watermarks(zmin, zmin + gap, zmin + 2 * gap, zmin + 3 * gap)


class Lru:
    """The anonymous LRU lists of every node, inactive and active, as doubly linked lists over
    frame numbers (no Python objects), with each frame's PG_active and PG_referenced.

    Folios join a list at its head (lruvec_add_folio: the list their PG_active names);
    reclaim isolates from the tail. List ``2 * nid + active`` belongs to node ``nid``. A folio
    is its first frame; ``nr[f]`` its base pages (512 for a THP), which list sizes count
    (lruvec_add_folio: folio_nr_pages).
    """

    def __init__(self, nframes: int, nnodes: int, nr: np.ndarray | None = None):
        self.prev = np.full(nframes, -1, np.int32)
        self.next = np.full(nframes, -1, np.int32)
        self.on = np.full(nframes, -1, np.int8)  # the list a frame is on, -1 none
        self.active = np.zeros(nframes, np.bool_)  # PG_active
        self.referenced = np.zeros(nframes, np.bool_)  # PG_referenced
        self.nr = nr  # None: base pages only (every folio one page, no lookups)
        self.head = [-1] * (2 * nnodes)
        self.tail = [-1] * (2 * nnodes)
        self.size = [0] * (2 * nnodes)

    def count(self, nid: int, active: bool) -> int:
        return self.size[2 * nid + int(active)]

    def fill(self, nid: int, frames: np.ndarray) -> None:
        """Initialise node ``nid``'s empty inactive list with ``frames`` from head to tail."""
        li = 2 * nid
        assert self.size[li] == 0
        if len(frames) == 0:
            return
        frames = np.asarray(frames, np.int32)
        self.prev[frames[1:]] = frames[:-1]
        self.prev[frames[0]] = -1
        self.next[frames[:-1]] = frames[1:]
        self.next[frames[-1]] = -1
        self.on[frames] = li
        self.active[frames] = False
        self.head[li], self.tail[li] = int(frames[0]), int(frames[-1])
        self.size[li] = len(frames) if self.nr is None else int(self.nr[frames].sum())

    def add(self, f: int, nid: int) -> None:
        """lruvec_add_folio: the head of the inactive or active list, by PG_active."""
        assert self.on[f] < 0
        li = 2 * nid + int(self.active[f])
        h = self.head[li]
        self.prev[f] = -1
        self.next[f] = h
        if h >= 0:
            self.prev[h] = f
        else:
            self.tail[li] = f
        self.head[li] = f
        self.on[f] = li
        self.size[li] += 1 if self.nr is None else int(self.nr[f])

    def add_head(self, nid: int, f: int) -> None:
        self.add(f, nid)

    def remove(self, nid: int, f: int) -> None:
        """Take ``f`` off whichever of node ``nid``'s lists it is on."""
        li = int(self.on[f])
        assert li >= 0 and li // 2 == nid
        p, n = int(self.prev[f]), int(self.next[f])
        if p >= 0:
            self.next[p] = n
        else:
            self.head[li] = n
        if n >= 0:
            self.prev[n] = p
        else:
            self.tail[li] = p
        self.prev[f] = self.next[f] = -1
        self.on[f] = -1
        self.size[li] -= 1 if self.nr is None else int(self.nr[f])

    def isolate(self, nid: int, active: bool, n: int) -> list[int]:
        """isolate_lru_folios: folios from the tail of one list, oldest first, until ``n``
        base pages are taken ("Account all pages in a folio": one THP may end the round)."""
        li = 2 * nid + int(active)
        out = []
        taken = 0
        while taken < n and self.tail[li] >= 0:
            f = self.tail[li]
            self.remove(nid, f)
            out.append(f)
            taken += 1 if self.nr is None else int(self.nr[f])
        return out
