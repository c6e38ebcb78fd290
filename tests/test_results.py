"""The results directory (model.md §8): tables and columns, run ids, atomic appends, readers
that tolerate unknown and missing columns."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from migrc_bench import results as R
from migrc_bench import results_write as W
from migrc_bench.errors import UserError
from migrc_bench.model.counters import COUNTERS, RUN_FIGURES

from results_util import cli, copy_results, make_trace, run_into


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return make_trace(tmp_path_factory.mktemp("trace") / "t.parquet")


@pytest.fixture(scope="module")
def stored(tmp_path_factory, trace):
    """A results directory with a baseline and a migrc run."""
    out = tmp_path_factory.mktemp("res") / "results"
    run_into(out, trace, "baseline")
    run_into(out, trace, "migrc")
    return out


def snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_three_tables_with_the_contract_columns(stored):
    runs = pq.read_table(stored / R.RUNS)
    names = runs.schema.names
    assert tuple(names[:len(R.RUN_KEYS)]) == R.RUN_KEYS
    assert set(COUNTERS) | set(RUN_FIGURES) <= set(names)
    assert runs.schema.metadata[b"migrc_bench.results_version"] == b"1"
    intervals = pd.read_parquet(stored / R.INTERVALS)
    assert list(intervals.columns[:3]) == ["run_id", "interval", "t_s"]
    assert set(intervals["run_id"]) == set(runs.column("run_id").to_pylist())
    cpus = pd.read_parquet(stored / R.CPUS)
    assert list(cpus.columns[:2]) == ["run_id", "cpu"]
    assert len(cpus) == 2 * 2  # two runs x two CPUs
    # an engine's own figure (not in the contract's list) is kept, not dropped
    assert "migrc_pending_pages_peak" in names
    frame = runs.to_pandas()
    assert frame.set_index("engine").loc["migrc", "migrc_deferred_pages"] > 0
    # per-interval deltas add up to the run's totals
    for rid, grp in intervals.groupby("run_id"):
        row = frame[frame["run_id"] == rid].iloc[0]
        assert grp["nr_tlb_remote_flush"].sum() == row["nr_tlb_remote_flush"]


def test_run_id_recognises_a_repeated_run(tmp_path, trace, stored):
    out = copy_results(stored, tmp_path / "r")
    before = pd.read_parquet(out / R.RUNS)
    n_int = len(pd.read_parquet(out / R.INTERVALS))
    _, rid = run_into(out, trace, "baseline")
    after = pd.read_parquet(out / R.RUNS)
    assert rid in set(before["run_id"])
    assert len(after) == len(before)  # replaced, not duplicated
    assert after["run_id"].iloc[-1] == rid  # and now the latest
    assert len(pd.read_parquet(out / R.INTERVALS)) == n_int
    # run_id = f(trace hash, config hash, engine)
    row = after[after["run_id"] == rid].iloc[0]
    assert rid == R.make_run_id(row["trace_sha256"], row["config_sha256"], "baseline")
    assert row["trace_sha256"] == R.file_sha256(trace)
    # a different config is a different run
    _, rid2 = run_into(out, trace, "baseline", "replay.seed=2")
    assert rid2 != rid and len(pd.read_parquet(out / R.RUNS)) == len(before) + 1
    latest = R.latest_per_engine(R.read_stored_runs(out))
    assert [r.engine for r in latest] == ["baseline", "migrc"]
    assert latest[0].run_id == rid2


@pytest.mark.parametrize("fail_on", [1, 2, 3])
def test_interrupt_while_writing_leaves_the_directory_intact(tmp_path, trace, stored, monkeypatch,
                                                              fail_on):
    out = copy_results(stored, tmp_path / "r")
    before = snapshot(out)
    real = pq.write_table
    calls = []

    def flaky(table, where, **kw):
        calls.append(where)
        if len(calls) == fail_on:
            with open(where, "wb") as fh:  # half a file, then Ctrl-C
                fh.write(b"PAR1" + b"\0" * 100)
            raise KeyboardInterrupt
        return real(table, where, **kw)

    monkeypatch.setattr(W.pq, "write_table", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_into(out, trace, "nobatch")
    assert snapshot(out) == before  # no table changed, no temp file left
    monkeypatch.setattr(W.pq, "write_table", real)
    _, rid = run_into(out, trace, "nobatch")
    assert rid in set(pd.read_parquet(out / R.RUNS)["run_id"])


def test_a_failed_rename_leaves_no_temp_files(tmp_path, trace, stored, monkeypatch):
    out = copy_results(stored, tmp_path / "r")
    before = snapshot(out)

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(UserError, match="cannot write the results .No space left on device"):
        run_into(out, trace, "nobatch")
    assert snapshot(out) == before


def test_readers_tolerate_unknown_and_missing_columns(tmp_path, stored):
    out = copy_results(stored, tmp_path / "r")
    frame = pd.read_parquet(out / R.RUNS)
    frame["future_counter"] = [7, 9]  # a newer writer's counter
    frame["future_note"] = ["a", "b"]  # and a text column
    frame = frame.drop(columns=["stall_copy_s"])  # an older writer lacked this one
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out / R.RUNS)
    runs = R.read_stored_runs(out)
    assert [r.counters["future_counter"] for r in runs] == [7, 9]
    assert all("stall_copy_s" not in r.counters and "future_note" not in r.counters for r in runs)
    assert isinstance(runs[0].counters["nr_tlb_remote_flush"], int)
    assert isinstance(runs[0].counters["runtime_s"], float)
    # intervals: unknown columns kept, rows of runs missing from runs.parquet dropped
    iv = pd.read_parquet(out / R.INTERVALS)
    orphan = iv.iloc[:1].copy()
    orphan["run_id"] = "orphan0000000000"
    iv = pd.concat([iv, orphan], ignore_index=True)
    iv["future_gauge"] = 1
    pq.write_table(pa.Table.from_pandas(iv, preserve_index=False), out / R.INTERVALS)
    got = R.read_intervals(out)
    assert "orphan0000000000" not in set(got["run_id"]) and "future_gauge" in got.columns


def test_appending_to_a_directory_with_unknown_columns(tmp_path, trace, stored):
    out = copy_results(stored, tmp_path / "r")
    frame = pd.read_parquet(out / R.RUNS)
    frame["future_counter"] = [7, 9]
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out / R.RUNS)
    run_into(out, trace, "nobatch")
    runs = R.read_stored_runs(out)
    assert [r.engine for r in runs] == ["baseline", "migrc", "nobatch"]
    assert "future_counter" not in runs[2].counters  # missing for the new row: left out
    assert runs[0].counters["future_counter"] == 7


def test_rows_table_takes_every_key_in_order_and_nulls_the_missing():
    t = W.rows_table([{"a": 1, "b": "x"}, {"b": "y", "c": 2.5}], run_id="r1")
    assert t.column_names == ["run_id", "a", "b", "c"]
    assert t.column("a").to_pylist() == [1, None] and t.column("c").to_pylist() == [None, 2.5]
    assert t.schema.field("b").type == pa.large_string()  # as the pandas writer stored text
    assert W.rows_table([], run_id="r1").num_rows == 0


def test_appending_to_a_pandas_written_directory_keeps_its_rows(tmp_path, trace, stored):
    # results written by earlier versions (pandas: an engine's own column as double with NaN)
    out = copy_results(stored, tmp_path / "r")
    for name in (R.RUNS, R.INTERVALS, R.CPUS):
        frame = pd.read_parquet(out / name)
        frame["old_only"] = 1.5
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out / name)
    before = pd.read_parquet(out / R.RUNS)
    run_into(out, trace, "migrc")  # the same run id as the stored migrc run: replaced
    run_into(out, trace, "luf")
    runs = pd.read_parquet(out / R.RUNS)
    assert list(runs["engine"]) == ["baseline", "migrc", "luf"]
    assert list(runs["old_only"].iloc[:1]) == [1.5] and runs["old_only"].iloc[1:].isna().all()
    assert runs["nr_tlb_remote_flush"].iloc[1] == before["nr_tlb_remote_flush"].iloc[1]
    iv = R.read_intervals(out)
    assert set(iv["run_id"]) == set(runs["run_id"])
    assert pq.read_schema(out / R.RUNS).metadata == {b"migrc_bench.results_version": b"1"}


@pytest.mark.parametrize("content", [b"", b"not parquet at all", None])
def test_unreadable_results_are_user_errors(tmp_path, content, capsys):
    d = tmp_path / "bad"
    d.mkdir()
    if content is not None:
        (d / R.RUNS).write_bytes(content)
    with pytest.raises(UserError):
        R.read_stored_runs(d)
    code, out, err = cli(["compare", d], capsys)
    assert code == 2 and err.startswith("migrc-bench: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_table_without_run_id_is_refused(tmp_path):
    p = tmp_path / "runs.parquet"
    pq.write_table(pa.table({"x": [1]}), p)
    with pytest.raises(UserError, match="no run_id"):
        R.read_stored_runs(p)


def test_results_path_that_is_a_file(tmp_path, trace):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        run_into(f, trace)
