"""``migrc-bench suite`` on two tiny workloads: points, resuming, the table, JSON and the plot,
and the configs the real suite uses (they must load and name generators that exist)."""

from __future__ import annotations

import json

import pytest

from migrc_bench import suite
from migrc_bench.cli.main import main
from migrc_bench.config import load_config
from migrc_bench.trace.generated import cache_file, parse_generate
from migrc_bench.trace.generators import from_args

MACHINE = """
[machine]
ncpu = 4
[memory]
dram = "30%"
cxl = "1GiB"
initial_pte = "steady-state"
# a window of a long run: every page the trace writes starts dirty, so the pages kswapd can
# find read-only are the cold ones at the LRU's tail, where hot placement puts them
placement = "hot"
[tiering]
enabled = true
# a tiny footprint is one scan window, so task_scan_max() would be 60 s (1.2 ms here, longer
# than the run): scan every 20 us, as configs/ci.toml does
scan_period_max = "1000ms"
[replay]
quantum = "10us"
time_scale = 2e-5
interval = "500us"
"""


TINY = {"gups": "gups -n 14 -u 100000 -t 4", "kv": "kv -k 3000 -v 200 -n 20000 -t 4"}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRC_BENCH_CACHE", str(tmp_path / "cache"))
    workloads = {}
    for name, gen in TINY.items():
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(f'[trace]\ngenerate = "{gen}"\n' + MACHINE)
        workloads[name] = str(cfg)
    monkeypatch.setattr(suite, "WORKLOADS", workloads)
    return tmp_path


def test_suite_runs_every_point_then_resumes(tiny, capsys):
    out, png = tiny / "res", tiny / "suite.png"
    args = ["suite", "--workers", "0", "--engines", "baseline,migrc", "--out", str(out),
            "-o", str(png), "--format", "json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["reference"] == "baseline"
    rows = {(r["workload"], r["engine"]): r for r in doc["rows"]}
    assert set(rows) == {(w, e) for w in ("gups", "kv") for e in ("baseline", "migrc")}
    assert rows[("gups", "baseline")]["remote_flushes_delta_pct"] is None
    for (w, e), r in rows.items():
        assert r["migrations"] > 0, (w, e)          # tiering is busy on both workloads
        assert 0.0 <= r["deferred_share"] <= r["deferred_of_demoted"] <= 1.0
        if e == "baseline":
            assert r["deferred_pages"] == 0
    # write-heavy GUPS defers nothing; read-mostly kv defers some of what it demotes
    assert rows[("gups", "migrc")]["deferred_share"] < 0.1
    assert rows[("kv", "migrc")]["deferred_pages"] > 0
    assert png.stat().st_size > 10_000 and "4 ran" in captured.err
    # the workloads' traces are made in the cache, named by their arguments
    made = {cache_file(parse_generate(gen)) for gen in TINY.values()}
    assert made == set((tiny / "cache" / "traces").iterdir())
    assert main(args[:-2] + ["--format", "markdown", "-q"]) == 0      # resumed: nothing runs
    text = capsys.readouterr().out
    assert "flushes Δ%" in text and "| gups | migrc |" in text


def test_suite_bad_names_exit_2_before_generating(tiny, capsys):
    assert main(["suite", "--workloads", "gups,nosuch", "--out", str(tiny / "r")]) == 2
    assert "unknown workload 'nosuch'" in capsys.readouterr().err
    assert main(["suite", "--engines", "baseline,fast", "--out", str(tiny / "r")]) == 2
    assert "unknown engine 'fast'" in capsys.readouterr().err
    assert not (tiny / "cache").exists()                  # nothing was generated


@pytest.mark.parametrize("name", ["xsbench", "gups", "kv", "gapbs-bfs", "gapbs-pr"])
def test_bundled_workload_configs_load(name):
    cfg = load_config(suite.CONFIG_DIR / suite.WORKLOADS[name])
    spec, params = from_args(cfg.trace.generate)
    assert cfg.machine.ncpu == 16 and params.threads == 16
    assert cfg.replay.time_scale == 0.01 and cfg.tiering.scan_size_mb == 2.56
    assert spec.expected_records(params) < 1.2e8    # every suite run stays short
