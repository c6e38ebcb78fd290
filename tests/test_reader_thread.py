"""The trace reader thread (replay.reader_thread): results identical with it on and off, errors
raised at the same batch, and the thread gone when the replay ends, however it ends."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from migrc_bench.config import load_config
from migrc_bench.errors import TraceError
from migrc_bench.model import feeder
from migrc_bench.model.replay import Replay
from migrc_bench.runner import make_engine
from migrc_bench.trace.native import Region, TraceMeta, TraceReader, write_trace
from migrc_bench.trace.xsbench import generate_xsbench

from results_util import assert_same_results as _same

SMALL = ["machine.ncpu=4", 'memory.dram="30%"', "replay.time_scale=2e-5", 'trace.generate=""']


@pytest.fixture(scope="module")
def xs_trace(tmp_path_factory):
    """~600 k records: several of the feeder's batches, so threads take batches at different
    times and the reader thread runs ahead of the replay."""
    path = tmp_path_factory.mktemp("xs") / "reader.parquet"
    generate_xsbench(path, size="small", mode="event", lookups=2000, threads=4, seed=11)
    return path


def _run(path, sets):
    cfg = load_config(None, SMALL + list(sets))
    return Replay(cfg, path, engine=make_engine(cfg)).run()


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "migrc-bench trace reader"]


@pytest.mark.parametrize("engine", ["baseline", "migrc", "luf"])
def test_results_identical_with_and_without_the_reader_thread(xs_trace, engine):
    on = _run(xs_trace, [f'engine="{engine}"', "replay.reader_thread=true"])
    off = _run(xs_trace, [f'engine="{engine}"', "replay.reader_thread=false"])
    _same(on, off)
    assert on.extra["trace_rows"] > 2 * feeder.READ_ROWS  # several batches went through the queue
    assert on.totals["pgmigrate_success"] > 0 and on.totals["nr_tlb_remote_flush"] > 0
    assert not _reader_threads()


def test_stopping_early_stops_the_reader_thread(xs_trace):
    on = _run(xs_trace, ["tiering.enabled=false", "replay.max_accesses=300000"])
    off = _run(xs_trace, ["tiering.enabled=false", "replay.max_accesses=300000",
                          "replay.reader_thread=false"])
    _same(on, off)
    assert not _reader_threads()


def test_a_failing_replay_stops_the_reader_thread(xs_trace):
    cfg = load_config(None, SMALL + ["tiering.enabled=false"])
    r = Replay(cfg, xs_trace)

    def boom(_replay):
        raise RuntimeError("boom")

    r.at(5_000.0, boom)
    with pytest.raises(RuntimeError, match="boom"):
        r.run()
    assert not _reader_threads()


@pytest.mark.parametrize("statistics", [True, False])
@pytest.mark.parametrize("reader_thread", ["true", "false"])
def test_bad_thread_id_beyond_the_first_batch(tmp_path, monkeypatch, reader_thread, statistics):
    """A bad thread id past the first batch is one TraceError naming its row, with the reader
    thread on and off: found from the row-group statistics when the trace is opened, or
    (a writer that left them out) in the batch that holds it, which the reader thread hands
    to the replay to raise where it would have read the batch itself."""
    n = feeder.READ_ROWS * 2 + 100
    tid = np.zeros(n, np.uint16)
    tid[1::2] = 1
    tid[-1] = 7  # the trace says 2 threads
    heap = Region(0x10000000, 0x10000000 + 64 * 4096, "heap", True, False)
    addr = (0x10000000 + (np.arange(n) % 64) * 4096).astype(np.uint64)
    path = tmp_path / "badtid.parquet"
    write_trace(path, TraceMeta("test", 2, (heap,)), tid, np.ones(n, np.uint8), addr,
                np.full(n, 8, np.uint8))
    if not statistics:
        monkeypatch.setattr(TraceReader, "_column_ranges", lambda self: None)
    cfg = load_config(None, ["machine.ncpu=2", "tiering.enabled=false", 'trace.generate=""',
                             'memory.dram="1MiB"', 'memory.cxl="8GiB"', "memory.min_free_kbytes=0",
                             f"replay.reader_thread={reader_thread}"])
    with pytest.raises(TraceError, match=f"row {n - 1:,}: thread id 7, but the trace declares 2 "
                                         f"threads"):
        Replay(cfg, path).run()
    assert not _reader_threads()


def test_parked_rows_change_nothing(xs_trace, monkeypatch):
    """Rows waiting for a lagging thread beyond the memory budget go to a temporary file and
    come back in order: a tiny budget gives the same results (and parks a lot)."""
    from migrc_bench.model import pending

    normal = _run(xs_trace, ['engine="migrc"'])
    monkeypatch.setattr(pending, "BUDGET_ROWS", 5000)
    parked = []
    real_close = pending.PendingRows.close
    monkeypatch.setattr(pending.PendingRows, "close",
                        lambda self: (parked.append(self.parked_rows), real_close(self)))
    tight = _run(xs_trace, ['engine="migrc"'])
    _same(normal, tight)
    assert parked and parked[0] > 100_000


@pytest.mark.parametrize("small", ["batches", "queue"])
def test_small_chunks_through_the_ring_change_nothing(xs_trace, monkeypatch, small):
    """Through every task's ring of chunks (feeder.Buffers, read by the loop by address):
    batches of 300 rows make ~4,000 chunks of ~75 rows, so rings fill to SEGMENTS and the loop
    moves from chunk to chunk and around the ring thousands of times; or a queue of at most 64
    rows per task takes each chunk in parts (views, the rest left pending). The results are
    the same either way."""
    from migrc_bench.model import kernel, replay

    normal = _run(xs_trace, ['engine="migrc"'])
    if small == "batches":
        monkeypatch.setattr(feeder, "READ_ROWS", 300)
    else:
        monkeypatch.setattr(replay, "BUFFER_ROWS", 64)
    queued = []
    real_append = feeder.Buffers.append
    monkeypatch.setattr(feeder.Buffers, "append", lambda self, t, pid, op: (
        real_append(self, t, pid, op), queued.append((self.seg_n[t], self.queued(t)))))
    small_run = _run(xs_trace, ['engine="migrc"'])
    _same(normal, small_run)
    if small == "batches":
        assert sum(n == kernel.SEGMENTS for n, _ in queued) > 100 and len(queued) > 3000
    else:
        assert len(queued) > 3000 and max(rows for _, rows in queued) <= 64


def test_pending_rows_keep_each_thread_in_order():
    """Random appends and partial takes through a two-row budget: every thread gets its rows
    back in the order they came, whether they waited in memory or on disk."""
    from migrc_bench.model.pending import PendingRows

    rng = np.random.default_rng(3)
    p = PendingRows(3, lambda: np.arange(nxt + 1, dtype=np.int64), budget=2)
    sent = [[] for _ in range(3)]
    got = [[] for _ in range(3)]
    nxt = 0
    for _ in range(400):
        t = int(rng.integers(3))
        if rng.random() < 0.55:
            n = int(rng.integers(1, 6))
            pid = np.arange(nxt, nxt + n, dtype=np.int32)
            nxt += n
            p[t].append((pid, pid.astype(np.uint32) * 4 + 1))
            sent[t] += pid.tolist()
        elif p[t]:
            pid, op = p[t][0]
            k = int(rng.integers(1, len(pid) + 1))
            got[t] += pid[:k].tolist()
            assert (op[:k] == pid[:k].astype(np.uint32) * 4 + 1).all()
            if k == len(pid):
                p[t].pop(0)
            else:
                p[t][0] = (pid[k:], op[k:])
    for t in range(3):
        while p[t]:
            got[t] += p[t].pop(0)[0].tolist()
    assert got == sent
    assert p.parked_rows > 0 and p.mem_rows == 0
    p.close()


def test_parked_rows_come_back_with_their_op_words():
    """A parked row keeps only its page id and access kind; read back, its op word is rebuilt
    from the page map (the page's low vpn bits) and equals the one the mapping made, for
    addresses of several processes (mm bits above the vpn), ranges and page-crossing rows."""
    from migrc_bench.model.pagemap import PageMap
    from migrc_bench.model.pending import PendingRows

    rng = np.random.default_rng(5)
    pm = PageMap()
    pm.add_range(0x7f0000, 64)
    n = 20_000
    mm = rng.integers(0, 4, n).astype(np.uint64) << np.uint64(45 + 12)
    addr = mm | rng.choice([0x7f0000 << 12, 1 << 40, 0x5000], n).astype(np.uint64) \
        + rng.integers(0, 1 << 22, n).astype(np.uint64)
    size = rng.choice([1, 8, 64, 255], n).astype(np.uint8)
    tid = rng.integers(0, 2, n).astype(np.uint16)
    op = rng.integers(0, 4, n).astype(np.uint8)
    parts, _, _ = pm.map_threads(addr, size, tid, op, 2)
    p = PendingRows(2, lambda: pm.vpns, budget=100)
    for t in (0, 1):
        pid, word = parts[t]
        for k in range(0, len(pid), 997):
            p[t].append((pid[k:k + 997], word[k:k + 997]))
    assert p[0].disk_rows + p[1].disk_rows > 0.9 * n
    for t in (0, 1):
        got = []
        while p[t]:
            got.append(p[t].pop(0))
        assert np.array_equal(np.concatenate([g[0] for g in got]), parts[t][0])
        assert np.array_equal(np.concatenate([g[1] for g in got]), parts[t][1])
    p.close()


def test_batches_mapped_by_either_thread_come_in_file_order(monkeypatch, tmp_path):
    """The reader thread maps while the replay is busy (here: at first), the replay maps the
    batch it needs when it is read but not mapped yet (then, reading being the slower step);
    every page id is the one mapping the batches in file order gives."""
    import time

    from migrc_bench.model import prefetch
    from migrc_bench.model.pagemap import PageMap
    from migrc_bench.trace.native import Batch

    rng = np.random.default_rng(5)
    batches = [Batch(rng.integers(0, 3, 500).astype(np.uint16), np.ones(500, np.uint8),
                     (0x10000000 + rng.integers(0, 400, 500) * 4096).astype(np.uint64),
                     np.full(500, 8, np.uint8)) for _ in range(40)]
    real = prefetch.map_batch
    who = set()

    def slow(*a, **k):
        who.add(threading.current_thread().name)
        time.sleep(0.002)
        return real(*a, **k)

    def read_slowly():
        for b in batches:
            time.sleep(0.003)
            yield b

    def mapped(background):
        mb = prefetch.MappedBatches(read_slowly(), PageMap(), 3, tmp_path, 3, background)
        out = []
        while (b := mb.next()) is not None:
            out.append(b)
            if background and len(out) < 10:
                time.sleep(0.03)  # a busy replay: the reader thread reads ahead and maps
        mb.close()
        return out

    monkeypatch.setattr(prefetch, "map_batch", slow)
    sync = mapped(False)
    who.clear()
    threaded = mapped(True)
    assert len(who) == 2  # the replay's thread mapped some batches, the reader thread others
    assert [b.first_new for b in sync] == [b.first_new for b in threaded]
    for a, b in zip(sync, threaded):
        for pa, pb in zip(a.parts, b.parts):
            assert (pa is None) == (pb is None)
            if pa is not None:
                assert np.array_equal(pa[0], pb[0]) and np.array_equal(pa[1], pb[1])


def test_batches_mapped_ahead_come_in_file_order(tmp_path, monkeypatch):
    """While the reader thread maps the batch the replay waits for (slowly, here), the replay
    maps the next one when all its pages are in the ranges, and gives back one that is not;
    the batches come in file order with the ids (and new pages) that mapping them in turn
    gives, whether mapped ahead or not."""
    import time

    from migrc_bench.model import prefetch
    from migrc_bench.model.pagemap import PageMap
    from migrc_bench.trace.native import Batch

    rng = np.random.default_rng(7)
    base = 0x10000000

    def batch(k):  # batches 20 and 21 also touch pages outside the range (hashed, new)
        addr = base + rng.integers(0, 400, 500) * 4096 + rng.integers(0, 4096, 500)
        if k in (20, 21):
            addr[::50] = 0x50000000 + rng.integers(0, 30, 10) * 4096
        return Batch(rng.integers(0, 3, 500).astype(np.uint16), rng.integers(0, 4, 500).astype(np.uint8),
                     addr.astype(np.uint64), rng.choice([1, 8, 200], 500).astype(np.uint8))

    batches = [batch(k) for k in range(30)]
    real_map, real_ahead = prefetch.map_batch, prefetch.map_ahead
    ahead = []

    def slow(*a, **k):
        if threading.current_thread().name == "migrc-bench trace reader":
            time.sleep(0.006)
        return real_map(*a, **k)

    def recorded(*a, **k):
        parts = real_ahead(*a, **k)
        ahead.append(parts is not None)
        return parts

    def mapped(background):
        pm = PageMap()
        pm.add_range(base >> 12, 401)
        mb = prefetch.MappedBatches(iter(batches), pm, 3, tmp_path, 3, background)
        out = []
        while (b := mb.next()) is not None:
            out.append(b)
            if background:
                time.sleep(0.002)  # the replay runs: the reader thread maps the next meanwhile
        mb.close()
        return out, pm.n

    sync, sync_n = mapped(False)
    monkeypatch.setattr(prefetch, "map_batch", slow)
    monkeypatch.setattr(prefetch, "map_ahead", recorded)
    threaded, threaded_n = mapped(True)
    assert sum(ahead) >= 5 and not all(ahead)  # mapped ahead, and some given back
    assert sync_n == threaded_n > 401
    assert [(b.first_new, b.end) for b in sync] == [(b.first_new, b.end) for b in threaded]
    for a, b in zip(sync, threaded):
        for pa, pb in zip(a.parts, b.parts):
            assert (pa is None) == (pb is None)
            if pa is not None:
                assert np.array_equal(pa[0], pb[0]) and np.array_equal(pa[1], pb[1])


def test_map_ranged_registers_nothing():
    """PageMap.map_ranged: map_threads' parts for a batch inside the ranges (the table is
    left as it was), None for a batch with a page outside them."""
    from migrc_bench.model.pagemap import PageMap

    rng = np.random.default_rng(3)
    pm, ref = PageMap(), PageMap()
    for m in (pm, ref):
        m.add_range(0x1000, 64)
        m.add_range(0x9000, 8)
    addr = (rng.choice([0x1000, 0x9000], 2000) * 4096 + rng.integers(0, 7 * 4096, 2000)).astype(np.uint64)
    size = rng.choice([1, 8, 255], 2000).astype(np.uint8)
    tid = np.repeat(np.arange(4), 500).astype(np.uint16)
    op = rng.integers(0, 4, 2000).astype(np.uint8)
    parts = pm.map_ranged(addr, size, tid, op, 4)
    want, first, end = ref.map_threads(addr, size, tid, op, 4)
    assert first == end == pm.n == 72
    for a, b in zip(parts, want):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    addr[1500] = 0x70000 << 12
    assert pm.map_ranged(addr, size, tid, op, 4) is None and pm.n == 72
