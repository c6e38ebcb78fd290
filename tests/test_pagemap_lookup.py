"""PageMap.lookup: its numpy path (ids in ranges only, as before a replay) gives what the
compiled lookup gives."""

from __future__ import annotations

import numpy as np
import pytest

from migrc_bench.model import pagemap as P


@pytest.mark.parametrize("seed", range(5))
def test_lookup_of_ranges_equals_the_compiled_lookup(seed):
    rng = np.random.default_rng(seed)
    m = P.PageMap()
    for start in rng.choice(np.arange(0, 1 << 20, 64), size=rng.integers(0, 12), replace=False):
        m.add_range(int(start), int(rng.integers(1, 64)))
    vpns = rng.integers(0, (1 << 20) + 64, 5000)
    vpns = np.concatenate([vpns, m.vpns[:m.n]])
    assert m.ranged == m.n
    got = m.lookup(vpns)
    want = np.empty(len(vpns), np.int32)
    P._lookup_many(m.keys, m.vals, m.r_start, m.r_end, m.r_base, vpns.astype(np.int64), want)
    assert got.dtype == np.int32 and np.array_equal(got, want)
    assert np.array_equal(m.lookup(m.vpns[:m.n]), np.arange(m.n))
    m.add_vpns(np.array([(1 << 20) + 100]))  # a page in the hash table: the compiled path
    assert m.lookup(np.array([(1 << 20) + 100]))[0] == m.n - 1


def _per_thread_reference(addr, size, tid, op, threads):
    """What map_threads must give: map_batch's rows (file order) split by thread."""
    m = P.PageMap()
    pid, tids, packed, first = m.map_batch(addr, size, tid, op)
    return [(pid[tids == t], packed[tids == t]) for t in range(threads)], m.n


@pytest.mark.parametrize("seed", range(4))
def test_map_threads_equals_mapping_in_file_order(seed):
    """Runs of threads, ranges and hashed pages, page-crossing accesses; and a batch with
    more new pages than accesses (every access crosses into two new pages), which makes the
    one-pass mapping stop, grow the table and map the batch again, and stop again when the
    threads' arrays (room for their records and ~3 % more) are full, to be sized exactly."""
    rng = np.random.default_rng(seed)
    threads = 4
    n = 50_000 if seed else 40_000
    if seed == 0:
        addr = (np.arange(n, dtype=np.uint64) * 8192 + 4095)
        tid = np.zeros(n, np.uint16)
    else:
        addr = rng.integers(0, 1 << 32, n).astype(np.uint64)
        tid = np.repeat(rng.integers(0, threads, n // 100 + 1), 100)[:n].astype(np.uint16)
    size = rng.integers(1, 256, n).astype(np.uint8) if seed else np.full(n, 8, np.uint8)
    op = rng.integers(0, 4, n).astype(np.uint8)
    want, want_n = _per_thread_reference(addr, size, tid, op, threads)
    m = P.PageMap()
    parts, first, end = m.map_threads(addr, size, tid, op, threads)
    assert (first, end) == (0, want_n) and m.n == want_n
    for t in range(threads):
        if len(want[t][0]) == 0:
            assert parts[t] is None
        else:
            assert np.array_equal(parts[t][0], want[t][0]) and np.array_equal(parts[t][1], want[t][1])
    if seed == 0:
        assert want_n == 2 * n  # more new pages than the first pass had room for
    with pytest.raises(ValueError):
        m.map_threads(addr[:10], size[:10], np.full(10, threads, np.uint16), op[:10], threads)
