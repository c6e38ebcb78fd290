"""Start-up: compilation on the first run after install, and how soon a warm run reaches its
first quantum.

* **Compilation.** ``migrc-bench run --check-invariants`` (the bundled default trace and
  config, tiering on, stopped after 2 M accesses: every compiled function of the model is used)
  with an empty numba cache (``NUMBA_CACHE_DIR`` pointing at a new directory: what a fresh
  install sees), then again with that cache filled. Compilation is the difference;
  ``says_compiling``: the cold run's stderr said that it compiles.
* **First quantum, warm.** ``migrc-bench run`` as a user types it (results saved, to a
  temporary directory), the numba cache filled, the trace in the page cache: the time from
  launching the process to the moment the compiled loop first returns (it returns at the
  first quantum boundary where Python has work, or when a CPU's buffer runs dry: at the
  latest the end of the first quantum). The child wraps
  ``kernel.run_loop`` to take that time on CLOCK_MONOTONIC, which the parent shares. Also the
  whole run of ``--set replay.max_accesses=16000`` (about one 10 us quantum of 16 CPUs),
  results written: an upper bound anyone can take with ``time``.

Each figure is the best of three (the warm ones) on a shared machine.

    .venv/bin/python benchmarks/run.py startup
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_replay  # noqa: E402

REPEAT = 3
MB = [str(Path(sys.executable).with_name("migrc-bench"))]  # the console script users type

_FIRST_QUANTUM = """
import sys, time, json
from migrc_bench.model import kernel as K
_loop, _marks = K.run_loop, {}
def _timed(*a):
    if not a[5].any():  # the call with no CPU running that loads the compiled loop
        return _loop(*a)
    _marks.setdefault("first_call", time.monotonic())
    r = _loop(*a)
    _marks.setdefault("first_return", time.monotonic())
    return r
K.run_loop = _timed
from migrc_bench.cli.main import main
rc = main(sys.argv[1:])
print(json.dumps(_marks), file=sys.stderr)
sys.exit(rc)
"""


def _cli(args: list[str], env: dict | None = None) -> tuple[float, str]:
    """Wall seconds and stderr of one migrc-bench command."""
    t = time.monotonic()
    out = subprocess.run(MB + args, check=True, capture_output=True, text=True, env=env)
    return time.monotonic() - t, out.stderr


def first_quantum(args: list[str]) -> dict:
    """Seconds from launch to the compiled loop's first call and first return."""
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-c", _FIRST_QUANTUM] + args, check=True,
                         capture_output=True, text=True)
    marks = json.loads(out.stderr.strip().splitlines()[-1])
    return {k: v - t for k, v in marks.items()}


def compile_case() -> list[dict]:
    # not --quiet: the cold run's stderr must say that it compiles (once)
    args = ["run", "--check-invariants", "--set", "replay.max_accesses=2000000", "--no-save"]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        load = round(os.getloadavg()[0], 2)
        cold, said = _cli(args, env)
        warm = min(_cli(args, env)[0] for _ in range(REPEAT))
    return [{"case": "first run after install: compilation (cold - warm numba cache)",
             "seconds": round(cold - warm, 2), "cold_s": round(cold, 2), "warm_s": round(warm, 2),
             "says_compiling": "compil" in said.lower(), "load": load}]


def warm_cases() -> list[dict]:
    rows = []
    event = bench_replay.trace("event")
    for label, args in (
            ("migrc-bench run (bundled default trace and config)", ["run", "-q"]),
            ("migrc-bench run TRACE, headline trace, real TLBs",
             ["run", event, "-q", "--set", "tiering.enabled=false"]
             + [a for s in bench_replay.REAL_TLB for a in ("--set", s)])):
        load = round(os.getloadavg()[0], 2)
        with tempfile.TemporaryDirectory() as out:  # results saved, as a user's run does
            best = min((first_quantum(args + ["--out", out]) for _ in range(REPEAT)),
                       key=lambda m: m["first_return"])
        rows.append({"case": f"warm start to the first quantum: {label}",
                     "seconds": round(best["first_return"], 2),
                     "loop_starts_s": round(best["first_call"], 2), "load": load})
    with tempfile.TemporaryDirectory() as out:
        args = ["run", "--set", "replay.max_accesses=16000", "--out", out, "-q"]
        rows.append({"case": "warm `migrc-bench run --set replay.max_accesses=16000`, whole run",
                     "seconds": round(min(_cli(args)[0] for _ in range(REPEAT)), 2),
                     "load": round(os.getloadavg()[0], 2)})
    return rows


def run() -> list[dict]:
    bench_replay.config_trace(bench_replay.REPO / "configs" / "default.toml")  # made, and warm
    _cli(["run", "--set", "replay.max_accesses=1000", "--no-save", "-q"])  # warm numba cache
    return compile_case() + warm_cases()


if __name__ == "__main__":
    for row in run():
        print(row, flush=True)
