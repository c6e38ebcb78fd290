"""The generator against a line-by-line Python port of XSBench (openmp-threading, baseline kernel).

The port below follows GridInit.c, Materials.c and Simulation.c statement by statement (plain
Python ints and floats, the index grid built by GridInit.c's own loop), on grids small enough
for pure Python (68 nuclides x 40 points). The generator must agree with it on the data, on
every lookup's material, union index / hash bin and chosen grid points, and on XSBench's
verification checksum, in all three grid modes and both simulation methods (history mode
feeds the cross sections back into the RNG, so this also checks the computed values).
"""

from __future__ import annotations

import numpy as np
import pytest

from migrc_bench.trace.native import TraceReader
from migrc_bench.trace.xsbench import generate_xsbench
from migrc_bench.trace.xsbench_data import (_jump_tables, build_data, fast_forward, lcg_step,
                                            point_xs)
from migrc_bench.trace.xsbench_layout import SITE, build_layout
from migrc_bench.trace.xsbench_params import material_lists, resolve_params

M63, A = 2**63, 2806196910506780709
CDF = [0.140, 0.192, 0.467, 0.601, 0.755, 0.819, 0.885, 0.940, 0.948, 0.963, 0.988, 1.0]
N_ISO, N_GRID = 68, 40


def lcg(s):
    s = (A * s + 1) % M63
    return s, s / M63


def ff(seed, n):
    a_new, c_new, a, c = 1, 0, A, 1
    n %= M63
    while n > 0:
        if n & 1:
            a_new, c_new = a_new * a % 2**64, (c_new * a + c) % 2**64
        c, a, n = c * (a + 1) % 2**64, a * a % 2**64, n >> 1
    return (a_new * seed + c_new) % 2**64 % M63


def pick_mat(s):
    s, roll = lcg(s)
    return s, next((i for i in range(12) if roll < CDF[i]), 11)


def search(keys, quarry, lo, hi):
    length = hi - lo
    while length > 1:
        ex = lo + length // 2
        if keys[ex] > quarry:
            hi = ex
        else:
            lo = ex
        length = hi - lo
    return lo


class PortedXSBench:
    def __init__(self, grid_type, hash_bins, seed=1070):
        s, pts = 42, []
        for _ in range(N_ISO * N_GRID):
            pt = []
            for _ in range(6):
                s, v = lcg(s)
                pt.append(v)
            pts.append(pt)
        self.rows = [sorted(pts[i * N_GRID:(i + 1) * N_GRID]) for i in range(N_ISO)]
        self.grid_type, self.hash_bins = grid_type, hash_bins
        if grid_type == "unionized":
            self.ueg = sorted(p[0] for row in self.rows for p in row)
            low, high, self.index = [0] * N_ISO, [r[1][0] for r in self.rows], []
            for u in self.ueg:
                entry = []
                for i in range(N_ISO):
                    if not (u < high[i] or low[i] == N_GRID - 2):
                        low[i] += 1
                        high[i] = self.rows[i][low[i] + 1][0]
                    entry.append(low[i])
                self.index.append(entry)
        elif grid_type == "hash":
            du = 1.0 / hash_bins
            self.index = [[search([p[0] for p in self.rows[i]], e * du, 0, N_GRID - 1)
                           for i in range(N_ISO)] for e in range(hash_bins)]
        self.mats = material_lists(N_ISO)
        cs, self.concs = seed * seed % 2**64, []
        for m in self.mats:
            row = []
            for _ in m:
                cs, v = lcg(cs)
                row.append(v)
            self.concs.append(row)

    def lower(self, e, nuc, idx):
        energies = [p[0] for p in self.rows[nuc]]
        if self.grid_type == "nuclide":
            lower = search(energies, e, 0, N_GRID - 1)
        elif self.grid_type == "unionized":
            lower = self.index[idx][nuc]
        else:
            u_low = self.index[idx][nuc]
            u_high = N_GRID - 1 if idx == self.hash_bins - 1 else self.index[idx + 1][nuc] + 1
            if e < energies[u_low]:
                lower = 0
            elif e >= energies[u_high]:
                lower = N_GRID - 1
            else:
                lower = search(energies, e, u_low, u_high)
        return lower - 1 if lower == N_GRID - 1 else lower

    def macro(self, e, mat):
        idx = -1
        if self.grid_type == "unionized":
            idx = search(self.ueg, e, 0, len(self.ueg) - 1)
        elif self.grid_type == "hash":
            idx = min(max(int(e / (1.0 / self.hash_bins)), 0), self.hash_bins - 1)
        xs_sum, lows = [0.0] * 5, []
        for j, nuc in enumerate(self.mats[mat]):
            lo = self.lower(e, nuc, idx)
            low, high = self.rows[nuc][lo], self.rows[nuc][lo + 1]
            f = (high[0] - e) / (high[0] - low[0])
            for k in range(5):
                xs_sum[k] += (high[k + 1] - f * (high[k + 1] - low[k + 1])) * self.concs[mat][j]
            lows.append(lo)
        return xs_sum, (mat, idx, lows)

    @staticmethod
    def verify(xs):
        best, best_idx = -1.0, 0
        for j in range(5):
            if xs[j] > best:
                best, best_idx = xs[j], j
        return best_idx + 1

    def event(self, lookups, seed=1070):
        ver, seen = 0, []
        for i in range(lookups):
            s, e = lcg(ff(seed, 2 * i))
            s, mat = pick_mat(s)
            xs, info = self.macro(e, mat)
            ver += self.verify(xs)
            seen.append(info)
        return ver % 999_983, seen

    def history(self, particles, lookups, seed=1070):
        ver, seen = 0, []
        for p in range(particles):
            s, e = lcg(ff(seed, p * lookups * 10))
            s, mat = pick_mat(s)
            for _ in range(lookups):
                xs, info = self.macro(e, mat)
                ver += self.verify(xs)
                seen.append(info)
                n_forward = sum(1 for x in xs if x > 1.0)
                if n_forward:
                    s = ff(s, n_forward)
                s, e = lcg(s)
                s, mat = pick_mat(s)
        return ver % 999_983, seen


def trace_lookups(path, params):
    """(material, union index or hash bin, lower grid point per nuclide) for each lookup."""
    layout = build_layout(params)
    a = layout.arrays
    b = TraceReader(path).read_all()
    site_by_addr = {s.addr: i for i, s in enumerate(layout.sites)}
    sites = np.array([site_by_addr[int(x)] for x in b.addr[0::2]])
    addrs = b.addr[1::2].astype(np.int64)
    starts = list(np.flatnonzero(sites == SITE["macro_zero"])) + [len(sites)]
    out = []
    for s, e in zip(starts, starts[1:]):
        st, ad = sites[s:e], addrs[s:e]
        mat = int(ad[st == SITE["macro_num_nucs"]][0] - a["num_nucs"].start) // 4
        idx = -1
        for site in ("micro_index", "micro_hash_low"):
            hits = ad[st == SITE[site]]
            if len(hits):
                idx = int(hits[0] - a["index_grid"].start) // 4 // N_ISO
        lows = [int(x - a["nuclide_grid"].start) // 48 % N_GRID
                for x in ad[st == SITE["micro_low_point"]]]
        out.append((mat, idx, lows))
    return out


@pytest.fixture(scope="module")
def ports():
    return {g: PortedXSBench(g, hash_bins=7) for g in ("unionized", "nuclide", "hash")}


def test_lcg_and_fast_forward_match_the_port():
    s = np.uint64(1070)
    for n in (0, 1, 2, 5, 1000, 123_456_789):
        assert int(fast_forward(np.uint64(1070), n)) == ff(1070, n)
    t = 1070
    for _ in range(10):
        s, x = lcg_step(s)
        t, y = lcg(t)
        assert int(s) == t and x == y


def test_jump_tables_reach_far_draws():
    lo, hi = _jump_tables(6 * 84_790_685 + 1)               # XL's last draw
    for steps in (1, 65_535, 65_536, 10**6 + 7, 6 * 84_790_685 - 5):
        (a_lo, c_lo), (a_hi, c_hi) = map(int, lo[steps & 0xFFFF]), map(int, hi[steps >> 16])
        assert (a_hi * (a_lo * 42 + c_lo) + c_hi) % M63 == ff(42, steps)


def test_grid_data_matches_the_port(ports):
    data = build_data(resolve_params(size="small", gridpoints=N_GRID, grid="unionized"))
    rows = np.array(ports["unionized"].rows)                 # [nuclide, point, 6 fields]
    assert np.array_equal(data.energy, rows[:, :, 0])
    xs = np.empty(5)
    for nuc in range(N_ISO):
        for g in range(N_GRID):
            point_xs(nuc, g, N_GRID, data.order, data.jump_lo, data.jump_hi, xs)
            assert np.array_equal(xs, rows[nuc, g, 1:])
    assert np.array_equal(data.ueg, np.array(ports["unionized"].ueg))
    assert np.array_equal(data.concs.reshape(12, 34)[0], ports["unionized"].concs[0])


@pytest.mark.parametrize("grid", ["unionized", "nuclide", "hash"])
@pytest.mark.parametrize("mode", ["event", "history"])
def test_lookups_and_checksum_match_the_port(tmp_path, ports, grid, mode):
    port = ports[grid]
    if mode == "event":
        want_ver, want = port.event(600)
        kw = dict(lookups=600)
        per_iter, n_iter = 1, 600
    else:
        want_ver, want = port.history(120, 5)
        kw = dict(particles=120, lookups=5)
        per_iter, n_iter = 5, 120
    # the file interleaves the 3 threads' chunks of 100 iterations one iteration at a time
    order = [(c * 3 + k % 3) * 100 + k // 3 for c in range(-(-n_iter // 300)) for k in range(300)]
    order = [it for it in order if it < n_iter]
    want = [want[it * per_iter + j] for it in order for j in range(per_iter)]
    path = tmp_path / "t.parquet"
    result = generate_xsbench(path, size="small", gridpoints=N_GRID, grid=grid, mode=mode,
                              hash_bins=7, threads=3, **kw)
    got = trace_lookups(path, result.params)
    assert got == want
    assert result.verification == want_ver
    if grid == "hash":   # the edge rule (energy above the bin's upper point) was exercised
        assert any(lo == N_GRID - 2 for _, _, lows in want for lo in lows)
