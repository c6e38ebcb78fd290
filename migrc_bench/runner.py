"""The facade every command uses: resolve the trace, build the engine, replay, record.

Like pycachesim's ``from_dict``: a config in, a result out; commands (run, compare, sweep)
stay thin and run exactly the same path.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .config import Config
from .cache import file_sha256
from .errors import ConfigError, TraceError, UserError
from .model.machine import needs_profile
from .model.replay import Replay, RunResult
from .results_dir import check_results_dir
from .trace.native import TraceReader

if TYPE_CHECKING:
    from .trace.stream import StreamSpec

ProgressFactory = Callable[[int], Callable[[int, float], None]] | None


def check_generated(cfg: Config, path: Path) -> None:
    """A trace.path that exists must be what trace.generate makes, not a stale older trace."""
    if cfg.trace.generate:
        from .trace.generated import check_made_with, parse_generate

        check_made_with(path, parse_generate(cfg.trace.generate), cfg.trace.generate)


def stream_spec(cfg: Config) -> "StreamSpec | None":
    """The config's trace.generate to replay as it is generated (``trace.keep = false``, which
    run and compare's --stream set), or None for a trace file."""
    if cfg.trace.keep:
        return None
    why = "trace.keep = false (--stream)"
    if not cfg.trace.generate:
        raise ConfigError(f"config key 'trace.generate': {why} replays the generator's trace as "
                          f"it is made, but trace.generate is empty")
    if cfg.trace.path:
        raise ConfigError(f"config key 'trace.path': {why} keeps no trace file, but trace.path "
                          f"is {cfg.trace.path!r} (leave it empty, or keep the file)")
    from .trace.stream import StreamSpec

    return StreamSpec(cfg.trace.generate)


def default_trace(cfg: Config, quiet: bool = False) -> Path:
    """The config's trace: trace.path, or trace.generate's trace in the cache; generated from
    trace.generate first when it is missing."""
    if not cfg.trace.keep:
        raise ConfigError("config key 'trace.keep': false (replay the generated trace with no "
                          "file) is for 'run', 'compare' and 'sweep'; this command needs the "
                          "trace file")
    named = cfg.resolve_path(cfg.trace.path) if cfg.trace.path else None
    if named is not None and named.exists():
        check_generated(cfg, named)
        return named
    if not cfg.trace.generate:
        if named is None:
            raise ConfigError("the config names no trace (trace.path and trace.generate are "
                              "empty): give a trace, e.g. 'migrc-bench run app.parquet'")
        raise TraceError(named, "no such file (and the config's trace.generate is empty)")
    from .trace.generated import ensure

    return ensure(cfg.trace.generate, named, quiet=quiet)


def make_engine(cfg: Config):
    """The migration engine plug-in, or None when the tiering policy is off."""
    if not cfg.tiering.enabled:
        return None
    from .engines import create

    return create(cfg)


def run_trace(cfg: Config, trace_path: "str | Path | StreamSpec", out_dir: str | Path | None = None,
              progress: ProgressFactory = None, check_invariants: bool = False,
              trace_sha256: str | None = None) -> tuple[RunResult, str | None]:
    """Replay one trace; append to ``out_dir`` when given. Returns (result, run_id or None).

    ``out_dir`` is checked before the replay, so an unusable one never costs a finished run.
    An exception raised in an outside engine's code (loading it, or in one of its hooks)
    becomes one EngineError naming its file and line, and nothing is appended.
    ``trace_sha256``: the trace file's hash when the caller has it; otherwise it is computed
    at most once, for the pre-pass cache and the results alike. A ``StreamSpec`` is
    generated as it is replayed (trace/stream.py); its hash is that of its parameters.
    """
    from .engines.loader import hook_error, identify

    ident = identify(cfg.engine, cfg.base_dir)  # import and interface errors, before the trace
    if out_dir is not None:
        check_results_dir(out_dir)
    reader = open_source(cfg, trace_path)
    if trace_sha256 is None:
        trace_sha256 = getattr(reader, "sha256", None)  # a streamed trace's: known already
    # the results' trace hash on a thread while the replay runs, unless the caller has it or
    # the replay computes it itself (for the pre-pass cache)
    sha = (_hash_meanwhile(trace_path) if out_dir is not None and trace_sha256 is None
           and not needs_profile(cfg, reader.meta) else None)
    total = cfg.replay.max_accesses or reader.num_rows * max(1, cfg.replay.threads or 1)
    try:
        replay = Replay(cfg, reader, engine=make_engine(cfg),
                        progress=progress(total) if progress is not None else None,
                        check_invariants=check_invariants, trace_sha256=trace_sha256)
        result = replay.run()
    except UserError:
        raise
    except Exception as exc:
        err = hook_error(exc, ident)
        if err is None:
            raise
        raise err from None
    finally:
        if hasattr(reader, "close"):
            reader.close()  # a streamed trace's generator runs
    result.engine = ident.name
    result.identity = ident
    run_id = None
    if out_dir is not None:
        from .results_write import append_run  # (pyarrow alone: no pandas import)

        run_id = append_run(out_dir, result, replay.trace_sha256 or sha())
    return result, run_id


def open_source(cfg: Config, trace: "str | Path | StreamSpec"):
    """The replay's batch source: a trace file's reader, or a generator run (StreamSpec)."""
    if isinstance(trace, (str, Path)):  # (a file: the generators' modules stay unimported)
        return TraceReader(trace)
    from .trace.stream import GeneratedTrace, StreamSpec

    if not isinstance(trace, StreamSpec):
        return TraceReader(trace)
    source = GeneratedTrace(trace)
    if source.meta.threads == 1 and (cfg.replay.threads or 1) > 1:
        source.close()
        raise ConfigError(f"config key 'replay.threads': {cfg.replay.threads} threads of a "
                          f"single-thread trace start at different rows, which needs the file: "
                          f"keep the trace (trace.keep = true) or generate it with -t")
    return source


def _hash_meanwhile(path: str | Path) -> Callable[[], str]:
    """The trace's sha256 (cache.file_sha256: remembered while the file is unchanged),
    computed on a thread while the replay runs (hashlib releases the GIL); the returned
    function waits for it (and raises what hashing raised)."""
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["sha"] = file_sha256(path)
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
