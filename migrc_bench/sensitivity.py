"""``python -m migrc_bench.sensitivity``: how far the reproduction's headline changes move when
each calibrated knob is halved or doubled (docs/reproduction.md, "Sensitivity").

Runs baseline and migrc on ``configs/xsbench-cxl16.toml`` with the knob as calibrated, x0.5
and x2 (one knob at a time, everything else as calibrated) and prints migrc's change against
baseline for remote flushes, iTLB misses, runtime and migrations. One process, one run at a
time; finished variants are kept in ``OUT/sensitivity.json`` so an interrupted table resumes
where it stopped (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .atomic import write_text_atomic
from .config import CONFIG_DIR, load_config
from .model.machine import Costs
from .runner import default_trace, run_trace

HEADLINE = ("nr_tlb_remote_flush", "itlb_misses", "runtime_s", "pgmigrate_success")
# the knobs docs/reproduction.md lists as calibrated, plus the two the scanner and the
# watermark scaling now lean on
KNOBS = ("cost.ipi_send", "cost.ipi_wait", "cost.ipi_receive", "cost.vmexit",
         "cost.nested_walk_factor", "cost.cxl_latency", "cost.migrate_page", "cost.lru_scan",
         "cost.pte_update", "tlb.kernel_text_pages", "tlb.kernel_text_pool",
         "tlb.itlb_flush_events_per_flush", "memory.watermark_scale_factor")
FACTORS = (0.5, 2.0)


def calibrated(cfg, knob: str) -> float:
    """The knob's effective value (cost knobs come from the preset unless overridden)."""
    section, name = knob.split(".")
    if section == "cost":
        return float(getattr(Costs.from_config(cfg), name))
    return float(cfg.get(knob))


def scaled(cfg, knob: str, factor: float):
    value = calibrated(cfg, knob) * factor
    if knob.startswith(("tlb.", "memory.")):
        return max(1, int(round(value)))
    return value


def delta(runs: dict, counter: str) -> float:
    base = runs["baseline"][counter]
    return (runs["migrc"][counter] - base) / base * 100 if base else float("nan")


def run_variant(cfg, trace, overrides: dict) -> dict:
    runs = {}
    for engine in ("baseline", "migrc"):
        result, _ = run_trace(cfg.with_overrides({**overrides, "engine": engine}), trace)
        runs[engine] = {c: result.totals[c] for c in HEADLINE}
    return {c: delta(runs, c) for c in HEADLINE}


def table(results: dict) -> str:
    cols = ["remote flushes", "iTLB misses", "runtime", "migrations"]
    lines = ["| knob | value | " + " | ".join(f"Δ% {c}" for c in cols) + " |",
             "|---|---:|" + "---:|" * len(cols)]
    base = results["calibrated"]
    lines.append("| (as calibrated) | | " + " | ".join(f"{base['delta'][c]:+.1f}" for c in HEADLINE) + " |")
    for key, rec in results.items():
        if key == "calibrated":
            continue
        cells = [f"{rec['delta'][c]:+.1f} ({rec['delta'][c] - base['delta'][c]:+.1f})" for c in HEADLINE]
        lines.append(f"| `{rec['knob']}` ×{rec['factor']:g} | {rec['value']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/sensitivity", help="where sensitivity.json goes")
    ap.add_argument("--knob", action="append", help="only this knob (repeatable)")
    ap.add_argument("--fresh", action="store_true", help="ignore results kept from an earlier run")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    cfg = load_config(CONFIG_DIR / "xsbench-cxl16.toml")
    trace = default_trace(cfg, quiet=args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "sensitivity.json"
    results = {} if args.fresh or not store.exists() else json.loads(store.read_text())
    todo = [("calibrated", None, 1.0)] + [(f"{k}x{f:g}", k, f) for k in (args.knob or KNOBS) for f in FACTORS]
    for key, knob, factor in todo:
        if key in results:
            continue
        overrides = {} if knob is None else {knob: scaled(cfg, knob, factor)}
        if not args.quiet:
            print(f"{key} {overrides} ...", file=sys.stderr, flush=True)
        rec = {"knob": knob, "factor": factor, "delta": run_variant(cfg, trace, overrides)}
        if knob is not None:
            rec["value"] = overrides[knob]
        results[key] = rec
        write_text_atomic(store, json.dumps(results, indent=1, sort_keys=True))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
