"""Generated traces replayed as they are made (trace.keep = false, --stream; trace/stream.py):
the same batches as the written file, counters identical to replaying it, a bounded queue,
the generator stopped however the replay ends, and one-line errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from migrc_bench.cli.main import main
from migrc_bench.config import load_config
from migrc_bench.errors import ConfigError
from migrc_bench.model import feeder
from migrc_bench.runner import default_trace, run_trace, stream_spec
from migrc_bench.trace.generated import ensure
from migrc_bench.trace.native import ROW_GROUP_ROWS, TraceReader
from migrc_bench.trace.stream import GeneratedTrace, StreamSpec, stream_sha256

from results_util import assert_same_results as _same

XS = "xsbench -s small -G unionized -m event -l 10000 -t 4 --seed 1"   # configs/ci.toml's
GUPS = "gups -n 18 -u 300000 -t 4"
CI = str(Path(__file__).resolve().parents[1] / "configs" / "ci.toml")


def _cfg(text: str, *sets: str, keep: bool = True):
    return load_config(CI, [f'trace.generate="{text}"', f"trace.keep={str(keep).lower()}", *sets])


def _generators() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "migrc-bench trace generator"]


def test_the_stream_gives_the_files_batches():
    """Batch for batch what TraceReader reads from the written file, across row groups."""
    path = ensure(XS)
    file_batches = list(TraceReader(path).iter_batches(feeder.READ_ROWS))
    src = GeneratedTrace(XS)
    try:
        assert src.meta == TraceReader(path).meta
        stream_batches = list(src.iter_batches(feeder.READ_ROWS))
        again = list(src.iter_batches(ROW_GROUP_ROWS))  # a second pass runs the generator again
    finally:
        src.close()
    assert sum(len(b) for b in file_batches) > 2 * ROW_GROUP_ROWS
    assert [len(b) for b in stream_batches] == [len(b) for b in file_batches]
    for s, f in zip(stream_batches, file_batches):
        for col in ("tid", "op", "addr", "size"):
            assert np.array_equal(getattr(s, col), getattr(f, col))
            assert getattr(s, col).dtype == getattr(f, col).dtype
    assert sum(len(b) for b in again) == sum(len(b) for b in file_batches)
    assert not _generators()


@pytest.mark.parametrize("text", ["kv -k 2000 -n 20000 -t 2", "gapbs-bfs -g 10 -n 1 -t 2",
                                  "gapbs-pr -g 10 -n 1 -i 2 -t 2", "gups -n 12 -u 5000 -t 3",
                                  "llama --dim 16 --hidden-dim 24 --layers 2 --heads 4 "
                                  "--kv-heads 2 --vocab 40 --seq-len 8 -n 3 -P 2 -t 2"])
def test_every_generator_streams_its_files_records(text):
    path = ensure(text)
    src = GeneratedTrace(text)
    try:
        assert src.meta == TraceReader(path).meta
        streamed = [b for b in src.iter_batches(feeder.READ_ROWS)]
    finally:
        src.close()
    filed = TraceReader(path).read_all()
    for col in ("tid", "op", "addr", "size"):
        assert np.array_equal(np.concatenate([getattr(b, col) for b in streamed]),
                              getattr(filed, col))


@pytest.mark.parametrize("text", [XS, GUPS], ids=["xsbench", "gups"])
@pytest.mark.parametrize("engine", ["baseline", "migrc"])
def test_counters_identical_to_the_written_file(text, engine):
    """Tiering on, steady-state start (so the pre-pass runs as a streamed pass of its own)."""
    filed, _ = run_trace(_cfg(text, f'engine="{engine}"'), ensure(text))
    cfg = _cfg(text, f'engine="{engine}"', keep=False)
    streamed, _ = run_trace(cfg, stream_spec(cfg))
    _same(filed, streamed)
    assert streamed.totals["pgmigrate_success"] > 0 and streamed.totals["numa_hint_faults"] > 0
    assert streamed.trace_path == f"stream:{text}"
    assert not _generators()


def test_counters_identical_without_the_pre_pass_and_with_the_checker():
    sets = ('engine="migrc"', 'memory.initial_pte="writable-dirty"', "replay.reader_thread=false")
    filed, _ = run_trace(_cfg(XS, *sets), ensure(XS), check_invariants=True)
    cfg = _cfg(XS, *sets, keep=False)
    streamed, _ = run_trace(cfg, stream_spec(cfg), check_invariants=True)
    _same(filed, streamed)
    assert streamed.totals["invariant_violations"] == 0


def test_the_queue_is_bounded_and_closing_stops_the_generator():
    src = GeneratedTrace("gups -n 16 -u 20000000 -t 4")   # ~10^8 records if it ran ahead
    try:
        it = src.iter_batches(feeder.READ_ROWS)
        next(it)
        time.sleep(0.5)
        sink = src._runs[0][0]
        assert sink.queue.maxsize == 2 and sink.queue.qsize() <= 2
        assert sink.rows <= 4 * ROW_GROUP_ROWS  # taken, queued and the one being made
    finally:
        src.close()
    assert not _generators()


def test_stopping_early_stops_the_generator():
    cfg = _cfg(XS, "replay.max_accesses=300000", keep=False)
    result, _ = run_trace(cfg, stream_spec(cfg))
    _same(result, run_trace(_cfg(XS, "replay.max_accesses=300000"), ensure(XS))[0])
    assert result.totals["accesses"] < 400000
    assert not _generators()


def test_runs_record_the_generator_arguments_and_their_hash(tmp_path, capsys):
    out = tmp_path / "res"
    code = main(["run", "--config", CI, "--stream", "--out", str(out), "-q", "--format", "json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    runs = pq.read_table(out / "runs.parquet").to_pylist()
    assert runs[0]["trace"] == printed["trace"] == f"stream:{XS}"
    assert runs[0]["trace_sha256"] == stream_sha256(GeneratedTrace(XS).params)
    assert "keep = false" in runs[0]["config_toml"]


def test_compare_streams_once_per_engine(capsys):
    code = main(["compare", "--config", CI, "--stream", "--workers", "1", "--engines", "baseline,migrc", "-q",
                 "--format", "json", "--counters", "accesses,nr_tlb_remote_flush"])
    assert code == 0
    cols = json.loads(capsys.readouterr().out)["columns"]
    assert [c["trace"] for c in cols] == [f"stream:{XS}"] * 2


@pytest.mark.parametrize("args, words", [
    (["run", "some.parquet", "--stream"], "--stream"),
    (["run", "--set", 'trace.generate=""', "--stream"], "trace.generate"),
    (["run", "--set", 'trace.path="t.parquet"', "--stream"], "trace.path"),
    (["run", "--set", 'trace.generate="xsbench -s small -m event -l 100 -t 1"', "--set",
      "replay.threads=4", "--set", "machine.ncpu=4", "--stream"], "replay.threads"),
    (["compare", "x.parquet", "--stream"], "--stream"),
])
def test_bad_streams_are_one_line_errors(args, words, capsys):
    code = main(args + ["--no-save"] if args[0] == "run" else args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert words is None or words in err


def test_commands_that_need_the_file_refuse_keep_false():
    with pytest.raises(ConfigError, match="trace.keep"):
        default_trace(_cfg(XS, keep=False))


def test_spec_is_picklable_for_compares_workers():
    import pickle

    assert pickle.loads(pickle.dumps(StreamSpec(XS))) == StreamSpec(XS)
