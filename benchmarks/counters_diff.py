"""Compare two results directories counter for counter: every column of runs, cpus and
intervals must be identical per engine (floats bit for bit), except what a run's wall clock,
date or config text decide (wall_s, accesses_per_s, started_at, run ids, config sha/text).

For changes that must not move the model (the speed work of issue 15): record results on the
untouched commit, replay the same configs after the change, then

    .venv/bin/python benchmarks/counters_diff.py OLD_RESULTS_DIR NEW_RESULTS_DIR [...]

(pairs of directories). Exit status 1 on any difference, with the first few listed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

IGNORED = {"run_id", "config_sha256", "config_toml", "started_at", "wall_s", "accesses_per_s",
           "trace", "tool_version"}
KEYS = {"runs.parquet": ("engine",), "cpus.parquet": ("engine", "cpu"),
        "intervals.parquet": ("engine", "interval")}


def _table(d: Path, name: str, engines: pd.Series) -> pd.DataFrame:
    t = pd.read_parquet(d / name)
    if "engine" not in t.columns:
        t = t.assign(engine=t["run_id"].map(engines))
    return t.set_index(list(KEYS[name])).sort_index()


def diff_dirs(old: Path, new: Path, limit: int = 20) -> list[str]:
    """Differences between two results directories, as readable lines (empty: identical)."""
    out: list[str] = []
    runs = {d: pd.read_parquet(d / "runs.parquet") for d in (old, new)}
    for d, r in runs.items():
        if r["engine"].duplicated().any():
            out.append(f"{d}: several runs of one engine; compare directories with one run each")
            return out
    for name in KEYS:
        a = _table(old, name, runs[old].set_index("run_id")["engine"])
        b = _table(new, name, runs[new].set_index("run_id")["engine"])
        if not a.index.equals(b.index):
            out.append(f"{name}: different rows ({len(a)} vs {len(b)})")
            continue
        for col in sorted((set(a.columns) | set(b.columns)) - IGNORED):
            if col not in a.columns or col not in b.columns:
                out.append(f"{name}: column {col} only in {'new' if col in b.columns else 'old'}")
                continue
            x, y = a[col].to_numpy(), b[col].to_numpy()
            same = (x == y) | (pd.isna(x) & pd.isna(y)) if x.dtype.kind in "fc" or y.dtype.kind in "fc" \
                else np.array([str(p) == str(q) for p, q in zip(x, y)])
            for i in np.flatnonzero(~np.asarray(same, bool))[:3]:
                out.append(f"{name} {a.index[i]} {col}: {x[i]!r} -> {y[i]!r}")
            if len(out) >= limit:
                return out
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    bad = 0
    for old, new in zip(argv[::2], argv[1::2]):
        lines = diff_dirs(Path(old), Path(new))
        print(f"{old} vs {new}: {'identical' if not lines else 'DIFFERENT'}")
        for line in lines:
            print("  " + line)
        bad += bool(lines)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
