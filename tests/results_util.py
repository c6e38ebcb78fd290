"""Tiny traces and results directories for the results/compare/check/plot tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from migrc_bench.config import load_config
from migrc_bench.runner import run_trace
from migrc_bench.trace.native import Region, TraceMeta, write_trace

CODE = 0x400000
HEAP = 0x10000000
HEAP_PAGES = 256  # 1 MiB of heap against 256 KiB of DRAM: promotion and demotion both busy

# Two CPUs, DRAM smaller than the hot set, kernel periods scaled by 1e-5 and the scan period
# capped at 1 s (task_scan_max), so the scanner runs every 10 us of modelled time; intervals
# short enough for timelines. The scanner's PTE walk is free: with time scaled and costs not,
# it would cost more than a period, and the 3 % cap would keep the scanner quiet.
SETS = ("machine.ncpu=2", 'memory.dram="256KiB"', 'memory.cxl="64MiB"', "tiering.enabled=true",
        "replay.time_scale=1e-5", 'replay.interval="20us"', 'trace.generate=""',
        'cost.pte_update="0ns"', 'tiering.scan_period_max="1000ms"')


def sets_args(*extra: str, config: str | None = "default") -> list[str]:
    """SETS (and ``extra``) as command-line options, on the bundled default machine they
    modify (a trace without --config would run on the unscaled one); ``config=None`` for a
    command line that names its own config."""
    return [*(("--config", config) if config else ()),
            *(a for s in (*SETS, *extra) for a in ("--set", s))]


def make_trace(path: Path, n: int = 30000, seed: int = 1) -> Path:
    """Two threads: code fetches, and loads/stores over a skewed (zipf) set of heap pages."""
    rng = np.random.default_rng(seed)
    tid = np.repeat(np.arange(2, dtype=np.uint16), n // 2)
    op = rng.choice(np.array([0, 1, 1, 1, 2], np.uint8), size=n)
    page = rng.zipf(1.3, size=n) % HEAP_PAGES
    addr = np.where(op == 0, CODE + rng.integers(0, 4, size=n) * 4096,
                    HEAP + page * 4096 + rng.integers(0, 512, size=n) * 8).astype(np.uint64)
    size = np.where(op == 0, 4, 8).astype(np.uint8)
    meta = TraceMeta(source="test", threads=2,
                     regions=(Region(CODE, CODE + 4 * 4096, "code", False, True),
                              Region(HEAP, HEAP + HEAP_PAGES * 4096, "heap", True, False)))
    write_trace(path, meta, tid, op, addr, size)
    return path


def config(engine: str = "baseline", *extra: str):
    return load_config(None, list(SETS) + [f'engine="{engine}"', *extra])


def run_into(out: Path | None, trace: Path, engine: str = "baseline", *extra: str):
    """Replay ``trace`` with ``engine``; append to ``out`` when given. Returns (result, run_id)."""
    return run_trace(config(engine, *extra), trace, out)


def copy_results(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit status, stdout, stderr)."""
    from migrc_bench.cli.main import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_same_results(a, b) -> None:
    """Two RunResults with every counter, per-CPU row and interval equal (wall time aside)."""
    drop = ("wall_s", "accesses_per_s")
    assert {k: v for k, v in a.totals.items() if k not in drop} == \
        {k: v for k, v in b.totals.items() if k not in drop}
    assert a.cpus == b.cpus
    assert a.intervals == b.intervals
