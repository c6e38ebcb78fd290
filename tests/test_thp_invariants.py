"""The invariant checker sees 2 MiB translations (memory.thp): a CPU whose 2 MiB entry still
covers a THP's old frames is caught when one of those frames is reallocated (I3) or when a page
of the range is made writable elsewhere (I2) — and is not once its TLB was flushed."""

from __future__ import annotations

import numpy as np
import pytest

from migrc_bench.model import kernel as K
from migrc_bench.model.invariants import Checker

from test_thp_migration import BIG, N, build, head, move_thp, spin, thp_frame


def _cached_then_moved(tmp_path, flushed: bool):
    """CPU 0 loads page 77 of the THP (its 2 MiB entry in the dTLB and STLB), then the THP
    moves to CXL without a flush (a broken migration) — or with CPU 0's TLB flushed."""
    r = build(tmp_path, spin(1, 2000, {0: [(0.5, 1, BIG + 77 * 4096)]}))
    r.check = True
    r.checker = Checker(r)
    r.run()
    old = thp_frame(r)
    move_thp(r, 1)
    if flushed:
        K.invalidate_all(r.machine.tlb_tag, 0, r.machine.page_flags, True)
    return r, old


@pytest.mark.parametrize("flushed", [False, True])
def test_reallocating_a_frame_under_a_stale_2m_entry_is_i3(tmp_path, flushed):
    r, old = _cached_then_moved(tmp_path, flushed)
    m = r.machine
    assert (m.tlb_tag[0, m.tlb_geo[K.G_DTLB2]:] == head(r)).any() != flushed
    r.checker.on_alloc(0, old + 5)  # neither the first frame nor the one page 77 used
    assert r.checker.by_rule["I3"] == (0 if flushed else 1)


@pytest.mark.parametrize("flushed", [False, True])
def test_a_page_made_writable_under_a_stale_2m_alias_is_i2(tmp_path, flushed):
    r, _ = _cached_then_moved(tmp_path, flushed)
    pid = head(r) + 300  # a page of the range the CPU never touched itself
    r.checker.on_writable(0, pid)
    assert r.checker.by_rule["I2"] == (0 if flushed else 1)


def test_the_current_2m_entry_is_not_an_alias(tmp_path):
    r = build(tmp_path, spin(1, 2000, {0: [(0.5, 1, BIG + 77 * 4096)]}))
    r.check = True
    r.checker = Checker(r)
    res = r.run()
    assert res.totals["invariant_violations"] == 0
    r.checker.on_writable(0, head(r) + 300)
    r.checker.on_alloc(0, int(np.int64(thp_frame(r))) + N)  # the frame after the THP
    assert r.checker.count == 0
