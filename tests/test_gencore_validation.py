"""The generators' shared core (interleaving, glibc's memcpy, heap placement) and the
validation's trace surgery (kernel windows, lackey artifacts, allocation marks), on
synthetic inputs: these must be right for the real-program checks to mean anything."""

from __future__ import annotations

import numpy as np
import pytest

from migrc_bench import validation as V
from migrc_bench.trace.gencore import (CHUNK_HEADER, STATIC, Heap, emit_memcpy, loop_length,
                                       loop_position, memcpy_records, new_block)
from migrc_bench.trace.native import PAGE_SIZE, TraceMeta, TraceReader, write_trace


@pytest.mark.parametrize("n,threads,chunk", [(10, 3, STATIC), (7, 4, STATIC), (1, 5, STATIC),
                                              (1000, 3, 100), (250, 2, 100), (5, 2, 1)])
def test_loop_position_gives_each_iteration_once_in_program_order(n, threads, chunk):
    seen: dict[int, list[int]] = {t: [] for t in range(threads)}
    firsts = lasts = 0
    for seq in range(loop_length(n, threads, chunk)):
        t, it, first, last = loop_position(seq, n, threads, chunk)
        assert t == seq % threads               # one iteration per thread in each round
        if it >= 0:
            seen[t].append(it)
            firsts += first
            lasts += last
    assert sorted(i for its in seen.values() for i in its) == list(range(n))
    for its in seen.values():
        assert its == sorted(its)
    if chunk == STATIC:      # one contiguous block per thread, the first n mod T one longer
        q, r = divmod(n, threads)
        assert [len(seen[t]) for t in range(threads)] == [q + (t < r) for t in range(threads)]
        assert firsts == lasts == sum(1 for t in range(threads) if seen[t])
    else:                    # chunk c on thread c mod T
        for t, its in seen.items():
            assert all((i // chunk) % threads == t for i in its)
        assert firsts == lasts == -(-n // chunk)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 64, 65, 128, 129, 256, 257,
                               1000, 4096, 65536])
def test_memcpy_touches_exactly_its_bytes_in_vector_pieces(n):
    cols = new_block(4 * n + 64)
    sites = np.array([[0x1000, 4, 1, 32], [0x1004, 4, 2, 32]], np.int64)
    dst, src = 0x10_0000, 0x20_0000 + 8
    pos = emit_memcpy((cols[0], cols[1], cols[2], cols[3]), 0, 0, sites, 0, 1, dst, src, n)
    op, addr, size = cols[1][:pos], cols[2][:pos].astype(np.int64), cols[3][:pos].astype(np.int64)
    data = op != 0
    assert pos // 2 == memcpy_records(n)
    for kind, base in ((1, src), (2, dst)):
        sel = data & (op == kind)
        covered = np.zeros(n, bool)
        for a, s in zip(addr[sel], size[sel]):
            assert base <= a and a + s <= base + n          # never outside the buffers
            covered[a - base:a - base + s] = True
        assert covered.all()
        assert size[sel].max() <= 32


def test_heap_places_big_arrays_on_fresh_pages_and_packs_small_ones():
    h = Heap(0x1000_0000)
    big = h.alloc("big", 1 << 20, 1)
    small = h.alloc("small", 100, 1)
    small2 = h.alloc("small2", 100, 1)
    fresh = h.alloc("fresh", 100, 1, fresh_page=True)
    assert big.start % PAGE_SIZE == CHUNK_HEADER
    assert small.start >= big.end and small2.start - small.end < 64
    assert fresh.start % PAGE_SIZE == CHUNK_HEADER
    names = [r.name for r in h.array_regions()]
    assert names == ["big", "small+small2", "fresh"]      # a shared page joins its arrays


# ---- validation: windows, artifacts, marks ------------------------------------------------------
def _trace(tmp_path, rows, name="t.parquet"):
    op = np.array([r[0] for r in rows], np.uint8)
    addr = np.array([r[1] for r in rows], np.uint64)
    size = np.array([r[2] for r in rows], np.uint8)
    return write_trace(tmp_path / name, TraceMeta(source="test", threads=1),
                       np.zeros(len(rows), np.uint16), op, addr, size)


def test_cut_keeps_each_kernel_call_and_drops_valgrinds_artifacts(tmp_path):
    K, K2, BT, OUT = 0x400100, 0x400180, 0x400150, 0x500000
    rows = [(0, OUT, 4), (1, 0x9000, 8),                     # start-up: dropped
            (0, K, 4), (1, 0x1000, 8),                       # call 1 opens at the entry
            (0, BT, 4), (2, 0x7ff0, 8), (1, 0x7ff0, 1),      # bt reg,reg: VEX's two records
            (0, K2, 4), (1, 0x2000, 8), (3, 0x2000, 8),      # lock xadd: load + modify
            (0, OUT, 4), (2, 0x3000, 8),                     # memcpy called by the kernel
            (0, K2, 4),                                      # the last kernel fetch (ret)
            (0, OUT, 4), (1, 0x9000, 8),                     # between calls: dropped
            (0, K, 4), (1, 0x1008, 8), (0, K2, 4)]           # call 2
    # a rep movsb of 64 bytes: 64 executions, one byte each -> 2 kept (one per 32 bytes)
    rows[17:17] = [r for i in range(64) for r in ((0, K2, 3), (1, 0x4000 + i, 1),
                                                   (2, 0x5000 + i, 1))]
    src = _trace(tmp_path, rows)
    ranges = np.array([[K, K + 0x100]], np.int64)
    assert V.kernel_windows(src, K, ranges) == [(2, 13), (15, len(rows))]
    out = tmp_path / "cut.parquet"
    assert V.cut_to_kernel(src, out, K, ranges, np.array([BT], np.int64)) == 2
    b = TraceReader(out).read_all()
    got = list(zip(b.op.tolist(), b.addr.tolist()))
    assert (1, 0x9000) not in got                              # outside the windows
    assert (2, 0x7ff0) not in got and (1, 0x7ff0) not in got   # bit-test artifacts
    assert (3, 0x2000) in got and (1, 0x2000) not in got       # one access per locked RMW
    assert (2, 0x3000) in got                                  # what the kernel calls stays
    assert sum(1 for o, a in got if o == 1 and 0x4000 <= a < 0x4040) == 2
    assert sum(1 for o, a in got if o == 0 and a == K2) == 2 + 2 + 1


def test_allocation_marks_name_reused_blocks_right(tmp_path):
    marks = 0x7000_0000
    log = tmp_path / "allocs"
    # allocation 0 (before the kernel) and 1, 2 inside it; block 2 reuses block 1's address
    log.write_text(f"marks {marks:x}\nalloc 100000 10000\nalloc 200000 1000\n"
                   f"alloc 200000 1000\n")
    rows = [(1, 0x100010, 8),                 # allocation 0 holds from the start
            (2, marks + 8, 8), (1, 0x200010, 8),       # mark of allocation 1, then an access
            (2, marks + 16, 8), (1, 0x200020, 8)]      # allocation 2 replaces it
    trace = _trace(tmp_path, rows)
    names = {0x10000: "graph"}
    lay = V.RealLayout.from_malloc_log(log, lambda size, k: names.get(size) or f"trial{k}")
    points = lay.change_points(trace)
    assert [row for row, _ in points] == [0, 1, 3]
    p = V.profile(trace, lay, 1, "unit", dtlb_walks=0)
    assert p.records["graph"] == 1 and p.records["trial0"] == 1 and p.records["trial1"] == 1


def test_compare_fails_a_generator_that_is_off(tmp_path):
    real = V.Profile(100, "op", {"code": 1000, "a": 500, "b": 500, "other": 5}, {"a": 10, "b": 10},
                     20, 10, 50)
    same = V.compare(real, real)
    assert all(f.ok for f in same) and sum(f.checked for f in same) >= 5
    off = V.Profile(100, "op", {"code": 1000, "a": 300, "b": 500, "other": 0}, {"a": 10, "b": 10},
                    20, 10, 50)
    bad = [f.figure for f in V.compare(real, off) if not f.ok]
    assert bad == ["records/op a"]
    walks = V.Profile(100, "op", real.records, real.pages, 20, 10, 80)
    assert [f.figure for f in V.compare(real, walks) if not f.ok] == ["dTLB walks/op"]
