"""Stored runs as check and compare read them: results directories, runs.parquet files and the
baseline files that ``check --write-baseline`` records (JSON; docs/results.md)."""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

from . import __version__
from .atomic import write_text_atomic
from .errors import UserError
from .results import StoredRun, read_stored_runs

BASELINE_FORMAT = "migrc-bench-baseline"
BASELINE_VERSION = 1


def load_runs(path: str | Path) -> list[StoredRun]:
    """Runs from a results directory, a runs.parquet file or a baseline file."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such results directory or baseline file")
    if p.is_file() and _looks_like_json(p):
        return read_baseline(p)
    return read_stored_runs(p)


def _looks_like_json(p: Path) -> bool:
    if p.suffix.lower() == ".json":
        return True
    try:
        with open(p, "rb") as fh:
            return fh.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


def read_baseline(path: str | Path) -> list[StoredRun]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as exc:
        raise UserError(f"{p}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{p}: not a baseline file (not JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise UserError(f"{p}: not a migrc-bench baseline file (no \"format\": "
                        f"\"{BASELINE_FORMAT}\"); write one with check --write-baseline")
    version = doc.get("version")
    if not isinstance(version, int) or version > BASELINE_VERSION:
        raise UserError(f"{p}: baseline version {version!r} is not supported (this migrc-bench "
                        f"reads version {BASELINE_VERSION})")
    runs_doc = doc.get("runs")
    if not isinstance(runs_doc, list):
        raise UserError(f"{p}: baseline file has no \"runs\" list")
    runs = []
    for i, r in enumerate(runs_doc):
        if not isinstance(r, dict) or not isinstance(r.get("engine"), str) \
                or not isinstance(r.get("counters"), dict):
            raise UserError(f"{p}: runs[{i}] needs \"engine\" (a string) and \"counters\" (an object)")
        counters = {}
        for k, v in r["counters"].items():
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise UserError(f"{p}: runs[{i}].counters.{k}: expected a number, got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):  # json reads NaN and Infinity
                raise UserError(f"{p}: runs[{i}].counters.{k}: expected a finite number, "
                                f"got {v!r}")
            counters[k] = v
        runs.append(StoredRun(
            run_id=str(r.get("run_id", "")), engine=r["engine"], trace=str(r.get("trace", "")),
            trace_sha256=str(r.get("trace_sha256", "")), config_sha256=str(r.get("config_sha256", "")),
            config_toml=str(r.get("config_toml", "")), tool_version=str(r.get("tool_version", "")),
            started_at=str(r.get("started_at", "")), engine_file=str(r.get("engine_file", "")),
            engine_sha256=str(r.get("engine_sha256", "")), source=str(p), counters=counters,
            context=r.get("context", {}) if isinstance(r.get("context"), dict) else {}))
    return runs


def baseline_document(runs: list[StoredRun], source: str) -> dict[str, Any]:
    return {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "tool_version": __version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "runs": [{
            "engine": r.engine, "run_id": r.run_id, "trace": _portable(r.trace),
            "trace_sha256": r.trace_sha256, "config_sha256": r.config_sha256,
            "tool_version": r.tool_version, "started_at": r.started_at,
            "engine_file": _portable(r.engine_file), "engine_sha256": r.engine_sha256,
            "context": r.context, "counters": r.counters, "config_toml": r.config_toml,
        } for r in runs],
    }


def _portable(path: str) -> str:
    """A trace or engine path inside the working directory as a relative path (baselines get
    committed)."""
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            return path
    return path


def write_baseline(path: str | Path, runs: list[StoredRun], source: str) -> None:
    """Record ``runs`` (their counters, hashes and config) as a baseline file, atomically."""
    if not runs:
        raise UserError(f"{source}: no runs to write as a baseline")
    text = json.dumps(baseline_document(runs, source), indent=2, allow_nan=False) + "\n"
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise UserError(f"{path}: cannot write the baseline ({exc.strerror})") from None


