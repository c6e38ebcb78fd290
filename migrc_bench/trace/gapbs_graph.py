"""GAP's Kronecker graph (``-g SCALE -k DEGREE``), rebuilt exactly as gapbs builds it.

gapbs b5e3e19 (``src/generator.h``, ``builder.h``, ``benchmark.h``), with libstdc++'s
``std::mt19937`` / ``std::mt19937_64`` and ``std::shuffle`` (GCC 12) re-implemented:

* ``MakeRMatEL``: 2^SCALE × DEGREE edges in blocks of 2^18, block b drawn from
  ``mt19937(kRandSeed + b)``; each edge takes SCALE 32-bit draws, quadrant by the Graph500
  parameters A = 0.57, B = C = 0.19 (as ``uint32_t A = 0.57 * UINT32_MAX``);
* ``PermuteIDs``: vertex ids shuffled by ``std::shuffle`` with ``mt19937(kRandSeed)`` (libstdc++
  draws two swap positions per number while n² fits in 32 bits, Lemire's nearly divisionless
  reduction for each bounded draw);
* the builder: symmetrised (``-g`` implies it), each neighbour list sorted, duplicates and
  self-loops removed (``SquishCSR``); num_nodes is the largest id + 1;
* ``SourcePicker``: ``mt19937_64(kRandSeed)`` truncated to 32 bits, rejection above the cutoff
  of ``UniDist``, skipping vertices of degree 0.

The result equals the graph the real program builds, edge for edge (``tests/test_workloads_real``
checks it against gapbs's ``converter -e``), so the BFS sources and the PageRank iteration count
are the real ones too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

K_RAND_SEED = 27491095                     # util.h kRandSeed
BLOCK = 1 << 18                            # generator.h block_size
U32 = np.uint64(0xFFFFFFFF)
RMAT_A = np.uint32(int(0.57 * 4294967295))
RMAT_B = np.uint32(int(0.19 * 4294967295))
RMAT_C = np.uint32(int(0.19 * 4294967295))


# ---- libstdc++'s Mersenne twisters ------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def mt32_seed(mt, seed):
    mt[0] = np.uint32(seed & 0xFFFFFFFF)
    for i in range(1, 624):
        prev = mt[i - 1]
        mt[i] = np.uint32((np.uint64(1812433253) * np.uint64(prev ^ (prev >> np.uint32(30)))
                           + np.uint64(i)) & U32)
    return 624


@nb.njit(cache=True, inline="always")
def _mt32_twist(mt):
    for i in range(624):
        y = (mt[i] & np.uint32(0x80000000)) | (mt[(i + 1) % 624] & np.uint32(0x7FFFFFFF))
        v = mt[(i + 397) % 624] ^ (y >> np.uint32(1))
        if y & np.uint32(1):
            v ^= np.uint32(0x9908B0DF)
        mt[i] = v


@nb.njit(cache=True, inline="always")
def mt32_next(mt, st):
    """The next output of std::mt19937; st[0] is the index into the state."""
    if st[0] >= 624:
        _mt32_twist(mt)
        st[0] = 0
    y = mt[st[0]]
    st[0] += 1
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    y ^= y >> np.uint32(18)
    return y


@nb.njit(cache=True)
def mt64_seed(mt, seed):
    mt[0] = np.uint64(seed)
    for i in range(1, 312):
        prev = mt[i - 1]
        mt[i] = np.uint64(6364136223846793005) * (prev ^ (prev >> np.uint64(62))) + np.uint64(i)
    return 312


@nb.njit(cache=True)
def mt64_next(mt, st):
    """The next output of std::mt19937_64."""
    if st[0] >= 312:
        for i in range(312):
            y = (mt[i] & np.uint64(0xFFFFFFFF80000000)) | (mt[(i + 1) % 312]
                                                          & np.uint64(0x7FFFFFFF))
            v = mt[(i + 156) % 312] ^ (y >> np.uint64(1))
            if y & np.uint64(1):
                v ^= np.uint64(0xB5026F5AA96619E9)
            mt[i] = v
        st[0] = 0
    y = mt[st[0]]
    st[0] += 1
    y ^= (y >> np.uint64(29)) & np.uint64(0x5555555555555555)
    y ^= (y << np.uint64(17)) & np.uint64(0x71D67FFFEDA60000)
    y ^= (y << np.uint64(37)) & np.uint64(0xFFF7EEE000000000)
    y ^= y >> np.uint64(43)
    return y


@nb.njit(cache=True, inline="always")
def _bounded(mt, st, rng):
    """libstdc++ uniform_int_distribution downscaling a 32-bit engine to [0, rng): Lemire."""
    r = np.uint64(rng)
    product = np.uint64(mt32_next(mt, st)) * r
    low = product & U32
    if low < r:
        threshold = ((np.uint64(1) << np.uint64(32)) - r) % r
        while low < threshold:
            product = np.uint64(mt32_next(mt, st)) * r
            low = product & U32
    return np.int64(product >> np.uint64(32))


@nb.njit(cache=True)
def shuffle(a, seed):
    """std::shuffle(a.begin(), a.end(), std::mt19937(seed)) as libstdc++ (GCC 12) does it."""
    mt = np.empty(624, np.uint32)
    st = np.zeros(1, np.int64)
    st[0] = mt32_seed(mt, seed)
    n = a.shape[0]
    if n == 0:
        return
    if np.uint64(0xFFFFFFFF) // np.uint64(n) >= np.uint64(n):
        i = 1
        if n % 2 == 0:
            j = _bounded(mt, st, 2)
            a[i], a[j] = a[j], a[i]
            i += 1
        while i != n:
            b0 = i + 1
            x = _bounded(mt, st, b0 * (b0 + 1))
            p1 = x // (b0 + 1)
            p2 = x % (b0 + 1)
            a[i], a[p1] = a[p1], a[i]
            i += 1
            a[i], a[p2] = a[p2], a[i]
            i += 1
        return
    for i in range(1, n):
        j = _bounded(mt, st, i + 1)
        a[i], a[j] = a[j], a[i]


# ---- the graph ---------------------------------------------------------------------------------
@nb.njit(cache=True, nogil=True)
def rmat_edges(scale, degree, seed):
    """Generator::MakeRMatEL before PermuteIDs: (src, dst) int32 arrays."""
    n_edges = (np.int64(1) << scale) * degree
    src = np.empty(n_edges, np.int32)
    dst = np.empty(n_edges, np.int32)
    mt = np.empty(624, np.uint32)
    st = np.zeros(1, np.int64)
    ab = RMAT_A + RMAT_B
    abc = ab + RMAT_C
    for block in range(0, n_edges, BLOCK):
        st[0] = mt32_seed(mt, seed + block // BLOCK)
        for e in range(block, min(block + BLOCK, n_edges)):
            s = 0
            d = 0
            for _ in range(scale):
                r = mt32_next(mt, st)
                s <<= 1
                d <<= 1
                if r < ab:
                    if r > RMAT_A:
                        d += 1
                else:
                    s += 1
                    if r > abc:
                        d += 1
            src[e] = s
            dst[e] = d
    return src, dst


@nb.njit(cache=True, nogil=True)
def _csr(keys, n_nodes):
    """Sorted unique (u << 32 | v) keys -> CSR offsets and neighbours, self-loops dropped."""
    keep = 0
    for k in keys:
        if (k >> 32) != (k & 0xFFFFFFFF):
            keep += 1
    neighs = np.empty(keep, np.int32)
    offsets = np.zeros(n_nodes + 1, np.int64)
    j = 0
    for k in keys:
        u = k >> 32
        v = k & 0xFFFFFFFF
        if u != v:
            neighs[j] = v
            offsets[u + 1] += 1
            j += 1
    for u in range(n_nodes):
        offsets[u + 1] += offsets[u]
    return offsets, neighs


@dataclass(frozen=True)
class Graph:
    """A symmetrised CSR graph: ``offsets[u]..offsets[u+1]`` index u's sorted neighbours."""

    offsets: np.ndarray     # int64[n + 1]
    neighs: np.ndarray      # int32[m] (m = directed edges = 2 x undirected)

    @property
    def num_nodes(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_edges_directed(self) -> int:
        return len(self.neighs)

    @property
    def num_edges(self) -> int:
        """GAP's num_edges(): undirected edges (what it reports and TEPS counts)."""
        return len(self.neighs) // 2

    def degree(self) -> np.ndarray:
        return np.diff(self.offsets)


def kronecker(scale: int, degree: int = 16, seed: int = K_RAND_SEED) -> Graph:
    """The graph of ``bfs -g SCALE -k DEGREE`` (seed: kRandSeed)."""
    src, dst = rmat_edges(scale, degree, seed)
    perm = np.arange(1 << scale, dtype=np.int32)
    shuffle(perm, seed)
    u, v = perm[src], perm[dst]
    del src, dst
    n_nodes = int(max(u.max(), v.max())) + 1
    u64, v64 = u.astype(np.int64), v.astype(np.int64)
    keys = np.sort(np.concatenate([(u64 << 32) | v64, (v64 << 32) | u64]))
    del u64, v64
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]   # np.unique is 70x slower
    offsets, neighs = _csr(keys, n_nodes)
    return Graph(offsets, neighs)


@nb.njit(cache=True)
def pick_sources(offsets, count, seed):
    """SourcePicker::PickNext ``count`` times (benchmark.h): the sources of the trials."""
    n = offsets.shape[0] - 1
    mt = np.empty(312, np.uint64)
    st = np.zeros(1, np.int64)
    st[0] = mt64_seed(mt, seed)
    mod = np.uint64(n)
    rem = np.uint64(0xFFFFFFFFFFFFFFFF) % mod
    cutoff = np.uint64(0) if rem == mod - np.uint64(1) else \
        (np.uint64(0xFFFFFFFFFFFFFFFF) - rem) & U32
    out = np.empty(count, np.int64)
    for i in range(count):
        while True:
            r = mt64_next(mt, st) & U32
            if cutoff != 0:
                while r >= cutoff:
                    r = mt64_next(mt, st) & U32
            src = np.int64(r % mod)
            if offsets[src + 1] > offsets[src]:
                break
        out[i] = src
    return out
