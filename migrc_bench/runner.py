"""The facade every command uses: resolve the trace, build the engine, replay, record.

Like pycachesim's ``from_dict``: a config in, a result out; commands (run, compare, sweep)
stay thin and run exactly the same path.
"""

from __future__ import annotations

import hashlib
import shlex
import threading
from pathlib import Path
from typing import Callable

from .config import Config
from .errors import ConfigError, TraceError, UserError
from .model.replay import Replay, RunResult
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

    from .trace.native import TraceReader
    from .trace.xsbench import parse_args

    argv = shlex.split(gen)
    want = json.loads(json.dumps(parse_args(argv[1:] if argv and argv[0] == "xsbench" else argv).to_json()))
    have = TraceReader(path).meta.generator
    if not have or have.get("generator") != "xsbench":
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
    argv = shlex.split(cfg.trace.generate)
    if not argv or argv[0] != "xsbench":
        raise ConfigError(f"config key 'trace.generate': expected generator arguments starting "
                          f"with 'xsbench', got {cfg.trace.generate!r}")
    from .trace.xsbench import generate_from_args

    if not quiet:
        import click

        click.echo(f"generating {path} ({cfg.trace.generate}) ...", err=True)
    generate_from_args(argv[1:], path)
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
    sha = _hash_meanwhile(trace_path) if out_dir is not None else None
    total = cfg.replay.max_accesses or reader.num_rows * max(1, cfg.replay.threads or 1)
    replay = Replay(cfg, reader, engine=make_engine(cfg),
                    progress=progress(total) if progress is not None else None,
                    check_invariants=check_invariants)
    result = replay.run()
    run_id = None
    if sha is not None:
        from .results import append_run  # (pandas: imported once the replay is done)

        run_id = append_run(out_dir, result, sha())
    return result, run_id


def _hash_meanwhile(path: str | Path) -> Callable[[], str]:
    """The trace's sha256, computed on a thread while the replay runs (hashlib releases the
    GIL); the returned function waits for it (and raises what hashing raised)."""
    box: dict[str, object] = {}

    def work() -> None:
        try:
            with open(path, "rb") as fh:
                box["sha"] = hashlib.file_digest(fh, "sha256").hexdigest()
            # then the results module that writes them (pandas: ~0.3 s, off the replay's path)
            from . import results  # noqa: F401
        except BaseException as exc:  # re-raised by the caller, in its thread
            box["error"] = exc

    thread = threading.Thread(target=work, name="migrc-bench trace hash", daemon=True)
    thread.start()

    def result() -> str:
        thread.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return str(box["sha"])

    return result
