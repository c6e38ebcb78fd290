"""The results directory (model.md §8): runs, intervals and cpus tables, appended run by run
(results_write.py, which this module re-exports), read here as pandas frames and StoredRuns.

Readers ignore unknown columns and tolerate missing ones (older or newer writers).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .cache import file_sha256  # noqa: F401 (re-exported: runner, compare, sweep)
from .errors import UserError
from .model.counters import COUNTERS, RUN_FIGURES
from .results_dir import CPUS, INTERVALS, RUNS, check_results_dir, read_table  # noqa: F401
# the writer (pyarrow only), re-exported for the modules that read and write
from .results_write import (RESULTS_VERSION, RUN_COLUMNS, RUN_KEYS, append_rows,  # noqa: F401
                            append_run, locked, make_results_dir, make_run_id, merged, rows_table,
                            run_row)

# Run context written after the counters (RunResult.extra): numbers, but not counters.
CONTEXT_COLUMNS = ("threads", "dram_pages", "cxl_pages", "footprint_bytes", "time_scale",
                   "trace_rows", "itlb_entries", "itlb_ways", "dtlb_entries", "dtlb_ways",
                   "stlb_entries", "stlb_ways")


def runs_path(path: str | Path) -> Path:
    """runs.parquet of a results directory, or the file itself."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such results directory or file")
    return p / RUNS if p.is_dir() else p


def read_runs(results_dir: str | Path) -> pd.DataFrame:
    """The runs table of a results directory (or a runs.parquet file)."""
    return read_table(runs_path(results_dir))


def read_intervals(results: str | Path, run_ids: list[str] | None = None) -> pd.DataFrame:
    """intervals.parquet beside ``results`` (a directory or its runs.parquet).

    Rows of runs that are not in runs.parquet (an interrupted append) are dropped.
    """
    rp = runs_path(results)
    path = rp.parent / INTERVALS
    if not path.exists():
        raise UserError(f"{path}: no such results file (plots need intervals.parquet)")
    frame = read_table(path)
    known = set(read_table(rp, ["run_id"])["run_id"])
    keep = known if run_ids is None else known & set(run_ids)
    frame = frame[frame["run_id"].isin(keep)]
    if "interval" in frame.columns:
        frame = frame.sort_values(["run_id", "interval"], kind="stable")
    return frame.reset_index(drop=True)


# ---- stored runs, as compare/check/plot see them ------------------------------------------
@dataclass
class StoredRun:
    """One row of runs.parquet (or of a baseline file): identity, config and counters."""

    run_id: str
    engine: str
    trace: str = ""
    trace_sha256: str = ""
    config_sha256: str = ""
    config_toml: str = ""
    tool_version: str = ""
    started_at: str = ""
    engine_file: str = ""    # the engine's source file ("" in results older than the column)
    engine_sha256: str = ""  # sha256 of that file
    source: str = ""  # where it was read from
    counters: dict[str, float | int] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def config_values(self) -> dict[str, Any]:
        """The run's effective config as a flat {section.key: value} (empty when unknown)."""
        return flat_config(self.config_toml)


def flat_config(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    flat: dict[str, Any] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(doc, "")
    return flat


# Config keys that say where a run's input was, not what it was (the trace is compared by
# its sha256): a baseline recorded with the trace elsewhere still compares.
LOCATION_KEYS = ("trace.path",)


def config_differences(a: StoredRun, b: StoredRun,
                       ignore: tuple[str, ...] = ("engine",) + LOCATION_KEYS) -> list[str]:
    """Config keys whose values differ between two runs (``ignore`` left out)."""
    ca, cb = a.config_values(), b.config_values()
    keys = sorted(set(ca) | set(cb))
    return [k for k in keys if k not in ignore and ca.get(k) != cb.get(k)]


def _int_column(frame: pd.DataFrame, name: str) -> bool:
    """Whether a numeric column holds counts (ints), even if NaNs made pandas widen it."""
    col = frame[name]
    if pd.api.types.is_integer_dtype(col):
        return True
    if name in COUNTERS:
        return True
    if name.endswith("_s") or name in RUN_FIGURES or name == "time_scale":
        return False
    vals = col.dropna()
    return len(vals) > 0 and bool((vals == vals.round()).all())


def stored_runs_from_frame(frame: pd.DataFrame, source: str = "") -> list[StoredRun]:
    """Every row as a StoredRun: known key columns, numeric columns as counters or context.

    Columns this version does not know are kept (as counters when numeric); a value missing
    in a row (a column its writer did not have) is left out of that run's counters.
    """
    numeric = [c for c in frame.columns
               if c not in RUN_KEYS and pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    ints = {c for c in numeric if _int_column(frame, c)}
    runs = []
    for rec in frame.to_dict("records"):
        keys = {k: _text(rec.get(k)) for k in RUN_KEYS if k != "run_id"}
        counters: dict[str, float | int] = {}
        context: dict[str, Any] = {}
        for c in numeric:
            v = rec.get(c)
            if v is None or isinstance(v, float) and math.isnan(v):
                continue  # a column its writer did not have
            if isinstance(v, float) and math.isinf(v):
                raise UserError(f"{source}: run {rec['run_id']}: {c} is {v}, not a number a "
                                f"run can have")
            v = int(v) if c in ints else float(v)
            (context if c in CONTEXT_COLUMNS else counters)[c] = v
        runs.append(StoredRun(run_id=str(rec["run_id"]), source=source, counters=counters,
                              context=context, **keys))
    return runs


def _text(v: Any) -> str:
    if v is None or isinstance(v, float) and math.isnan(v):
        return ""
    return str(v)


def read_stored_runs(path: str | Path) -> list[StoredRun]:
    """The runs of a results directory or runs.parquet file, in append order."""
    rp = runs_path(path)
    frame = read_table(rp)
    if "engine" not in frame.columns:
        raise UserError(f"{rp}: not a migrc-bench runs table (no engine column)")
    return stored_runs_from_frame(frame, str(path))


# Default column order when no engine list is given: the v6.7 reference first.
ENGINE_ORDER = ("baseline", "migrc", "luf", "nobatch", "migrc-unsafe")


def latest_per_engine(runs: list[StoredRun], engines: list[str] | None = None) -> list[StoredRun]:
    """The last-appended run of each engine, in the order of ``engines`` when given, else
    ``ENGINE_ORDER`` and then other engines in the order they were stored."""
    last: dict[str, StoredRun] = {}
    for r in runs:
        last[r.engine] = r
    if engines is None:
        rank = {e: i for i, e in enumerate(ENGINE_ORDER)}
        order = sorted(last, key=lambda e: (rank.get(e, len(rank)), list(last).index(e)))
        return [last[e] for e in order]
    return [last[e] for e in engines if e in last]
