"""The results directory (model.md §8): runs, intervals and cpus tables, appended run by run.

Each file is replaced atomically. ``intervals`` and ``cpus`` are written before ``runs``:
a run exists once its row is in runs.parquet, so a crash in between leaves at most rows
that the next run with the same ``run_id`` replaces. Readers ignore unknown columns.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .atomic import atomic_path
from .errors import UserError
from .model.counters import COUNTERS, RUN_FIGURES
from .model.replay import RunResult

RESULTS_VERSION = 1
RUNS, INTERVALS, CPUS = "runs.parquet", "intervals.parquet", "cpus.parquet"
RUN_KEYS = ("run_id", "engine", "trace", "trace_sha256", "config_sha256", "config_toml",
            "tool_version", "started_at")
RUN_COLUMNS = RUN_KEYS + COUNTERS + RUN_FIGURES


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def make_run_id(trace_sha256: str, config_sha256: str, engine: str) -> str:
    """Same trace + config + engine ⇒ same id, so a repeated run is recognised."""
    return hashlib.sha256(f"{trace_sha256}:{config_sha256}:{engine}".encode()).hexdigest()[:16]


def run_row(result: RunResult, trace_sha256: str, started_at: str | None = None) -> dict[str, Any]:
    cfg = result.config
    row: dict[str, Any] = {
        "run_id": make_run_id(trace_sha256, cfg.sha256, result.engine),
        "engine": result.engine,
        "trace": result.trace_path,
        "trace_sha256": trace_sha256,
        "config_sha256": cfg.sha256,
        "config_toml": cfg.to_toml(),
        "tool_version": __version__,
        "started_at": started_at or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    row.update({k: result.totals.get(k, 0) for k in COUNTERS + RUN_FIGURES})
    for k, v in result.extra.items():
        row.setdefault(k, v)
    return row


def _write_table(path: Path, new: pd.DataFrame, run_id: str) -> None:
    """Replace ``path`` with its old rows (other run ids) plus ``new``, atomically."""
    if path.exists():
        old = read_table(path)
        old = old[old["run_id"] != run_id]
        frame = pd.concat([old, new], ignore_index=True, sort=False) if len(old) else new
    else:
        frame = new
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({b"migrc_bench.results_version": str(RESULTS_VERSION).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def append_run(out_dir: str | Path, result: RunResult, trace_sha256: str) -> str:
    """Add one run to a results directory; returns its run_id."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: results path exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    row = run_row(result, trace_sha256)
    rid = row["run_id"]
    intervals = pd.DataFrame(result.intervals)
    intervals.insert(0, "run_id", rid)
    cpus = pd.DataFrame(result.cpus)
    cpus.insert(0, "run_id", rid)
    _write_table(out / INTERVALS, intervals, rid)
    _write_table(out / CPUS, cpus, rid)
    _write_table(out / RUNS, pd.DataFrame([row]), rid)
    return rid


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one results table; unknown columns are kept but never required."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such results file") from None
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path}: not a readable results file ({exc})") from None
    frame = table.to_pandas()
    if "run_id" not in frame.columns:
        raise UserError(f"{path}: not a migrc-bench results table (no run_id column)")
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    return frame


def read_runs(results_dir: str | Path) -> pd.DataFrame:
    d = Path(results_dir)
    if not d.exists():
        raise UserError(f"{d}: no such results directory")
    if d.is_file():
        return read_table(d)
    return read_table(d / RUNS)
