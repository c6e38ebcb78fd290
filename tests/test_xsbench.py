"""The XSBench generator: trace shape, layout, threads, determinism, CLI.

Runs are tiny (-s small, a few hundred lookups); the numba kernel is compiled once per source
change and cached, later runs take about a second.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest

from migrc_bench.cli.main import main
from migrc_bench.trace.native import PAGE_SIZE, TraceReader
from migrc_bench.trace.xsbench import (generate_from_args, generate_xsbench, parse_args,
                                       xsbench_layout)
from migrc_bench.trace.xsbench_layout import CHUNK_HEADER, SITE, build_layout
from migrc_bench.trace.xsbench_params import material_lists, resolve_params

SMALL_P = 68 * 11_303


@dataclass
class Lookup:
    tid: int
    sites: np.ndarray      # site id per data access, in program order
    addrs: np.ndarray      # data address per data access

    def at(self, site: str) -> np.ndarray:
        return self.addrs[self.sites == SITE[site]]


def site_counts(path, params) -> Counter:
    """How many data accesses each site made over the whole trace."""
    b = TraceReader(path).read_all()
    names = {s.addr: s.name for s in build_layout(params).sites}
    return Counter(names[int(a)] for a in b.addr[b.op == 0])


def decode(path, params) -> tuple[list[Lookup], object]:
    """Split a trace into lookups (each starts at calculate_macro_xs's zeroing store)."""
    b = TraceReader(path).read_all()
    layout = build_layout(params)
    site_by_addr = {s.addr: i for i, s in enumerate(layout.sites)}
    assert np.all(b.op[0::2] == 0) and np.all(b.op[1::2] != 0), "fetch, access, fetch, access..."
    assert np.array_equal(b.tid[0::2], b.tid[1::2])
    sites = np.array([site_by_addr[int(a)] for a in b.addr[0::2]])
    addrs, tids = b.addr[1::2], b.tid[1::2]
    starts = np.flatnonzero(sites == SITE["macro_zero"])
    bounds = list(starts) + [len(sites)]
    lookups = [Lookup(int(tids[s]), sites[s:e], addrs[s:e]) for s, e in zip(bounds, bounds[1:])]
    return lookups, layout


@pytest.fixture(scope="module")
def small_history(tmp_path_factory):
    """250 particles x 2 lookups on 2 threads: chunks 0,1,2 -> threads 0,1,0."""
    path = tmp_path_factory.mktemp("xs") / "small.parquet"
    result = generate_xsbench(path, size="small", mode="history", particles=250, lookups=2,
                              threads=2)
    return path, result


def test_layout_sizes_match_xsbench_formulas():
    for size, n_iso in (("small", 68), ("large", 355)):
        p_points = n_iso * 11_303
        union = xsbench_layout(size=size, grid="unionized")
        assert union["nuclide_grid"].nbytes == 48 * p_points
        assert union["unionized_energy_array"].nbytes == 8 * p_points
        assert union["index_grid"].nbytes == 4 * p_points * n_iso
        hashed = xsbench_layout(size=size, grid="hash", hash_bins=10_000)
        assert hashed["index_grid"].nbytes == 4 * 10_000 * n_iso
        assert "unionized_energy_array" not in hashed
        assert set(xsbench_layout(size=size, grid="nuclide")) == {"nuclide_grid", "num_nucs",
                                                                   "mats", "concs"}
    # anchors.md §3: large unionized total 5.52 GiB, P = 4,012,565
    large = xsbench_layout(size="large")
    assert large["nuclide_grid"].length == 4_012_565
    total = sum(large[a].nbytes for a in ("nuclide_grid", "unionized_energy_array", "index_grid"))
    assert round(total / 2**30, 2) == 5.52


def test_regions_cover_arrays_in_malloc_order():
    p = resolve_params(size="small", threads=3, lookups=1, particles=1)
    layout = build_layout(p)
    heap = [r for r in layout.regions if r.kind == "heap"]
    code = [r for r in layout.regions if r.kind == "code"]
    stacks = [r for r in layout.regions if r.kind == "stack"]
    assert len(heap) == 1 and len(code) == 1 and len(stacks) == 3
    assert heap[0].writable and not heap[0].exec and code[0].exec and not code[0].writable
    spans = list(layout.arrays.values())
    assert [s.name for s in spans] == ["nuclide_grid", "unionized_energy_array", "index_grid",
                                       "num_nucs", "mats", "concs"]
    for a, b in zip(spans, spans[1:]):
        assert a.end <= b.start
    for s in spans:
        assert heap[0].start <= s.start and s.end <= heap[0].end
        if s.nbytes >= 128 * 1024:
            assert s.start % PAGE_SIZE == CHUNK_HEADER          # mmap()ed chunk
    assert all(s.start <= site.addr and site.addr + site.isize <= s.end
               for site in layout.sites for s in code)
    assert code[0].pages <= 8


def test_every_access_inside_its_region(small_history):
    path, _ = small_history
    r = TraceReader(path)
    b = r.read_all()
    regions = r.meta.regions

    def inside(addr, size, kinds):
        ok = np.zeros(len(addr), bool)
        for reg in regions:
            if reg.kind in kinds:
                ok |= (addr >= reg.start) & (addr + size <= reg.end)
        return ok

    fetch = b.op == 0
    assert inside(b.addr[fetch], b.size[fetch], {"code"}).all()
    assert inside(b.addr[~fetch], b.size[~fetch], {"heap", "stack"}).all()
    assert r.meta.source == "xsbench-synth" and r.meta.threads == 2
    assert r.meta.generator["particles"] == 250 and r.meta.generator["size"] == "small"


def test_each_lookup_touches_exactly_its_materials_nuclides(small_history):
    path, result = small_history
    lookups, layout = decode(path, result.params)
    mats = material_lists(68)
    num_nucs = layout.arrays["num_nucs"]
    grid = layout.arrays["nuclide_grid"]
    row_bytes = 48 * 11_303
    seen = Counter()
    for lk in lookups:
        (nn_addr,) = lk.at("macro_num_nucs")
        m = (int(nn_addr) - num_nucs.start) // 4
        lows = lk.at("micro_low_point").astype(np.int64) - grid.start
        highs = lk.at("micro_high_point").astype(np.int64) - grid.start
        assert list(lows // row_bytes) == mats[m]              # in material order, no others
        assert len(set(lows // row_bytes)) == len(mats[m])
        assert np.array_equal(highs - lows, np.full(len(lows), 48))   # i and i+1, same row
        assert np.all(lows % row_bytes <= row_bytes - 96)
        assert len(lk.at("macro_mats")) == len(lk.at("macro_concs")) == len(mats[m])
        seen[m] += 1
    assert len(lookups) == 500 and len(seen) >= 8                # most materials sampled


def test_union_grid_binary_search_probes(small_history):
    path, result = small_history
    lookups, layout = decode(path, result.params)
    ueg = layout.arrays["unionized_energy_array"]
    index = layout.arrays["index_grid"]
    counts = [len(lk.at("grid_search_probe")) for lk in lookups]
    assert set(counts) <= {math.ceil(math.log2(SMALL_P)) - 1, math.ceil(math.log2(SMALL_P))}
    for lk in lookups[:50]:
        probes = (lk.at("grid_search_probe").astype(np.int64) - ueg.start) // 8
        assert probes[0] == (SMALL_P - 1) // 2                   # first halving of [0, P-1]
        steps = np.abs(np.diff(probes))
        assert np.all(steps[1:] <= steps[:-1] + 1)                # halving intervals
        rows = (lk.at("micro_index").astype(np.int64) - index.start) // 4 // 68
        assert len(set(rows)) == 1 and abs(int(rows[0]) - int(probes[-1])) <= 1


def test_chunks_of_100_go_round_robin_to_threads(small_history):
    path, result = small_history
    lookups, _ = decode(path, result.params)
    tids = [lk.tid for lk in lookups]
    runs = [(t, len(list(g))) for t, g in itertools.groupby(tids)]
    # chunks 0 and 2 (100 + 50 particles, 2 lookups each) on thread 0, chunk 1 on thread 1;
    # the file interleaves a round's threads one particle at a time
    assert runs == [(0, 2), (1, 2)] * 100 + [(0, 100)]
    assert tids.count(0) == 300 and tids.count(1) == 200


def test_event_mode_chunks_lookups(tmp_path):
    path = tmp_path / "e.parquet"
    result = generate_xsbench(path, size="small", mode="event", lookups=450, threads=3)
    lookups, _ = decode(path, result.params)
    assert len(lookups) == 450 == result.lookups
    tids = [lk.tid for lk in lookups]
    # chunks 0-4 (100, 100, 100, 100, 50 lookups) on threads 0,1,2,0,1; interleaved per round
    assert tids == [0, 1, 2] * 100 + [0, 1] * 50 + [0] * 50
    assert site_counts(path, result.params)["lcg_seed"] == 2 * 450   # energy + material each


def test_history_lookup_counts(small_history):
    path, result = small_history
    lookups, _ = decode(path, result.params)
    assert len(lookups) == 250 * 2 == result.lookups
    counts = site_counts(path, result.params)
    assert counts["macro_zero"] == counts["history_verify"] == 500
    assert counts["lcg_seed"] == 2 * 250 + 2 * 500      # particle start + after every lookup


def test_same_arguments_same_bytes(tmp_path):
    def digest(name, **kw):
        path = tmp_path / name
        generate_xsbench(path, size="small", lookups=3, particles=120, threads=2, **kw)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert digest("a.parquet") == digest("b.parquet")
    assert digest("c.parquet", seed=7) != digest("a.parquet")


def test_nuclide_grid_mode_searches_each_row(tmp_path):
    path = tmp_path / "n.parquet"
    result = generate_xsbench(path, size="small", grid="nuclide", mode="event", lookups=60)
    lookups, layout = decode(path, result.params)
    grid = layout.arrays["nuclide_grid"]
    row_bytes = 48 * 11_303
    for lk in lookups:
        assert len(lk.at("grid_search_probe")) == 0 and len(lk.at("micro_index")) == 0
        probes = lk.at("grid_search_nuclide_probe").astype(np.int64) - grid.start
        lows = lk.at("micro_low_point").astype(np.int64) - grid.start
        per_nuc = len(probes) / len(lows)
        assert 13 <= per_nuc <= 14                               # ~log2(11303) per nuclide
        assert np.all(probes % 48 == 0)                          # the energy field
        assert set(probes // row_bytes) == set(lows // row_bytes)


def test_hash_mode_reads_two_bins_and_searches_briefly(tmp_path):
    path = tmp_path / "h.parquet"
    result = generate_xsbench(path, size="small", grid="hash", mode="event", lookups=60,
                              hash_bins=10_000)
    lookups, layout = decode(path, result.params)
    index = layout.arrays["index_grid"]
    for lk in lookups:
        n = len(lk.at("micro_low_point"))
        assert len(lk.at("micro_hash_low")) == len(lk.at("micro_hash_e_low")) == n
        assert len(lk.at("micro_hash_high")) == n                # idx < hash_bins - 1 here
        bins = (lk.at("micro_hash_low").astype(np.int64) - index.start) // 4 // 68
        assert len(set(bins)) == 1
        assert len(lk.at("grid_search_nuclide_probe")) <= 3 * n  # 1-2 points between bins
        assert len(lk.at("grid_search_probe")) == 0


def test_generate_from_args_uses_the_cli_flags(tmp_path):
    p = parse_args("xsbench -s small -G hash -m event -l 40 -t 4 -h 77 --seed 9")
    assert (p.size, p.grid, p.mode, p.lookups, p.threads, p.hash_bins, p.seed) == \
        ("small", "hash", "event", 40, 4, 77, 9)
    assert parse_args(["-s", "large", "-p", "400"]).total_lookups == 400 * 34
    assert parse_args("-m event -p 10").lookups == 340
    result = generate_from_args("xsbench -s small -l 2 -p 3", tmp_path / "g.parquet")
    assert result.records == TraceReader(tmp_path / "g.parquet").num_rows > 0


@pytest.mark.parametrize("argv", [["-s", "medium"], ["-G", "tree"], ["-l", "0"], ["-t", "0"],
                                  ["-g", "1"], ["-h", "0"], ["--seed", "-1"], ["-x"]])
def test_bad_flags_exit_2_without_output(tmp_path, capsys, argv):
    out = tmp_path / "bad.parquet"
    assert main(["trace", "gen", "xsbench", *argv, "-o", str(out)]) == 2
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(Exception) as exc:
        parse_args(argv)
    assert getattr(exc.value, "exit_code", None) == 2


def test_cli_writes_trace_and_h_is_hash_bins(tmp_path, capsys):
    out = tmp_path / "cli.parquet"
    assert main(["trace", "gen", "xsbench", "-s", "small", "-G", "hash", "-h", "50", "-l", "2",
                 "-p", "5", "-o", str(out)]) == 0
    meta = TraceReader(out).meta
    assert meta.generator["hash_bins"] == 50 and meta.generator["grid"] == "hash"
    assert "verification checksum" in capsys.readouterr().err
    assert main(["trace", "gen", "xsbench", "--help"]) == 0
    assert "-h, --hash-bins" in capsys.readouterr().out
