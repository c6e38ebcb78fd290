"""The facade every command uses: resolve the trace, build the engine, replay, record.

Like pycachesim's ``from_dict``: a config in, a result out; commands (run, compare, sweep)
stay thin and run exactly the same path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .config import Config
from .errors import TraceError, UserError
from .model.replay import Replay, RunResult
from .results import append_run, file_sha256
from .trace.native import TraceReader

ProgressFactory = Callable[[int], Callable[[int, float], None]] | None


def check_generated(cfg: Config, path: Path) -> None:
    """A trace.path that exists must be what trace.generate makes, not a stale older trace.

    The generator records its arguments in the trace (``migrc_bench.generator``); a trace made
    with other arguments (before the config's trace.generate changed) would otherwise be
    replayed silently, since generation only happens when the file is missing.
    """
    gen = cfg.trace.generate
    if not gen:
        return
    import json

    from .trace.generators import from_args
    from .trace.native import TraceReader

    spec, params = from_args(gen)
    want = json.loads(json.dumps(params.to_json()))
    have = TraceReader(path).meta.generator
    if not have or not have.get("generator"):
        return  # converted or hand-made: nothing to compare
    differ = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if differ:
        detail = ", ".join(f"{k} {have.get(k)!r} vs {want.get(k)!r}" for k in differ[:3])
        raise UserError(f"{path}: generated with other arguments than trace.generate {gen!r} "
                        f"({detail}); delete it to regenerate it")


def default_trace(cfg: Config, quiet: bool = False) -> Path:
    """The config's trace.path, generated first from trace.generate when it is missing."""
    path = cfg.resolve_path(cfg.trace.path)
    if path.exists():
        check_generated(cfg, path)
        return path
    if not cfg.trace.generate:
        raise TraceError(path, "no such file (and the config's trace.generate is empty)")
    from .trace.generators import from_args

    spec, params = from_args(cfg.trace.generate)
    if not quiet:
        import click

        click.echo(f"generating {path} ({cfg.trace.generate}) ...", err=True)
    spec.generate(path, params)
    return path


def make_engine(cfg: Config):
    """The migration engine plug-in, or None when the tiering policy is off."""
    if not cfg.tiering.enabled:
        return None
    from .engines import create

    return create(cfg)


def run_trace(cfg: Config, trace_path: str | Path, out_dir: str | Path | None = None,
              progress: ProgressFactory = None, check_invariants: bool = False
              ) -> tuple[RunResult, str | None]:
    """Replay one trace; append to ``out_dir`` when given. Returns (result, run_id or None)."""
    reader = TraceReader(trace_path)
    total = cfg.replay.max_accesses or reader.num_rows * max(1, cfg.replay.threads or 1)
    replay = Replay(cfg, reader, engine=make_engine(cfg),
                    progress=progress(total) if progress is not None else None,
                    check_invariants=check_invariants)
    result = replay.run()
    run_id = None
    if out_dir is not None:
        run_id = append_run(out_dir, result, file_sha256(trace_path))
    return result, run_id
