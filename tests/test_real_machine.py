"""A user's trace without --config runs on an unscaled machine, and a run too short for the
tiering policy says so once instead of reporting zeros that look like results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from migrc_bench.cli.main import main
from migrc_bench.config import load_config
from migrc_bench.defaults import UNSCALED_CONFIG, config_for
from migrc_bench.model.presets import TLB_PRESETS
from migrc_bench.notices import short_run
from migrc_bench.trace.xsbench import generate_xsbench


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-million-record trace (XSBench small, event mode, 4 threads)."""
    path = tmp_path_factory.mktemp("m") / "million.parquet"
    generate_xsbench(path, size="small", mode="event", lookups=3400, threads=4, seed=3)
    return path


def test_the_trace_has_about_a_million_records(million: Path) -> None:
    from migrc_bench.trace.native import TraceReader

    assert 0.9e6 <= TraceReader(million).num_rows <= 1.2e6


def test_run_without_config_uses_the_presets_real_tlbs(million: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    assert main(["run", str(million), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    row = pd.read_parquet(out / "runs.parquet").iloc[0]
    geo = TLB_PRESETS["skylake-sp"]
    assert (row.itlb_entries, row.itlb_ways) == (geo.itlb_entries, geo.itlb_ways) == (128, 8)
    assert (row.dtlb_entries, row.dtlb_ways) == (64, 4)
    assert (row.stlb_entries, row.stlb_ways) == (1536, 12)
    assert row.time_scale == 1.0
    assert 'initial_pte = "steady-state"' in row.config_toml
    # a steady-state window opens as a scan comes due: the policy acts at once, no notice
    assert row.numa_pte_updates > 0 and row.pgdemote_kswapd > 0
    assert "first NUMA scan" not in err and "kswapd never" not in err, err


def test_a_fresh_start_shorter_than_the_first_scan_says_so(million: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The same machine from a fresh start: the first scan comes scan_delay (1 s) in."""
    out = tmp_path / "res"
    assert main(["run", str(million), "--out", str(out), "--set",
                 'memory.initial_pte="writable-dirty"']) == 0
    err = capsys.readouterr().err
    row = pd.read_parquet(out / "runs.parquet").iloc[0]
    assert row.numa_pte_updates == 0
    # the notice: once, with the figures and what to change
    notes = [line for line in err.splitlines() if "first NUMA scan" in line]
    assert len(notes) == 1, err
    assert "at 1,000 ms (tiering.scan_delay 1,000 ms x replay.time_scale 1)" in notes[0]
    assert "set replay.time_scale to" in notes[0] and "x longer" in notes[0]


def test_compare_without_config_prints_the_notice_once(million: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(million), "--workers", "1", "--set", "replay.max_accesses=200000",
                 "--set", 'memory.initial_pte="writable-dirty"']) == 0
    err = capsys.readouterr().err
    assert err.count("first NUMA scan") == 1, err


def test_no_trace_means_the_bundled_scaled_config() -> None:
    assert config_for(None, trace_given=False) is None  # load_config: configs/default.toml
    assert config_for(None, trace_given=True) == str(UNSCALED_CONFIG)
    assert config_for("mine.toml", trace_given=True) == "mine.toml"
    demo = load_config(None)
    assert demo.tlb.dtlb_entries == 8 and demo.replay.time_scale == 0.01
    real = load_config(config_for(None, True))
    assert real.tlb.dtlb_entries == 0 and real.replay.time_scale == 1.0  # 0: the preset's
    assert real.tiering.scan_delay == 1e9 and real.tiering.hot_threshold == 1e9


def test_the_unscaled_machine_is_a_bundled_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """By name, in `config list`, and (as every bundled config) with relative paths resolved
    in the current directory, which is what an installed package needs."""
    from migrc_bench.config import bundled_files, is_bundled

    assert bundled_files()["unscaled"] == UNSCALED_CONFIG and is_bundled(UNSCALED_CONFIG)
    monkeypatch.chdir(tmp_path)
    by_name, implied = load_config("unscaled"), load_config(config_for(None, True))
    assert by_name.sha256 == implied.sha256 and by_name.base_dir == implied.base_dir == tmp_path
    assert main(["config", "list", "--format", "json"]) == 0
    listed = {r["name"] for r in json.loads(capsys.readouterr().out)}
    assert {"unscaled", "xsbench-lackey", "default"} <= listed


def test_notice_only_when_the_policy_had_no_time() -> None:
    cfg = {"tiering.enabled": True, "replay.time_scale": 0.01, "tiering.scan_delay": "1000ms"}
    busy = {"runtime_s": 0.07, "pgdemote_kswapd": 1200, "numa_pte_updates": 9000}
    assert short_run(cfg, busy) is None  # the demo's shape: 70 ms, scans from 10 ms, demotions
    early = short_run(cfg, {"runtime_s": 0.004})
    assert early and "4 ms, shorter than the first NUMA scan at 10 ms" in early
    assert "replay.time_scale to 0.0002 or less" in early and "~25x longer" in early
    idle = short_run(cfg, {"runtime_s": 0.05, "numa_pte_updates": 300, "pgpromote_success": 7})
    assert idle and "kswapd never demoted a page" in idle and "300 pages" in idle
    # a steady-state start scans at once: only "kswapd never demoted" can apply
    steady = {**cfg, "memory.initial_pte": "steady-state"}
    assert short_run(steady, {"runtime_s": 0.004, "pgdemote_kswapd": 3}) is None
    assert "kswapd never demoted a page" in short_run(steady, {"runtime_s": 0.004})
    assert short_run({**cfg, "tiering.enabled": False}, {"runtime_s": 0.001}) is None
    assert short_run({**cfg, "tiering.numa_balancing": 0}, {"runtime_s": 0.001}) is None


@pytest.mark.slow
def test_the_demo_prints_no_notice(capsys: pytest.CaptureFixture[str]) -> None:
    """`make demo`'s comparison: the bundled trace on the scaled machine has time to tier."""
    assert main(["compare"]) == 0
    err = capsys.readouterr().err
    assert "first NUMA scan" not in err and "kswapd never" not in err
