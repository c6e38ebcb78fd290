"""Parameter sweeps: a grid file → points (trace × engine × config values) → one results directory.

A grid file (model.md §9) is TOML::

    config  = "my.toml"                  # optional base config, relative to the grid file
    traces  = ["../traces/a.parquet"]    # optional; relative to the grid file
    engines = ["baseline", "migrc"]      # optional; default: the base config's engine
    [set]                                # fixed overrides, as --set
    "replay.time_scale" = 0.01
    [grid]                               # cartesian product of these lists
    "memory.dram" = ["12%", "18%"]
    [zip]                                # lists of one length that vary together: one axis
    "machine.ncpu" = [4, 16]
    "trace.path" = ["../traces/t4.parquet", "../traces/default.parquet"]

Without ``traces`` each point replays its own config's ``trace.path``, generated from
``trace.generate`` when missing (so ``[zip]`` can give each CPU count a trace with as many
threads). ``trace.path`` values in the grid file are relative to the grid file, like
``traces``; they are stored relative to the base config's directory, as every config is.

A config with ``trace.keep = false`` makes streamed points: the generator feeds each replay,
no file (trace/stream.py); the trace hash in the run_id is the generator parameters'.

Execution: every point is one task (``run_point``) that rebuilds its config from plain values,
replays, and returns the run's rows — never a file. The coordinating process appends them to
the results directory one at a time (``append_point``: temp files, then renames, under the
directory's lock), so workers need no write access and never write concurrently. The same
code path serves a local ``distributed.LocalCluster`` of worker processes and a remote
scheduler; ``workers=0`` runs the points in this process, one by one (no dask).

Resuming: a point's run_id (trace sha256 + config sha256 + engine; for an engine from outside
the package also its file's sha256, so an edited engine file re-runs its points) is known
before it runs;
points whose run_id is already in runs.parquet are skipped. A failing point is recorded in
``sweep_errors.parquet`` (one row per point whose last attempt failed; removed when it
succeeds) and the others go on.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import json
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path
from .config import (SCHEMA_BY_PATH, Config, build_config, find_file, load_config, load_toml_file,
                     parse_set)
from .engines.loader import EngineIdentity, identify, relative_to_config
from .errors import ConfigError, EngineError, UserError
from .results import (CPUS, INTERVALS, RUNS, append_rows, check_results_dir, file_sha256, locked,
                      make_results_dir,
                      make_run_id, merged, read_table, rows_table)
from .runner import check_generated, stream_spec
from .scaling import SCALE_KEY

ERRORS = "sweep_errors.parquet"
GRID_KEYS = ("config", "traces", "engines", "set", "grid", "zip")
TRACE_KEYS = ("trace.path", "trace.generate")
ERROR_COLUMNS = ("run_id", "engine", "trace", "trace_sha256", "config_sha256", "point", "error",
                 "traceback", "worker", "failed_at")


# ---- the grid file ---------------------------------------------------------------------------
@dataclass
class Grid:
    """A parsed grid file: what to vary, before any trace is resolved or hashed."""

    path: Path
    base: Config
    traces: list[Path] | None          # None: each point's config trace.path
    engines: list[str]
    fixed: dict[str, Any]              # [set] and --set
    axes: list[list[dict[str, Any]]]   # each axis: its list of {key: value} assignments

    @property
    def name(self) -> str:
        return self.path.stem

    def size(self) -> int:
        n = len(self.engines) * (len(self.traces) if self.traces is not None else 1)
        for axis in self.axes:
            n *= len(axis)
        return n


def _flat(table: dict, where: str, prefix: str = "") -> dict[str, Any]:
    """{"machine": {"ncpu": 4}} and {"machine.ncpu": 4} both → {"machine.ncpu": 4}."""
    flat: dict[str, Any] = {}
    for name, value in table.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flat(value, where, path + "."))
        else:
            flat[path] = value
    return flat


def _check_key(grid_path: Path, where: str, key: str) -> None:
    if key == SCALE_KEY:  # the config family's scale (scaling.py)
        return
    if key == "engine":
        raise ConfigError(f"{grid_path}: {where} 'engine': list engines in the top-level "
                          f"'engines = [...]' instead")
    if key not in SCHEMA_BY_PATH:
        close = [k for k in SCHEMA_BY_PATH if k.split(".")[-1] == key.split(".")[-1]]
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{grid_path}: {where} unknown config key '{key}'{hint}")


def _rebase_trace_path(value: Any, grid_dir: Path, base_dir: Path) -> Any:
    """A trace.path written relative to the grid file, made relative to the base config."""
    if not isinstance(value, str) or not value:
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return value
    return os.path.relpath((grid_dir / p).resolve(), base_dir)


def load_grid(path: str | Path, config_path: str | Path | None = None,
              sets: tuple[str, ...] | list[str] = ()) -> Grid:
    """Read and check a grid file; ``config_path`` and ``sets`` are the CLI's --config/--set.

    Every problem is a one-line ConfigError/UserError naming the file and the key.
    """
    gpath = find_file(path, "grid")
    doc = load_toml_file(gpath, "grid", missing="no such grid file")
    unknown = [k for k in doc if k not in GRID_KEYS]
    if unknown:
        raise ConfigError(f"{gpath}: unknown grid key '{unknown[0]}' (expected "
                          f"{', '.join(GRID_KEYS)}; config keys go under [set], [grid] or [zip])")
    gdir = gpath.resolve().parent

    base_file = config_path
    if base_file is None and "config" in doc:
        if not isinstance(doc["config"], str) or not doc["config"]:
            raise ConfigError(f"{gpath}: 'config': expected a config file name, got {doc['config']!r}")
        base_file = gdir / Path(doc["config"]).expanduser()
        if not base_file.exists() and "/" not in doc["config"]:
            base_file = find_file(doc["config"])  # a bundled config's name
    base = load_config(base_file)

    traces: list[Path] | None = None
    if "traces" in doc:
        raw = doc["traces"]
        if not isinstance(raw, list) or not all(isinstance(t, str) and t for t in raw):
            raise ConfigError(f"{gpath}: 'traces': expected a list of trace file names, got {raw!r}")
        if not raw:
            raise ConfigError(f"{gpath}: 'traces' is empty: name at least one trace, or leave "
                              f"the key out to replay each point's trace.path")
        traces = []
        for t in dict.fromkeys(raw):
            p = Path(t).expanduser()
            p = p if p.is_absolute() else (gdir / p).resolve()
            if not p.is_file():
                raise UserError(f"{gpath}: trace {t!r}: no such file ({p})")
            traces.append(p)

    engines_raw = doc.get("engines", [base.engine])
    if not isinstance(engines_raw, list) or not all(isinstance(e, str) for e in engines_raw):
        raise ConfigError(f"{gpath}: 'engines': expected a list of engine names, got {engines_raw!r}")
    if not engines_raw:
        raise ConfigError(f"{gpath}: 'engines' is empty")
    # a file engine is named relative to the grid file; configs resolve it in theirs
    if "engines" in doc:
        engines_raw = [relative_to_config(e, gdir, base.base_dir) for e in engines_raw]
    engines = list(dict.fromkeys(engines_raw))
    for e in engines:
        try:
            base.with_overrides({"engine": e})
            identify(e, base.base_dir)  # an engine file that cannot load fails before any point
        except ConfigError as exc:
            raise ConfigError(f"{gpath}: 'engines': {exc}") from None
        except EngineError as exc:
            raise EngineError(f"{gpath}: 'engines': {exc}") from None

    tables = {}
    for name in ("set", "grid", "zip"):
        t = doc.get(name, {})
        if not isinstance(t, dict):
            raise ConfigError(f"{gpath}: '{name}' must be a table ([{name}]), got {t!r}")
        tables[name] = _flat(t, name)
        for key in tables[name]:
            _check_key(gpath, f"[{name}]", key)
            if traces is not None and key in TRACE_KEYS:
                raise ConfigError(f"{gpath}: [{name}] '{key}': the grid file names its traces "
                                  f"('traces = [...]'), so the config's trace is never used")
    if "grid" in doc and not tables["grid"]:
        raise ConfigError(f"{gpath}: [grid] is empty: list at least one key with its values")
    if "zip" in doc and not tables["zip"]:
        raise ConfigError(f"{gpath}: [zip] is empty: list at least two keys that vary together")

    fixed = dict(tables["set"])
    if "trace.path" in fixed:
        fixed["trace.path"] = _rebase_trace_path(fixed["trace.path"], gdir, base.base_dir)
    for item in sets:  # --set: as for `run`, a trace.path here is relative to the config
        key, value = parse_set(item)
        if key == "engine":
            raise ConfigError("--set engine=...: list engines in the grid file's 'engines = [...]'")
        _check_key(gpath, "--set", key)
        if traces is not None and key in TRACE_KEYS:
            raise ConfigError(f"--set {key}: the grid file names its traces ('traces = [...]'), "
                              f"so the config's trace is never used")
        fixed[key] = value

    axes: list[list[dict[str, Any]]] = []
    seen: dict[str, str] = {}
    for name in ("grid", "zip"):
        for key, values in tables[name].items():
            if key in fixed:
                raise ConfigError(f"{gpath}: '{key}' is both fixed ([set] or --set) and varied "
                                  f"([{name}])")
            if key in seen:
                raise ConfigError(f"{gpath}: '{key}' is in both [{seen[key]}] and [{name}]")
            seen[key] = name
            if not isinstance(values, list):
                raise ConfigError(f"{gpath}: [{name}] '{key}': expected a list of values, "
                                  f"got {values!r}")
            if not values:
                raise ConfigError(f"{gpath}: [{name}] '{key}': the list of values is empty "
                                  f"(the sweep would have no point)")
            if key == "trace.path":
                values = [_rebase_trace_path(v, gdir, base.base_dir) for v in values]
            tables[name][key] = values
    for key, values in tables["grid"].items():
        axes.append([{key: v} for v in values])
    if tables["zip"]:
        lengths = {k: len(v) for k, v in tables["zip"].items()}
        if len(set(lengths.values())) > 1:
            raise ConfigError(f"{gpath}: [zip] lists must have one length (they vary together), "
                              f"got " + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
        n = next(iter(lengths.values()))
        axes.append([{k: v[i] for k, v in tables["zip"].items()} for i in range(n)])
    grid = Grid(path=gpath, base=base, traces=traces, engines=engines, fixed=fixed, axes=axes)
    # Check every combination of values now (a bad value is exit 2 before anything runs).
    for values in _combinations(grid):
        _point_config(grid, values, engines[0])
    return grid


def _combinations(grid: Grid) -> Iterator[dict[str, Any]]:
    for combo in itertools.product(*grid.axes):
        values: dict[str, Any] = {}
        for part in combo:
            values.update(part)
        yield values


def _point_config(grid: Grid, values: dict[str, Any], engine: str) -> Config:
    try:
        return grid.base.with_overrides({**grid.fixed, **values, "engine": engine})
    except ConfigError as exc:
        raise ConfigError(f"{grid.path}: {exc}") from None


# ---- points ----------------------------------------------------------------------------------
class TraceHashes:
    """sha256 of each trace file, computed once per sweep however many points use it."""

    def __init__(self, hasher: Callable[[Path], str] = file_sha256):
        self._hasher = hasher
        self._known: dict[Path, str] = {}
        self.computed = 0

    def __call__(self, path: str | Path) -> str:
        p = Path(path).resolve()
        if p not in self._known:
            self._known[p] = self._hasher(p)
            self.computed += 1
        return self._known[p]


@dataclass
class Point:
    """One run of the sweep, identified before it runs."""

    index: int
    engine: str
    trace: str                          # absolute path, as the workers will open it
    values: dict[str, Any]              # the varied config values (the point's label)
    config: dict[str, Any]              # every config key as written (rebuilt on the worker)
    base_dir: str
    config_sha256: str
    trace_sha256: str
    run_id: str
    stream: str = ""                    # trace.generate replayed as generated (no file)
    status: str = "pending"             # pending | skipped | ran | failed
    seconds: float | None = None
    error: str = ""

    def label(self) -> str:
        parts = [self.engine, Path(self.trace).name]
        parts += [f"{k}={_short(v)}" for k, v in self.values.items() if k not in TRACE_KEYS]
        return " ".join(parts)

    def task(self) -> dict[str, Any]:
        """What a worker needs: plain data only (picklable on any Python with migrc_bench)."""
        return {"run_id": self.run_id, "trace": self.trace, "trace_sha256": self.trace_sha256,
                "config": self.config, "base_dir": self.base_dir,
                "config_sha256": self.config_sha256, "stream": self.stream}


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 40 else "…" + s[-39:]


def expand(grid: Grid, hashes: TraceHashes | None = None, quiet: bool = True) -> list[Point]:
    """Every point of the grid with its trace resolved (generated if needed) and run_id known.

    Order: trace, then the grid's combinations, then engines (the engines of one
    configuration run next to each other). Duplicate points (same run_id) are kept once.
    """
    from .runner import default_trace

    hashes = hashes or TraceHashes()
    idents = {e: identify(e, grid.base.base_dir) for e in grid.engines}
    points: list[Point] = []
    seen: set[str] = set()
    checked: set[tuple[Path, str]] = set()
    traces: list[Path | None] = list(grid.traces) if grid.traces is not None else [None]
    for trace in traces:
        for values in _combinations(grid):
            for engine in grid.engines:
                cfg = _point_config(grid, values, engine)
                if trace is None and not cfg.trace.keep:
                    point = stream_point(len(points), cfg, values, idents[engine])
                    if point.run_id not in seen:
                        seen.add(point.run_id)
                        points.append(point)
                    continue
                if trace is None:
                    path = Path(default_trace(cfg, quiet=quiet)).resolve()
                    _check_generated(cfg, path, checked)
                else:
                    path = Path(trace).resolve()
                point = make_point(len(points), cfg, path, values, hashes, idents[engine])
                if point.run_id in seen:
                    continue
                seen.add(point.run_id)
                points.append(point)
    return points


def make_point(index: int, cfg: Config, trace: Path, values: dict[str, Any],
               hashes: TraceHashes, ident: EngineIdentity | None = None) -> Point:
    """The point that replays ``trace`` with ``cfg`` (its run_id known before it runs);
    ``ident`` is cfg.engine's identity (looked up when not given)."""
    ident = ident or identify(cfg.engine, cfg.base_dir)
    tsha = hashes(trace)
    return Point(index=index, engine=ident.name, trace=str(trace), values=dict(values),
                 config=dict(cfg.raw), base_dir=str(cfg.base_dir), config_sha256=cfg.sha256,
                 trace_sha256=tsha, run_id=make_run_id(tsha, cfg.sha256, ident.run_id_part))


def stream_point(index: int, cfg: Config, values: dict[str, Any],
                 ident: EngineIdentity | None = None) -> Point:
    """The point that replays cfg's trace.generate as it is generated (``trace.keep =
    false``): no file; its trace hash is the generator parameters' (trace/stream.py)."""
    from .trace.generated import parse_generate
    from .trace.stream import stream_sha256

    spec = stream_spec(cfg)
    ident = ident or identify(cfg.engine, cfg.base_dir)
    tsha = stream_sha256(parse_generate(spec.text))
    return Point(index=index, engine=ident.name, trace=str(spec), values=dict(values),
                 config=dict(cfg.raw), base_dir=str(cfg.base_dir), config_sha256=cfg.sha256,
                 trace_sha256=tsha, run_id=make_run_id(tsha, cfg.sha256, ident.run_id_part),
                 stream=spec.text)


def _check_generated(cfg: Config, path: Path, checked: set[tuple[Path, str]]) -> None:
    """runner.check_generated once per (trace, arguments) of a sweep."""
    gen = cfg.trace.generate
    if not gen or (path, gen) in checked:
        return
    checked.add((path, gen))
    check_generated(cfg, path)


# ---- the task (runs on a worker) -------------------------------------------------------------
def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Replay one point; return its runs row, interval and CPU rows. Never raises, never writes.

    The config is rebuilt from its written values, so a worker gets exactly the coordinator's
    config (its sha256 is checked) whatever its working directory.
    """
    from . import __version__
    from .results import run_row
    from .runner import run_trace

    started = _now()
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        cfg = build_config(dict(task["config"]), Path(task["base_dir"]))
        if cfg.sha256 != task["config_sha256"]:
            raise UserError(f"the config rebuilt on worker {worker} differs from the "
                            f"coordinator's (migrc-bench {__version__} there: same version?)")
        trace = task["trace"]
        if task.get("stream"):
            from .trace.stream import StreamSpec

            trace = StreamSpec(task["stream"])
        result, _ = run_trace(cfg, trace)
        row = run_row(result, task["trace_sha256"], started_at=started)
        if row["run_id"] != task["run_id"]:
            raise UserError(f"run_id {row['run_id']} on worker {worker}, expected "
                            f"{task['run_id']} (different migrc-bench versions, or the engine "
                            f"file changed since the sweep started?)")
        row = {k: _plain(v) for k, v in row.items()}
        return {"ok": True, "row": row, "intervals": result.intervals, "cpus": result.cpus,
                "seconds": time.perf_counter() - t0, "worker": worker}
    except Exception as exc:  # noqa: BLE001 - recorded in sweep_errors.parquet
        return {"ok": False, "error": _one_line(exc), "traceback": traceback.format_exc(),
                "seconds": time.perf_counter() - t0, "worker": worker}


def _plain(v: Any) -> Any:
    """numpy scalars → Python scalars; lists (e.g. invariant violations) → JSON text."""
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        return v.item()
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, default=str)
    return v


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if isinstance(exc, UserError):
        return msg
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---- the results directory (coordinator only) ------------------------------------------------
def prepare_out(out: str | Path) -> Path:
    """Create the results directory; remove temp files that a killed append left behind."""
    check_results_dir(out)
    out = make_results_dir(out)
    with locked(out):  # under the lock no append is in progress: every temp file is stale
        for name in (RUNS, INTERVALS, CPUS, ERRORS):
            for tmp in out.glob(f".{name}.*.tmp"):
                with contextlib.suppress(OSError):
                    tmp.unlink()
    return out


def done_run_ids(out: str | Path) -> set[str]:
    path = Path(out) / RUNS
    if not path.exists():
        return set()
    return set(read_table(path, ["run_id"])["run_id"].astype(str))


def append_point(out: str | Path, row: dict[str, Any], intervals: list[dict[str, Any]],
                 cpus: list[dict[str, Any]]) -> None:
    """Add one run (its rows, as run_point returned them) to the results directory.

    As results.append_run: the new tables are written to temp files first, then renamed
    intervals, cpus, runs (a run exists once its row is in runs.parquet), all under the
    directory's lock; a row of the same run_id is replaced. The point's error row, if any,
    is dropped last.
    """
    out = Path(out)
    append_rows(out, row, intervals, cpus)
    with locked(out):
        _drop_error(out, row["run_id"])


def _drop_error(out: Path, run_id: str) -> None:
    path = out / ERRORS
    if not path.exists():
        return
    old = read_table(path)
    keep = old[old["run_id"] != run_id]
    if len(keep) == len(old):
        return
    if not len(keep):
        path.unlink()
        return
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(keep, preserve_index=False), tmp, compression="zstd")


def record_error(out: str | Path, point: Point, error: str, tb: str = "", worker: str = "") -> None:
    """Record (or replace) the failure of one point in sweep_errors.parquet."""
    out = Path(out)
    row = {"run_id": point.run_id, "engine": point.engine, "trace": point.trace,
           "trace_sha256": point.trace_sha256, "config_sha256": point.config_sha256,
           "point": json.dumps(point.values, default=str), "error": error, "traceback": tb,
           "worker": worker, "failed_at": _now()}
    with locked(out):
        table = merged(out / ERRORS, rows_table([row], ERROR_COLUMNS), point.run_id)
        with atomic_path(out / ERRORS) as tmp:
            pq.write_table(table, tmp, compression="zstd")


def read_errors(out: str | Path) -> pd.DataFrame:
    path = Path(out) / ERRORS
    if not path.exists():
        return pd.DataFrame(columns=list(ERROR_COLUMNS))
    return read_table(path)


# ---- executors -------------------------------------------------------------------------------
def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A distributed.Client: on a new LocalCluster of worker processes, or on ``scheduler``."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserError(f"--scheduler {scheduler}: cannot connect to a dask scheduler "
                            f"({_one_line(exc)})") from None
        try:
            yield client
        finally:
            client.close()
        return
    # Worker processes inherit an ignored SIGINT (it survives exec, and Python then installs no
    # KeyboardInterrupt handler): Ctrl-C stops the coordinator, which closes the cluster,
    # instead of every worker printing its own traceback.
    with _sigint_ignored():
        cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1,
                               processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _serial(tasks: list[tuple[Point, dict]]) -> Iterator[tuple[Point, dict]]:
    for point, task in tasks:
        yield point, run_point(task)


def _distributed(client: Any, tasks: list[tuple[Point, dict]]) -> Iterator[tuple[Point, dict]]:
    """Submit one task per point; yield (point, outcome) as they complete."""
    import uuid

    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = {}
    for point, task in tasks:
        fut = client.submit(run_point, task, key=f"migrc-sweep-{token}-{point.index}-{point.run_id}",
                            pure=False, retries=0)
        futures[fut] = point
    try:
        for fut in as_completed(list(futures)):
            point = futures.pop(fut)
            try:
                outcome = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died, a task was cancelled, ...
                outcome = {"ok": False, "error": _one_line(exc), "traceback": traceback.format_exc(),
                           "seconds": None, "worker": ""}
            fut.release()
            yield point, outcome
    finally:
        if futures:
            with contextlib.suppress(Exception):
                client.cancel(list(futures))


# ---- the sweep -------------------------------------------------------------------------------
@dataclass
class SweepReport:
    out: Path
    points: list[Point]
    executor: str
    wall_s: float = 0.0
    events: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(p.status == status for p in self.points)


Listener = Callable[[str, Point, int, int], None]   # (event, point, done, total)


def run_sweep(grid: Grid, out: str | Path, workers: int | None = None, scheduler: str | None = None,
              force: bool = False, listener: Listener | None = None, quiet: bool = True,
              points: list[Point] | None = None) -> SweepReport:
    """Run the points of ``grid`` not yet in ``out``; append each as it completes.

    ``workers=0`` runs in this process; otherwise a LocalCluster of ``workers`` processes
    (default one per core), or the dask scheduler at ``scheduler``. ``listener(event, point,
    done, total)`` is told "start" (point=None) and then "ran"/"failed" for each point.
    """
    out = prepare_out(out)
    points = points if points is not None else expand(grid, quiet=quiet)
    have = set() if force else done_run_ids(out)
    todo = []
    for p in points:
        if p.run_id in have:
            p.status = "skipped"
        else:
            todo.append(p)
    if scheduler:
        executor = f"dask scheduler {scheduler}"
    elif workers == 0:
        executor = "this process (serial)"
    else:
        n = min(workers or default_workers(), max(1, len(todo)))
        executor = f"{n} local worker process{'es' if n > 1 else ''}"
    report = SweepReport(out=out, points=points, executor=executor)
    t0 = time.perf_counter()
    if listener:
        listener("start", None, 0, len(todo))
    if todo:
        tasks = [(p, p.task()) for p in todo]
        with contextlib.ExitStack() as stack:
            if workers == 0 and not scheduler:
                outcomes = _serial(tasks)
            else:
                client = stack.enter_context(
                    dask_client(min(workers or default_workers(), len(todo)), scheduler))
                # Closed before the client (ExitStack order): cancels what is left on Ctrl-C.
                outcomes = stack.enter_context(contextlib.closing(_distributed(client, tasks)))
            done = 0
            for point, outcome in outcomes:
                point.seconds = outcome.get("seconds")
                if outcome["ok"]:
                    append_point(out, outcome["row"], outcome["intervals"], outcome["cpus"])
                    point.status = "ran"
                else:
                    point.status, point.error = "failed", outcome["error"]
                    record_error(out, point, outcome["error"], outcome.get("traceback", ""),
                                 outcome.get("worker", ""))
                done += 1
                if listener:
                    listener(point.status, point, done, len(todo))
    report.wall_s = time.perf_counter() - t0
    return report
