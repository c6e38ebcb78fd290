"""The findings of the reliability pass, one test each: an unusable --out found before the
replay, a write failure in one line, someone else's Parquet, records checked the same way
for every reader, tables that fit 80 columns, wall_s without compilation, help for everyone,
progress that stops at its total, one number format, sizes nobody meant."""

from __future__ import annotations

import errno
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from migrc_bench import results as R
from migrc_bench import results_write as W
from migrc_bench import results_dir
from migrc_bench.cli.main import cli as root_command
from migrc_bench.trace.native import Region, TraceMeta, TraceReader, write_trace

from results_util import cli, make_trace, run_into, sets_args


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Results of four engines on one small trace (beside them, as t.parquet)."""
    d = tmp_path_factory.mktemp("rel")
    t = make_trace(d / "t.parquet")
    for engine in ("baseline", "migrc", "luf", "nobatch"):
        run_into(d / "results", t, engine)
    return d / "results"


@pytest.fixture()
def trace(stored):
    return stored.parent / "t.parquet"


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def no_replay(monkeypatch):
    def boom(self):
        raise AssertionError("replayed although --out is unusable")

    monkeypatch.setattr("migrc_bench.model.replay.Replay.run", boom)


# ---- --out is checked before the replay ----------------------------------------------------
@pytest.fixture()
def read_only_dir(tmp_path):
    """A directory nobody may write into: mode 0555, or for root (whom modes do not stop) a
    read-only bind mount."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        os.chmod(d, 0o555)
        yield d
        os.chmod(d, 0o755)
        return
    if subprocess.run(["mount", "--bind", str(d), str(d)], capture_output=True).returncode:
        pytest.skip("root without mount: no read-only directory to test with "
                    "(test_a_read_only_file_system_is_found_before_replaying covers the check)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(d)], check=True,
                       capture_output=True)
        yield d
    finally:
        subprocess.run(["umount", str(d)], capture_output=True)


def test_run_out_on_a_read_only_directory_fails_before_replaying(trace, read_only_dir,
                                                                  monkeypatch, capsys):
    no_replay(monkeypatch)
    for out in (read_only_dir, read_only_dir / "results"):
        code, stdout, err = cli(["run", trace, "--out", out, *sets_args()], capsys)
        assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1, err
        assert "cannot write the results directory" in err and str(out) in err
    assert list(read_only_dir.iterdir()) == []


def test_a_read_only_file_system_is_found_before_replaying(trace, tmp_path, monkeypatch,
                                                          capsys):
    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    no_replay(monkeypatch)
    monkeypatch.setattr(results_dir.tempfile, "mkstemp", erofs)
    for argv in (["run", trace, "--out", tmp_path / "r"],
                 ["compare", trace, "--engines", "baseline,migrc", "--out", tmp_path / "r"]):
        code, _, err = cli(argv + sets_args(), capsys)
        assert code == 2 and "Read-only file system" in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("case", ["corrupt", "foreign", "no engine column"])
def test_run_out_that_is_not_a_results_directory_fails_before_replaying(
        trace, tmp_path, monkeypatch, capsys, case):
    out = tmp_path / "out"
    out.mkdir()
    if case == "corrupt":
        (out / "runs.parquet").write_bytes(b"PAR1 garbage PAR1")
    elif case == "foreign":
        pq.write_table(pa.table({"x": [1, 2]}), out / "runs.parquet")
    else:
        pq.write_table(pa.table({"run_id": ["a"]}), out / "runs.parquet")
    before = snapshot(out)
    no_replay(monkeypatch)
    code, stdout, err = cli(["run", trace, "--out", out, *sets_args()], capsys)
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1, err
    assert str(out) in err
    assert snapshot(out) == before


def test_a_write_failure_is_one_line_and_exit_2(trace, stored, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results"
    shutil.copytree(stored, out)
    before = snapshot(out)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(W.pq, "write_table", full)
    code, _, err = cli(["run", trace, "--out", out, "--engine", "migrc", *sets_args("replay.seed=9")],
                       capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "No space left on device" in err and "as it was" in err
    assert snapshot(out) == before


# ---- someone else's Parquet ----------------------------------------------------------------
def plain_parquet(path: Path, tid, op, addr, size, stats: bool = True) -> Path:
    t = pa.table({"tid": pa.array(tid, pa.uint16()), "op": pa.array(op, pa.uint8()),
                  "addr": pa.array(addr, pa.uint64()), "size": pa.array(size, pa.uint8())})
    pq.write_table(t, path, write_statistics=stats)
    return path


def test_parquet_without_metadata_runs_and_converts(tmp_path, capsys):
    n = 4000
    rng = np.random.default_rng(3)
    own = plain_parquet(tmp_path / "mine.parquet", np.repeat([0, 1], n // 2),
                        rng.choice([0, 1, 2], n), 0x10000000 + rng.integers(0, 64, n) * 4096,
                        np.full(n, 8))
    r = TraceReader(own)
    assert r.meta.threads == 2 and r.meta.source == "parquet"
    code, _, err = cli(["run", own, "--no-save", "--format", "json", *sets_args()], capsys)
    assert code == 0, err
    out = tmp_path / "native.parquet"
    code, _, err = cli(["trace", "convert", own, "-o", out], capsys)
    assert code == 0, err
    assert TraceReader(out).meta.threads == 2 and TraceReader(out).num_rows == n


# ---- records, checked the same way for every reader ----------------------------------------
@pytest.mark.parametrize("addr", [1 << 57, (1 << 64) - 1])
def test_addresses_of_2_57_and_above_are_refused_by_every_reader(tmp_path, capsys, addr):
    log = tmp_path / "app.log"
    log.write_text(f"I  00400000,4\n L {addr:x},8\n")
    code, _, err = cli(["trace", "convert", log, "-o", tmp_path / "o.parquet"], capsys)
    assert code == 2 and f"row 1: address {addr:#x} is not below 2^57" in err, err
    pin = tmp_path / "pin.out"
    pin.write_text(f"0x400000: R {addr:#x}\n#eof\n")
    code, _, err = cli(["trace", "info", pin], capsys)
    assert code == 2 and "is not below 2^57" in err, err
    for stats in (True, False):  # from the row-group statistics, or batch by batch
        nat = plain_parquet(tmp_path / f"n{stats}.parquet", [0, 0], [1, 1], [0x1000, addr],
                            [8, 8], stats=stats)
        code, _, err = cli(["run", nat, "--no-save", *sets_args()], capsys)
        assert code == 2 and "row 1: address" in err and "Traceback" not in err, err
    assert not (tmp_path / "o.parquet").exists()


def test_size_0_is_refused_in_native_traces_as_in_lackey(tmp_path, capsys):
    nat = plain_parquet(tmp_path / "z.parquet", [0, 0, 0], [1, 1, 1], [0x1000, 0x2000, 0x3000],
                        [8, 0, 8])
    for argv in (["run", nat, "--no-save", *sets_args()], ["trace", "info", nat],
                 ["trace", "convert", nat, "-o", tmp_path / "o.parquet"]):
        code, _, err = cli(argv, capsys)
        assert code == 2 and "row 1: size 0" in err, (argv, err)
    log = tmp_path / "z.log"
    log.write_text("I  00400000,0\n")
    code, _, err = cli(["trace", "convert", log, "-o", tmp_path / "o.parquet"], capsys)
    assert code == 2 and "size" in err


def test_convert_writes_thread_ids_that_run_accepts(tmp_path, capsys):
    src = write_trace(tmp_path / "sparse.parquet", TraceMeta("x", threads=300,
                      regions=(Region(0x10000000, 0x10100000, "heap", True, False),)),
                      np.array([7, 7, 299, 299] * 500, np.uint16), np.ones(2000, np.uint8),
                      np.array([0x10000000 + (i % 64) * 4096 for i in range(2000)], np.uint64),
                      np.full(2000, 8, np.uint8))
    code, _, err = cli(["run", src, "--no-save", *sets_args(), "--format", "json"], capsys)
    assert code == 0, err  # 300 declared threads on 2 CPUs: run queues; 298 leave at once
    out = tmp_path / "dense.parquet"
    code, _, err = cli(["trace", "convert", src, "-o", out], capsys)
    assert code == 0 and "thread ids 7, 299 renumbered 0..1" in err
    assert TraceReader(out).thread_ids().tolist() == [0, 1]
    code, _, err = cli(["run", out, "--no-save", *sets_args()], capsys)
    assert code == 0, err


# ---- tables for people: 80 columns ---------------------------------------------------------
def render(table_or_tables, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    for t in table_or_tables if isinstance(table_or_tables, list) else [table_or_tables]:
        console.print(t)
    return console.file.getvalue()


def test_compare_of_four_engines_fits_80_columns(stored):
    from migrc_bench import compare as C
    from migrc_bench.cli.compare_cmd import compare_tables

    columns = C.stored_columns([str(stored)], ["baseline", "migrc", "luf", "nobatch"])
    rows = C.build_rows(columns, None, False)
    text = render(compare_tables(columns, rows, 80))
    assert max(len(x) for x in text.splitlines()) <= 80
    assert "…" not in text
    for engine in ("migrc", "luf", "nobatch"):
        assert f"Δ% {engine}" in text
    flush = next(r for r in rows if r.counter == "nr_tlb_remote_flush")
    assert f"{flush.values[0]:,}" in text  # the reference's values whole
    wide = render(compare_tables(columns, rows, 200), 200)
    assert "Δ nobatch" in wide and f"{flush.values[3]:,}" in wide


def test_sweep_errors_go_below_the_table(capsys):
    from migrc_bench.cli.sweep_cmd import _emit_points
    from migrc_bench.sweep import Point

    long_error = ("config key 'machine.ncpu': the trace runs 4 threads, more than the 2 CPUs; "
                  "set machine.ncpu = 4 or more")
    points = [Point(0, "baseline", "/x/t4.parquet", {"machine.ncpu": 2}, {}, "", "c", "t", "r0",
                    status="failed", error=long_error),
              Point(1, "migrc", "/x/t4.parquet", {"machine.ncpu": 4}, {}, "", "c", "t", "r1",
                    status="ran", seconds=1.5)]
    _emit_points(points, "table", "sweep")
    out = capsys.readouterr().out
    table = [x for x in out.splitlines() if not x.startswith("point ")]
    assert max(len(x) for x in table) <= 80
    assert f"point 0 (baseline t4.parquet machine.ncpu=2): {long_error}" in out.splitlines()
    assert "error" not in out.splitlines()[2]  # no error column in the table


def test_one_number_format_per_table():
    from migrc_bench.catalogue import fmt_value
    from migrc_bench.cli.output import emit_rows

    assert [fmt_value(v) for v in (np.int64(853307), 1277320.0, 1277320.5, 937856.3, 0.0712345,
                                   31622.78, 3)] == \
        ["853,307", "1,277,320", "1,277,320", "937,856", "0.0712345", "31622.8", "3"]
    buf = io.StringIO()
    old, sys.stdout = sys.stdout, buf
    try:
        emit_rows([{"v": np.int64(853307)}, {"v": np.float64(1277320.0)}], "table")
    finally:
        sys.stdout = old
    assert "853,307" in buf.getvalue() and "1,277,320" in buf.getvalue()


# ---- wall_s leaves the compilation out -----------------------------------------------------
def test_compile_clock_counts_compiling_and_wall_s_leaves_it_out(trace, monkeypatch):
    import numba

    from migrc_bench.model import jit_cache
    from migrc_bench.model import replay as replay_mod

    @numba.njit
    def fresh(x):  # never cached: compiled on this call
        return x * 2 + 1

    with jit_cache.compile_clock() as clock:
        assert fresh(3) == 7
    assert clock.seconds > 0

    class Slow:
        seconds = 1e6  # "compiling took longer than the run": wall_s is then 0, never < 0

    monkeypatch.setattr(replay_mod, "compile_clock",
                        lambda: __import__("contextlib").nullcontext(Slow()))
    result, _ = run_into(None, trace, "baseline")
    assert result.totals["wall_s"] == 0.0 and result.totals["accesses_per_s"] == 0.0


# ---- help -----------------------------------------------------------------------------------
def commands(group=root_command, path=()):
    import click

    yield path, group
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            yield from commands(sub, path + (name,))


def test_every_command_has_examples_that_parse():
    import click

    for path, cmd in commands():
        ctx = click.Context(cmd, info_name=" ".join(("migrc-bench",) + path))
        text = cmd.get_help(ctx)
        assert "Example" in text, f"migrc-bench {' '.join(path)} --help has no examples"
    lines = [x.strip() for _, c in commands() for x in (c.epilog or "").splitlines()]
    examples = [x.split("  #")[0].rstrip(" \\") for x in lines if x.startswith("migrc-bench ")]
    assert len(examples) > 40
    for line in examples:
        argv = shlex.split(line)[1:]
        for stop in (">", ">>", "|", "<", "&&"):  # the shell's part of the line
            argv = argv[:argv.index(stop)] if stop in argv else argv
        cmd, i = root_command, 0
        while isinstance(cmd, click.Group) and i < len(argv) and argv[i] in cmd.commands:
            cmd, i = cmd.commands[argv[i]], i + 1
        if cmd.name == "sweep" and isinstance(cmd, click.Group):  # `sweep GRID` is `sweep run`
            cmd = cmd.commands["run"]
        try:
            cmd.make_context(cmd.name, argv[i:], resilient_parsing=False)
        except click.exceptions.Exit:
            pass
        except click.UsageError as exc:
            if "Missing" in str(exc):  # e.g. continued on the next line of the epilog
                continue
            raise AssertionError(f"{line!r}: {exc}") from None


def test_trace_gen_xsbench_h_alone_is_help(tmp_path, capsys):
    code, out, _ = cli(["trace", "gen", "xsbench", "-h"], capsys)
    assert code == 0 and "Usage:" in out and "--hash-bins" in out
    t = tmp_path / "h.parquet"
    code, _, err = cli(["trace", "gen", "xsbench", "-s", "small", "-m", "event", "-l", "20",
                        "-G", "hash", "-h", "100", "-o", t, "--quiet"], capsys)
    assert code == 0, err
    assert TraceReader(t).meta.generator["hash_bins"] == 100


def test_progress_stops_at_its_total(monkeypatch):
    from rich.progress import Progress

    from migrc_bench.cli import progress as P

    bar = Progress(console=Console(file=io.StringIO()))
    bars = P.EngineBars(bar, ["baseline"])
    bars.update("baseline", 150, 100, 0.0)  # accesses: records that cross a page count twice
    assert bar.tasks[0].completed == 100
    monkeypatch.setattr(P, "_enabled", lambda quiet: True)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with P.replay_progress() as factory:
        update = factory(100)
        update(130, 1e6)
        assert P.Progress is Progress


# ---- sizes nobody meant ---------------------------------------------------------------------
def test_trace_gen_refuses_a_size_nobody_meant_within_seconds(tmp_path, capsys):
    out = tmp_path / "big.parquet"
    t0 = time.monotonic()
    code, stdout, err = cli(["trace", "gen", "xsbench", "-s", "large", "-l", "200000", "-o", out],
                            capsys)
    assert time.monotonic() - t0 < 10
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "100,000,000,000 lookups (500,000 particles x 200,000 lookups each)" in err
    assert "records" in err and "TB" in err
    assert "-m event -l 200000" in err and "--force" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_the_estimate_is_close_and_force_and_free_space_work(tmp_path, capsys, monkeypatch):
    from migrc_bench.trace import sizes
    from migrc_bench.trace.xsbench import generate_xsbench, resolve_params, size_estimate

    p = resolve_params(size="small", mode="event", lookups=300, threads=2)
    est = size_estimate(p)
    made = generate_xsbench(tmp_path / "e.parquet", size="small", mode="event", lookups=300,
                            threads=2)
    assert abs(est.records - made.records) / made.records < 0.05
    assert est.bytes >= (tmp_path / "e.parquet").stat().st_size
    monkeypatch.setattr(sizes, "MAX_RECORDS", 1000)
    argv = ["trace", "gen", "xsbench", "-s", "small", "-m", "event", "-l", "300", "-o",
            tmp_path / "f.parquet", "--quiet"]
    assert cli(argv, capsys)[0] == 2
    assert cli(argv + ["--force"], capsys)[0] == 0 and (tmp_path / "f.parquet").exists()
    monkeypatch.setattr(sizes, "MAX_RECORDS", 10**12)
    monkeypatch.setattr(sizes, "free_bytes", lambda out: 500)
    code, _, err = cli(argv[:-2] + [tmp_path / "g.parquet"], capsys)
    assert code == 2 and "more than the 500 B free" in err
    # a config's trace.generate gets the same check
    code, _, err = cli(["run", "--no-save", "--set", 'trace.generate="xsbench -s large -l 200000"'],
                       capsys)
    assert code == 2 and "refusing to write" in err and "trace gen" in err
