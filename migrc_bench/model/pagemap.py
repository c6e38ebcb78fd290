"""Virtual page number → dense page id, and trace batches → per-access page ids.

Addresses in a trace are sparse (code low, heap, stacks high); the model's arrays are dense.
A compiled open-addressing hash table maps each vpn to an id assigned in order of first
appearance (so ids are deterministic), and splits page-crossing accesses in two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PAGE_SHIFT = 12
_EMPTY = np.int64(-1)
_MULT = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True)
def _slot(keys, vpn):
    mask = keys.shape[0] - 1
    h = np.int64((np.uint64(vpn) * _MULT) >> np.uint64(33)) & mask
    while keys[h] != -1 and keys[h] != vpn:
        h = (h + 1) & mask
    return h


@njit(cache=True)
def _insert_all(keys, vals, old_keys, old_vals):
    for i in range(old_keys.shape[0]):
        if old_keys[i] != -1:
            h = _slot(keys, old_keys[i])
            keys[h] = old_keys[i]
            vals[h] = old_vals[i]


@njit(cache=True)
def _map(addr, size, tid, op, keys, vals, n_pages, new_vpns, out_pid, out_tid, out_op):
    """Fill out_* (len(addr) + crossings rows); returns the new page count."""
    j = 0
    for i in range(addr.shape[0]):
        a = np.int64(addr[i])
        vpn = a >> PAGE_SHIFT
        last = (a + max(np.int64(size[i]), 1) - 1) >> PAGE_SHIFT
        for v in range(vpn, last + 1):
            h = _slot(keys, v)
            if keys[h] == -1:
                keys[h] = v
                vals[h] = n_pages
                new_vpns[n_pages] = v
                n_pages += 1
            out_pid[j] = vals[h]
            out_tid[j] = tid[i]
            out_op[j] = op[i]
            j += 1
    return n_pages


@njit(cache=True)
def _lookup_many(keys, vals, vpns, out):
    for i in range(vpns.shape[0]):
        h = _slot(keys, vpns[i])
        out[i] = vals[h] if keys[h] == vpns[i] else -1


class PageMap:
    """Grows as new pages appear; ``vpns[:n]`` lists the vpn of each id."""

    def __init__(self, capacity: int = 1 << 16):
        cap = 1 << max(4, int(capacity * 2 - 1).bit_length())
        self.keys = np.full(cap, -1, np.int64)
        self.vals = np.zeros(cap, np.int32)
        self.vpns = np.zeros(max(16, capacity), np.int64)
        self.n = 0

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        if need * 2 > self.keys.shape[0]:
            cap = 1 << int(need * 4 - 1).bit_length()
            keys = np.full(cap, -1, np.int64)
            vals = np.zeros(cap, np.int32)
            _insert_all(keys, vals, self.keys, self.vals)
            self.keys, self.vals = keys, vals
        if need > self.vpns.shape[0]:
            vpns = np.zeros(max(need, 2 * self.vpns.shape[0]), np.int64)
            vpns[: self.n] = self.vpns[: self.n]
            self.vpns = vpns

    def add_vpns(self, vpns: np.ndarray) -> np.ndarray:
        """Register pages in the given order (those already known keep their id); return ids."""
        vpns = np.asarray(vpns, np.int64)
        zeros = np.zeros(len(vpns), np.uint8)
        pid, _, _, _ = self.map_batch(vpns << PAGE_SHIFT, zeros, np.zeros(len(vpns), np.uint16), zeros)
        return pid

    def lookup(self, vpns: np.ndarray) -> np.ndarray:
        out = np.empty(len(vpns), np.int32)
        _lookup_many(self.keys, self.vals, np.asarray(vpns, np.int64), out)
        return out

    def map_batch(self, addr: np.ndarray, size: np.ndarray, tid: np.ndarray, op: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Page ids per access (crossing accesses split); returns (pid, tid, op, first new id)."""
        a = addr.astype(np.int64, copy=False)
        crossings = int(np.count_nonzero(((a & 4095) + np.maximum(size, 1).astype(np.int64)) > 4096))
        rows = len(addr) + crossings
        self._reserve(rows)
        out_pid = np.empty(rows, np.int32)
        out_tid = np.empty(rows, np.uint16)
        out_op = np.empty(rows, np.uint8)
        first_new = self.n
        self.n = _map(a, size, tid, op, self.keys, self.vals, self.n, self.vpns, out_pid,
                      out_tid, out_op)
        return out_pid, out_tid, out_op, first_new
