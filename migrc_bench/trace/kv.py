"""``trace gen kv``: a memcached-like key-value store under YCSB zipfian requests.

The store and the requests are those of ``benchmarks/programs/kv.c`` (see its header): items
of a 48-byte header and the value in chunks carved from 1 MiB slab pages, a hash table of
2^hashpower bucket heads (16, doubled while there are more than 1.5 items per bucket, as
memcached), chains headed by the newest item, 4096 item locks, a LIFO free list of chunks.
The load phase inserts keys 0..K-1 in order (not traced); each thread then serves its share
of the operations from its request buffer (4096 requests per batch):

* get: lock the key's item lock, walk the bucket's chain comparing keys, copy the value into
  the connection's write buffer (glibc's AVX2 memcpy), count the hit, unlock;
* put (a share ``-w`` of the requests): take a chunk off the free list, write its header and
  the value (from the connection's read buffer), link it where the old item was, put the old
  chunk on the free list. Hot keys' newest versions thus move between the recently freed
  chunks, as memcached's do.

Keys follow YCSB's scrambled zipfian generator: a zipfian rank (Gray et al.'s method as in
YCSB's ZipfianGenerator, theta 0.99 by default) hashed with FNV-1a-64, modulo the key count,
so the hot keys are spread over the items. Every thread draws from its own splitmix64 stream
(seed + thread). Read-mostly with a hot set: the case migrc was built for.

The trace is what kv.c's ``serve`` does, compiled by GCC 12 -O2, access for access (its
instruction offsets from ``objdump -d kv``): the request load, the lock ``xchg`` (one
read-modify-write), the bucket and chain loads, the register spills around the memcpy call,
the counter increments; the memcpy as ``gencore.emit_memcpy``. Not modelled: the PLT's GOT
load and the two libc tunables memcpy reads per call (about 3 % of the records, in libc's
data), and the client that fills the request buffers (outside ``serve``, as in the real
trace's cut).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from ..errors import UserError
from .gencore import (CODE_BASE, LIB_BASE, OP_LOAD, OP_MODIFY, OP_STORE, BlockFiller, CodeMap,
                      GenParams, GenResult, Heap, Progress, emit, emit_memcpy, generate_trace,
                      join_site_tables, memcpy_records, split_evenly, stack_regions,
                      stack_tops)
from .native import ROW_GROUP_ROWS, TraceMeta
from .sizes import SizeEstimate, estimate

HDR = 48
SLAB_BYTES = 1 << 20
N_LOCKS = 4096
BATCH = 4096
BUF_BYTES = 16384
HASHPOWER_DEFAULT = 16
MAX_THREADS = 4096
STORE_BYTES = 40 + 4 * N_LOCKS            # buckets, mask, free, cas, slab_lock+pad, locks
CONN_BYTES = 24 + 2 * BUF_BYTES           # hits, misses, puts, wbuf, rbuf
# item fields
I_HNEXT, I_NEXT, I_KEY, I_NBYTES, I_CAS, I_DATA = 0x0, 0x8, 0x10, 0x18, 0x20, 0x30
# store fields
ST_BUCKETS, ST_MASK, ST_FREE, ST_CAS, ST_SLAB_LOCK, ST_LOCKS = 0x0, 0x8, 0x10, 0x18, 0x20, 0x28
# conn fields
CN_HITS, CN_MISSES, CN_PUTS, CN_WBUF, CN_RBUF = 0x0, 0x8, 0x10, 0x18, 0x18 + BUF_BYTES

# Text of the reference build (gcc 12.2 -O2 -fopenmp -no-pie), offsets from .text 0x401000.
FUNCTIONS = {"main": (0x120, 0x5D7), "serve": (0x7F0, 0x207), "client": (0xA00, 0x275),
             "main._omp_fn.0": (0xC80, 0x157)}
L, S_, M = OP_LOAD, OP_STORE, OP_MODIFY
_SITES = tuple(("" + name, "serve", off, isize, op, dsize) for name, off, isize, op, dsize in (
    ("push_r15", 0x08, 2, S_, 8), ("push_r14", 0x13, 2, S_, 8), ("push_r13", 0x1C, 2, S_, 8),
    ("push_r12", 0x24, 2, S_, 8), ("push_rbp", 0x26, 1, S_, 8), ("push_rbx", 0x27, 1, S_, 8),
    ("spill_end", 0x2C, 5, S_, 8), ("spill_wbuf", 0x35, 5, S_, 8),
    ("spill_nbytes", 0x3A, 5, S_, 4),
    ("req", 0x4A, 3, L, 8), ("lock", 0x93, 3, M, 4), ("mask", 0x9A, 4, L, 8),
    ("buckets", 0x9E, 3, L, 8), ("bucket", 0xAB, 3, L, 8), ("chain_next", 0xBB, 3, L, 8),
    ("key_cmp", 0xC3, 4, L, 8), ("nbytes", 0xCE, 3, L, 4), ("wbuf", 0xD1, 5, L, 8),
    ("spill_c", 0xDA, 5, S_, 8), ("spill_s", 0xDF, 5, S_, 8), ("call_get", 0xE4, 5, S_, 8),
    ("reload_c", 0xE9, 5, L, 8), ("reload_s", 0xEE, 5, L, 8), ("hits", 0xF3, 4, M, 8),
    ("unlock", 0xFB, 7, S_, 4), ("end_cmp", 0x102, 5, L, 8),
    ("pop_rbx", 0x111, 1, L, 8), ("pop_rbp", 0x112, 1, L, 8), ("pop_r12", 0x113, 2, L, 8),
    ("pop_r13", 0x115, 2, L, 8), ("pop_r14", 0x117, 2, L, 8), ("pop_r15", 0x119, 2, L, 8),
    ("misses", 0x125, 5, M, 8),
    ("slab_lock", 0x13B, 2, M, 4), ("free", 0x141, 4, L, 8), ("spill_lock", 0x145, 5, S_, 8),
    ("nw_next", 0x151, 4, L, 8), ("free_set", 0x159, 4, S_, 8), ("slab_unlock", 0x15D, 8, S_, 4),
    ("nw_key", 0x165, 4, S_, 8), ("spill_s2", 0x169, 5, S_, 8), ("cas", 0x16E, 4, L, 8),
    ("nbytes_arg", 0x172, 4, L, 4), ("spill_nw", 0x176, 5, S_, 8), ("spill_c2", 0x17B, 5, S_, 8),
    ("nw_nbytes", 0x184, 4, S_, 4), ("cas_set", 0x188, 4, S_, 8), ("nw_cas", 0x18C, 4, S_, 8),
    ("call_put", 0x190, 5, S_, 8), ("reload_c2", 0x198, 5, L, 8), ("reload_nw", 0x19D, 5, L, 8),
    ("reload_s2", 0x1A2, 5, L, 8), ("old_hnext", 0x1A9, 3, L, 8), ("reload_lock", 0x1AC, 5, L, 8),
    ("nw_hnext", 0x1B1, 3, S_, 8), ("link_set", 0x1B4, 3, S_, 8), ("slab_lock2", 0x1C3, 2, M, 4),
    ("free2", 0x1C9, 4, L, 8), ("old_next", 0x1CD, 4, S_, 8), ("free_set2", 0x1D1, 4, S_, 8),
    ("slab_unlock2", 0x1D5, 8, S_, 4), ("puts", 0x1DD, 5, M, 8),
    ("buckets_new", 0x1F0, 3, L, 8), ("mask_new", 0x1F3, 4, L, 8), ("bucket_new", 0x1FB, 3, L, 8),
    ("nw_hnext_new", 0x1FE, 3, S_, 8), ("bucket_set", 0x201, 3, S_, 8),
))
CODE = CodeMap(FUNCTIONS, _SITES, CODE_BASE)
# glibc's __memmove_avx_unaligned_erms (its vector load and store, and its return)
LIBC = CodeMap({"__memmove_avx_unaligned_erms": (0x1A0, 0x6C0)},
               (("memcpy_load", "__memmove_avx_unaligned_erms", 0x20, 4, L, 32),
                ("memcpy_store", "__memmove_avx_unaligned_erms", 0x40, 4, S_, 32),
                ("memcpy_ret", "__memmove_avx_unaligned_erms", 0x5A, 1, L, 8)),
               LIB_BASE, "libc")
SITES, SITE = join_site_tables(CODE, LIBC)
_PROLOGUE = [SITE[n] for n in ("push_r15", "push_r14", "push_r13", "push_r12", "push_rbp",
                                "push_rbx")]
_POPS = [SITE[n] for n in ("pop_rbx", "pop_rbp", "pop_r12", "pop_r13", "pop_r14", "pop_r15")]
P0, POP0 = _PROLOGUE[0], _POPS[0]
assert _PROLOGUE == list(range(P0, P0 + 6)) and _POPS == list(range(POP0, POP0 + 6))
(S_SPILL_END, S_SPILL_WBUF, S_SPILL_NBYTES, S_REQ, S_LOCK, S_MASK, S_BUCKETS, S_BUCKET,
 S_CHAIN_NEXT, S_KEY_CMP, S_NBYTES, S_WBUF, S_SPILL_C, S_SPILL_S, S_CALL_GET, S_RELOAD_C,
 S_RELOAD_S, S_HITS, S_UNLOCK, S_END_CMP, S_MISSES, S_SLAB_LOCK, S_FREE, S_SPILL_LOCK,
 S_NW_NEXT, S_FREE_SET, S_SLAB_UNLOCK, S_NW_KEY, S_SPILL_S2, S_CAS, S_NBYTES_ARG, S_SPILL_NW,
 S_SPILL_C2, S_NW_NBYTES, S_CAS_SET, S_NW_CAS, S_CALL_PUT, S_RELOAD_C2, S_RELOAD_NW,
 S_RELOAD_S2, S_OLD_HNEXT, S_RELOAD_LOCK, S_NW_HNEXT, S_LINK_SET, S_SLAB_LOCK2, S_FREE2,
 S_OLD_NEXT, S_FREE_SET2, S_SLAB_UNLOCK2, S_PUTS, S_BUCKETS_NEW, S_MASK_NEW, S_BUCKET_NEW,
 S_NW_HNEXT_NEW, S_BUCKET_SET, S_MC_LOAD, S_MC_STORE, S_MC_RET) = (np.int64(SITE[n]) for n in (
    "spill_end", "spill_wbuf", "spill_nbytes", "req", "lock", "mask", "buckets", "bucket",
    "chain_next", "key_cmp", "nbytes", "wbuf", "spill_c", "spill_s", "call_get", "reload_c",
    "reload_s", "hits", "unlock", "end_cmp", "misses", "slab_lock", "free", "spill_lock",
    "nw_next", "free_set", "slab_unlock", "nw_key", "spill_s2", "cas", "nbytes_arg", "spill_nw",
    "spill_c2", "nw_nbytes", "cas_set", "nw_cas", "call_put", "reload_c2", "reload_nw",
    "reload_s2", "old_hnext", "reload_lock", "nw_hnext", "link_set", "slab_lock2", "free2",
    "old_next", "free_set2", "slab_unlock2", "puts", "buckets_new", "mask_new", "bucket_new",
    "nw_hnext_new", "bucket_set", "memcpy_load", "memcpy_store", "memcpy_ret"))

# serve()'s entry stack pointer below each thread's stack top (thread 0: main ->
# GOMP_parallel -> main._omp_fn.0 -> serve); its frame is 6 pushes + 0x48 below it.
ENTRY_SP_MASTER = 0x1B8
ENTRY_SP_WORKER = 0x0E8
FRAME = 48 + 0x48


@dataclass(frozen=True)
class KvParams(GenParams):
    keys: int
    value_size: int
    theta: float
    put_share: float
    ops: int
    threads: int
    seed: int

    @property
    def chunk(self) -> int:
        return (HDR + self.value_size + 7) & ~7

    @property
    def items(self) -> int:
        """Chunks: one per key plus the spares the puts in flight need (kv.c: K + 2T + 1)."""
        return self.keys + 2 * self.threads + 1

    @property
    def hashpower(self) -> int:
        hp = HASHPOWER_DEFAULT
        while self.keys > 3 * (1 << hp) // 2:
            hp += 1
        return hp

    @property
    def work_units(self) -> int:
        return self.ops

    generator = "kv"
    work_unit = "operation"

    def extra_json(self) -> dict[str, Any]:
        return {"hashpower": self.hashpower, "chunk": self.chunk, "batch": BATCH}


def click_params() -> list:
    import click

    return [
        click.Option(["-k", "--keys"], type=click.IntRange(2, 2**31), default=100_000,
                     show_default=True, help="Keys (items loaded before the run)."),
        click.Option(["-v", "--value-size", "value_size"], type=click.IntRange(1, SLAB_BYTES - HDR),
                     default=1000, show_default=True,
                     help="Value bytes (YCSB's record: 10 fields of 100 bytes)."),
        click.Option(["-z", "--theta"], type=click.FloatRange(0.0, 1.0, max_open=True),
                     default=0.99, show_default=True, help="Zipfian constant (YCSB's 0.99)."),
        click.Option(["-w", "--puts", "put_share"], type=click.FloatRange(0.0, 1.0), default=0.05,
                     show_default=True, help="Share of puts (the rest are gets)."),
        click.Option(["-n", "--ops"], type=click.IntRange(1, 2**62), default=None,
                     help="Operations [default: 10 x keys]."),
        click.Option(["-t", "--threads"], type=click.IntRange(1, MAX_THREADS), default=1,
                     show_default=True, help="Server threads; thread t serves operations "
                                             "[N t/T, N (t+1)/T), each its own request stream."),
        click.Option(["--seed"], type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
                     help="Seed of the request streams (thread t: seed + t)."),
    ]


def resolve_params(keys: int = 100_000, value_size: int = 1000, theta: float = 0.99,
                   put_share: float = 0.05, ops: int | None = None, threads: int = 1,
                   seed: int = 0) -> KvParams:
    if not 2 <= int(keys) <= 2**31:
        raise UserError(f"keys (-k) must be between 2 and 2^31, got {keys}")
    if not 1 <= int(value_size) <= SLAB_BYTES - HDR:
        raise UserError(f"value size (-v) must be between 1 and {SLAB_BYTES - HDR}, got "
                        f"{value_size}")
    if not 0.0 <= float(theta) < 1.0:
        raise UserError(f"theta (-z) must be in [0, 1), got {theta}")
    if not 0.0 <= float(put_share) <= 1.0:
        raise UserError(f"put share (-w) must be in [0, 1], got {put_share}")
    if not 1 <= int(threads) <= MAX_THREADS:
        raise UserError(f"threads (-t) must be between 1 and {MAX_THREADS}, got {threads}")
    n_ops = 10 * int(keys) if ops is None else int(ops)
    if n_ops < 1:
        raise UserError(f"operations (-n) must be at least 1, got {ops}")
    return KvParams(int(keys), int(value_size), float(theta), float(put_share), n_ops,
                    int(threads), int(seed))


# ---- the request streams (kv.c's client) ----------------------------------------------------
@nb.njit(inline="always")
def _splitmix(x, t):
    z = x[t] + np.uint64(0x9E3779B97F4A7C15)
    x[t] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always")
def _uniform(x, t):
    return np.float64(_splitmix(x, t) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@nb.njit(inline="always")
def _fnv1a64(v):
    h = np.uint64(0xCBF29CE484222325)
    for _ in range(8):
        h ^= v & np.uint64(0xFF)
        v >>= np.uint64(8)
        h *= np.uint64(1099511628211)
    if np.int64(h) < 0:
        h = np.uint64(0) - h
    return h


@nb.njit(cache=True, nogil=True)
def zipf_constants(n, theta):
    """(zetan, eta, alpha, 0.5^theta) of YCSB's ZipfianGenerator over n items."""
    zetan = 0.0
    for i in range(1, n + 1):
        zetan += 1.0 / np.float64(i) ** theta
    zeta2 = 1.0 + 0.5 ** theta
    eta = (1.0 - (2.0 / np.float64(n)) ** (1.0 - theta)) / (1.0 - zeta2 / zetan)
    return zetan, eta, 1.0 / (1.0 - theta), 0.5 ** theta


@nb.njit(inline="always")
def _request(x, t, zc, n_keys, put_share):
    """The next request of thread t: (key, is_put), as kv.c's client draws it."""
    u = _uniform(x, t)
    uz = u * zc[0]
    if uz < 1.0:
        rank = np.uint64(0)
    elif uz < 1.0 + zc[3]:
        rank = np.uint64(1)
    else:
        rank = np.uint64(np.float64(n_keys) * (zc[1] * u - zc[1] + 1.0) ** zc[2])
    key = np.int64(_fnv1a64(rank) % np.uint64(n_keys))
    return key, _uniform(x, t) < put_share


@nb.njit(inline="always")
def _mix64(k):
    k = np.uint64(k)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    k ^= k >> np.uint64(33)
    return k


# ---- the store -------------------------------------------------------------------------------
@nb.njit(cache=True, nogil=True)
def load_store(n_keys, n_items, mask, bucket, hnext, key, inext, st):
    """kv.c's load phase: keys 0..K-1 in order at chain heads; the spare chunks on the free
    list, lowest first. st[0] is the free list head; returns the longest chain."""
    bucket[:] = -1
    for k in range(n_keys):
        b = np.int64(_mix64(k) & np.uint64(mask))
        key[k] = k
        hnext[k] = bucket[b]
        bucket[b] = k
    st[0] = -1
    for i in range(n_items - 1, n_keys - 1, -1):
        inext[i] = st[0]
        st[0] = i
    longest = 0
    for b in range(bucket.shape[0]):
        n = 0
        i = bucket[b]
        while i >= 0:
            n += 1
            i = hnext[i]
        longest = max(longest, n)
    return longest


# cfg slots
(C_THREADS, C_KEYS, C_MASK, C_NBYTES, C_CHUNK, C_PER_SLAB, C_STORE, C_BUCKETS, C_SEQ_END,
 C_MAX_REC) = range(10)
N_CFG = 10


@nb.njit(inline="always")
def _item(i, slabs, chunk, per_slab):
    return slabs[i // per_slab] + (i % per_slab) * chunk


@nb.njit(cache=True, nogil=True, _nrt=False)
def _fill(cfg, st, fcfg, zc, x, lo, cnt, entry_sp, reqs, conns, slabs, bucket, hnext, key, inext,
          sites, o_tid, o_op, o_addr, o_size, pos):
    """Operations from position st[1] until the block is nearly full (st[0]: free list head,
    st[2]: the CAS counter)."""
    out = (o_tid, o_op, o_addr, o_size)
    cap = len(o_tid)
    threads = cfg[C_THREADS]
    n_keys = cfg[C_KEYS]
    mask = np.uint64(cfg[C_MASK])
    nbytes = cfg[C_NBYTES]
    chunk = cfg[C_CHUNK]
    per_slab = cfg[C_PER_SLAB]
    store = cfg[C_STORE]
    buckets = cfg[C_BUCKETS]
    put_share = fcfg[0]
    seq = st[1]
    while seq < cfg[C_SEQ_END]:
        if pos + cfg[C_MAX_REC] > cap:
            break
        t = seq % threads
        k = seq // threads
        seq += 1
        if k >= cnt[t]:
            continue
        rsp = entry_sp[t] - FRAME
        j = k % BATCH
        if j == 0:   # serve()'s prologue
            for r in range(6):
                pos = emit(out, pos, True, t, sites, P0 + r, entry_sp[t] - 8 * (r + 1))
            pos = emit(out, pos, True, t, sites, S_SPILL_END, rsp + 0x8)
            pos = emit(out, pos, True, t, sites, S_SPILL_WBUF, rsp + 0x30)
            pos = emit(out, pos, True, t, sites, S_SPILL_NBYTES, rsp + 0x3C)
        want, is_put = _request(x, t, zc, n_keys, put_share)
        conn = conns[t]
        pos = emit(out, pos, True, t, sites, S_REQ, reqs[t] + 8 * j)
        hv = _mix64(want)
        lock = store + ST_LOCKS + 4 * np.int64(hv & np.uint64(N_LOCKS - 1))
        pos = emit(out, pos, True, t, sites, S_LOCK, lock)
        pos = emit(out, pos, True, t, sites, S_MASK, store + ST_MASK)
        pos = emit(out, pos, True, t, sites, S_BUCKETS, store + ST_BUCKETS)
        b = np.int64(hv & mask)
        link = buckets + 8 * b
        pos = emit(out, pos, True, t, sites, S_BUCKET, link)
        it = bucket[b]
        prev = -1
        while it >= 0:
            addr = _item(it, slabs, chunk, per_slab)
            pos = emit(out, pos, True, t, sites, S_KEY_CMP, addr + I_KEY)
            if key[it] == want:
                break
            link = addr + I_HNEXT
            pos = emit(out, pos, True, t, sites, S_CHAIN_NEXT, link)
            prev = it
            it = hnext[it]
        if not is_put:
            if it >= 0:
                addr = _item(it, slabs, chunk, per_slab)
                pos = emit(out, pos, True, t, sites, S_NBYTES, addr + I_NBYTES)
                pos = emit(out, pos, True, t, sites, S_WBUF, rsp + 0x30)
                pos = emit(out, pos, True, t, sites, S_SPILL_C, rsp + 0x18)
                pos = emit(out, pos, True, t, sites, S_SPILL_S, rsp + 0x10)
                pos = emit(out, pos, True, t, sites, S_CALL_GET, rsp - 8)
                pos = emit_memcpy(out, pos, t, sites, S_MC_LOAD, S_MC_STORE, conn + CN_WBUF,
                                  addr + I_DATA, nbytes)
                pos = emit(out, pos, True, t, sites, S_MC_RET, rsp - 8)
                pos = emit(out, pos, True, t, sites, S_RELOAD_C, rsp + 0x18)
                pos = emit(out, pos, True, t, sites, S_RELOAD_S, rsp + 0x10)
                pos = emit(out, pos, True, t, sites, S_HITS, conn + CN_HITS)
            else:
                pos = emit(out, pos, True, t, sites, S_MISSES, conn + CN_MISSES)
        else:
            slab_lock = store + ST_SLAB_LOCK
            pos = emit(out, pos, True, t, sites, S_SLAB_LOCK, slab_lock)
            pos = emit(out, pos, True, t, sites, S_FREE, store + ST_FREE)
            pos = emit(out, pos, True, t, sites, S_SPILL_LOCK, rsp + 0x28)
            nw = st[0]
            nw_addr = _item(nw, slabs, chunk, per_slab)
            pos = emit(out, pos, True, t, sites, S_NW_NEXT, nw_addr + I_NEXT)
            st[0] = inext[nw]
            pos = emit(out, pos, True, t, sites, S_FREE_SET, store + ST_FREE)
            pos = emit(out, pos, True, t, sites, S_SLAB_UNLOCK, slab_lock)
            pos = emit(out, pos, True, t, sites, S_NW_KEY, nw_addr + I_KEY)
            key[nw] = want
            pos = emit(out, pos, True, t, sites, S_SPILL_S2, rsp + 0x20)
            pos = emit(out, pos, True, t, sites, S_CAS, store + ST_CAS)
            pos = emit(out, pos, True, t, sites, S_NBYTES_ARG, rsp + 0x3C)
            pos = emit(out, pos, True, t, sites, S_SPILL_NW, rsp + 0x18)
            pos = emit(out, pos, True, t, sites, S_SPILL_C2, rsp + 0x10)
            pos = emit(out, pos, True, t, sites, S_NW_NBYTES, nw_addr + I_NBYTES)
            pos = emit(out, pos, True, t, sites, S_CAS_SET, store + ST_CAS)
            pos = emit(out, pos, True, t, sites, S_NW_CAS, nw_addr + I_CAS)
            pos = emit(out, pos, True, t, sites, S_CALL_PUT, rsp - 8)
            pos = emit_memcpy(out, pos, t, sites, S_MC_LOAD, S_MC_STORE, nw_addr + I_DATA,
                              conn + CN_RBUF, nbytes)
            pos = emit(out, pos, True, t, sites, S_MC_RET, rsp - 8)
            pos = emit(out, pos, True, t, sites, S_RELOAD_C2, rsp + 0x10)
            pos = emit(out, pos, True, t, sites, S_RELOAD_NW, rsp + 0x18)
            pos = emit(out, pos, True, t, sites, S_RELOAD_S2, rsp + 0x20)
            if it >= 0:
                addr = _item(it, slabs, chunk, per_slab)
                pos = emit(out, pos, True, t, sites, S_OLD_HNEXT, addr + I_HNEXT)
                pos = emit(out, pos, True, t, sites, S_RELOAD_LOCK, rsp + 0x28)
                pos = emit(out, pos, True, t, sites, S_NW_HNEXT, nw_addr + I_HNEXT)
                pos = emit(out, pos, True, t, sites, S_LINK_SET, link)
                hnext[nw] = hnext[it]
                if prev >= 0:
                    hnext[prev] = nw
                else:
                    bucket[b] = nw
                pos = emit(out, pos, True, t, sites, S_SLAB_LOCK2, slab_lock)
                pos = emit(out, pos, True, t, sites, S_FREE2, store + ST_FREE)
                pos = emit(out, pos, True, t, sites, S_OLD_NEXT, addr + I_NEXT)
                inext[it] = st[0]
                pos = emit(out, pos, True, t, sites, S_FREE_SET2, store + ST_FREE)
                st[0] = it
                pos = emit(out, pos, True, t, sites, S_SLAB_UNLOCK2, slab_lock)
            else:
                pos = emit(out, pos, True, t, sites, S_BUCKETS_NEW, store + ST_BUCKETS)
                pos = emit(out, pos, True, t, sites, S_MASK_NEW, store + ST_MASK)
                head = buckets + 8 * b
                pos = emit(out, pos, True, t, sites, S_BUCKET_NEW, head)
                pos = emit(out, pos, True, t, sites, S_NW_HNEXT_NEW, nw_addr + I_HNEXT)
                pos = emit(out, pos, True, t, sites, S_BUCKET_SET, head)
                hnext[nw] = bucket[b]
                bucket[b] = nw
            st[2] += 1
            pos = emit(out, pos, True, t, sites, S_PUTS, conn + CN_PUTS)
        pos = emit(out, pos, True, t, sites, S_UNLOCK, lock)
        pos = emit(out, pos, True, t, sites, S_END_CMP, rsp + 0x8)
        if j == BATCH - 1 or k == cnt[t] - 1:   # serve()'s epilogue (its ret ends the cut)
            for r in range(6):
                pos = emit(out, pos, True, t, sites, POP0 + r, entry_sp[t] - 48 + 8 * r)
    st[1] = seq
    return pos


# ---- the trace -------------------------------------------------------------------------------
def layout(p: KvParams) -> tuple[Heap, tuple[int, ...], int]:
    """kv.c's allocations in its order: store, buckets, slabs, then per thread conn and
    requests (each starting a page, as the first chunks of a thread's arena)."""
    heap = Heap()
    heap.alloc("store", STORE_BYTES, 1, fresh_page=True)
    heap.alloc("buckets", 1 << p.hashpower, 8)
    per_slab = SLAB_BYTES // p.chunk
    n_slabs = -(-p.items // per_slab)
    for s in range(n_slabs):
        heap.alloc(f"items:{s}", SLAB_BYTES, 1)
    for t in range(p.threads):
        heap.alloc(f"conn:{t}", CONN_BYTES, 1, fresh_page=True)
        heap.alloc(f"requests:{t}", BATCH, 8, fresh_page=True)
    return heap, stack_tops(p.threads), per_slab


def thread_ranges(p: KvParams) -> tuple[np.ndarray, np.ndarray]:
    """(first operation, count) per thread: [N t/T, N (t+1)/T)."""
    return split_evenly(p.ops, p.threads)


def expected_records(p: KvParams) -> float:
    """About 2 x (20 + 2 x memcpy) per get and 2 x (50 + 2 x memcpy) per put."""
    mc = memcpy_records(p.value_size)
    per_op = (1 - p.put_share) * (20 + mc) + p.put_share * (52 + mc)
    return 2.0 * p.ops * per_op


def size_estimate(p: KvParams) -> SizeEstimate:
    return estimate(f"{p.ops:,} operations on {p.keys:,} keys", expected_records(p), "-n", p.ops)


def generate(out: str | Path, p: KvParams, progress: Progress | None = None,
             block_records: int = ROW_GROUP_ROWS) -> GenResult:
    heap, tops, per_slab = layout(p)
    a = heap.arrays
    regions = [CODE.region(), LIBC.region()] + heap.array_regions() + stack_regions(tops)
    meta = TraceMeta(source="kv-synth", threads=p.threads, regions=tuple(regions),
                     generator=p.to_json(), extra={"arrays": json.dumps(heap.to_json())})
    n_slabs = -(-p.items // per_slab)
    slabs = np.array([a[f"items:{s}"].start for s in range(n_slabs)], np.int64)
    bucket = np.empty(1 << p.hashpower, np.int64)
    hnext = np.empty(p.items, np.int64)
    key = np.full(p.items, -1, np.int64)
    inext = np.full(p.items, -1, np.int64)
    st = np.zeros(3, np.int64)
    longest = load_store(p.keys, p.items, (1 << p.hashpower) - 1, bucket, hnext, key, inext, st)
    lo, cnt = thread_ranges(p)
    max_rec = 2 * (80 + 2 * longest + memcpy_records(p.value_size)) + 2
    cfg = np.zeros(N_CFG, np.int64)
    cfg[[C_THREADS, C_KEYS, C_MASK, C_NBYTES, C_CHUNK, C_PER_SLAB, C_STORE, C_BUCKETS,
         C_SEQ_END, C_MAX_REC]] = [
        p.threads, p.keys, (1 << p.hashpower) - 1, p.value_size, p.chunk, per_slab,
        a["store"].start, a["buckets"].start, int(cnt.max()) * p.threads, max_rec]
    zc = np.array(zipf_constants(p.keys, p.theta), np.float64)
    x = np.array([(p.seed + t) % 2**64 for t in range(p.threads)], np.uint64)
    entry = np.array([top - (ENTRY_SP_MASTER if t == 0 else ENTRY_SP_WORKER)
                      for t, top in enumerate(tops)], np.int64)
    reqs = np.array([a[f"requests:{t}"].start for t in range(p.threads)], np.int64)
    conns = np.array([a[f"conn:{t}"].start for t in range(p.threads)], np.int64)
    fcfg = np.array([p.put_share], np.float64)
    filler = BlockFiller(max(block_records, 2 * max_rec))

    def blocks():
        yield from filler.run(_fill, lambda: st[1] >= cfg[C_SEQ_END], cfg, st, fcfg, zc, x, lo,
                              cnt, entry, reqs, conns, slabs, bucket, hnext, key, inext, SITES)
        yield from filler.flush()

    def done() -> int:
        return min(p.ops, int(st[1]) * p.ops // max(1, int(cfg[C_SEQ_END])))

    return generate_trace(out, p, meta, blocks(), done, progress)
