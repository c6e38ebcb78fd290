"""From an installed (non-editable) package, run in a directory outside the checkout, a file
engine named relative to that directory works, with a config file there and with the bundled
default (no --config): the README's one-liner, measured (make test-slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from results_util import make_trace

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """\
[machine]
ncpu = 2
[memory]
dram = "256KiB"
cxl = "64MiB"
[tiering]
enabled = true
[replay]
time_scale = 1e-5
"""
# run the installed copy, and prove it is that copy and not the checkout
RUN = ("import sys, migrc_bench; assert migrc_bench.__file__.startswith(sys.argv[1]), "
       "migrc_bench.__file__; from migrc_bench.cli.main import main; sys.exit(main(sys.argv[2:]))")


@pytest.mark.slow
def test_compare_with_latr_from_an_installed_wheel_elsewhere(tmp_path):
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    src = tmp_path / "src"  # built from a copy: no build/ left in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache",
        "results", "*.parquet"))
    wheels = tmp_path / "wheels"
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(src)], check=True,
                   capture_output=True)
    site = tmp_path / "lib" / "site-packages"  # so the package knows it is installed
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site),
                    *map(str, wheels.glob("*.whl"))], check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    (work / "examples" / "engines").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "engines" / "latr.py", work / "examples" / "engines")
    (work / "cfg.toml").write_text(CONFIG)
    make_trace(work / "t.parquet", n=8000)
    env = {**os.environ, "PYTHONPATH": str(site), "MIGRC_BENCH_CACHE": str(tmp_path / "cache")}

    def mb(*args: str) -> str:
        p = subprocess.run([sys.executable, "-c", RUN, str(site), *args], cwd=work, env=env,
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def compare(trace: str, *args: str) -> dict:
        doc = json.loads(mb("compare", trace, "--engines",
                            "baseline,migrc,examples/engines/latr.py:Latr", "--format", "json",
                            "--quiet", *args))
        cols = {c["id"]: c for c in doc["columns"]}
        assert list(cols) == ["baseline", "migrc", "latr"]
        assert cols["latr"]["engine_file"] == str((work / "examples/engines/latr.py").resolve())
        assert cols["baseline"]["engine_file"] == "migrc_bench/engines/baseline.py"
        return cols

    compare("t.parquet", "--config", "cfg.toml", "--out", "results")
    assert (work / "results" / "runs.parquet").exists()
    # no --config: the bundled default, whose relative paths (the engine file's too) are the
    # current directory's; a trace the default's scaled memory holds
    mb("trace", "gen", "xsbench", "-s", "small", "-m", "event", "-l", "2000", "-t", "2", "-o",
       "x.parquet", "--quiet")
    cols = compare("x.parquet", "--set", "machine.ncpu=2")
    assert len({c["engine_sha256"] for c in cols.values()}) == 3
    assert not list(site.rglob("*.parquet")) and not list(site.rglob("*.nbi"))
