"""What a warm `migrc-bench run` loads before its first quantum (its start-up is measured in
benchmarks/bench_startup.py; this keeps the heavy imports out of that path)."""

from __future__ import annotations

import subprocess
import sys


def test_run_reaches_the_replay_without_pandas_matplotlib_or_dask():
    code = ("import sys\n"
            "from migrc_bench.cli.main import cli\n"
            "assert cli.get_command(None, 'run') is not None\n"
            "import migrc_bench.runner, migrc_bench.model.replay\n"
            "print(sorted(m for m in ('pandas', 'matplotlib', 'dask') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_subcommand_is_listed_and_loads():
    from migrc_bench.cli.main import COMMANDS, cli

    assert set(cli.list_commands(None)) >= set(COMMANDS)
    for name in COMMANDS:
        assert cli.get_command(None, name).name == name


def test_checking_a_results_directory_with_runs_in_it_does_not_load_pandas(tmp_path):
    # a user's second `migrc-bench run --out DIR` appends to DIR: its check stays pyarrow-only
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"run_id": ["a"], "engine": ["migrc"]}), tmp_path / "runs.parquet")
    pq.write_table(pa.table({"run_id": ["a"]}), tmp_path / "cpus.parquet")
    code = ("import sys\n"
            "from migrc_bench.results_dir import check_results_dir\n"
            f"check_results_dir({str(tmp_path)!r})\n"
            "print('pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_writing_a_run_does_not_load_pandas(tmp_path):
    # importing pandas was 0.2-0.35 s at the end of every run: the writer is pyarrow alone
    code = ("import sys\n"
            "from migrc_bench.results_write import append_rows\n"
            "import migrc_bench.runner\n"
            "from pathlib import Path\n"
            "for rid in ('a', 'b', 'a'):\n"
            f"    append_rows(Path({str(tmp_path)!r}), {{'run_id': rid, 'engine': 'migrc', 'n': 1}},\n"
            "                [{'interval': 0, 'x': 1.0}], [{'cpu': 0}])\n"
            "print('pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "runs.parquet").column("run_id").to_pylist() == ["b", "a"]


def test_reading_a_trace_does_not_load_pandas(tmp_path):
    # pyarrow's Array.to_numpy imports pandas: the reader thread's batches are buffer views
    import numpy as np

    from migrc_bench.trace import native

    rng = np.random.default_rng(1)
    n = 3000
    native.write_trace(tmp_path / "t.parquet", native.TraceMeta(source="test", threads=2),
                       rng.integers(0, 2, n).astype(np.uint16),
                       rng.integers(0, 3, n).astype(np.uint8),
                       rng.integers(0, 1 << 40, n).astype(np.uint64), np.full(n, 8, np.uint8))
    code = ("import sys\n"
            "from migrc_bench.trace.native import TraceReader\n"
            f"r = TraceReader({str(tmp_path / 't.parquet')!r})\n"
            "rows = sum(len(b) for b in r.iter_batches(batch_rows=1000))\n"
            "print(rows, 'pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(n), "False"]


def test_batches_as_buffer_views_equal_to_numpy_at_any_offset():
    import numpy as np
    import pyarrow as pa

    from migrc_bench.trace.native import _as_numpy

    for dtype in (np.uint8, np.uint16, np.uint64, np.int64):
        arr = pa.array(np.arange(1000, dtype=dtype))
        for part in (arr, arr.slice(3), arr.slice(517, 100)):
            got = _as_numpy(part)
            assert got.dtype == dtype and np.array_equal(got, part.to_numpy())
            assert not got.flags.writeable
