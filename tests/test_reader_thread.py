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
from migrc_bench.trace.native import Region, TraceMeta, write_trace
from migrc_bench.trace.xsbench import generate_xsbench

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


def _same(a, b) -> None:
    drop = ("wall_s", "accesses_per_s")
    assert {k: v for k, v in a.totals.items() if k not in drop} == \
        {k: v for k, v in b.totals.items() if k not in drop}
    assert a.cpus == b.cpus
    assert a.intervals == b.intervals


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


@pytest.mark.parametrize("reader_thread", ["true", "false"])
def test_bad_thread_id_beyond_the_first_batch(tmp_path, reader_thread):
    """The reader thread hands its error to the replay, which raises it where it would have
    read the batch itself: the same TraceError with the thread on and off."""
    n = feeder.READ_ROWS * 2 + 100
    tid = np.zeros(n, np.uint16)
    tid[1::2] = 1
    tid[-1] = 7  # the trace says 2 threads
    heap = Region(0x10000000, 0x10000000 + 64 * 4096, "heap", True, False)
    addr = (0x10000000 + (np.arange(n) % 64) * 4096).astype(np.uint64)
    path = tmp_path / "badtid.parquet"
    write_trace(path, TraceMeta("test", 2, (heap,)), tid, np.ones(n, np.uint8), addr,
                np.full(n, 8, np.uint8))
    cfg = load_config(None, ["machine.ncpu=2", "tiering.enabled=false", 'trace.generate=""',
                             'memory.dram="1MiB"', 'memory.cxl="8GiB"', "memory.min_free_kbytes=0",
                             f"replay.reader_thread={reader_thread}"])
    with pytest.raises(TraceError, match="thread id 7 but the trace declares 2 threads"):
        Replay(cfg, path).run()
    assert not _reader_threads()
