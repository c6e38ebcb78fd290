"""The generators beyond XSBench (gups, kv, gapbs-bfs, gapbs-pr): determinism, streaming in
fixed blocks, metadata, the records each unit of work makes, and GAP's graph and sources as
the real program has them. Runs are tiny; the numba kernels are compiled once and cached."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest

from migrc_bench.cli.main import main
from migrc_bench.trace import gapbs_bfs, gapbs_pr, gups, kv
from migrc_bench.trace.gapbs_graph import kronecker, pick_sources
from migrc_bench.trace.gencore import memcpy_records
from migrc_bench.trace.generators import REGISTRY, from_args, get
from migrc_bench.trace.native import TraceReader

SMALL = {
    "gups": "-n 12 -u 20000 -t 3",
    "kv": "-k 3000 -n 4000 -t 3 --seed 7",
    "gapbs-bfs": "-g 10 -n 2 -t 3",
    "gapbs-pr": "-g 10 -n 1 -i 3 -t 3",
    "llama": "--dim 16 --hidden-dim 24 --layers 2 --heads 4 --kv-heads 2 --vocab 40 --seq-len 8 "
             "-n 3 -t 3",
}


def make(tmp_path, name, args=None, **kw):
    spec = get(name)
    params = spec.parse(args or SMALL[name])
    path = tmp_path / f"{name}.parquet"
    return path, spec.load().generate(path, params, **kw)


def sites_of(path, code_sites) -> Counter:
    """How many data accesses each site made (the fetch before each data record names it)."""
    b = TraceReader(path).read_all()
    assert np.all(b.op[0::2] == 0) and np.all(b.op[1::2] != 0), "fetch, access, fetch, ..."
    names = {s.addr: s.name for s in code_sites}
    return Counter(names[int(a)] for a in b.addr[0::2])


def test_every_generator_is_registered_with_its_cli():
    assert list(REGISTRY) == ["xsbench", "gups", "kv", "gapbs-bfs", "gapbs-pr", "llama"]
    for name in REGISTRY:
        assert main(["trace", "gen", name, "--help"]) == 0


@pytest.mark.parametrize("name", list(SMALL))
def test_same_arguments_same_bytes_and_small_blocks_same_records(tmp_path, name):
    for d in "abc":
        (tmp_path / d).mkdir()
    a, ra = make(tmp_path / "a", name)
    b, _ = make(tmp_path / "b", name)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    # streaming: a run cut into blocks of a few thousand rows writes the same records
    c, rc = make(tmp_path / "c", name, block_records=4096)
    x, y = TraceReader(a).read_all(), TraceReader(c).read_all()
    assert ra.records == rc.records == len(x.tid) > 1000
    for col in ("tid", "op", "addr", "size"):
        assert np.array_equal(getattr(x, col), getattr(y, col)), col


@pytest.mark.parametrize("name", list(SMALL))
def test_metadata_regions_and_threads(tmp_path, name):
    path, result = make(tmp_path, name)
    meta = TraceReader(path).meta
    assert meta.generator["generator"] == name and meta.generator["threads"] == 3
    assert meta.generator == json.loads(json.dumps(get(name).parse(SMALL[name]).to_json()))
    b = TraceReader(path).read_all()
    assert set(np.unique(b.tid)) == {0, 1, 2}
    regions = sorted(meta.regions, key=lambda r: r.start)
    starts = np.array([r.start for r in regions])
    ends = np.array([r.end for r in regions])
    i = np.searchsorted(starts, b.addr.astype(np.int64), side="right") - 1
    inside = (i >= 0) & (b.addr.astype(np.int64) + b.size <= ends[np.maximum(i, 0)])
    assert inside.all(), f"{(~inside).sum()} records outside every region"
    code = {k for r in meta.regions if r.kind == "code" for k in range(r.start, r.end)}
    assert all(int(a) in code for a in np.unique(b.addr[b.op == 0])[:50])
    assert json.loads(meta.extra["arrays"])      # array spans for trace info and validation


def test_gups_records_are_two_per_update_plus_the_prologues(tmp_path):
    path, result = make(tmp_path, "gups")
    p = result.params
    c = sites_of(path, gups.CODE.sites)
    assert c["table_xor"] == p.updates
    lo, cnt = gups.thread_ranges(p)
    m2_loads = sum(_starts_loads(int(first)) for first in lo)
    starts_calls = sum(int(first) != 0 for first in lo)
    assert c["m2_store"] == 64 * starts_calls and c["m2_load"] == m2_loads
    per_thread = 5 + 4 + 3 + 1 + 5 + 1     # pushes, argument loads, calls, ret, pops, ret
    assert result.records == 2 * (p.updates + p.threads * per_thread + 64 * starts_calls
                                  + m2_loads)


def _starts_loads(n: int) -> int:
    """Loads of m2[] in HPCC_starts(n): one per set bit of ran in each squaring."""
    if n == 0:
        return 0
    poly, mask = 7, (1 << 64) - 1
    nxt = lambda r: ((r << 1) & mask) ^ (poly if r >> 63 else 0)  # noqa: E731
    m2, temp = [], 1
    for _ in range(64):
        m2.append(temp)
        temp = nxt(nxt(temp))
    i = max(b for b in range(63) if (n >> b) & 1)
    ran, loads = 2, 0
    while i > 0:
        temp = 0
        for j in range(64):
            if (ran >> j) & 1:
                temp ^= m2[j]
                loads += 1
        ran, i = temp, i - 1
        if (n >> i) & 1:
            ran = nxt(ran)
    return loads


def test_gups_stream_is_hpccs():
    # HPCC_starts(k + 1) is one step after HPCC_starts(k); the first elements are 1, 2, 4, ...
    assert [int(gups.hpcc_starts(k)) for k in range(5)] == [1, 2, 4, 8, 16]
    x = int(gups.hpcc_starts(10**6))
    nxt = ((x << 1) & (2**64 - 1)) ^ (7 if x >> 63 else 0)
    assert int(gups.hpcc_starts(10**6 + 1)) == nxt


# ---- kv ---------------------------------------------------------------------------------------
def _ycsb_keys(p, t: int, count: int) -> list[tuple[int, bool]]:
    """kv.c's client in pure Python: splitmix64, YCSB's zipfian and FNV-1a scrambling."""
    mask = 2**64 - 1
    x = [(p.seed + t) & mask]

    def splitmix() -> int:
        x[0] = (x[0] + 0x9E3779B97F4A7C15) & mask
        z = x[0]
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    zetan, eta, alpha, half = kv.zipf_constants(p.keys, p.theta)
    out = []
    for _ in range(count):
        u = (splitmix() >> 11) * 2.0**-53
        if u * zetan < 1.0:
            rank = 0
        elif u * zetan < 1.0 + half:
            rank = 1
        else:
            rank = int(p.keys * (eta * u - eta + 1.0) ** alpha)
        h = 0xCBF29CE484222325
        for _ in range(8):
            h ^= rank & 0xFF
            rank >>= 8
            h = (h * 1099511628211) & mask
        if h >> 63:
            h = (-h) & mask
        out.append((h % p.keys, (splitmix() >> 11) * 2.0**-53 < p.put_share))
    return out


def _mix64(k: int) -> int:
    mask = 2**64 - 1
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & mask
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & mask
    return k ^ (k >> 33)


def test_kv_gets_read_the_chain_and_copy_the_value(tmp_path):
    path, result = make(tmp_path, "kv", "-k 2000 -v 300 -w 0 -n 3000 -t 2 --seed 3")
    p = result.params
    mask = (1 << p.hashpower) - 1
    buckets: dict[int, list[int]] = {}
    for k in range(p.keys):                       # the load phase: newest key heads the chain
        buckets.setdefault(_mix64(k) & mask, []).insert(0, k)
    lo, cnt = kv.thread_ranges(p)
    per_op = 17 + memcpy_records(p.value_size)   # a get of the chain's first item
    expected, gets = 0, 0
    for t in range(p.threads):
        for key, put in _ycsb_keys(p, t, int(cnt[t])):
            assert not put
            hops = buckets[_mix64(key) & mask].index(key)
            expected += per_op + 2 * hops
            gets += 1
        expected += 9 * -(-int(cnt[t]) // kv.BATCH) + 6 * -(-int(cnt[t]) // kv.BATCH)
    c = sites_of(path, kv.CODE.sites + kv.LIBC.sites)
    assert c["hits"] == gets and c["misses"] == 0 and c["puts"] == 0
    assert result.records == 2 * expected


def test_kv_puts_move_hot_keys_to_freed_chunks(tmp_path):
    path, result = make(tmp_path, "kv", "-k 2000 -v 100 -w 0.5 -n 4000 -t 1 --seed 5")
    keys = _ycsb_keys(result.params, 0, 4000)
    c = sites_of(path, kv.CODE.sites + kv.LIBC.sites)
    assert c["puts"] == sum(put for _, put in keys) and c["hits"] == 4000 - c["puts"]
    assert c["nw_key"] == c["puts"] == c["old_next"]   # every put replaces an existing item
    # the free list is LIFO: each put writes the chunk the put before it freed
    b = TraceReader(path).read_all()
    at = {s.name: s.addr for s in kv.CODE.sites}
    fetch = b.addr[0::2]
    new = b.addr[1::2][fetch == at["nw_key"]].astype(np.int64) - kv.I_KEY
    old = b.addr[1::2][fetch == at["old_next"]].astype(np.int64) - kv.I_NEXT
    assert len(new) == len(old) > 100 and np.array_equal(new[1:], old[:-1])


# ---- GAP -------------------------------------------------------------------------------------
def test_kronecker_graph_is_gaps():
    # bfs -g 10 / -g 14 print "Graph has 1024 nodes and 10496 undirected edges" and "16381
    # nodes and 212930"; bfs -g 14 -n 1 -a starts at 1598, "BFS Tree has 12543 nodes"
    g10 = kronecker(10)
    assert (g10.num_nodes, g10.num_edges) == (1024, 10496)
    g = kronecker(14)
    assert (g.num_nodes, g.num_edges) == (16381, 212930)
    assert np.all(np.diff(g.offsets) >= 0)
    for u in (0, 100, 16380):
        row = g.neighs[g.offsets[u]:g.offsets[u + 1]]
        assert np.all(np.diff(row) > 0) and u not in row        # sorted, no duplicates/loops
    assert int(pick_sources(g.offsets, 1, 27491095)[0]) == 1598
    assert _reachable(g, 1598) == 12543


def _reachable(g, src: int) -> int:
    seen = np.zeros(g.num_nodes, bool)
    seen[src] = True
    frontier = [src]
    while frontier:
        nxt = []
        for u in frontier:
            for v in g.neighs[g.offsets[u]:g.offsets[u + 1]]:
                if not seen[v]:
                    seen[v] = True
                    nxt.append(int(v))
        frontier = nxt
    return int(seen.sum())


def test_bfs_reaches_what_a_plain_bfs_reaches_and_reads_each_frontier_edge(tmp_path):
    path, result = make(tmp_path, "gapbs-bfs", "-g 12 -n 3 -t 2")
    g = kronecker(12)
    assert result.visited == sum(_reachable(g, s) for s in result.sources)
    assert result.td_steps > 0 and result.bu_steps > 0         # both directions ran
    c = sites_of(path, gapbs_bfs.CODE.sites + gapbs_bfs.LIBC.sites)
    n = g.num_nodes
    assert c["ip_hi"] == c["ip_lo"] == c["fl_parent"] == 3 * n   # InitParent, final loop
    assert c["td_v"] == c["td_parent_v"] == c["td_parent_start"]  # top-down: per edge
    assert c["td_cas"] == c["td_push"]                            # each claim is pushed
    assert c["bu_v"] == c["bu_front_word"]                        # bottom-up: per edge
    assert c["bu_set_parent"] == c["bu_next_word"]
    # every reached vertex but the sources was claimed by exactly one step
    assert c["td_cas"] + c["bu_set_parent"] == result.visited - 3


def test_pagerank_iterates_as_gap_and_reads_every_edge_per_iteration(tmp_path):
    path, result = make(tmp_path, "gapbs-pr", "-g 10 -n 1 -t 1")
    g = kronecker(10)
    assert result.iterations == _pagerank_iterations(g)
    c = sites_of(path, gapbs_pr.CODE.sites)
    m, n, it = g.num_edges_directed, g.num_nodes, result.iterations
    assert c["it_neigh"] == c["it_contrib"] == it * m == result.edges_read
    assert c["it_in_hi"] == c["it_score"] == c["it_contrib_set"] == it * n
    assert c["in_set"] == n and c["fi_store"] + c["fi_tail"] >= n // 4


def _pagerank_iterations(g, max_iters: int = 20, tol: float = 1e-4) -> int:
    """PageRankPullGS in plain numpy float32 (one thread: vertex order)."""
    n = g.num_nodes
    deg = np.diff(g.offsets).astype(np.float32)
    scores = np.full(n, np.float32(1.0) / np.float32(n), np.float32)
    base = (np.float32(1.0) - np.float32(0.85)) / np.float32(n)
    with np.errstate(divide="ignore"):
        contrib = scores / deg
    for it in range(max_iters):
        error = 0.0
        for u in range(n):
            total = np.float32(0.0)
            for v in g.neighs[g.offsets[u]:g.offsets[u + 1]]:
                total = np.float32(total + contrib[v])
            new = np.float32(base + np.float32(0.85) * total)
            error += float(abs(np.float32(new - scores[u])))
            scores[u] = new
            with np.errstate(divide="ignore"):
                contrib[u] = np.float32(new / deg[u])
        if error < tol:
            return it + 1
    return max_iters


# ---- the CLI and trace.generate ---------------------------------------------------------------
def test_cli_writes_a_trace_and_bad_flags_exit_2_without_output(tmp_path, capsys):
    out = tmp_path / "g.parquet"
    assert main(["trace", "gen", "gups", "-n", "10", "-u", "1000", "-o", str(out)]) == 0
    assert "1,000 updates" in capsys.readouterr().err and out.exists()
    bad = tmp_path / "bad.parquet"
    assert main(["trace", "gen", "gups", "-n", "99", "-o", str(bad)]) == 2
    assert main(["trace", "gen", "gapbs-bfs", "-n", "2", "-o", str(bad)]) == 2   # -g missing
    assert main(["trace", "gen", "kv", "-z", "1.0", "-o", str(bad)]) == 2
    assert not bad.exists()


def test_trace_generate_uses_any_generator_and_catches_a_stale_trace(tmp_path):
    from migrc_bench.config import load_config
    from migrc_bench.errors import ConfigError, UserError
    from migrc_bench.runner import default_trace

    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text('[trace]\npath = "t.parquet"\ngenerate = "gups -n 10 -u 500 -t 2"\n')
    path = default_trace(load_config(cfg_path), quiet=True)
    assert TraceReader(path).meta.generator["updates"] == 500
    cfg_path.write_text('[trace]\npath = "t.parquet"\ngenerate = "gups -n 10 -u 600 -t 2"\n')
    with pytest.raises(UserError, match="generated with other arguments"):
        default_trace(load_config(cfg_path), quiet=True)
    with pytest.raises(ConfigError, match="trace.generate"):
        from_args("nosuch -x 1")


# ---- sizes nobody meant (trace.sizes, as for XSBench) ----------------------------------------
@pytest.mark.parametrize("name", list(SMALL))
def test_the_size_estimate_is_close(tmp_path, name):
    spec = get(name)
    # GUPS's estimate counts the longest HPCC_starts per thread: enough updates to outweigh it
    args = "-n 12 -u 100000 -t 3" if name == "gups" else SMALL[name]
    est = spec.size_estimate(spec.parse(args))
    path, result = make(tmp_path, name, args)
    assert abs(est.records - result.records) / result.records < 0.15, (est.records, result.records)
    assert est.bytes >= path.stat().st_size


@pytest.mark.parametrize("argv, hint", [
    ("gups -n 40", "give -u 49999960"),               # HPCC's default: 4 x 2^40 updates
    ("kv -n 100000000000", "give -n 570776"),
    ("gapbs-bfs -g 30", "give -n 1 -g 21"),             # one trial is already too long
    ("gapbs-pr -g 14 -n 5000 -i 1", "give -n 57"),
])
def test_trace_gen_refuses_a_size_nobody_meant(tmp_path, capsys, argv, hint):
    out = tmp_path / "big.parquet"
    assert main(["trace", "gen", *argv.split(), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "refusing to write" in err
    assert hint in err and "--force" in err and ("TB" in err or "GB" in err)
    assert not list(tmp_path.iterdir())


def test_force_writes_it_anyway_and_a_config_is_refused_too(tmp_path, capsys, monkeypatch):
    from migrc_bench.trace import sizes

    monkeypatch.setattr(sizes, "MAX_RECORDS", 1000)
    out = tmp_path / "g.parquet"
    argv = ["trace", "gen", "gups", "-n", "10", "-u", "1000", "-o", str(out), "-q"]
    assert main(argv) == 2 and not out.exists()
    assert main(argv + ["--force"]) == 0 and out.exists()
    capsys.readouterr()
    monkeypatch.setenv("MIGRC_BENCH_CACHE", str(tmp_path / "cache"))
    assert main(["run", "--no-save", "--set", 'trace.generate="gups -n 10 -u 1000"']) == 2
    err = capsys.readouterr().err
    assert "refusing to write" in err and "trace gen gups -n 10 -u 1000 --force" in err
    assert not list((tmp_path / "cache").glob("traces/*.parquet"))
