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
