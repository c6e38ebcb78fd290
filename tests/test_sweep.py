"""Sweeps: grid files, the same counters serially and on a dask LocalCluster of worker
processes, resuming after a SIGKILL, failing points recorded, the summary table and plot."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from migrc_bench.cli.main import main
from migrc_bench.errors import UserError
from migrc_bench.results import CPUS, INTERVALS, RUNS, make_run_id, read_runs, read_table
from migrc_bench.sweep import (ERRORS, TraceHashes, append_point, expand, load_grid, read_errors,
                               record_error, run_point, run_sweep)
from migrc_bench.sweep_summary import plot_summary, summarize
from migrc_bench.trace.xsbench import generate_xsbench

# Columns that are not counters of the model (the harness's own time, and when it ran).
NOT_DETERMINISTIC = ["wall_s", "accesses_per_s", "started_at"]

GRID = """\
traces = ["{trace}"]
engines = ["baseline", "migrc"]
[set]
"replay.time_scale" = 2e-5
"memory.dram" = "30%"
"cost.pte_update" = "0ns"
[grid]
"machine.ncpu" = [2, 4]
"""


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep-traces")
    # Two threads, so that both machine.ncpu = 2 and 4 can replay it with a warm-up; a
    # 4-thread trace gives a point that fails (ncpu = 2 < 4 threads and a warm-up).
    t2 = d / "xs-t2.parquet"
    generate_xsbench(t2, size="small", mode="event", lookups=1500, threads=2)
    t4 = d / "xs-t4.parquet"
    generate_xsbench(t4, size="small", mode="event", lookups=1500, threads=4)
    return {"t2": t2, "t4": t4}


def write_grid(tmp_path: Path, trace: Path, text: str = GRID, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(text.format(trace=trace))
    return path


def deterministic(runs: pd.DataFrame) -> pd.DataFrame:
    return (runs.drop(columns=[c for c in NOT_DETERMINISTIC if c in runs.columns])
            .sort_values("run_id").reset_index(drop=True))


def by_run(path: Path) -> pd.DataFrame:
    frame = read_table(path)
    keys = ["run_id"] + [c for c in ("cpu", "interval") if c in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True)


# ---- the acceptance points --------------------------------------------------------------------
def test_local_cluster_gives_the_serial_counters(tmp_path, traces):
    """A real dask scheduler with two worker processes: counters identical to a serial run."""
    grid = load_grid(write_grid(tmp_path, traces["t2"]))
    serial = run_sweep(grid, tmp_path / "serial", workers=0)
    dask = run_sweep(grid, tmp_path / "dask", workers=2)
    assert dask.executor == "2 local worker processes"
    assert serial.count("ran") == dask.count("ran") == 4
    a, b = read_runs(tmp_path / "serial"), read_runs(tmp_path / "dask")
    assert len(a) == len(b) == 4 and set(a["run_id"]) == set(b["run_id"])
    pd.testing.assert_frame_equal(deterministic(a), deterministic(b))
    for table in (CPUS, INTERVALS):
        pd.testing.assert_frame_equal(by_run(tmp_path / "serial" / table),
                                      by_run(tmp_path / "dask" / table))
    assert (a["pgmigrate_success"] > 0).all() and (a["nr_tlb_remote_flush"] > 0).all()
    # The run_ids are those of the points, computed before running.
    assert {p.run_id for p in serial.points} == set(a["run_id"])


def _rows(out: Path) -> int:
    try:
        return len(read_table(out / RUNS, ["run_id"]))
    except Exception:  # noqa: BLE001 - not written yet
        return 0


def test_sigkill_midway_then_rerun_finishes_only_the_missing_points(tmp_path, traces):
    text = GRID.replace('"memory.dram" = "30%"\n', "") + '"memory.dram" = ["30%", "40%"]\n'
    grid = write_grid(tmp_path, traces["t2"], text)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "migrc_bench.cli.main", "sweep", str(grid), "--out", str(out),
           "--workers", "2", "--format", "json", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _rows(out) < 1:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no point written in 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_runs(out)                        # readable: no half-written file
    print("points done before the kill:", len(before))
    assert 1 <= len(before) < 8, "the sweep finished before the kill: make the points slower"
    assert before["run_id"].is_unique

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    points = json.loads(rerun.stdout)
    status = {p["run_id"]: p["status"] for p in points}
    assert len(status) == 8
    assert {r for r, s in status.items() if s == "skipped"} == set(before["run_id"])
    assert {r for r, s in status.items() if s == "ran"} == set(status) - set(before["run_id"])

    after = read_runs(out)
    assert len(after) == 8 and after["run_id"].is_unique and set(after["run_id"]) == set(status)
    kept = after.set_index("run_id").loc[before["run_id"], "started_at"]
    assert list(kept) == list(before["started_at"])   # the points done before were not re-run
    cpus = read_table(out / CPUS)
    assert not cpus.duplicated(["run_id", "cpu"]).any()
    assert set(read_table(out / INTERVALS)["run_id"]) >= set(after["run_id"])
    assert not list(out.glob(".*.tmp"))            # temp files of the killed append are gone


def test_a_failing_point_is_recorded_and_the_others_go_on(tmp_path, traces, capsys):
    # 4 threads with a warm-up: ncpu = 2 cannot replay it (a warm-up is counted per CPU)
    grid = write_grid(tmp_path, traces["t4"], GRID.replace("[grid]", '"replay.warmup" = 100\n[grid]'))
    out = tmp_path / "out"
    rc = main(["sweep", "run", str(grid), "--out", str(out), "--workers", "0", "--format", "json"])
    assert rc == 1
    points = json.loads(capsys.readouterr().out)
    assert [p["status"] for p in points] == ["failed", "failed", "ran", "ran"]
    errors = read_errors(out)
    assert len(errors) == 2 and set(errors["engine"]) == {"baseline", "migrc"}
    assert all("the trace runs 4 threads" in e for e in errors["error"])
    assert all("Traceback" in t for t in errors["traceback"])
    assert json.loads(errors["point"].iloc[0]) == {"machine.ncpu": 2}
    assert len(read_runs(out)) == 2
    # Re-running retries the failed points only.
    rc = main(["sweep", "run", str(grid), "--out", str(out), "--workers", "0", "--format", "json"])
    assert rc == 1
    points = json.loads(capsys.readouterr().out)
    assert [p["status"] for p in points] == ["failed", "failed", "skipped", "skipped"]


def test_an_error_row_is_dropped_when_its_point_succeeds(tmp_path, traces):
    grid = load_grid(write_grid(tmp_path, traces["t2"]))
    point = expand(grid)[0]
    out = tmp_path / "out"
    out.mkdir()
    record_error(out, point, "worker died")
    assert list(read_errors(out)["run_id"]) == [point.run_id]
    outcome = run_point(point.task())
    assert outcome["ok"], outcome.get("traceback")
    append_point(out, outcome["row"], outcome["intervals"], outcome["cpus"])
    assert not (out / ERRORS).exists()
    assert list(read_runs(out)["run_id"]) == [point.run_id]


# ---- grid files -------------------------------------------------------------------------------
def test_points_run_ids_and_one_hash_per_trace(tmp_path, traces):
    grid = load_grid(write_grid(tmp_path, traces["t2"]))
    calls = []
    hashes = TraceHashes(lambda p: calls.append(p) or "f" * 64)
    points = expand(grid, hashes)
    assert len(points) == 4 and len(calls) == 1
    assert [(p.engine, p.values) for p in points] == [
        ("baseline", {"machine.ncpu": 2}), ("migrc", {"machine.ncpu": 2}),
        ("baseline", {"machine.ncpu": 4}), ("migrc", {"machine.ncpu": 4})]
    for p in points:
        assert p.run_id == make_run_id("f" * 64, p.config_sha256, p.engine)
        assert p.config["replay.time_scale"] == 2e-5 and p.config["memory.dram"] == "30%"
        assert p.trace == str(traces["t2"].resolve())


def test_zip_gives_each_cpu_count_its_own_generated_trace(tmp_path):
    (tmp_path / "grids").mkdir()
    grid = tmp_path / "grids" / "zip.toml"
    grid.write_text("""\
engines = ["migrc"]
[zip]
"machine.ncpu" = [2, 4]
"trace.path" = ["../traces/t2.parquet", "../traces/t4.parquet"]
"trace.generate" = ["xsbench -s small -m event -l 300 -t 2", "xsbench -s small -m event -l 300 -t 4"]
""")
    points = expand(load_grid(grid))
    assert [p.values["machine.ncpu"] for p in points] == [2, 4]
    assert [Path(p.trace) for p in points] == [tmp_path / "traces" / "t2.parquet",
                                               tmp_path / "traces" / "t4.parquet"]
    assert all(Path(p.trace).exists() for p in points)
    # Stored relative to the base config's directory (configs/), pointing at the same file.
    base_dir = Path(points[0].base_dir)
    assert (base_dir / points[0].config["trace.path"]).resolve() == Path(points[0].trace)
    # A trace made with other arguments than its trace.generate is refused, not replayed.
    generate_xsbench(tmp_path / "traces" / "t4.parquet", size="small", mode="event",
                     lookups=200, threads=4)
    with pytest.raises(UserError, match="generated with other arguments than trace.generate"):
        expand(load_grid(grid))


BAD_GRIDS = {
    "unknown grid key": ('traces = ["{trace}"]\nengine = ["migrc"]\n', "unknown grid key 'engine'"),
    "unknown config key": ('traces = ["{trace}"]\n[grid]\n"machine.ncpus" = [2]\n',
                           "unknown config key 'machine.ncpus'"),
    "missing trace": ('traces = ["nope.parquet"]\n[grid]\n"machine.ncpu" = [2]\n',
                      "trace 'nope.parquet': no such file"),
    "empty list": ('traces = ["{trace}"]\n[grid]\n"machine.ncpu" = []\n', "list of values is empty"),
    "empty grid": ('traces = ["{trace}"]\n[grid]\n', "[grid] is empty"),
    "empty engines": ('traces = ["{trace}"]\nengines = []\n', "'engines' is empty"),
    "unknown engine": ('traces = ["{trace}"]\nengines = ["fast"]\n', "config key 'engine'"),
    "bad value": ('traces = ["{trace}"]\n[grid]\n"machine.ncpu" = [2, "x"]\n',
                  "config key 'machine.ncpu': expected an integer"),
    "not a list": ('traces = ["{trace}"]\n[grid]\n"machine.ncpu" = 2\n', "expected a list of values"),
    "zip lengths": ('traces = ["{trace}"]\n[zip]\n"machine.ncpu" = [2, 4]\n"memory.dram" = ["9%"]\n',
                    "[zip] lists must have one length"),
    "engine in set": ('traces = ["{trace}"]\n[set]\nengine = "migrc"\n', "list engines in the"),
    "set and grid": ('traces = ["{trace}"]\n[set]\n"machine.ncpu" = 2\n[grid]\n"machine.ncpu" = [4]\n',
                     "both fixed"),
    "trace key with traces": ('traces = ["{trace}"]\n[grid]\n"trace.path" = ["a.parquet"]\n',
                              "the grid file names its traces"),
    "not toml": ('traces = [\n', "not valid TOML"),
}


@pytest.mark.parametrize("case", list(BAD_GRIDS))
def test_bad_grid_files_are_one_line_and_exit_2(tmp_path, traces, capsys, case):
    text, words = BAD_GRIDS[case]
    grid = write_grid(tmp_path, traces["t2"], text.replace("{trace}", str(traces["t2"])))
    rc = main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--workers", "0", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_grid_file_and_bad_scheduler(tmp_path, traces, capsys):
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert "no such grid file" in capsys.readouterr().err
    grid = write_grid(tmp_path, traces["t2"])
    rc = main(["sweep", str(grid), "--out", str(tmp_path / "o"), "--workers", "2",
               "--scheduler", "tcp://127.0.0.1:1"])
    assert rc == 2 and "choose one" in capsys.readouterr().err


# ---- summary ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def swept(tmp_path_factory, traces):
    d = tmp_path_factory.mktemp("swept")
    grid = write_grid(d, traces["t2"], GRID.replace('"memory.dram" = "30%"\n', "")
                      + '"memory.dram" = ["30%", "60%"]\n')
    run_sweep(load_grid(grid), d / "out", workers=0)
    return d / "out"


def test_summarize_pivots_a_counter_against_a_key(swept):
    with pytest.raises(Exception, match="differ in memory.dram"):
        summarize(swept, "machine.ncpu", "nr_tlb_remote_flush")
    df = summarize(swept, "machine.ncpu", "nr_tlb_remote_flush", where={"memory.dram": "30%"})
    assert list(df.index) == [2, 4] and list(df.columns) == ["baseline", "migrc"]
    assert df.index.name == "machine.ncpu"
    runs = read_runs(swept)
    for ncpu in (2, 4):
        for engine in ("baseline", "migrc"):
            want = [r for _, r in runs.iterrows() if r["engine"] == engine
                    and f"ncpu = {ncpu}\n" in r["config_toml"] and '"30%"' in r["config_toml"]]
            assert len(want) == 1 and df.at[ncpu, engine] == want[0]["nr_tlb_remote_flush"]
    # --latest: the last-appended run of each cell (here: memory.dram = 60%, run second).
    pd.testing.assert_frame_equal(
        summarize(swept, "machine.ncpu", "nr_tlb_remote_flush", latest=True),
        summarize(swept, "machine.ncpu", "nr_tlb_remote_flush", where={"memory.dram": "60%"}),
        check_like=True, check_flags=False)
    by_dram = summarize(swept, "memory.dram", "pgmigrate_success", where={"machine.ncpu": 4})
    assert list(by_dram.index) == ["30%", "60%"]


def test_summary_cli_table_json_and_png(swept, tmp_path, capsys):
    png = tmp_path / "s.png"
    rc = main(["sweep", "summary", str(swept), "--key", "machine.ncpu", "--counter",
               "nr_tlb_remote_flush", "--where", 'memory.dram="30%"', "--format", "json",
               "-o", str(png)])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["machine.ncpu"] for r in rows] == [2, 4]
    assert set(rows[0]) == {"machine.ncpu", "baseline", "migrc", "migrc Δ% vs baseline"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for args, words in ((["--key", "machine.ncpus"], "unknown config key"),
                        (["--counter", "nr_tlb_remote"], "no such counter"),
                        (["--where", "machine.ncpu=3"], "no run matching")):
        base = {"--key": "machine.ncpu", "--counter": "nr_tlb_remote_flush",
                "--where": 'memory.dram="30%"'}
        base[args[0]] = args[1]
        argv = ["sweep", "summary", str(swept)] + [x for kv in base.items() for x in kv]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err


def test_plot_summary_writes_png(swept, tmp_path):
    df = summarize(swept, "memory.dram", "runtime_s", where={"machine.ncpu": 2})
    out = plot_summary(df, "memory.dram", "runtime_s", tmp_path / "p.png")
    assert out.stat().st_size > 10_000
    with pytest.raises(Exception, match="PNG"):
        plot_summary(df, "memory.dram", "runtime_s", tmp_path / "p.txt")


@pytest.mark.slow
def test_ncpu_sweep_shows_migrc_benefit_growing_with_cpus(tmp_path):
    """configs/sweep-ncpu.toml (4, 8, 16 CPUs on XSBench large; ~20 s plus trace generation):
    migrc saves a larger share of remote flushes and flush IPIs as CPUs are added."""
    from migrc_bench.config import CONFIG_DIR
    from migrc_bench.sweep_summary import deltas

    report = run_sweep(load_grid(CONFIG_DIR / "sweep-ncpu.toml"), tmp_path / "out", workers=1)
    assert report.count("ran") == 6
    for counter in ("nr_tlb_remote_flush_received", "itlb_flush"):
        d = deltas(summarize(tmp_path / "out", "machine.ncpu", counter))["migrc"]
        assert list(d.index) == [4, 8, 16]
        assert d[4] < 0 and d[8] < d[4] and d[16] < d[8], (counter, d.to_dict())
    d = deltas(summarize(tmp_path / "out", "machine.ncpu", "nr_tlb_remote_flush"))["migrc"]
    assert d[4] < 0 and d[16] < d[4], d.to_dict()


def test_compare_and_plot_accept_a_sweep_directory(swept, tmp_path, capsys):
    """compare/plot --by KEY: the chosen counter against a swept key, one column per engine."""
    rc = main(["compare", str(swept), "--by", "machine.ncpu", "--counters", "nr_tlb_remote_flush",
               "--where", 'memory.dram="30%"', "--format", "json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["machine.ncpu"] for r in rows] == sorted(r["machine.ncpu"] for r in rows)
    assert {"baseline", "migrc"} <= set(rows[0])
    png = tmp_path / "by.png"
    assert main(["plot", str(swept), "--by", "machine.ncpu", "--counter", "nr_tlb_remote_flush",
                 "--where", 'memory.dram="30%"', "-o", str(png), "--quiet"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert main(["compare", str(swept), "--by", "machine.ncpu"]) == 2  # one counter needed
