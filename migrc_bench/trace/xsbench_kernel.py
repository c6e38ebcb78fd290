"""The lookup kernel: runs XSBench's lookups and writes their memory accesses as trace records.

Compiled with numba: a lookup is a chain of data-dependent binary searches whose length varies
with the material (4 to 321 nuclides), and in history mode each lookup's result seeds the next;
a compiled loop writes the records straight into the output block (≈60 M records/s on the
development VM, well above what the Parquet writer takes). The kernel is resumable: it stops
when the block is nearly full and keeps its position (iteration, lookup within the particle,
RNG seed, sampled energy and material) in small state arrays, so the caller streams a run of
any length through fixed-size blocks.

Every data access is written as two records (``gencore.emit``): the instruction fetch of its site
(op 0) and the access itself; see ``xsbench_layout`` for sites, addresses and sizes. Threads are
interleaved by ``gencore.loop_position`` (schedule(dynamic, 100), chunk c on thread c mod T).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .gencore import emit, loop_length, loop_position
from .xsbench_data import (COUNT_SHIFT, fast_forward, lcg_step, pick_mat, point_xs,
                           union_counts_add, union_index_from_count)
from .xsbench_layout import GRID_POINT_BYTES, SITE
from .xsbench_params import CHUNK

# cfg[] slots (int64); filled by xsbench._kernel_config().
C_MODE, C_GRID, C_N_ISO, C_N_GRID, C_N_POINTS, C_THREADS, C_LOOKUPS, C_ITERS, C_HASH_BINS, \
    C_MAX_NUCS, C_MAX_RECORDS, C_NUCLIDE_GRID, C_UEG, C_INDEX_GRID, C_NUM_NUCS, C_MATS, \
    C_CONCS = range(17)
N_CFG = 17
# ist[] slots: iteration, lookup within the particle, sampled material, verification sum.
I_ITER, I_LOOKUP, I_MAT, I_VERIFY = range(4)
# ust[] slots: current seed, start seed.  fst[0]: sampled energy.
U_SEED, U_START = range(2)

MODE_HISTORY, MODE_EVENT = 1, 2
GRID_UNIONIZED, GRID_NUCLIDE, GRID_HASH = 0, 1, 2

S_LCG = SITE["lcg_seed"]
S_EVENT_VERIFY = SITE["event_verify"]
S_HISTORY_VERIFY = SITE["history_verify"]
S_MACRO_ZERO = SITE["macro_zero"]
S_NUM_NUCS = SITE["macro_num_nucs"]
S_MATS = SITE["macro_mats"]
S_CONCS = SITE["macro_concs"]
S_XS_LOAD = SITE["macro_xs_load"]
S_ACCUMULATE = SITE["macro_accumulate"]
S_GS_PROBE = SITE["grid_search_probe"]
S_GSN_PROBE = SITE["grid_search_nuclide_probe"]
S_INDEX = SITE["micro_index"]
S_HASH_LOW = SITE["micro_hash_low"]
S_HASH_HIGH = SITE["micro_hash_high"]
S_HASH_E_LOW = SITE["micro_hash_e_low"]
S_HASH_E_HIGH = SITE["micro_hash_e_high"]
S_LOW_POINT = SITE["micro_low_point"]
S_HIGH_POINT = SITE["micro_high_point"]
S_XS_STORE = SITE["micro_xs_store"]
PT = GRID_POINT_BYTES


@nb.njit(inline="always")
def _search(out, pos, rec, tid, sites, site, base, stride, keys, key0, kstride, quarry, lo, hi):
    """XSBench's grid_search / grid_search_nuclide (lower bound by halving), emitting each probe.

    ``keys[key0 + kstride * i]`` is the value at index i; its address is ``base + stride * i``.
    """
    length = hi - lo
    while length > 1:
        ex = lo + length // 2
        pos = emit(out, pos, rec, tid, sites, site, base + stride * ex)
        if keys[key0 + kstride * ex] > quarry:
            hi = ex
        else:
            lo = ex
        length = hi - lo
    return pos, lo


@nb.njit(inline="always")
def _micro_index(cfg, out, pos, rec, tid, sites, energy, flat, counts, scratch, hidx, idx, nuc,
                 e):
    """calculate_micro_xs up to the choice of the lower grid point of nuclide ``nuc``.

    Returns (pos, lower) with XSBench's edge rule applied: the last point is never ``lower``.
    """
    grid_type = cfg[C_GRID]
    n = cfg[C_N_GRID]
    n_iso = cfg[C_N_ISO]
    row = cfg[C_NUCLIDE_GRID] + PT * n * nuc
    if grid_type == GRID_UNIONIZED:
        pos = emit(out, pos, rec, tid, sites, S_INDEX,
                    cfg[C_INDEX_GRID] + 4 * (idx * n_iso + nuc))
        lower = union_index_from_count(counts[idx >> COUNT_SHIFT, nuc] + scratch[nuc], n)
    elif grid_type == GRID_NUCLIDE:
        pos, lower = _search(out, pos, rec, tid, sites, S_GSN_PROBE, row, PT, flat, n * nuc, 1,
                             e, 0, n - 1)
    else:
        pos = emit(out, pos, rec, tid, sites, S_HASH_LOW,
                    cfg[C_INDEX_GRID] + 4 * (idx * n_iso + nuc))
        u_low = np.int64(hidx[idx, nuc])
        if idx == cfg[C_HASH_BINS] - 1:
            u_high = n - 1
        else:
            pos = emit(out, pos, rec, tid, sites, S_HASH_HIGH,
                        cfg[C_INDEX_GRID] + 4 * ((idx + 1) * n_iso + nuc))
            u_high = np.int64(hidx[idx + 1, nuc]) + 1
        pos = emit(out, pos, rec, tid, sites, S_HASH_E_LOW, row + PT * u_low)
        pos = emit(out, pos, rec, tid, sites, S_HASH_E_HIGH, row + PT * u_high)
        if e < energy[nuc, u_low]:
            lower = 0
        elif e >= energy[nuc, u_high]:
            lower = n - 1
        else:
            pos, lower = _search(out, pos, rec, tid, sites, S_GSN_PROBE, row, PT, flat, n * nuc,
                                 1, e, u_low, u_high)
    if lower == n - 1:
        lower = n - 2
    return pos, lower


@nb.njit(inline="always")
def _macro_xs(cfg, out, pos, rec, tid, sites, slots, energy, flat, order, jlo, jhi, ueg, origin,
              counts, scratch, hidx, num_nucs, mats, concs, e, mat, macro, xl, xh):
    """calculate_macro_xs (with calculate_micro_xs): accesses in program order, values exact."""
    macro_slot = slots[tid, 1]
    xs_slot = slots[tid, 2]
    n = cfg[C_N_GRID]
    max_nucs = cfg[C_MAX_NUCS]
    pos = emit(out, pos, rec, tid, sites, S_MACRO_ZERO, macro_slot)
    for k in range(5):
        macro[k] = 0.0
    idx = -1
    if cfg[C_GRID] == GRID_UNIONIZED:
        pos, idx = _search(out, pos, rec, tid, sites, S_GS_PROBE, cfg[C_UEG], 8, ueg, 0, 1, e,
                           0, cfg[C_N_POINTS] - 1)
        union_counts_add(origin, idx, scratch, 1)
    elif cfg[C_GRID] == GRID_HASH:
        idx = np.int64(e / (1.0 / cfg[C_HASH_BINS]))
        idx = min(max(idx, 0), cfg[C_HASH_BINS] - 1)
    pos = emit(out, pos, rec, tid, sites, S_NUM_NUCS, cfg[C_NUM_NUCS] + 4 * mat)
    for j in range(num_nucs[mat]):
        pos = emit(out, pos, rec, tid, sites, S_MATS, cfg[C_MATS] + 4 * (mat * max_nucs + j))
        nuc = mats[mat * max_nucs + j]
        pos = emit(out, pos, rec, tid, sites, S_CONCS, cfg[C_CONCS] + 8 * (mat * max_nucs + j))
        conc = concs[mat * max_nucs + j]
        pos, low = _micro_index(cfg, out, pos, rec, tid, sites, energy, flat, counts, scratch,
                                hidx, idx, nuc, e)
        point = cfg[C_NUCLIDE_GRID] + PT * (n * nuc + low)
        pos = emit(out, pos, rec, tid, sites, S_LOW_POINT, point)
        pos = emit(out, pos, rec, tid, sites, S_HIGH_POINT, point + PT)
        point_xs(nuc, low, n, order, jlo, jhi, xl)
        point_xs(nuc, low + 1, n, order, jlo, jhi, xh)
        f = (energy[nuc, low + 1] - e) / (energy[nuc, low + 1] - energy[nuc, low])
        pos = emit(out, pos, rec, tid, sites, S_XS_STORE, xs_slot)
        pos = emit(out, pos, rec, tid, sites, S_XS_LOAD, xs_slot)
        pos = emit(out, pos, rec, tid, sites, S_ACCUMULATE, macro_slot)
        for k in range(5):
            xs = xh[k] - f * (xh[k] - xl[k])
            macro[k] += xs * conc
    if cfg[C_GRID] == GRID_UNIONIZED:
        union_counts_add(origin, idx, scratch, -1)
    return pos


@nb.njit(inline="always")
def _verify(macro):
    """XSBench's verification step: 1 + index of the largest macroscopic cross section."""
    best = -1.0
    best_idx = 0
    for j in range(5):
        if macro[j] > best:
            best = macro[j]
            best_idx = j
    return best_idx + 1


@nb.njit(inline="always")
def _sample(out, pos, rec, tid, sites, seed_slot, seed, cdf):
    """Energy then material, each one LCG step on the seed in the caller's frame."""
    pos = emit(out, pos, rec, tid, sites, S_LCG, seed_slot)
    seed, e = lcg_step(seed)
    pos = emit(out, pos, rec, tid, sites, S_LCG, seed_slot)
    seed, mat = pick_mat(seed, cdf)
    return pos, seed, e, mat


# _nrt=False: without it numba reference-counts every array passed to the inlined helpers
# (two atomic calls per array per use, ~100x the cost of the lookup's own work). The kernel never
# allocates: its work arrays come from the caller.
@nb.njit(cache=True, nogil=True, _nrt=False)
def fill(cfg, ist, ust, fst, energy, flat, order, jlo, jhi, ueg, origin, counts, hidx, num_nucs,
         mats, concs, cdf, sites, slots, work, scratch, o_tid, o_op, o_addr, o_size, rec):
    """Run lookups from the state in ist/ust/fst until the block is full or the run is done.

    Returns the number of records written. With ``rec`` false nothing is written and the whole
    remaining run is executed (used to compute XSBench's verification checksum quickly).
    ``flat`` is ``energy.ravel()``; ``work`` (float64[3, 5]) and ``scratch`` (int32[n_isotopes],
    zeroed) are work arrays.
    """
    macro = work[0]
    xl = work[1]
    xh = work[2]
    out = (o_tid, o_op, o_addr, o_size)
    cap = len(o_tid)
    history = cfg[C_MODE] == MODE_HISTORY
    n_iter = cfg[C_ITERS]
    lookups = cfg[C_LOOKUPS]
    threads = cfg[C_THREADS]
    seq = ist[I_ITER]
    n_seq = loop_length(n_iter, threads, CHUNK)
    li = ist[I_LOOKUP]
    mat = ist[I_MAT]
    verification = ist[I_VERIFY]
    seed = ust[U_SEED]
    start = ust[U_START]
    e = fst[0]
    pos = 0
    while seq < n_seq:
        tid, it, _, _ = loop_position(seq, n_iter, threads, CHUNK)
        if it < 0:  # padding of the last round
            seq += 1
            continue
        if rec and pos + cfg[C_MAX_RECORDS] > cap:
            break
        if not history:
            seed = fast_forward(start, 2 * it)
            pos, seed, e, mat = _sample(out, pos, rec, tid, sites, slots[tid, 0], seed, cdf)
        elif li == 0:
            seed = fast_forward(start, it * lookups * 2 * 5)
            pos, seed, e, mat = _sample(out, pos, rec, tid, sites, slots[tid, 0], seed, cdf)
        pos = _macro_xs(cfg, out, pos, rec, tid, sites, slots, energy, flat, order, jlo, jhi, ueg,
                        origin, counts, scratch, hidx, num_nucs, mats, concs, e, mat, macro, xl,
                        xh)
        verification += _verify(macro)
        if not history:
            pos = emit(out, pos, rec, tid, sites, S_EVENT_VERIFY, slots[tid, 1])
            seq += 1
            continue
        pos = emit(out, pos, rec, tid, sites, S_HISTORY_VERIFY, slots[tid, 1])
        n_forward = 0
        for k in range(5):
            if macro[k] > 1.0:
                n_forward += 1
        if n_forward > 0:
            seed = fast_forward(seed, n_forward)
        pos, seed, e, mat = _sample(out, pos, rec, tid, sites, slots[tid, 0], seed, cdf)
        li += 1
        if li == lookups:
            li = 0
            seq += 1
    ist[I_ITER] = seq
    ist[I_LOOKUP] = li
    ist[I_MAT] = mat
    ist[I_VERIFY] = verification
    ust[U_SEED] = seed
    fst[0] = e
    return pos if rec else 0
