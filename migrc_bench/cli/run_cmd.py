"""``migrc-bench run [TRACE]``: replay one trace with one engine and record the results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import interrupts
from ..config import Config, config_dir, load_config
from ..defaults import config_for
from ..engines.loader import identify, relative_to_config
from ..model.replay import RunResult
from ..notices import short_run
from ..results_dir import check_results_dir
from ..runner import default_trace, run_trace, stream_spec
from .first_use import note_compile
from .options import config_options, format_option, quiet_option, stream_option, stream_sets
from .output import emit_rows
from .progress import replay_progress

SUMMARY = (
    ("time", ("runtime_s", "cpu_time_s", "stall_walk_s", "stall_mem_s", "stall_ipi_s",
              "stall_fault_s", "stall_copy_s")),
    ("TLB misses", ("itlb_misses", "dtlb_load_misses", "dtlb_store_misses", "stlb_hits",
                    "stlb_misses")),
    ("flushes", ("nr_tlb_remote_flush", "nr_tlb_remote_flush_received", "nr_tlb_local_flush_all",
                 "nr_tlb_local_flush_one", "itlb_flush", "dtlb_flush", "stlb_flush")),
    ("memory", ("pgfault", "numa_hit", "numa_miss", "pgmigrate_success", "pgpromote_success",
                "pgdemote_kswapd", "numa_hint_faults")),
    ("harness", ("accesses", "instructions", "wall_s", "accesses_per_s")),
)

EPILOG = """\b
Examples:
  migrc-bench run                                  # bundled default trace and (scaled) config
  migrc-bench run app.parquet                      # a real machine: configs/unscaled.toml
  migrc-bench run app.parquet --set machine.ncpu=4 --set memory.dram=256MiB
  migrc-bench run app.parquet --engine migrc --out results/ --format json
  migrc-bench run --engine examples/engines/latr.py:Latr --check-invariants --no-save
  migrc-bench run --config ci --stream --no-save   # the trace generated as replayed: no file
"""


def summary_rows(result: RunResult) -> list[dict]:
    rows = []
    for group, names in SUMMARY:
        for name in names:
            rows.append({"group": group, "counter": name, "value": result.totals.get(name, 0)})
    return rows


@click.command("run", epilog=EPILOG)
@click.argument("trace", required=False, type=click.Path(dir_okay=False))
@config_options
@click.option("--engine", default=None,
              help="Migration engine (default: the config's 'engine'): a built-in name, an "
                   "installed engine or a file engine PATH.py:CLASS (docs/engines.md).")
@click.option("--out", "out_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results directory (runs, intervals, cpus Parquet tables are appended).")
@click.option("--no-save", is_flag=True, help="Do not write the results directory.")
@click.option("--check-invariants", is_flag=True,
              help="Check model.md §7 I1-I6 during the replay; exit 1 on a violation (slower).")
@stream_option
@format_option()
@quiet_option
def command(trace, config_path, sets, engine, out_dir, no_save, check_invariants, stream, fmt,
            quiet) -> None:
    """Replay TRACE (default: the config's trace.path) and print its counters.

    Without --config, TRACE runs on an unscaled machine (the bundled config 'unscaled': the
    preset's TLB sizes, the kernel's periods, time_scale 1); no TRACE replays the bundled
    default trace on the scaled demo machine (the bundled config 'default').
    """
    config_path = config_for(config_path, trace is not None)
    # a file engine is named relative to the current directory; configs resolve it in theirs
    extra = {"engine": relative_to_config(engine, Path.cwd(), config_dir(config_path))} if engine else None
    cfg: Config = load_config(config_path, stream_sets(stream, trace, sets), extra)
    identify(cfg.engine, cfg.base_dir)  # a broken engine file fails before any trace is made
    streamed = None if trace else stream_spec(cfg)  # trace.keep = false: no file at all
    if trace:
        trace_path = Path(trace)
    else:
        trace_path = Path(str(streamed)) if streamed else default_trace(cfg, quiet=quiet)
    if no_save:
        interrupts.keep("nothing was written (--no-save)")
    else:
        check_results_dir(out_dir)  # before the replay, not after it
        interrupts.keep_target(out_dir, " (the replay was not saved)")
    note_compile(quiet)
    with replay_progress(quiet=quiet) as progress:
        result, run_id = run_trace(cfg, streamed or trace_path, None if no_save else out_dir,
                                   progress=progress, check_invariants=check_invariants)
    if fmt == "json":
        ident = result.identity
        click.echo(json.dumps({"run_id": run_id, "engine": result.engine,
                               "engine_file": ident.file, "engine_sha256": ident.sha256,
                               "trace": str(trace_path),
                               "counters": result.totals, "extra": result.extra}, indent=2))
    else:
        emit_rows(summary_rows(result), fmt, title=f"{result.engine} on {trace_path.name}")
        if not quiet and run_id is not None:
            click.echo(f"results: {out_dir} (run_id {run_id})", err=True)
    notice = short_run(dict(cfg.raw), result.totals)
    if notice and not quiet:
        click.echo(f"migrc-bench: note: {notice}", err=True)
    sys.stdout.flush()
    violations = result.totals.get("invariant_violations", 0)
    if violations:
        click.echo(f"migrc-bench: {violations} invariant violation(s); first:", err=True)
        for line in result.extra.get("violations", [])[:5]:
            click.echo(f"  {line}", err=True)
        raise click.exceptions.Exit(1)
