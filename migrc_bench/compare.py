"""``compare``: counters of several runs side by side, Δ and Δ% against the first column.

Columns come either from replaying one trace with several engines (in parallel worker
processes; a worker runs exactly what ``run`` runs, so the counters equal a serial run's) or
from stored runs (results directories, runs.parquet files or baseline files). Rows are
grouped (flushes, TLB misses, migration, time, migrc/LUF, harness); each counter has a
direction that decides the colour of its Δ (see ``BETTER`` and docs/results.md).
"""

from __future__ import annotations

import concurrent.futures as cf
import fnmatch
import multiprocessing as mp
import os
import queue as _queue
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from . import interrupts
from .baseline import load_runs
from .catalogue import (GROUP_NAMES, GROUP_OF, GROUPS, HIGHER, KNOWN, NEUTRAL, ORDER,  # noqa: F401
                        better, group_of, sort_key)
from .engines.loader import EngineIdentity
from .errors import UserError
from .results import (CONTEXT_COLUMNS, StoredRun, config_differences, file_sha256,
                      latest_per_engine, make_run_id)

COMPARE_SCHEMA = "migrc-bench/compare/1"

def delta(ref: float | int | None, value: float | int | None) -> tuple[float | int | None, float | None]:
    """(value − ref, 100·(value − ref)/|ref|); Δ% is None when ref is 0 and value is not."""
    if ref is None or value is None:
        return None, None
    d = value - ref
    if isinstance(d, float) and abs(d) <= 1e-12 * max(abs(ref), abs(value)):
        d = 0.0  # the same figure summed in another order
    if ref == 0:
        return d, (0.0 if d == 0 else None)
    return d, 100.0 * d / abs(ref)


def verdict(direction: str, d: float | int | None) -> str:
    """'same', 'better', 'worse', 'changed' (neutral counters) or 'n/a' (a value missing)."""
    if d is None:
        return "n/a"
    if d == 0:
        return "same"
    if direction == "neutral":
        return "changed"
    return "better" if (d < 0) == (direction == "lower") else "worse"


# ---- columns and rows ---------------------------------------------------------------------
@dataclass
class Column:
    """One run shown as a column."""

    id: str
    run: StoredRun
    origin: str  # "replay" (made by this compare) or "stored"

    def to_json(self) -> dict[str, Any]:
        r = self.run
        return {"id": self.id, "engine": r.engine, "run_id": r.run_id, "origin": self.origin,
                "source": r.source, "trace": r.trace, "trace_sha256": r.trace_sha256,
                "config_sha256": r.config_sha256, "tool_version": r.tool_version,
                "started_at": r.started_at, "engine_file": r.engine_file,
                "engine_sha256": r.engine_sha256, "context": r.context}


@dataclass
class Row:
    group: str
    counter: str
    better: str
    values: list[float | int | None]
    deltas: list[float | int | None] = field(default_factory=list)  # one per column; [0] is None
    pcts: list[float | None] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(v not in ("same",) for v in self.verdicts[1:])


def label_columns(runs: list[StoredRun], labels: list[str] | None = None) -> list[str]:
    """Column ids: the engine name, qualified by its source label when engines repeat."""
    ids = [r.engine for r in runs]
    if len(set(ids)) == len(ids):
        return ids
    labels = labels or [r.source for r in runs]
    out = [f"{r.engine}@{lab}" for r, lab in zip(runs, labels)]
    if len(set(out)) != len(out):
        out = [f"{e}#{i + 1}" for i, e in enumerate(out)]
    return out


def select_counters(columns: list[Column], patterns: list[str] | None) -> list[str]:
    """Counters to show: every numeric counter of any column, or those ``patterns`` match.

    A pattern is a counter name or a shell glob (``nr_tlb_*``); one that matches nothing is
    an error (a typo would otherwise show an empty table).
    """
    present: list[str] = []
    for c in columns:
        for name in c.run.counters:
            if name not in present:
                present.append(name)
    ordered = sorted(present, key=sort_key)
    if not patterns:
        return ordered
    chosen: list[str] = []
    for pat in patterns:
        hits = [n for n in ordered if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            where = "known counter" if pat in KNOWN else "counter"
            raise UserError(f"--counters: no {where} matches {pat!r} in these runs"
                            + ("" if pat in KNOWN else f" (counters: {', '.join(ordered[:8])}, ...)"))
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen, key=sort_key)


def build_rows(columns: list[Column], counters: list[str] | None = None,
               only_changed: bool = False) -> list[Row]:
    names = select_counters(columns, counters)
    rows = []
    for name in names:
        values = [c.run.counters.get(name) for c in columns]
        row = Row(group_of(name), name, better(name), values)
        for v in values:
            d, pct = delta(values[0], v)
            row.deltas.append(d)
            row.pcts.append(pct)
            row.verdicts.append(verdict(row.better, d))
        row.deltas[0] = row.pcts[0] = None
        row.verdicts[0] = "reference"
        if only_changed and not row.changed:
            continue
        rows.append(row)
    return rows


def notes_for(columns: list[Column]) -> list[str]:
    """Warnings a reader of the table should see: differing configs or traces, no tiering."""
    notes = []
    if not columns:
        return notes
    ref = columns[0]
    for col in columns[1:]:
        if ref.run.trace_sha256 and col.run.trace_sha256 and ref.run.trace_sha256 != col.run.trace_sha256:
            notes.append(f"{col.id}: a different trace from {ref.id} ({col.run.trace or '?'} vs "
                         f"{ref.run.trace or '?'})")
        twin = next((c for c in columns if c is not col and c.run.engine == col.run.engine
                     and c.run.engine_sha256 and col.run.engine_sha256
                     and c.run.engine_sha256 != col.run.engine_sha256), None)
        if twin is not None and columns.index(twin) < columns.index(col):
            notes.append(f"{col.id}: engine {col.run.engine} from another source than in "
                         f"{twin.id} (sha256 {col.run.engine_sha256[:12]} vs "
                         f"{twin.run.engine_sha256[:12]}, {col.run.engine_file})")
        diff = config_differences(ref.run, col.run)
        if diff:
            shown = ", ".join(diff[:6]) + (", ..." if len(diff) > 6 else "")
            notes.append(f"{col.id}: config differs from {ref.id} beyond the engine: {shown}")
    enabled = [c.run.config_values().get("tiering.enabled") for c in columns]
    if any(e is False for e in enabled):
        notes.append("tiering.enabled is false: no page migrates, so the engines do not act "
                     "(--set tiering.enabled=true)")
    return notes


def to_json(columns: list[Column], rows: list[Row], notes: list[str]) -> dict[str, Any]:
    """The ``compare --format json`` document (docs/results.md)."""
    ids = [c.id for c in columns]
    return {
        "schema": COMPARE_SCHEMA,
        "reference": ids[0] if ids else None,
        "columns": [c.to_json() for c in columns],
        "rows": [{
            "group": r.group, "counter": r.counter, "better": r.better,
            "values": dict(zip(ids, r.values)),
            "delta": {i: d for i, d in zip(ids[1:], r.deltas[1:])},
            "delta_pct": {i: p for i, p in zip(ids[1:], r.pcts[1:])},
            "verdict": {i: v for i, v in zip(ids[1:], r.verdicts[1:])},
        } for r in rows],
        "notes": notes,
    }


def flat_rows(columns: list[Column], rows: list[Row]) -> list[dict[str, Any]]:
    """One dict per counter: group, counter, better, a value per column, then Δ and Δ%."""
    out = []
    for r in rows:
        d: dict[str, Any] = {"group": r.group, "counter": r.counter, "better": r.better}
        for c, v in zip(columns, r.values):
            d[c.id] = v
        for c, dv, p in zip(columns[1:], r.deltas[1:], r.pcts[1:]):
            d[f"delta_{c.id}"] = dv
            d[f"delta_pct_{c.id}"] = p
        out.append(d)
    return out


# ---- stored runs --------------------------------------------------------------------------
def source_kind(path: str | Path) -> str:
    """'results' (a directory or a results table), 'baseline' (a check baseline file) or 'trace'."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file or directory")
    if p.is_dir():
        return "results"
    if p.suffix.lower() == ".json":
        return "baseline"
    if p.suffix.lower() == ".parquet":
        try:
            names = pq.read_schema(p).names
        except (pa.ArrowException, OSError):
            return "trace"  # let the trace reader say what is wrong with it
        return "results" if "run_id" in names else "trace"
    return "trace"


def load_source(path: str | Path) -> list[StoredRun]:
    """The runs stored at ``path``: a results directory, a runs.parquet or a baseline file."""
    return load_runs(path)


def stored_columns(paths: list[str], engines: list[str] | None) -> list[Column]:
    """Columns for ``compare A [B]``: per source, the last run of each engine, A's first."""
    labels = _source_labels(paths)
    runs: list[StoredRun] = []
    run_labels: list[str] = []
    for path, label in zip(paths, labels):
        stored = load_source(path)
        if not stored:
            raise UserError(f"{path}: holds no runs")
        picked = latest_per_engine(stored, engines)
        if not picked:
            have = sorted({r.engine for r in stored})
            raise UserError(f"{path}: no run of engine {', '.join(engines or [])} "
                            f"(it has: {', '.join(have)})")
        runs.extend(picked)
        run_labels.extend([label] * len(picked))
    ids = label_columns(runs, run_labels)
    return [Column(i, r, "stored") for i, r in zip(ids, runs)]


def _source_labels(paths: list[str]) -> list[str]:
    """Short names for sources: the directory name (of runs.parquet: its directory's)."""
    names = []
    for p in paths:
        q = Path(p)
        names.append((q.parent.name if q.name == "runs.parquet" else q.stem if q.is_file() else q.name)
                     or str(q))
    if len(set(names)) != len(names):
        names = [chr(ord("A") + i) for i in range(len(paths))]
    return names


# ---- replaying engines --------------------------------------------------------------------
ProgressFn = Callable[[str, int, int, float], None]  # (column id, done, total, modelled ns)

_QUEUE: Any = None


def check_engines(engines: list[str], base_dir: Path | None = None) -> list[EngineIdentity]:
    """Every engine must be known, implemented and loadable (a file engine is imported and
    checked here, before any replay): a clean exit-2 error otherwise. Returns their identities;
    file engines are relative to ``base_dir`` (the config's directory)."""
    from .config import ENGINES, config_dir
    from .engines import names
    from .engines.loader import identify, installed, split_file_spec

    if not engines:
        raise UserError("--engines: no engine named")
    available = names()
    seen: dict[str, str] = {}
    idents = []
    for e in engines:
        if e in seen.values():
            raise UserError(f"--engines: {e!r} named twice")
        if split_file_spec(e) is None and e not in installed():
            if e not in ENGINES:
                raise UserError(f"--engines: unknown engine {e!r} (known: {', '.join(available)}; "
                                f"or an installed engine, or a file engine PATH.py:CLASS)")
            if e not in available:
                raise UserError(f"--engines: engine {e!r} is not implemented yet "
                                f"(available: {', '.join(available)})")
        ident = identify(e, base_dir if base_dir is not None else config_dir())
        if ident.name in seen:
            raise UserError(f"--engines: two engines named {ident.name!r} ({seen[ident.name]} and "
                            f"{e}); give each class its own name = \"...\"")
        seen[ident.name] = e
        idents.append(ident)
    return idents


def _worker_init(q: Any) -> None:
    # Ctrl-C goes to the whole process group: the parent handles it and ends the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _QUEUE
    _QUEUE = q


def _queue_progress(label: str) -> Callable[[int], Callable[[int, float], None]] | None:
    q = _QUEUE
    if q is None:
        return None

    def factory(total: int) -> Callable[[int, float], None]:
        last = [0.0]

        def update(done: int, modelled_ns: float) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.1 or done >= total:
                last[0] = now
                q.put((label, done, total, modelled_ns))

        return update

    return factory


def replay_one(config_path: str | None, sets: tuple[str, ...], engine: str, trace: Any,
               label: str, progress: Callable[[int], Callable[[int, float], None]] | None = None,
               trace_sha256: str | None = None) -> dict[str, Any]:
    """Run one engine on one trace (in a worker or in-process); plain picklable data back.

    User errors come back as {"error": message} (some UserError subclasses cannot be pickled).
    """
    from .config import load_config
    from .runner import run_trace

    if progress is None:
        progress = _queue_progress(label)
    try:
        cfg = load_config(config_path, sets).with_overrides({"engine": engine})
        result, _ = run_trace(cfg, trace, None, progress=progress, trace_sha256=trace_sha256)
    except UserError as exc:
        return {"error": str(exc), "exit_code": exc.exit_code}
    return {"engine": result.engine, "trace_path": result.trace_path, "totals": result.totals,
            "cpus": result.cpus, "intervals": result.intervals, "extra": result.extra}


def _progress_factory(on_progress, engine: str):
    """``total -> update(done, modelled_ns)`` reporting to ``on_progress`` under ``engine``."""
    if on_progress is None:
        return None

    def factory(total: int) -> Callable[[int, float], None]:
        return lambda done, t: on_progress(engine, done, total, t)

    return factory


def replay_columns(config_path: str | None, sets: tuple[str, ...], engines: list[str],
                   trace: Any, workers: int = 0, out_dir: str | Path | None = None,
                   on_progress: ProgressFn | None = None,
                   on_start: Callable[[str], None] | None = None) -> list[Column]:
    """Replay ``trace`` once per engine (in ``workers`` processes; 1 = in this process); a
    ``StreamSpec`` is generated afresh in each engine's replay (trace/stream.py).

    Configs and the trace are validated here first, so bad input fails before any worker
    starts. Results are appended to ``out_dir`` (if given) in engine order, after all runs.
    """
    from .config import load_config
    from .model.machine import needs_profile
    from .model.replay import RunResult
    from .results import append_run, check_results_dir, run_row
    from .runner import open_source
    from .trace.prepass import trace_profile
    from .trace.stream import StreamSpec

    base = load_config(config_path, sets)
    idents = dict(zip(engines, check_engines(engines, base.base_dir)))
    if out_dir is not None:
        check_results_dir(out_dir)  # before the replays, not after
    if not isinstance(trace, StreamSpec):
        trace = str(trace)  # recorded as given, as `run` does; workers share our cwd
    reader = open_source(base, trace)  # a bad trace is one error, not one per worker
    cfgs = {e: base.with_overrides({"engine": e}) for e in engines}
    sha = reader.sha256 if isinstance(trace, StreamSpec) else file_sha256(trace)
    try:
        if any(needs_profile(c, reader.meta) for c in cfgs.values()):
            trace_profile(reader, sha)  # the pre-pass once, here, rather than in every worker
    finally:
        if isinstance(trace, StreamSpec):
            reader.close()  # its generator: every engine's replay runs one of its own
    workers = workers or min(len(engines), os.cpu_count() or 1)
    workers = max(1, min(workers, len(engines)))
    payloads: dict[str, dict[str, Any]] = {}
    if workers == 1:
        for e in engines:
            if on_start:
                on_start(e)
            payloads[e] = replay_one(config_path, tuple(sets), e, trace, e,
                                     _progress_factory(on_progress, e), trace_sha256=sha)
            if "error" in payloads[e]:
                break
    else:
        payloads = _replay_parallel(config_path, tuple(sets), engines, trace, workers,
                                    on_progress, on_start, sha)
    for e in engines:
        p = payloads.get(e)
        if p is not None and "error" in p:
            raise UserError(f"engine {idents[e].name}: {p['error']}")
    columns = []
    appended: list[str] = []
    for e in engines:
        p = payloads[e]
        ident = idents[e]
        result = RunResult(ident.name, p["trace_path"], cfgs[e], p["totals"], p["cpus"],
                           p["intervals"], p["extra"], ident)
        run_id = make_run_id(sha, cfgs[e].sha256, ident.run_id_part)
        if out_dir is not None:
            run_id = append_run(out_dir, result, sha)
            appended.append(e)
            interrupts.keep(f"{out_dir}: {', '.join(appended)} appended, "
                            f"{len(engines) - len(appended)} engine(s) not")
        row = run_row(result, sha)
        counters = {k: v for k, v in row.items()
                    if k not in CONTEXT_COLUMNS and k != "run_id" and isinstance(v, (int, float))
                    and not isinstance(v, bool)}
        stored = StoredRun(run_id=run_id, engine=ident.name, trace=result.trace_path,
                           trace_sha256=sha, config_sha256=row["config_sha256"],
                           config_toml=row["config_toml"], tool_version=row["tool_version"],
                           started_at=row["started_at"], engine_file=ident.file,
                           engine_sha256=ident.sha256,
                           source=str(out_dir) if out_dir is not None else "",
                           counters=counters, context={k: result.extra[k] for k in CONTEXT_COLUMNS
                                                       if k in result.extra})
        columns.append(Column(ident.name, stored, "replay"))
    return columns


def _replay_parallel(config_path, sets, engines, trace, workers, on_progress, on_start, sha=None):
    ctx = mp.get_context("spawn")
    q = ctx.Queue() if on_progress is not None else None
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                  initargs=(q,))
    payloads: dict[str, dict[str, Any]] = {}
    try:
        futures = {pool.submit(replay_one, config_path, sets, e, trace, e, trace_sha256=sha): e
                   for e in engines}
        if on_start:
            for e in engines:
                on_start(e)
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
            _drain(q, on_progress)
            for f in done:
                payloads[futures[f]] = f.result()
                if "error" in payloads[futures[f]]:
                    pending = set()  # report the first error; the rest are cancelled below
                    break
        _drain(q, on_progress)
    except BaseException:
        _terminate(pool)
        raise
    else:
        if len(payloads) < len(engines):
            _terminate(pool)
        else:
            pool.shutdown(wait=True)
    return payloads


def _drain(q: Any, on_progress: ProgressFn | None) -> None:
    if q is None or on_progress is None:
        return
    while True:
        try:
            label, done, total, t = q.get_nowait()
        except _queue.Empty:
            return
        on_progress(label, done, total, t)


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    """Stop the workers now (Ctrl-C or an error): cancel queued runs, end running ones."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
