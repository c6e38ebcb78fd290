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
