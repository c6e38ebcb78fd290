"""Installed from a wheel, outside the checkout (make test-slow): the commands work from an
empty directory, bundled configs by name, and nothing is written under site-packages.

The fresh venv gets this environment's dependencies through a .pth file (no download); the
package itself comes only from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def written_since(root: Path, t0: float) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and p.stat().st_mtime > t0]


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                    str(REPO)], check=True, capture_output=True)
    wheel = next(dist.glob("migrc_bench-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], check=True, capture_output=True,
                               text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "-q", str(wheel)], check=True, capture_output=True)
    assert (site / "migrc_bench" / "configs" / "xsbench-cxl16.toml").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR")}
    env["MIGRC_BENCH_CACHE"] = str(tmp_path / "cache")
    exe = str(venv / "bin" / "migrc-bench")

    def mb(*args, ok=True):
        done = subprocess.run([exe, *map(str, args)], cwd=empty, env=env, capture_output=True,
                              text=True, timeout=900)
        assert (done.returncode == 0) == ok, done.stderr
        return done

    time.sleep(1.0)  # the install's own files are older than t0
    t0 = time.time()
    assert "0.1.0" in mb("--version").stdout
    listed = mb("config", "list").stdout
    assert "xsbench-cxl16" in listed and "unscaled" in listed
    gen = ["trace", "gen", "xsbench", "-s", "small", "-m", "event", "-l", "2000", "-t", "2",
           "-o", "T.parquet", "--quiet"]
    mb(*gen)
    first = mb("run", "T.parquet", "--set", "machine.ncpu=2")
    assert "compiling the replay loop" in first.stderr  # a new cache: said once
    assert "compiling" not in mb("run", "T.parquet", "--set", "machine.ncpu=2").stderr
    # a user's trace without --config: the bundled unscaled machine, its pre-pass in the cache
    runs = pd.read_parquet(empty / "results" / "runs.parquet")
    assert set(runs.dtlb_entries) == {64} and set(runs.time_scale) == {1.0}
    assert list((tmp_path / "cache" / "pagesets").glob("*.npz"))
    mb("compare", "T.parquet", "--set", "machine.ncpu=2")
    mb("compare", "T.parquet", "--config", "xsbench-cxl16", "--engines", "baseline,migrc")
    mb("config", "show", "--config", "xsbench-cxl16", "--format", "json")
    # the suite's workload configs by name, their generated traces in the cache
    assert all(f"{w}-cxl16" in listed for w in ("gups", "kv", "gapbs-bfs", "gapbs-pr"))
    small_gups = 'trace.generate="gups -n 12 -u 20000 -t 2"'
    mb("run", "--config", "gups-cxl16", "--set", small_gups, "--set", "machine.ncpu=2",
       "--no-save", "--quiet")
    assert len(list((tmp_path / "cache" / "traces").glob("gups-t2-*.parquet"))) == 1
    assert (tmp_path / "cache" / "numba").is_dir()  # compiled code in the cache
    assert written_since(site, t0) == []
    assert sorted(p.name for p in empty.iterdir()) == ["T.parquet", "results"]
