"""A sweep's summary: one counter against one swept config key, one column (line) per engine.

``summarize(results_dir, key, counter)`` reads runs.parquet, takes each run's value of
``key`` from its ``config_toml`` column and returns a table: index = the key's values,
columns = engines, cells = the counter. ``plot_summary(df, key, counter, out_png)`` draws it
(and each engine's change against the first engine). ``deltas(df)`` gives those changes.
Meant to be reused by ``compare`` and ``plot``; ``migrc-bench sweep summary`` is the CLI.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import atomic_path
from .config import ENGINES, SCHEMA_BY_PATH, parse_set
from .errors import UserError
from .results import read_runs

# Keys that identify a run rather than configure it: never reported as "differing".
_IGNORED = ("engine",)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _flat(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    out: dict[str, Any] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(doc, "")
    return out


def _matches(value: Any, wanted: Any) -> bool:
    if value == wanted:
        return True
    if isinstance(value, (int, float)) and isinstance(wanted, (int, float)) \
            and not isinstance(value, bool) and not isinstance(wanted, bool):
        return math.isclose(float(value), float(wanted), rel_tol=1e-12)
    return str(value) == str(wanted)


def parse_where(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``--where key=value`` filters (values read as TOML, as --set)."""
    where = {}
    for item in items:
        key, value = parse_set(item)
        if key not in SCHEMA_BY_PATH and key != "trace":
            raise UserError(f"--where {item}: unknown config key '{key}'")
        where[key] = value
    return where


def summarize(results_dir: str | Path, key: str, counter: str,
              where: dict[str, Any] | None = None, engines: list[str] | None = None,
              latest: bool = False) -> pd.DataFrame:
    """Counter ``counter`` of the runs in ``results_dir`` against config key ``key``.

    Index: the key's values (numbers ascending; otherwise in order of first appearance),
    named ``key``. Columns: engines (``engines`` in that order, else in order of first
    appearance). A missing (key value, engine) pair is NaN. ``where`` keeps only runs whose
    config has those values (``"trace"`` matches the trace's file name). Several runs in one
    cell (runs that differ in another key) are an error naming the keys that differ, unless
    ``latest``: then the last-appended run of the cell counts.
    """
    if key not in SCHEMA_BY_PATH:
        close = difflib.get_close_matches(key, list(SCHEMA_BY_PATH), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UserError(f"--key {key}: unknown config key{hint}")
    if key == "engine":
        raise UserError("--key engine: engines are the columns; pick a config key that varies")
    runs = read_runs(results_dir)
    if "engine" not in runs.columns or "config_toml" not in runs.columns:
        raise UserError(f"{results_dir}: runs.parquet has no engine/config_toml column")
    if counter not in runs.columns or counter in ("run_id", "engine", "config_toml"):
        numeric = [c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c])]
        close = difflib.get_close_matches(counter, numeric, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"--counter {counter}: no such counter in {results_dir}{hint}")
    if not pd.api.types.is_numeric_dtype(runs[counter]):
        raise UserError(f"--counter {counter}: not a numeric column")
    configs = [_flat(t) for t in runs["config_toml"]]
    for k, wanted in (where or {}).items():
        keep = []
        for i, cfg in enumerate(configs):
            value = Path(str(runs["trace"].iloc[i])).name if k == "trace" else cfg.get(k)
            keep.append(value is not None and _matches(value, wanted))
        runs = runs[keep]
        configs = [c for c, ok in zip(configs, keep) if ok]
    if engines:
        keep = runs["engine"].isin(engines).tolist()
        runs = runs[keep]
        configs = [c for c, ok in zip(configs, keep) if ok]
    has_key = [key in c for c in configs]
    runs = runs[has_key]
    configs = [c for c, ok in zip(configs, has_key) if ok]
    if not len(runs):
        what = f" matching {_where_text(where)}" if where else ""
        raise UserError(f"{results_dir}: no run{what} with config key '{key}'"
                        + (f" and engine {', '.join(engines)}" if engines else ""))
    values = [c[key] for c in configs]
    frame = pd.DataFrame({"value": values, "engine": runs["engine"].astype(str).tolist(),
                          "counter": runs[counter].tolist(), "trace": runs["trace"].tolist()})
    if latest:
        last = ~frame.duplicated(["value", "engine"], keep="last")
        frame = frame[last.to_numpy()].reset_index(drop=True)
        configs = [c for c, ok in zip(configs, last) if ok]
    _check_cells(frame, configs, key, results_dir)
    order_engines = engines or _engine_order(frame["engine"])
    order_values = list(dict.fromkeys(frame["value"]))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in order_values):
        order_values = sorted(order_values)
    table = frame.pivot(index="value", columns="engine", values="counter")
    table = table.reindex(index=order_values,
                          columns=[e for e in order_engines if e in set(frame["engine"])])
    table.index.name = key
    table.columns.name = "engine"
    if counter in runs.columns and pd.api.types.is_integer_dtype(runs[counter]) \
            and not table.isna().any().any():
        table = table.astype("int64")
    table.attrs.update({"key": key, "counter": counter, "results": str(results_dir),
                        "where": dict(where or {})})
    return table


def _engine_order(names) -> list[str]:
    """baseline first (the usual reference), then the known engines in their usual order."""
    seen = list(dict.fromkeys(names))
    known = ["baseline"] + [e for e in ENGINES if e != "baseline"]
    return [e for e in known if e in seen] + [e for e in seen if e not in known]


def _where_text(where: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (where or {}).items())


def _check_cells(frame: pd.DataFrame, configs: list[dict], key: str, results_dir) -> None:
    groups = frame.groupby(["value", "engine"], sort=False).indices
    for (value, engine), idx in groups.items():
        if len(idx) < 2:
            continue
        cfgs = [configs[i] for i in idx]
        keys = sorted({k for c in cfgs for k in c}
                      - {key, *_IGNORED})
        differ = [k for k in keys if len({repr(c.get(k)) for c in cfgs}) > 1]
        if len({str(frame["trace"].iloc[i]) for i in idx}) > 1:
            differ = ["trace"] + differ
        detail = (f"they differ in {', '.join(differ[:4])}{' …' if len(differ) > 4 else ''}; "
                  f"pick one with --where {differ[0]}=VALUE, or --latest") if differ else \
            "they have the same config (runs of another tool version?): use --latest"
        raise UserError(f"{results_dir}: {len(idx)} runs of engine {engine} at {key}={value}: "
                        f"{detail}")


def deltas(df: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Each engine's change against ``reference`` (default: the first column), in percent."""
    if df.shape[1] == 0:
        return df.copy()
    ref = reference or df.columns[0]
    base = df[ref].astype(float)
    out = pd.DataFrame(index=df.index)
    for engine in df.columns:
        if engine == ref:
            continue
        cur = df[engine].astype(float)
        out[engine] = (cur - base) / base.where(base != 0) * 100.0
    out.attrs.update(df.attrs, reference=ref)
    return out


def summary_rows(df: pd.DataFrame, reference: str | None = None) -> list[dict[str, Any]]:
    """Rows for the CLI: the key's value, the counter per engine, then Δ% per other engine."""
    key = df.index.name or "value"
    d = deltas(df, reference)
    ref = d.attrs.get("reference")
    rows = []
    for value in df.index:
        row: dict[str, Any] = {key: value}
        for engine in df.columns:
            row[engine] = _scalar(df.at[value, engine])
        for engine in d.columns:
            v = d.at[value, engine]
            row[f"{engine} Δ% vs {ref}"] = None if pd.isna(v) else round(float(v), 2)
        rows.append(row)
    return rows


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        v = v.item()
    return v


# ---- plot ------------------------------------------------------------------------------------
_KEY_UNITS = {"machine.ncpu": "CPUs", "replay.threads": "threads", "replay.time_scale": "×",
              "tlb.kernel_text_pages": "pages", "tiering.reclaim_chunk": "folios",
              "tiering.migrate_batch": "pages", "tiering.promote_rate_limit_MBps": "MB/s",
              "tiering.scan_size_mb": "MB"}


def counter_unit(counter: str) -> str:
    if counter == "accesses_per_s":
        return "accesses/s"
    if counter.endswith("_s"):
        return "s (modelled)" if counter != "wall_s" else "s (wall)"
    if counter.endswith("_received"):
        return "IPIs"
    if "flush" in counter:
        return "flushes"
    if "miss" in counter:
        return "misses"
    if counter.startswith("pg") or "pages" in counter:
        return "pages"
    if "fault" in counter:
        return "faults"
    return "count"


def key_label(key: str) -> str:
    unit = _KEY_UNITS.get(key)
    if unit is None and key in SCHEMA_BY_PATH:
        unit = {"size_or_fraction": "bytes or % of footprint", "size": "bytes",
                "time": "as written"}.get(SCHEMA_BY_PATH[key].kind)
    return f"{key} ({unit})" if unit else key


def plot_summary(df: pd.DataFrame, key: str, counter: str, out_png: str | Path,
                 title: str | None = None, reference: str | None = None, dpi: int = 110) -> Path:
    """Write a PNG: ``counter`` against ``key``, one line per engine; below, each engine's
    change in percent against ``reference`` (default: the first engine) when there are two
    or more engines. Written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = Path(out_png)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        raise UserError(f"{out}: the plot is written as PNG, SVG or PDF; name it FILE.png")
    if df.empty:
        raise UserError("nothing to plot: the summary is empty")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in df.index)
    xs = list(df.index) if numeric else list(range(len(df.index)))
    d = deltas(df, reference)
    two = d.shape[1] > 0
    fig, axes = plt.subplots(2 if two else 1, 1, figsize=(7.5, 7.0 if two else 4.5),
                             sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]} if two else None)
    ax = axes[0][0]
    colours = {e: PALETTE[i % len(PALETTE)] for i, e in enumerate(df.columns)}
    for engine in df.columns:
        ys = df[engine].astype(float)
        ax.plot(xs, ys, marker="o", color=colours[engine], label=engine)
        for x, y in zip(xs, ys):
            if not math.isnan(y):
                ax.annotate(_fmt(y), (x, y), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=8, color=colours[engine])
    ax.margins(x=0.08, y=0.12)
    ax.set_ylabel(f"{counter} ({counter_unit(counter)})")
    ax.set_ylim(bottom=0 if (df.min(numeric_only=True).min() >= 0) else None)
    ax.grid(True, alpha=0.3)
    ax.legend(title="engine")
    where = df.attrs.get("where") or {}
    sub = f" ({_where_text(where)})" if where else ""
    ax.set_title(title or f"{counter} against {key}{sub}")
    if two:
        bx = axes[1][0]
        ref = d.attrs.get("reference")
        for engine in d.columns:
            ys = d[engine].astype(float)
            bx.plot(xs, ys, marker="s", color=colours[engine], label=f"{engine} vs {ref}")
            for x, y in zip(xs, ys):
                if not math.isnan(y):
                    bx.annotate(f"{y:+.1f} %", (x, y), textcoords="offset points",
                                xytext=(0, -13 if y < 0 else 6), ha="center", fontsize=8,
                                color=colours[engine])
        bx.margins(x=0.08)
        bx.axhline(0, color="#444", linewidth=0.8)
        bx.set_ylabel(f"change vs {ref} (%)")
        bx.grid(True, alpha=0.3)
        bx.legend()
        lo, hi = bx.get_ylim()
        bx.set_ylim(min(lo, 0) - 0.08 * (hi - lo), max(hi, 0) + 0.08 * (hi - lo))
    last = axes[-1][0]
    last.set_xlabel(key_label(key))
    last.set_xticks(xs)
    last.set_xticklabels([str(v) for v in df.index])
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    plt.close(fig)
    return out


def _fmt(y: float) -> str:
    if abs(y) >= 1e6:
        return f"{y / 1e6:.3g} M"
    if abs(y) >= 1e4:
        return f"{y / 1e3:.3g} k"
    if float(y).is_integer():
        return f"{int(y)}"
    return f"{y:.3g}"
