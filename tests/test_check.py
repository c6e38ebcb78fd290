"""check: rule forms and precedence, thresholds and baseline files, exit status 0/1/2, formats."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from migrc_bench import check as K
from migrc_bench import results as R
from migrc_bench.config import CONFIG_DIR
from migrc_bench.errors import UserError

from results_util import cli, copy_results, make_trace, run_into

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    base = tmp_path_factory.mktemp("check")
    trace = make_trace(base / "t.parquet")
    out = base / "results"
    run_into(out, trace, "baseline")
    run_into(out, trace, "migrc")
    return out


def edited(src: Path, dst: Path, engine: str, **changes) -> Path:
    """A copy of results ``src`` with counters of ``engine``'s run set to new values."""
    copy_results(src, dst)
    frame = pd.read_parquet(dst / R.RUNS)
    for counter, fn in changes.items():
        if fn is None:
            frame = frame.drop(columns=[counter])
        else:
            sel = frame["engine"] == engine
            frame.loc[sel, counter] = frame.loc[sel, counter].map(fn).astype(frame[counter].dtype)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), dst / R.RUNS)
    return dst


# ---- rules ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, worse, limit, relative, spec", [
    ("nr_tlb_remote_flush:+5%", "increase", 5.0, True, "+5%"),
    ("runtime_s:+2%", "increase", 2.0, True, "+2%"),
    ("pgfault:+10", "increase", 10.0, False, "+10"),
    ("invariant_violations:0", "increase", 0.0, False, "0"),
    ("invariant_violations:+0", "increase", 0.0, False, "0"),
    ("accesses_per_s:-20%", "decrease", 20.0, True, "-20%"),
    ("pgpromote_success:-3", "decrease", 3.0, False, "-3"),
    ("pgmigrate_success:~10%", "change", 10.0, True, "~10%"),
    ("accesses:~0", "change", 0.0, False, "~0"),
    ("accesses:±1.5%", "change", 1.5, True, "~1.5%"),
    ("stall_*_s:+5%", "increase", 5.0, True, "+5%"),
])
def test_rule_forms(text, worse, limit, relative, spec):
    r = K.parse_rule(text)
    assert (r.worse, r.limit, r.relative, r.spec) == (worse, limit, relative, spec)
    assert r.exact == ("*" not in text)


@pytest.mark.parametrize("text", ["nr_tlb_remote_flush", "nr_tlb_remote_flush:5%",
                                  "nr_tlb_remote_flush:+", "x:+abc", ":+5%", "x:+-5%", "x:5",
                                  "x:+5%%", "bad name:+5%", "x:+inf"])
def test_bad_rules(text):
    with pytest.raises(UserError, match="rule"):
        K.parse_rule(text)


@pytest.mark.parametrize("spec, base, value, mark", [
    ("+5%", 100, 105, " "), ("+5%", 100, 106, "+"), ("+5%", 100, 94, "-"), ("+5%", 100, 96, " "),
    ("+5%", 0, 0, " "), ("+5%", 0, 1, "+"),  # from zero, any growth breaks a % rule
    ("+3", 10, 13, " "), ("+3", 10, 14, "+"), ("+3", 10, 6, "-"),
    ("0", 0, 0, " "), ("0", 0, 1, "+"), ("0", 5, 4, "-"),
    ("-20%", 1000.0, 800.0, " "), ("-20%", 1000.0, 799.0, "+"), ("-20%", 1000.0, 1300.0, "-"),
    ("-3", 10, 7, " "), ("-3", 10, 6, "+"),
    ("~10%", 100, 110, " "), ("~10%", 100, 89, "+"), ("~10%", 100, 111, "+"),
    ("~0", 7, 7, " "), ("~0", 7, 8, "+"), ("~0", 7, 6, "+"),
    ("+2%", 0.1 + 0.2, 0.3, " "),
])
def test_judge(spec, base, value, mark):
    assert K.judge(K.parse_spec("c", spec, "test"), base, value) == mark


def test_precedence():
    rs = K.RuleSet([K.parse_rule("nr_tlb_*:+1%"), K.parse_rule("nr_tlb_remote_flush:+5%"),
                    K.parse_rule("nr_tlb_*:+2%")],
                   {"migrc": [K.parse_rule("nr_tlb_remote_flush:+9%")]})
    assert rs.rule_for("baseline", "nr_tlb_remote_flush").spec == "+5%"  # exact beats glob
    assert rs.rule_for("baseline", "nr_tlb_local_flush_all").spec == "+2%"  # later glob wins
    assert rs.rule_for("migrc", "nr_tlb_remote_flush").spec == "+9%"  # engine rule is later
    assert rs.rule_for("baseline", "runtime_s") is None


# ---- thresholds file ------------------------------------------------------------------------
def test_thresholds_file(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text('version = 1\n[rules]\nnr_tlb_remote_flush = "+5%"\ninvariant_violations = 0\n'
                 '"stall_*_s" = "+5%"\n[engines.migrc]\nmigrc_flush_race = "0"\n')
    rs = K.load_thresholds(p)
    assert [str(r) for r in rs.common] == ["nr_tlb_remote_flush:+5%", "invariant_violations:0",
                                           "stall_*_s:+5%"]
    assert [str(r) for r in rs.per_engine["migrc"]] == ["migrc_flush_race:0"]
    assert str(p) in rs.common[0].origin


@pytest.mark.parametrize("text, message", [
    ("[rules]\nx = \"5%\"\n", "give a sign"),
    ("[rules]\nnr_tlb_remote_flush = 5\n", "ambiguous"),
    ("[rules]\nnr_tlb_remote_flush = true\n", "expected COUNTER"),
    ("[rule]\nnr_tlb_remote_flush = \"+5%\"\n", "unknown key"),
    ("version = 2\n", "version 2"),
    ("[rules\n", "not valid TOML"),
    ("rules = 3\n", "must be a table"),
    ("[engines]\nmigrc = 3\n", "must be a table"),
])
def test_bad_thresholds_files(tmp_path, text, message):
    p = tmp_path / "t.toml"
    p.write_text(text)
    with pytest.raises(UserError, match=message):
        K.load_thresholds(p)


def test_shipped_thresholds_parse_and_name_real_counters():
    rs = K.load_thresholds(CONFIG_DIR / "ci-thresholds.toml")
    assert rs.rule_for("baseline", "nr_tlb_remote_flush").spec == "+5%"
    assert rs.rule_for("baseline", "runtime_s").spec == "+2%"
    assert rs.rule_for("baseline", "invariant_violations").spec == "0"
    K.validate_rules(rs, [])  # every rule names or matches a known counter


# ---- the command ----------------------------------------------------------------------------
def test_identical_result_passes(stored, capsys):
    code, out, err = cli(["check", stored, "--baseline", stored], capsys)
    assert code == 0, err
    assert "PASS" in out and "regression" in out and not err
    assert "nr_tlb_remote_flush [baseline]" in out and "nr_tlb_remote_flush [migrc]" in out


def test_worse_result_fails_naming_counter_and_values(stored, tmp_path, capsys):
    base = R.latest_per_engine(R.read_stored_runs(stored))[0].counters["nr_tlb_remote_flush"]
    assert base > 100
    worse = edited(stored, tmp_path / "worse", "baseline", nr_tlb_remote_flush=lambda v: v * 11 // 10)
    new = base * 11 // 10
    code, out, err = cli(["check", worse, "--baseline", stored, "--rule", "nr_tlb_remote_flush:+5%"],
                         capsys)
    assert code == 1
    assert f"migrc-bench: regression: nr_tlb_remote_flush [baseline]: {base:,} -> {new:,}" in err
    assert "rule +5%" in err and "Traceback" not in err
    line = next(x for x in out.splitlines() if "nr_tlb_remote_flush [baseline]" in x and x[0] == "+")
    assert f"{base:,}" in line and f"{new:,}" in line
    assert "FAIL" in out
    # within a looser rule it passes; the --rule overrides the file's
    code, _, _ = cli(["check", worse, "--baseline", stored, "--rule", "nr_tlb_remote_flush:+15%"], capsys)
    assert code == 0
    # the default thresholds (configs/ci-thresholds.toml) catch it too
    code, _, err = cli(["check", worse, "--baseline", stored], capsys)
    assert code == 1 and "nr_tlb_remote_flush [baseline]" in err


def test_better_result_is_marked_minus(stored, tmp_path, capsys):
    better = edited(stored, tmp_path / "better", "migrc", runtime_s=lambda v: v * 0.9)
    code, out, _ = cli(["check", better, "--baseline", stored, "--rule", "runtime_s:+2%",
                        "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "migrc-bench/check/1" and doc["status"] == "pass"
    f = {(x["engine"], x["counter"]): x for x in doc["findings"]}
    assert f[("migrc", "runtime_s")]["mark"] == "-"
    assert f[("migrc", "runtime_s")]["delta_pct"] == pytest.approx(-10.0)
    assert f[("baseline", "runtime_s")]["mark"] == " "
    assert doc["summary"] == {"checked": 2, "regressions": 0, "improvements": 1, "not_comparable": 0}


def test_not_comparable_marks_and_strict(stored, tmp_path, capsys):
    missing = edited(stored, tmp_path / "missing", "baseline", stall_copy_s=None)
    both = ["--rule", "stall_copy_s:+5%", "--rule", "runtime_s:+2%"]
    code, out, _ = cli(["check", missing, "--baseline", stored, *both], capsys)
    assert code == 0
    assert any(x.startswith("x") and "stall_copy_s [baseline]" in x and "missing in the result" in x
               for x in out.splitlines())
    code, _, err = cli(["check", missing, "--baseline", stored, *both, "--strict"], capsys)
    assert code == 1 and "--strict" in err
    # only the missing counter: nothing is compared, and a gate comparing nothing cannot pass
    code, out, err = cli(["check", missing, "--baseline", stored, "--rule", "stall_copy_s:+5%"],
                         capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "no counter could be compared" in err
    # an engine on one side only: migrc's run relabelled luf in the result
    renamed = copy_results(stored, tmp_path / "renamed")
    frame = pd.read_parquet(renamed / R.RUNS)
    frame.loc[frame["engine"] == "migrc", "engine"] = "luf"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), renamed / R.RUNS)
    code, out, _ = cli(["check", renamed, "--baseline", stored, "--rule", "runtime_s:+2%",
                        "--format", "json"], capsys)
    assert code == 0
    doc = json.loads(out)
    pairs = {p["engine"]: p for p in doc["pairs"]}
    assert list(pairs) == ["baseline", "migrc", "luf"]
    assert pairs["baseline"]["comparable"] is True
    assert "not in the result" in pairs["migrc"]["reason"]
    assert "not in the baseline" in pairs["luf"]["reason"]
    assert [x["mark"] for x in doc["findings"] if x["engine"] != "baseline"] == ["x", "x"]
    code, _, err = cli(["check", renamed, "--baseline", stored, "--engines", "nobatch"], capsys)
    assert code == 2 and "nobatch" in err


def test_a_different_config_is_not_comparable(stored, tmp_path, capsys):
    other = copy_results(stored, tmp_path / "other")
    run_into(other, Path(R.read_stored_runs(stored)[0].trace), "baseline", "machine.kswapd_cpu=1")
    code, out, _ = cli(["check", other, "--baseline", stored, "--rule", "runtime_s:+2%",
                        "--engines", "baseline,migrc"], capsys)
    assert code == 0
    assert "NOT comparable: a different config: machine.kswapd_cpu" in out
    assert out.splitlines()[5].startswith("x") and "[baseline]" in out.splitlines()[5]
    # with that engine alone nothing is compared: exit 2, saying why
    code, out, err = cli(["check", other, "--baseline", stored, "--rule", "runtime_s:+2%",
                          "--engines", "baseline"], capsys)
    assert code == 2 and out == "" and "a different config: machine.kswapd_cpu" in err


def test_write_baseline_round_trip(stored, tmp_path, capsys):
    path = tmp_path / "ci" / "baseline.json"
    code, _, err = cli(["check", stored, "--write-baseline", path], capsys)
    assert code == 0 and "wrote" in err
    doc = json.loads(path.read_text())
    assert doc["format"] == "migrc-bench-baseline" and doc["version"] == 1
    assert [r["engine"] for r in doc["runs"]] == ["baseline", "migrc"]
    run = doc["runs"][0]
    assert {"run_id", "trace_sha256", "config_sha256", "config_toml", "counters"} <= set(run)
    assert run["counters"]["nr_tlb_remote_flush"] > 0
    assert [p.name for p in path.parent.iterdir()] == ["baseline.json"]  # no temp left
    code, out, _ = cli(["check", stored, "--baseline", path], capsys)
    assert code == 0 and "PASS" in out and "0 not comparable" in out
    # a baseline file is also a source for compare
    code, out, _ = cli(["compare", path, stored, "--engines", "migrc", "--only-changed",
                        "--counters", "nr_tlb_*", "--format", "csv"], capsys)
    assert code == 0 and out.strip() == "group,counter,better,migrc@baseline,migrc@results," \
        "delta_migrc@results,delta_pct_migrc@results"


def test_markdown_summary(stored, tmp_path, capsys):
    worse = edited(stored, tmp_path / "worse", "migrc", itlb_misses=lambda v: v * 2)
    code, out, _ = cli(["check", worse, "--baseline", stored, "--format", "markdown",
                        "--rule", "itlb_misses:+5%", "--rule", "invariant_violations:0"], capsys)
    assert code == 1
    assert out.startswith("### migrc-bench check FAILED")
    assert "- **regression** itlb_misses [migrc]" in out
    assert "| **+** | migrc | `itlb_misses` |" in out
    assert "| | engine | counter | baseline | result | change | rule |" in out


@pytest.mark.parametrize("make_argv, message", [
    (lambda s, t: [s, "--baseline", s, "--rule", "nr_tlb_remote_flush:5%"], "give a sign"),
    (lambda s, t: [s, "--baseline", s, "--rule", "nr_tlb_remot_flush:+5%"],
     "no counter is named 'nr_tlb_remot_flush'"),
    (lambda s, t: [s, "--baseline", s, "--rule", "zz_*:+5%"], "no counter matches"),
    (lambda s, t: [s, "--baseline", s, "--thresholds", t / "MISSING.toml"],
     "thresholds file not found"),
    (lambda s, t: [s, "--baseline", t / "MISSING"], "no such results directory or baseline file"),
    (lambda s, t: [t / "nope", "--baseline", s], "no such results directory"),
    (lambda s, t: [s, "--baseline", s, "--rule", "x:+1", "--rule", "nr_tlb_*:"], "rule"),
])
def test_bad_input_exits_2(stored, tmp_path, capsys, make_argv, message):
    code, out, err = cli(["check", *make_argv(stored, tmp_path)], capsys)
    assert code == 2 and message in err, err
    assert err.startswith("migrc-bench: error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not out


@pytest.mark.parametrize("content, message", [
    ("{", "not JSON"),
    ('{"format": "other"}', "not a migrc-bench baseline file"),
    ('{"format": "migrc-bench-baseline", "version": 9, "runs": []}', "version 9"),
    ('{"format": "migrc-bench-baseline", "version": 1}', "no \"runs\" list"),
    ('{"format": "migrc-bench-baseline", "version": 1, "runs": [{"engine": "b"}]}', "counters"),
    ('{"format": "migrc-bench-baseline", "version": 1, "runs": [{"engine": "b", '
     '"counters": {"x": "1"}}]}', "expected a number"),
])
def test_bad_baseline_files(stored, tmp_path, capsys, content, message):
    p = tmp_path / "b.json"
    p.write_text(content)
    code, _, err = cli(["check", stored, "--baseline", p], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_needs_a_baseline_or_write_baseline(stored, capsys):
    code, _, err = cli(["check", stored], capsys)
    assert code == 2 and "--baseline" in err


def test_committed_ci_baseline_is_readable():
    runs = K.read_baseline(REPO / "benchmarks" / "ci-baseline.json")
    assert {r.engine for r in runs} >= {"baseline", "migrc"}
    assert all(r.config_sha256 and r.trace_sha256 and r.counters for r in runs)


def test_keys_new_in_the_config_schema_do_not_break_comparability(stored, tmp_path, capsys):
    """A baseline written before a config key existed: the key at its default is no change."""
    path = tmp_path / "b.json"
    cli(["check", stored, "--write-baseline", path], capsys)
    doc = json.loads(path.read_text())
    for run in doc["runs"]:
        lines = run["config_toml"].splitlines()
        assert "seed = 1" in lines  # replay.seed at its default
        run["config_toml"] = "\n".join(x for x in lines if x != "seed = 1") + "\n"
        run["config_sha256"] = "0" * 64
    path.write_text(json.dumps(doc))
    code, out, _ = cli(["check", stored, "--baseline", path, "--rule", "runtime_s:+2%", "--strict"],
                       capsys)
    assert code == 0, out
    assert "config keys new on one side, at their defaults: replay.seed" in out
    for run in doc["runs"]:
        run["config_toml"] = run["config_toml"].replace("[replay]\n", "[replay]\nseed = 5\n")
    path.write_text(json.dumps(doc))
    code, out, err = cli(["check", stored, "--baseline", path, "--rule", "runtime_s:+2%",
                          "--strict"], capsys)
    # every engine's config differs: nothing is compared (exit 2, with or without --strict)
    assert code == 2 and out == "" and "a different config: replay.seed" in err
    assert "--write-baseline" in err


# ---- a gate that cannot pass by accident ----------------------------------------------------
def test_nothing_comparable_exits_2(stored, tmp_path, capsys):
    """A nobatch result against a baseline that holds only baseline: not a pass."""
    only_base = tmp_path / "base.json"
    frame = pd.read_parquet(stored / R.RUNS)
    K.write_baseline(only_base, [r for r in R.read_stored_runs(stored) if r.engine == "baseline"],
                     str(stored))
    nobatch = tmp_path / "nobatch"
    trace = make_trace(tmp_path / "t.parquet")
    run_into(nobatch, trace, "nobatch")
    for fmt in ("table", "json"):
        code, out, err = cli(["check", nobatch, "--baseline", only_base, "--format", fmt], capsys)
        assert code == 2 and out == "", (out, err)
        assert len(err.strip().splitlines()) == 1 and "no counter could be compared" in err
        assert "engine baseline is not in the result" in err
        assert "engine nobatch is not in the baseline" in err
    assert len(frame)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_in_a_baseline_is_bad_input(stored, tmp_path, capsys, value):
    good = tmp_path / "good.json"
    K.write_baseline(good, R.read_stored_runs(stored), str(stored))
    doc = json.loads(good.read_text())
    doc["runs"][0]["counters"]["nr_tlb_remote_flush"] = "@"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc).replace('"@"', value))
    for extra in ([], ["--strict"], ["--format", "json"]):
        code, out, err = cli(["check", stored, "--baseline", bad, *extra], capsys)
        assert code == 2 and out == "", err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert "runs[0].counters.nr_tlb_remote_flush: expected a finite number" in err


def test_a_mistyped_engine_table_in_thresholds_is_bad_input(stored, tmp_path, capsys):
    th = tmp_path / "th.toml"
    th.write_text('[rules]\nruntime_s = "+2%"\n[engines.migrcc]\nmigrc_flush_alloc = "+10%"\n')
    code, out, err = cli(["check", stored, "--baseline", stored, "--thresholds", th], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "[engines.migrcc]" in err and "no engine named 'migrcc'" in err
    # an engine that is in the runs (e.g. one from outside the package) is fine
    th.write_text('[rules]\nruntime_s = "+2%"\n[engines.migrc]\nmigrc_flush_alloc = "+10%"\n')
    assert cli(["check", stored, "--baseline", stored, "--thresholds", th], capsys)[0] == 0
