"""Appending a run to a results directory (model.md §8), with pyarrow alone.

The writer is kept apart from the readers (results.py, which use pandas) so that a replay
writes its results without importing pandas: that import was 0.2-0.35 s at the end of every
``migrc-bench run``, a fifth of a 50 M-access replay (issue 15). pyarrow imports pandas too
when it converts Python values (pa.array, compute functions with Python scalars,
pq.read_table), so the columns are built from their buffers here.

An append writes all three new tables to temp files beside the old ones first (the slow
part), then renames them over the old ones, ``intervals`` and ``cpus`` before ``runs``: an
error or Ctrl-C while writing leaves the directory exactly as it was, and a run exists once
its row is in runs.parquet (a kill between two renames leaves at most rows of a run that is
not in runs.parquet: readers drop them, and the next run with that ``run_id`` replaces them).
Appends from several processes are serialised by an flock on ``.lock`` in the directory.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import math
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .atomic import atomic_path
from .errors import UserError
from .interrupts import deferred
from .model.counters import COUNTERS, RUN_FIGURES
from .model.replay import RunResult
from .results_dir import CPUS, INTERVALS, RUNS

RESULTS_VERSION = 1
RUN_KEYS = ("run_id", "engine", "trace", "trace_sha256", "config_sha256", "config_toml",
            "tool_version", "started_at", "engine_file", "engine_sha256")
RUN_COLUMNS = RUN_KEYS + COUNTERS + RUN_FIGURES


def make_run_id(trace_sha256: str, config_sha256: str, engine: str) -> str:
    """Same trace + config + engine ⇒ same id, so a repeated run is recognised.

    ``engine`` is ``EngineIdentity.run_id_part``: a built-in's name, or an outside engine's
    name and file hash (an edited engine file gives new run ids).
    """
    return hashlib.sha256(f"{trace_sha256}:{config_sha256}:{engine}".encode()).hexdigest()[:16]


def run_row(result: RunResult, trace_sha256: str, started_at: str | None = None) -> dict[str, Any]:
    cfg = result.config
    ident = result.identity
    row: dict[str, Any] = {
        "run_id": make_run_id(trace_sha256, cfg.sha256,
                              ident.run_id_part if ident is not None else result.engine),
        "engine": result.engine,
        "trace": result.trace_path,
        "trace_sha256": trace_sha256,
        "config_sha256": cfg.sha256,
        "config_toml": cfg.to_toml(),
        "tool_version": __version__,
        "started_at": started_at or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "engine_file": ident.file if ident is not None else "",
        "engine_sha256": ident.sha256 if ident is not None else "",
    }
    row.update({k: result.totals.get(k, 0) for k in COUNTERS + RUN_FIGURES})
    for k, v in result.totals.items():  # an engine's own figures (e.g. luf_tagged_pages_peak)
        row.setdefault(k, v)
    for k, v in result.extra.items():
        row.setdefault(k, v)
    return row


def rows_table(rows: list[dict[str, Any]], columns: Iterable[str] = (),
               run_id: str | None = None) -> pa.Table:
    """Rows (dicts) as a table: ``columns`` first, then every other key in the order it first
    appears; a key missing from a row (or None, or NaN, as pandas had it) is null there.
    ``run_id``: a first column of it. Text is large_string, as the pandas writer of earlier
    versions stored it, so that old and new rows of one file have one type."""
    names = list(columns)
    seen = set(names)
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                names.append(k)
    arrays, fields = [], []
    if run_id is not None:
        arrays.append(_column([run_id] * len(rows)))
        fields.append("run_id")
    for k in names:
        if k != "run_id" or run_id is None:
            arrays.append(_column([r.get(k) for r in rows]))
            fields.append(k)
    return pa.Table.from_arrays(arrays, names=fields)


def _column(values: list[Any]) -> pa.Array:
    """One column built from its buffers: pyarrow's own conversion of Python values (pa.array)
    imports pandas, which is what this module avoids. Values of a kind not handled here (a
    column mixing text and numbers) go through pa.array after all."""
    n = len(values)
    valid = np.array([v is not None and not (isinstance(v, float) and math.isnan(v))
                      for v in values], bool)
    vals = [v for v, ok in zip(values, valid) if ok]
    nulls = n - len(vals)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    if not vals:
        return pa.Array.from_buffers(pa.null(), n, [None], null_count=n)
    if all(isinstance(v, str) for v in vals):
        data = [v.encode() if ok else b"" for v, ok in zip(values, valid)]
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum([len(d) for d in data], out=offsets[1:])
        return pa.Array.from_buffers(pa.large_string(), n, [bitmap, pa.py_buffer(offsets),
                                                            pa.py_buffer(b"".join(data))],
                                     null_count=nulls)
    if all(isinstance(v, (bool, np.bool_)) for v in vals):
        bits = np.array([bool(v) if ok else False for v, ok in zip(values, valid)], bool)
        return pa.Array.from_buffers(pa.bool_(), n, [bitmap, pa.py_buffer(
            np.packbits(bits, bitorder="little"))], null_count=nulls)
    numbers = (int, float, np.integer, np.floating)
    if all(isinstance(v, numbers) and not isinstance(v, (bool, np.bool_)) for v in vals):
        floating = any(isinstance(v, (float, np.floating)) for v in vals)
        dtype, kind = (np.float64, pa.float64()) if floating else (np.int64, pa.int64())
        data = np.array([v if ok else 0 for v, ok in zip(values, valid)], dtype)
        return pa.Array.from_buffers(kind, n, [bitmap, pa.py_buffer(data)], null_count=nulls)
    return pa.array(values)


def _other_runs(table: pa.Table, run_id: str) -> pa.Table:
    """The rows of ``table`` whose run_id is not ``run_id`` (the mask built as a column:
    pyarrow's compute functions with a Python scalar import pandas)."""
    keep = [v != run_id for v in table.column("run_id").to_pylist()]
    return table if all(keep) else table.filter(_column(keep))


def merged(path: Path, new: pa.Table, run_id: str) -> pa.Table:
    """The old rows of ``path`` (other run ids) plus ``new``, as the table to write."""
    table = new
    if path.exists():
        try:  # ParquetFile.read: pq.read_table imports pandas
            old = pq.ParquetFile(path).read()
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"{path}: not a readable results file ({exc})") from None
        if "run_id" not in old.column_names:
            raise UserError(f"{path}: not a migrc-bench results table (no run_id column)")
        old = _other_runs(old, run_id)
        if old.num_rows:
            table = pa.concat_tables([old, new], promote_options="permissive")
    return table.replace_schema_metadata(
        {b"migrc_bench.results_version": str(RESULTS_VERSION).encode()})


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Serialise appends to one results directory (a read-modify-write of three files)."""
    with open(out / ".lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def append_run(out_dir: str | Path, result: RunResult, trace_sha256: str) -> str:
    """Add one run to a results directory; returns its run_id.

    A run with the same run_id (same trace, config and engine) replaces the stored one.
    """
    out = make_results_dir(out_dir)
    return append_rows(out, run_row(result, trace_sha256), result.intervals, result.cpus)


def make_results_dir(out_dir: str | Path) -> Path:
    """Create (or accept) a results directory; a user error if that cannot be done."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: results path exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out}: cannot create the results directory ({exc.strerror})") from None
    return out


def append_rows(out: Path, row: dict[str, Any], intervals: list[dict[str, Any]],
                cpus: list[dict[str, Any]]) -> str:
    """Add one run given as rows (its runs row, interval rows, CPU rows); returns its run_id.

    The new tables are written to temp files first, then renamed intervals, cpus, runs (a run
    exists once its row is in runs.parquet), all under the directory's lock. SIGINT/SIGTERM
    wait until the three renames are done; a write that fails (disk full) is a one-line
    error and leaves the directory as it was.
    """
    rid = row["run_id"]
    try:
        with locked(out):
            tables = [(out / RUNS, merged(out / RUNS, rows_table([row]), rid)),
                      (out / CPUS, merged(out / CPUS, rows_table(cpus, run_id=rid), rid)),
                      (out / INTERVALS, merged(out / INTERVALS, rows_table(intervals, run_id=rid),
                                               rid))]
            # Every temp file is written inside the stack; closing it renames them in reverse
            # order of entry (intervals, cpus, then runs); on any error it removes them.
            with contextlib.ExitStack() as stack:
                for path, table in tables:
                    tmp = stack.enter_context(atomic_path(path))
                    pq.write_table(table, tmp, compression="zstd")
                with deferred():
                    stack.close()
    except OSError as exc:
        raise UserError(f"{out}: cannot write the results ({exc.strerror or exc}); the "
                        f"directory is as it was") from None
    return rid
