"""XSBench's data, rebuilt exactly: the LCG, the nuclide grids, the unionized grid, the hash grid.

The access pattern of a lookup depends on data values (where a binary search ends, which grid
index a nuclide uses, and in history mode how far the RNG is fast-forwarded after each lookup), so
we reproduce XSBench's data bit for bit instead of imitating their distribution. XSBench's
nuclide_grid (GridInit.c) is the stream of LCG doubles from seed 42, six per point (energy, then
five cross sections), each nuclide's row sorted by energy. We keep

* ``energy``: float64[n_isotopes, n_gridpoints], the sorted energies (8·P bytes), and
* ``order``: int32[n_isotopes, n_gridpoints], each sorted point's position before the sort
  (4·P bytes), from which ``point_xs`` recomputes its five cross sections by LCG jump-ahead
  (two table lookups) instead of storing them (40·P bytes: first-touching that much memory costs
  more than the whole lookup phase of a short trace);
* ``ueg``: the unionized energy grid, all energies sorted (8·P bytes, unionized mode only);
* ``hash_index``: int32[hash_bins, n_isotopes] (hash mode only, as in XSBench).

The unionized index grid (4·P·n_isotopes bytes, 5.3 GiB for large) is never materialised. An entry
is (number of the nuclide's energies <= UEG[idx]) - 1, clamped (``union_index_from_count``); the
kernel gets those counts for all nuclides of a lookup at once from a checkpoint row (the counts
at every 256th UEG entry, 4·P·n_isotopes/256 bytes) plus a scan of the nuclide each UEG entry
came from (``ueg_origin``, 2·P bytes) up to idx: ~128 scanned entries per lookup instead of one
binary search per nuclide. Generation memory is therefore 12·P bytes, plus 15.5·P in unionized mode
(355 nuclides): 0.10 GiB for large, 2.2 GiB for XL.

Equal energies (which rounding the 63-bit LCG state to a double could in principle produce) are
assumed absent, as XSBench's own index construction assumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba as nb
import numpy as np

from .xsbench_params import GRID_SEED, MATERIAL_CDF, XSBenchParams, material_lists

LCG_A = np.uint64(2806196910506780709)
LCG_C = np.uint64(1)
LCG_MASK = np.uint64(2**63 - 1)          # modulus 2^63: uint64 arithmetic wraps mod 2^64
TWO63 = 9223372036854775808.0
COUNT_SHIFT = 8                          # union-grid count checkpoints every 2^8 entries
JUMP_BITS = 16                           # jump-ahead tables: steps = hi * 2^16 + lo
_U0 = np.uint64(0)
_U1 = np.uint64(1)


@nb.njit(cache=True, nogil=True)
def lcg_step(seed):
    """One LCG_random_double step: returns (new seed, value in [0, 1))."""
    seed = (LCG_A * seed + LCG_C) & LCG_MASK
    return seed, np.float64(seed) / TWO63


@nb.njit(cache=True, nogil=True)
def fast_forward(seed, n):
    """fast_forward_LCG from Simulation.c: the seed after ``n`` steps, in O(log n)."""
    a_new = _U1
    c_new = _U0
    a = LCG_A
    c = LCG_C
    n = np.uint64(n) & LCG_MASK
    while n > _U0:
        if n & _U1:
            a_new = a_new * a
            c_new = c_new * a + c
        c = c * (a + _U1)
        a = a * a
        n = n >> _U1
    return (a_new * np.uint64(seed) + c_new) & LCG_MASK


@nb.njit(inline="always")
def pick_mat(seed, cdf):
    """pick_mat from Simulation.c: one LCG draw against the material CDF."""
    seed, roll = lcg_step(seed)
    for i in range(12):
        if roll < cdf[i]:
            return seed, i
    return seed, 11


@nb.njit(cache=True, nogil=True)
def _grid_energies(n_points):
    """Energies of the unsorted nuclide grid: draw 6·o of the seed-42 stream for point o."""
    out = np.empty(n_points, np.float64)
    seed = np.uint64(GRID_SEED)
    for o in range(n_points):
        seed, out[o] = lcg_step(seed)
        for _ in range(5):                # total, elastic, absorption, fission, nu-fission
            seed = (LCG_A * seed + LCG_C) & LCG_MASK
    return out


def _nuclide_energies(n_iso: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted energies per nuclide and each point's pre-sort column (XSBench's qsort by energy)."""
    raw = _grid_energies(n_iso * n).reshape(n_iso, n)
    order = np.argsort(raw, axis=1)
    return np.take_along_axis(raw, order, axis=1), order.astype(np.int32)


@nb.njit(cache=True, nogil=True)
def _jump_tables(max_steps):
    """Affine maps x -> A·x + C of ``lo`` and of ``hi·2^16`` LCG steps, for O(1) jump-ahead."""
    n_lo = 1 << JUMP_BITS
    lo = np.empty((n_lo, 2), np.uint64)
    a = _U1
    c = _U0
    for j in range(n_lo):
        lo[j, 0] = a
        lo[j, 1] = c
        a = LCG_A * a
        c = LCG_A * c + LCG_C
    step_a = a                             # the map of exactly 2^16 steps
    step_c = c
    n_hi = (max_steps >> JUMP_BITS) + 2
    hi = np.empty((n_hi, 2), np.uint64)
    a = _U1
    c = _U0
    for h in range(n_hi):
        hi[h, 0] = a
        hi[h, 1] = c
        c = step_a * c + step_c
        a = step_a * a
    return lo, hi


@nb.njit(inline="always")
def point_xs(nuc, g, n, order, jump_lo, jump_hi, out):
    """The five cross sections of sorted point ``g`` of nuclide ``nuc`` (draws 6·o+1 .. 6·o+5)."""
    steps = 6 * (nuc * n + order[nuc, g]) + 1     # the seed right after point o's energy draw
    lo = steps & ((1 << JUMP_BITS) - 1)
    hi = steps >> JUMP_BITS
    s = jump_lo[lo, 0] * np.uint64(GRID_SEED) + jump_lo[lo, 1]
    s = (jump_hi[hi, 0] * s + jump_hi[hi, 1]) & LCG_MASK
    for k in range(5):
        s, out[k] = lcg_step(s)


@nb.njit(cache=True, nogil=True)
def _hash_index(energy, hash_bins):
    """GridInit.c's hash grid: for bin e, the grid_search_nuclide index of energy e/hash_bins."""
    n_iso, n = energy.shape
    out = np.empty((hash_bins, n_iso), np.int32)
    du = 1.0 / hash_bins
    for e in range(hash_bins):
        quarry = e * du
        for i in range(n_iso):
            lo = 0
            hi = n - 1
            length = hi - lo
            while length > 1:
                ex = lo + length // 2
                if energy[i, ex] > quarry:
                    hi = ex
                else:
                    lo = ex
                length = hi - lo
            out[e, i] = lo
    return out


@nb.njit(cache=True, nogil=True)
def _checkpoint_counts(origin, n_iso):
    """counts[b, i] = how many of UEG[0 : b·2^COUNT_SHIFT] belong to nuclide i."""
    n_blocks = (len(origin) >> COUNT_SHIFT) + 1
    counts = np.zeros((n_blocks, n_iso), np.int32)
    running = np.zeros(n_iso, np.int32)
    for k in range(len(origin)):
        if (k & ((1 << COUNT_SHIFT) - 1)) == 0:
            counts[k >> COUNT_SHIFT, :] = running
        running[origin[k]] += 1
    return counts


def _union_grid(energy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The UEG (all energies sorted, as GridInit.c's qsort), each entry's nuclide, checkpoints."""
    flat = energy.ravel()
    perm = np.argsort(flat)
    origin = (perm // energy.shape[1]).astype(np.int16)
    ueg = flat[perm]
    del perm
    return ueg, origin, _checkpoint_counts(origin, energy.shape[0])


def _concs(seed: int, mats: list[list[int]], max_nucs: int) -> np.ndarray:
    """load_concs: LCG from STARTING_SEED² (uint64 product), row by row."""
    state = np.uint64((seed * seed) % 2**64)
    concs = np.zeros(12 * max_nucs, np.float64)
    for i, m in enumerate(mats):
        for j in range(len(m)):
            state, concs[i * max_nucs + j] = lcg_step(state)
    return concs


@dataclass(frozen=True)
class XSBenchData:
    energy: np.ndarray          # float64[n_isotopes, n_gridpoints], rows sorted
    order: np.ndarray           # int32[n_isotopes, n_gridpoints], pre-sort column of each point
    jump_lo: np.ndarray         # uint64[2^16, 2]: LCG maps of 0 .. 2^16-1 steps
    jump_hi: np.ndarray         # uint64[6·P / 2^16 + 2, 2]: LCG maps of multiples of 2^16 steps
    ueg: np.ndarray             # float64[P] (unionized) or empty
    ueg_origin: np.ndarray      # int16[P]: nuclide of each UEG entry (unionized) or empty
    ueg_counts: np.ndarray      # int32[P/256 + 1, n_isotopes] checkpoints (unionized) or empty
    hash_index: np.ndarray      # int32[hash_bins, n_isotopes] (hash) or empty
    num_nucs: np.ndarray        # int64[12]
    mats: np.ndarray            # int64[12 * max_num_nucs]
    concs: np.ndarray           # float64[12 * max_num_nucs]
    max_num_nucs: int
    cdf: np.ndarray = field(default_factory=MATERIAL_CDF.copy)


def build_data(p: XSBenchParams) -> XSBenchData:
    """Everything the kernel reads, for the run ``p`` (see the module docstring for memory)."""
    n_iso = p.n_isotopes
    energy, order = _nuclide_energies(n_iso, p.gridpoints)
    if p.grid == "unionized":
        ueg, origin, counts = _union_grid(energy)
    else:
        ueg, origin, counts = (np.empty(0, np.float64), np.empty(0, np.int16),
                               np.empty((0, n_iso), np.int32))
    hidx = _hash_index(energy, p.hash_bins) if p.grid == "hash" else np.empty((0, 0), np.int32)
    mats = material_lists(n_iso)
    max_nucs = max(len(m) for m in mats)
    flat = np.zeros(12 * max_nucs, np.int64)
    for i, m in enumerate(mats):
        flat[i * max_nucs: i * max_nucs + len(m)] = m
    jump_lo, jump_hi = _jump_tables(6 * p.n_points + 1)
    return XSBenchData(energy=energy, order=order, jump_lo=jump_lo, jump_hi=jump_hi, ueg=ueg,
                       ueg_origin=origin, ueg_counts=counts, hash_index=hidx,
                       num_nucs=np.array([len(m) for m in mats], np.int64), mats=flat,
                       concs=_concs(p.seed, mats, max_nucs), max_num_nucs=max_nucs)


@nb.njit(cache=True, nogil=True)
def union_index_from_count(count, n):
    """index_grid[e][i] of GridInit.c from c = number of nuclide i's energies <= UEG[e].

    The construction loop advances a nuclide's index by one each time the union grid passes one
    of that nuclide's energies, so the entry is c - 1, clamped to [0, n-2].
    """
    return min(max(count - 1, 0), n - 2)


@nb.njit(inline="always")
def union_counts_add(origin, idx, scratch, sign):
    """Add ``sign`` to scratch[nuclide] for UEG entries from idx's checkpoint up to idx."""
    for k in range((idx >> COUNT_SHIFT) << COUNT_SHIFT, idx + 1):
        scratch[origin[k]] += sign
