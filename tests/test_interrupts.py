"""SIGINT and SIGTERM once the work has started, for every command that writes: exit status
130/143, one line saying what was kept, no temporary file, an earlier results directory or
trace byte-identical; a stopped sweep resumes with every point exactly once. SIGKILL cannot be
caught: its stale temp file goes with the next write of the same target, or `cache clean`.

The CLI runs in a subprocess (as a user's shell runs it); stderr is a pseudo-terminal where
the test waits for a progress bar, so the signal lands in the middle of the work.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zstandard

from migrc_bench.results import read_runs
from migrc_bench.trace.xsbench import generate_xsbench

from results_util import make_trace, run_into

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
# ~3e8 records: seconds of writing, stopped long before the end
GEN_LONG = ["trace", "gen", "xsbench", "-s", "small", "-m", "event", "-l", "1000000", "-t", "4"]
PROGRESS = re.compile(r"[1-9][\d,]*/[\d,]+ accesses")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Cli:
    """``migrc-bench ARGS`` in a subprocess; stderr on a pty (``tty``) or a pipe."""

    def __init__(self, args: list[str], tty: bool = False):
        cmd = [sys.executable, "-m", "migrc_bench.cli.main", *map(str, args)]
        self._err = bytearray()
        if tty:
            master, slave = pty.openpty()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=slave)
            os.close(slave)
            source = master
        else:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
            source = self.proc.stderr.fileno()
        self._reader = threading.Thread(target=self._read, args=(source,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            self._err += data

    @property
    def err(self) -> str:
        return ANSI.sub("", self._err.decode(errors="replace"))

    def wait_for(self, ready, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not ready(self):
            assert self.proc.poll() is None, f"ended before the signal: {self.err}"
            assert time.monotonic() < deadline, f"not started in {timeout} s: {self.err}"
            time.sleep(0.02)

    def stop(self, sig: int) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out = self.proc.stdout.read()  # stderr is drained by the reader thread
        self.proc.wait(timeout=120)
        self._reader.join(timeout=10)
        return self.proc.returncode, out.decode(), self.err


def interrupted_line(err: str, sig: int) -> str:
    """The one line that says the command was interrupted and what it kept."""
    lines = [x.strip() for x in err.replace("\r", "\n").splitlines() if "interrupted" in x]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"migrc-bench: interrupted by {signal.Signals(sig).name}; "), lines
    assert "Traceback" not in err, err
    return lines[0]


def snapshot(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())
            if p.is_file()}


def temps(*dirs: Path) -> list[Path]:
    return [p for d in dirs if d.exists() for p in d.rglob("*.tmp")]


def has_progress(cli: Cli) -> bool:
    return bool(PROGRESS.search(cli.err))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A trace that takes seconds to replay, a short one for sweeps, an earlier results dir."""
    d = tmp_path_factory.mktemp("interrupts")
    big = d / "xs4.parquet"
    generate_xsbench(big, size="small", mode="event", lookups=10000, threads=4, seed=1)
    small = d / "xs2.parquet"
    generate_xsbench(small, size="small", mode="event", lookups=1500, threads=2)
    earlier = d / "earlier"
    run_into(earlier, make_trace(d / "tiny.parquet"), "baseline")
    return {"dir": d, "big": big, "small": small, "earlier": earlier}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run(work, tmp_path, sig):
    out = tmp_path / "results"
    shutil.copytree(work["earlier"], out)
    before = snapshot(out)
    cli = Cli(["run", work["big"], "--config", "ci", "--out", out], tty=True)
    cli.wait_for(has_progress)
    code, _, err = cli.stop(sig)
    assert code == EXIT[sig], err
    assert f"{out}: unchanged" in interrupted_line(err, sig)
    assert snapshot(out) == before and not temps(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_streamed(work, tmp_path, sig):
    """Generated as replayed (--stream): the same, and the generator writes nothing."""
    out = tmp_path / "results"
    shutil.copytree(work["earlier"], out)
    before = snapshot(out)
    cache = Path(os.environ["MIGRC_BENCH_CACHE"])
    traces = sorted(cache.glob("traces/*"))
    cli = Cli(["run", "--config", "ci", "--stream", "--out", out], tty=True)
    # well under way: past the first scans and flushes, whose compiled code numba loads when
    # first called (a signal inside that load is not this test's subject)
    cli.wait_for(lambda c: max([int(m.replace(",", "")) for m in
                                re.findall(r"([\d,]+)/[\d,]+ accesses", c.err)] or [0]) > 10**6)
    code, _, err = cli.stop(sig)
    assert code == EXIT[sig], err
    assert f"{out}: unchanged" in interrupted_line(err, sig)
    assert snapshot(out) == before and not temps(out, cache)
    assert sorted(cache.glob("traces/*")) == traces


# SIGINT with the default worker processes (one per engine), SIGTERM in this process.
@pytest.mark.parametrize("sig,workers", [(signal.SIGINT, 0), (signal.SIGTERM, 1)])
def test_compare(work, tmp_path, sig, workers):
    out = tmp_path / "results"
    shutil.copytree(work["earlier"], out)
    before = snapshot(out)
    cli = Cli(["compare", work["big"], "--config", "ci", "--engines", "baseline,migrc",
               "--out", out, "--workers", workers], tty=True)
    cli.wait_for(has_progress)
    code, stdout, err = cli.stop(sig)
    assert code == EXIT[sig], err
    assert f"{out}: unchanged" in interrupted_line(err, sig)
    assert snapshot(out) == before and not temps(out) and stdout == ""


@pytest.mark.parametrize("sig,workers", [
    (signal.SIGINT, 0), (signal.SIGTERM, 0),
    pytest.param(signal.SIGTERM, 2, marks=pytest.mark.slow)])   # on a dask LocalCluster
def test_sweep_stops_and_resumes(work, tmp_path, sig, workers):
    grid = tmp_path / "grid.toml"
    grid.write_text(f"""traces = ["{work['small']}"]
engines = ["baseline", "migrc"]
[set]
"replay.time_scale" = 2e-5
"replay.max_accesses" = 300000
"memory.dram" = "30%"
[grid]
"machine.ncpu" = [2, 4]
""")
    out = tmp_path / "out"
    args = ["sweep", grid, "--out", out, "--workers", workers, "--format", "json"]
    cli = Cli(args)
    cli.wait_for(lambda c: "] ran " in c.err)
    code, _, err = cli.stop(sig)
    assert code == EXIT[sig], err
    line = interrupted_line(err, sig)
    kept = read_runs(out)
    assert kept["run_id"].is_unique and 1 <= len(kept) < 4, line
    assert f"{out}: {len(kept)} new point(s) kept" in line
    assert not temps(out)
    again = subprocess.run([sys.executable, "-m", "migrc_bench.cli.main", *map(str, args)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    status = {p["run_id"]: p["status"] for p in json.loads(again.stdout)}
    assert len(status) == 4
    assert {r for r, s in status.items() if s == "skipped"} == set(kept["run_id"])
    after = read_runs(out)
    assert len(after) == 4 and after["run_id"].is_unique and set(after["run_id"]) == set(status)
    old = after.set_index("run_id").loc[kept["run_id"], "started_at"]
    assert list(old) == list(kept["started_at"])  # the points kept were not run again


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_trace_gen(work, tmp_path, sig):
    target = tmp_path / "t.parquet"
    target.write_bytes(work["small"].read_bytes())
    before = target.read_bytes()
    cli = Cli(GEN_LONG + ["-o", target])
    cli.wait_for(lambda c: temps(tmp_path))
    code, _, err = cli.stop(sig)
    assert code == EXIT[sig], err
    assert f"{target}: unchanged" in interrupted_line(err, sig)
    assert target.read_bytes() == before and not temps(tmp_path)


def lackey_log(path: Path, lines_millions: int = 20) -> Path:
    """A valgrind lackey log of many lines, zstd-compressed to a few KB."""
    block = "".join(f"I  {0x400000 + i * 4:08x},4\n L {0x4000000 + i * 64:08x},8\n"
                    for i in range(500)).encode()
    with open(path, "wb") as fh, zstandard.ZstdCompressor(level=1).stream_writer(fh) as w:
        for _ in range(lines_millions * 1000):
            w.write(block)
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_trace_convert(work, tmp_path, sig):
    src = lackey_log(tmp_path / "app.log.zst")
    target = tmp_path / "out" / "app.parquet"
    target.parent.mkdir()
    target.write_bytes(work["small"].read_bytes())
    before = target.read_bytes()
    cli = Cli(["trace", "convert", src, "-o", target])
    cli.wait_for(lambda c: temps(target.parent))
    code, _, err = cli.stop(sig)
    assert code == EXIT[sig], err
    assert f"{target}: unchanged" in interrupted_line(err, sig)
    assert target.read_bytes() == before and not temps(target.parent)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_trace_merge(work, tmp_path, sig):
    a = lackey_log(tmp_path / "a.log.zst", 10)
    b = lackey_log(tmp_path / "b.log.zst", 10)
    target = tmp_path / "out" / "ab.parquet"
    target.parent.mkdir()
    target.write_bytes(work["small"].read_bytes())
    before = target.read_bytes()
    cli = Cli(["trace", "merge", a, b, "-o", target])
    cli.wait_for(lambda c: temps(target.parent))
    code, _, err = cli.stop(sig)
    assert code == EXIT[sig], err
    assert f"{target}: unchanged" in interrupted_line(err, sig)
    assert target.read_bytes() == before and not temps(target.parent)


def test_sigkill_leaves_a_temp_that_the_next_write_removes(tmp_path):
    target = tmp_path / "t.parquet"
    cli = Cli(GEN_LONG + ["-o", target])
    cli.wait_for(lambda c: temps(tmp_path))
    stale = temps(tmp_path)
    cli.stop(signal.SIGKILL)
    assert all(p.exists() for p in stale)       # SIGKILL cannot be caught
    done = subprocess.run([sys.executable, "-m", "migrc_bench.cli.main", "trace", "gen",
                           "xsbench", "-s", "small", "-m", "event", "-l", "50", "-o", target,
                           "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert target.exists() and not temps(tmp_path)


def test_cache_clean_removes_stale_temps_but_not_live_ones(tmp_path, monkeypatch, capsys):
    from migrc_bench.cli.main import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("MIGRC_BENCH_CACHE", str(cache))
    from migrc_bench.cache import make_cache_dir

    traces = make_cache_dir("traces")
    dead = _dead_pid()
    (traces / f".x.parquet.{dead}.abcdefgh.tmp").write_bytes(b"x" * 100)
    live = traces / f".y.parquet.{os.getpid()}.abcdefgh.tmp"
    live.write_bytes(b"y")
    (traces / "xsbench-small-0123.parquet").write_bytes(b"z" * 1000)
    assert main(["cache", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["path"] == str(cache) and shown["files"] == 3 and shown["bytes"] == 1101
    assert main(["cache", "clean"]) == 0
    err = capsys.readouterr().err
    assert "removed 3 file(s)" in err and "1 temp file(s) of running commands left" in err
    assert [p.name for p in traces.iterdir()] == [live.name]
    # a directory that is not ours is never emptied
    other = tmp_path / "home"
    (other / "traces").mkdir(parents=True)
    (other / "traces" / "mine.parquet").write_bytes(b"keep")
    monkeypatch.setenv("MIGRC_BENCH_CACHE", str(other))
    assert main(["cache", "clean"]) == 2
    assert "not a migrc-bench cache" in capsys.readouterr().err
    assert (other / "traces" / "mine.parquet").exists()


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_inside_numba_compiler_is_raised_after_it(sig):
    """A signal while the main thread holds numba's compiler lock (lazy loading of cached
    code, through llvmlite callbacks where an exception would crash the process) is not
    raised there but right after the lock is released."""
    from numba.core.compiler_lock import global_compiler_lock

    from migrc_bench import interrupts

    with interrupts.handled():
        with global_compiler_lock:
            os.kill(os.getpid(), sig)
            for _ in range(1000):  # bytecodes: the Python handler has run by now
                time.sleep(0.001)
            inside = True  # reached: nothing raised while the lock is held
        with pytest.raises(interrupts.Interrupted) as exc:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.005)
        assert inside and exc.value.signum == sig


class _SignalsInFinalizer:
    def __init__(self, sig):
        self.sig = sig

    def __del__(self):
        os.kill(os.getpid(), self.sig)
        for _ in range(200):  # bytecodes: the Python handler runs in here
            time.sleep(0.001)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_inside_a_finalizer_is_not_lost(sig):
    """A signal landing in a ``__del__`` (llvmlite's ObjectRef finalizers run mid-replay) would
    be printed as "Exception ignored" and lost, and the command would finish and write its
    results; it is raised right after the finalizer instead."""
    from migrc_bench import interrupts

    with interrupts.handled():
        obj = _SignalsInFinalizer(sig)
        del obj  # runs __del__ here
        with pytest.raises(interrupts.Interrupted) as exc:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.005)
        assert exc.value.signum == sig
