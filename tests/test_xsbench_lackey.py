"""The worked real-trace example of docs/traces.md on a small run (slow: builds XSBench and
runs it under valgrind lackey): examples/xsbench-lackey.sh end to end, then the same trace
with --check-invariants for migrc and LUF."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from migrc_bench.cli.main import main
from migrc_bench.trace.native import TraceReader

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "xsbench-lackey.sh"
LOOKUPS = 24000  # ~40 M records: a run of ~20 modelled ms, its one scan at the start


def xsbench_source() -> Path | None:
    for d in (os.environ.get("XSBENCH"), REPO.parent / "shared/third_party/XSBench",
              REPO.parent.parent / "shared/third_party/XSBench"):
        if d and (Path(d) / "openmp-threading").is_dir():
            return Path(d)
    return None


@pytest.mark.slow
def test_xsbench_lackey_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = [t for t in ("gcc", "make", "nm", "valgrind") if shutil.which(t) is None]
    src = xsbench_source()
    if missing or src is None:
        pytest.skip(f"needs {', '.join(missing) or 'the XSBench source (set XSBENCH)'}")
    env = {**os.environ, "XSBENCH": str(src), "MIGRC_BENCH": str(Path(sys.executable).parent / "migrc-bench"),
           "COMPARE_ARGS": "--format json --workers 1"}
    out = subprocess.run(["sh", str(SCRIPT), str(LOOKUPS), str(tmp_path)], env=env, text=True,
                         capture_output=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "started at the first fetch of 0x" in out.stderr  # the cut at the lookup loop
    doc = json.loads(out.stdout)
    rows = {r["counter"]: r for r in doc["rows"]}
    flushes = rows["nr_tlb_remote_flush"]["values"]
    assert flushes["baseline"] > 10
    for engine in ("migrc", "luf"):
        assert flushes[engine] <= 0.5 * flushes["baseline"], (engine, flushes)
    assert rows["migrc_deferred_pages"]["values"]["migrc"] > 0
    assert rows["luf_tagged_pages"]["values"]["luf"] > 0

    trace = tmp_path / "xsbench-lackey.parquet"
    records = TraceReader(trace).num_rows  # as the script: the 16 threads split the lookups
    for engine in ("migrc", "luf"):
        code = main(["run", str(trace), "--config", "xsbench-lackey",
                     "--engine", engine, "--check-invariants", "--no-save", "--quiet",
                     "--format", "json", "--set", f"replay.max_accesses={records}"])
        result = json.loads(capsys.readouterr().out)
        assert code == 0 and result["counters"]["invariant_violations"] == 0
