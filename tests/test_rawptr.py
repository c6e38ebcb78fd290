"""Element reads and writes by address (model/rawptr.py), as the loop and the page mapping use
them: through views at an offset, for the types they are typed with."""

from __future__ import annotations

import numpy as np
from numba import njit

from migrc_bench.model.rawptr import address, load_int32, load_uint32, store_int32, store_uint32


@njit(_nrt=False)
def _copy_through(src_i, src_u, dst_i, dst_u, n):
    for i in range(n):
        store_int32(dst_i, i, load_int32(src_i, i))
        store_uint32(dst_u, i, load_uint32(src_u, i))


def test_views_read_and_written_by_address():
    rng = np.random.default_rng(5)
    ints = rng.integers(-2**31, 2**31, 1000).astype(np.int32)
    uints = rng.integers(0, 2**32, 1000).astype(np.uint32)
    out_i = np.zeros(1000, np.int32)
    out_u = np.zeros(1000, np.uint32)
    # a view's address is its first element: rows 100-399 into rows 600-899
    _copy_through(address(ints[100:]), address(uints[100:]), address(out_i[600:]),
                  address(out_u[600:]), 300)
    assert (out_i[600:900] == ints[100:400]).all() and (out_u[600:900] == uints[100:400]).all()
    assert not out_i[:600].any() and not out_i[900:].any()
    assert not out_u[:600].any() and not out_u[900:].any()
