"""compare: replaying engines (parallel = serial), stored runs, Δ and directions, formats, errors."""

from __future__ import annotations

import csv
import io
import json

import pytest

from migrc_bench import compare as C
from migrc_bench import results as R

from results_util import SETS, cli, make_trace, run_into, sets_args

NOISY = ("wall_s", "accesses_per_s")  # wall-clock figures: differ between any two runs


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return make_trace(tmp_path_factory.mktemp("trace") / "t.parquet")


@pytest.fixture(scope="module")
def two_dirs(tmp_path_factory, trace):
    """old/: baseline and migrc; new/: baseline with a different seed, and luf."""
    base = tmp_path_factory.mktemp("stored")
    old, new = base / "old", base / "new"
    run_into(old, trace, "baseline")
    run_into(old, trace, "migrc")
    run_into(new, trace, "baseline", "replay.seed=3")
    run_into(new, trace, "luf")
    return old, new


def deterministic(counters):
    return {k: v for k, v in counters.items() if k not in NOISY}


def test_parallel_workers_give_the_serial_counters(tmp_path, trace):
    engines = ["baseline", "migrc", "nobatch"]
    par = C.replay_columns(None, SETS, engines, trace, workers=2, out_dir=tmp_path / "par")
    ser = C.replay_columns(None, SETS, engines, trace, workers=1)
    assert [c.id for c in par] == engines
    for p, s in zip(par, ser):
        assert deterministic(p.run.counters) == deterministic(s.run.counters)
        assert p.run.run_id == s.run.run_id
    # and the same as `run` would record
    for col in par:
        result, rid = run_into(None, trace, col.id)
        assert deterministic({k: result.totals[k] for k in result.totals}) == \
            {k: v for k, v in deterministic(col.run.counters).items() if k in result.totals}
    stored = R.read_stored_runs(tmp_path / "par")
    assert [r.run_id for r in stored] == [c.run.run_id for c in par]
    assert par[1].run.counters["migrc_deferred_pages"] > 0
    assert par[0].run.counters["nr_tlb_remote_flush"] > 0


def test_compare_trace_json(tmp_path, trace, capsys):
    out = tmp_path / "res"
    code, stdout, err = cli(["compare", trace, "--engines", "baseline,migrc", "--workers", "1",
                             "--format", "json", "--out", out, *sets_args()], capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["schema"] == "migrc-bench/compare/1"
    assert doc["reference"] == "baseline"
    assert [c["id"] for c in doc["columns"]] == ["baseline", "migrc"]
    assert all(c["origin"] == "replay" for c in doc["columns"])
    assert {c["run_id"] for c in doc["columns"]} == set(R.read_runs(out)["run_id"])
    rows = {r["counter"]: r for r in doc["rows"]}
    row = rows["nr_tlb_remote_flush"]
    assert row["group"] == "flushes" and row["better"] == "lower"
    b, m = row["values"]["baseline"], row["values"]["migrc"]
    assert row["delta"] == {"migrc": m - b}
    assert row["delta_pct"]["migrc"] == pytest.approx(100 * (m - b) / b)
    assert row["verdict"]["migrc"] == ("same" if m == b else "better" if m < b else "worse")
    assert rows["pgmigrate_success"]["better"] == "neutral"
    assert rows["accesses_per_s"]["better"] == "higher"
    groups = [r["group"] for r in doc["rows"]]
    assert groups.index("flushes") < groups.index("TLB misses") < groups.index("migration") \
        < groups.index("time") < groups.index("migrc")
    d = rows["migrc_deferred_pages"]
    assert d["values"]["baseline"] == 0 and d["delta_pct"]["migrc"] is None  # from zero: no %


def test_compare_stored_two_results(two_dirs, capsys):
    old, new = two_dirs
    code, stdout, err = cli(["compare", old, new, "--engines", "baseline", "--format", "json"], capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    assert [c["id"] for c in doc["columns"]] == ["baseline@old", "baseline@new"]
    assert any("replay.seed" in n for n in doc["notes"])  # configs differ: said so
    # one results directory: the last run of each engine
    code, stdout, err = cli(["compare", new / "runs.parquet", "--format", "json"], capsys)
    assert code == 0, err
    assert [c["id"] for c in json.loads(stdout)["columns"]] == ["baseline", "luf"]
    code, stdout, err = cli(["compare", old, new, "--engines", "migrc"], capsys)
    assert code == 2 and "no run of engine migrc" in err and "baseline, luf" in err


def test_only_changed_and_counter_selection(two_dirs, capsys):
    old, _ = two_dirs
    code, stdout, _ = cli(["compare", old, "--format", "csv", "--only-changed"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert rows and all(r["baseline"] != r["migrc"] for r in rows)
    assert "accesses" not in {r["counter"] for r in rows}  # same input: unchanged
    assert list(rows[0])[:5] == ["group", "counter", "better", "baseline", "migrc"]
    code, stdout, _ = cli(["compare", old, "--format", "csv", "--counters", "nr_tlb_*,runtime_s"],
                          capsys)
    names = [r["counter"] for r in csv.DictReader(io.StringIO(stdout))]
    assert names == ["nr_tlb_remote_flush", "nr_tlb_remote_flush_received",
                     "nr_tlb_local_flush_all", "nr_tlb_local_flush_one", "runtime_s"]
    code, _, err = cli(["compare", old, "--counters", "nr_tlb_remot_flush"], capsys)
    assert code == 2 and "nr_tlb_remot_flush" in err


def test_markdown_and_table(two_dirs, capsys):
    old, _ = two_dirs
    code, stdout, _ = cli(["compare", old, "--format", "markdown", "--counters", "itlb_misses"], capsys)
    lines = stdout.splitlines()
    assert lines[0] == "| group | counter | better | baseline | migrc | Δ migrc | Δ% migrc |"
    assert lines[2].startswith("| TLB misses | itlb_misses | lower | ")
    code, stdout, _ = cli(["compare", old], capsys)
    assert code == 0
    for word in ("flushes", "TLB misses", "migration", "time", "migrc", "nr_tlb_remote_flush", "Δ%"):
        assert word in stdout


@pytest.mark.parametrize("engines, message", [
    ("baseline,nosuch", "unknown engine 'nosuch'"),
    ("baseline,baseline", "named twice"),
    ("migrc", "engine 'migrc' is not implemented yet (available: baseline, nobatch)"),
])
def test_engine_errors_are_clean(trace, capsys, monkeypatch, engines, message):
    import migrc_bench.engines as E

    monkeypatch.setattr(E, "names", lambda: ["baseline", "nobatch"])
    code, stdout, err = cli(["compare", trace, "--engines", engines, *sets_args()], capsys)
    assert code == 2 and message in err and "Traceback" not in err and not stdout
    assert len(err.strip().splitlines()) == 1


def test_bad_usage(trace, two_dirs, tmp_path, capsys):
    old, new = two_dirs
    for argv, message in (
            (["compare", old, "--set", "machine.ncpu=4"], "--set: only for replaying a trace"),
            (["compare", trace, old], "not one"),
            (["compare", old, new, old], "got 3 arguments"),
            (["compare", tmp_path / "missing"], "no such file"),
            (["compare", trace, "--set", "machine.ncpu=0"], "machine.ncpu"),
    ):
        code, _, err = cli(argv, capsys)
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)


def test_delta_and_directions():
    assert C.delta(100, 90) == (-10, -10.0)
    assert C.delta(0, 0) == (0, 0.0)
    assert C.delta(0, 5) == (5, None)
    assert C.delta(None, 5) == (None, None)
    assert C.delta(0.1 + 0.2, 0.3)[0] == 0.0  # summation-order noise is no change
    assert C.verdict("lower", -1) == "better" and C.verdict("lower", 2) == "worse"
    assert C.verdict("higher", 2) == "better" and C.verdict("neutral", 2) == "changed"
    assert C.verdict("lower", 0) == "same" and C.verdict("lower", None) == "n/a"
    assert C.better("nr_tlb_remote_flush") == "lower"
    assert C.better("pgmigrate_success") == "neutral" and C.better("pgpromote_success") == "neutral"
    assert C.better("accesses_per_s") == "higher"
    assert C.better("some_future_counter") == "neutral"
    assert C.group_of("some_future_counter") == "other"


class FakeTTY:
    """A stderr that says it is a terminal, so the progress bars draw into a buffer."""

    def __init__(self):
        self.buf = io.StringIO()

    def isatty(self):
        return True

    def write(self, s):
        return self.buf.write(s)

    def flush(self):
        pass

    def fileno(self):
        raise io.UnsupportedOperation


def test_progress_bars_one_per_engine_only_on_a_terminal(trace, monkeypatch):
    import sys

    from migrc_bench.cli.progress import engines_progress

    with engines_progress(["baseline", "migrc"], quiet=False) as bars:
        assert bars is None  # pytest's stderr is not a terminal
    fake = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    with engines_progress(["baseline", "migrc"], quiet=True) as bars:
        assert bars is None  # --quiet
    with engines_progress(["baseline", "migrc"]) as bars:
        assert bars is not None
        C.replay_columns(None, SETS, ["baseline", "migrc"], trace, workers=1,
                         on_progress=bars.update, on_start=bars.start)
        bars.bar.refresh()
        done = {t.description.strip(): t.completed for t in bars.bar.tasks}
    assert set(done) == {"baseline", "migrc"} and all(v > 0 for v in done.values())
    text = fake.buf.getvalue()
    assert "baseline" in text and "migrc" in text and "accesses" in text
