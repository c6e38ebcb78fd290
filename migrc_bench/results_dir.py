"""Whether a results directory can take a run, checked before the replay, and reading one
results table: pandas is imported only when a table is read (the check reads with pyarrow
alone), so that ``migrc-bench run --out`` reaches its first quantum without loading it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UserError

if TYPE_CHECKING:
    import pandas as pd

RUNS, INTERVALS, CPUS = "runs.parquet", "intervals.parquet", "cpus.parquet"


def check_results_dir(out_dir: str | Path) -> None:
    """Fail now, not after a replay, when ``out_dir`` cannot take a run: a file in the way,
    no write permission, a read-only file system, or a runs.parquet that is not ours.

    Nothing is created: an interrupted or failed replay leaves no empty directory behind.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: results path exists and is not a directory")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{out}: cannot create the results directory ({probe} is not a directory)")
    try:  # os.access says yes to root on a read-only mount: try a real file
        fd, name = tempfile.mkstemp(prefix=".migrc-bench-probe.", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        where = "results directory" if probe == out else f"results directory (in {probe})"
        raise UserError(f"{out}: cannot write the {where}: {exc.strerror}") from None
    for name in (RUNS, CPUS, INTERVALS):
        path = out / name
        if path.exists():
            try:  # runs.parquet is read whole (it is appended to); pyarrow only, no pandas
                schema = pq.ParquetFile(path).read().schema if name == RUNS \
                    else pq.read_schema(path)
                names = schema.names
            except (pa.ArrowException, OSError) as exc:
                raise UserError(f"{path}: not a readable results file ({exc}); choose "
                                f"another --out") from None
            if "run_id" not in names:
                raise UserError(f"{path}: not a migrc-bench results table (no run_id "
                                f"column); choose another --out")
            if name == RUNS and "engine" not in names:
                raise UserError(f"{path}: not a migrc-bench runs table (no engine column); "
                                f"choose another --out")


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one results table; unknown columns are kept but never required."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a results table")
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
