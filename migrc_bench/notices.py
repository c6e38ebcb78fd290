"""A run too short for the tiering policy to act, said once instead of reported as zeros.

On an unscaled machine (``replay.time_scale = 1``) the first NUMA scan comes a second after
the start (``numa_balancing_scan_delay_ms``), while a trace of a million accesses models a
few milliseconds: no page is scanned, promoted or demoted, and every engine shows the same
counters. Two cases are told apart from a run's counters and config, so a stored run gives
the same notice as a fresh one: the run ended before the first scan, or pages were scanned
but kswapd never demoted anything (no migration for an engine to batch or defer). A
steady-state start (``memory.initial_pte = "steady-state"``) is a window of a long run that
opens as a scan comes due (model/numa_scan.py), so only the second case applies to it.
"""

from __future__ import annotations

import math
from typing import Any

NS_PER_MS = 1e6


def _ms(ns: float) -> str:
    ms = ns / NS_PER_MS
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.3g} ms"


def _round_down(x: float) -> float:
    """The largest 1-2-5 step at most ``x`` (0.0034 -> 0.002)."""
    if x <= 0:
        return 0.0
    e = math.floor(math.log10(x))
    for m in (5, 2, 1):
        if m * 10.0 ** e <= x:
            return float(f"{m}e{e}")
    return float(f"1e{e}")


def short_run(config: dict[str, Any], counters: dict[str, Any]) -> str | None:
    """The notice for a run (its config as written, its counters), or None when tiering had time."""
    from .units import parse_time_ns

    def value(key: str, default: Any) -> Any:
        v = config.get(key)
        return default if v is None else v

    if not value("tiering.enabled", True) or int(value("tiering.numa_balancing", 2)) & 2 == 0:
        return None
    ts = float(value("replay.time_scale", 1.0))
    delay_ns = parse_time_ns(value("tiering.scan_delay", "1000ms"))
    runtime_ns = float(counters.get("runtime_s", 0.0)) * 1e9
    steady = value("memory.initial_pte", "writable-dirty") == "steady-state"
    first_scan = 0.0 if steady else delay_ns * ts
    if runtime_ns < first_scan:
        want = _round_down(runtime_ns / (10 * delay_ns))
        longer = math.ceil(10 * first_scan / runtime_ns) if runtime_ns > 0 else 0
        return (f"the run models {_ms(runtime_ns)}, shorter than the first NUMA scan at "
                f"{_ms(first_scan)} (tiering.scan_delay {_ms(delay_ns)} x replay.time_scale {ts:g}): "
                f"no page was scanned, promoted or demoted, so the engines cannot differ; set "
                f"replay.time_scale to {want:g} or less, or replay a trace ~{longer:,}x longer "
                f"(docs/modelling.md, 'time_scale')")
    demoted = int(counters.get("pgdemote_kswapd", 0)) + int(counters.get("pgdemote_direct", 0))
    if demoted == 0 and value("tiering.demotion_enabled", True):
        return (f"the run models {_ms(runtime_ns)}: NUMA scans marked "
                f"{int(counters.get('numa_pte_updates', 0)):,} pages and "
                f"{int(counters.get('pgpromote_success', 0)):,} were promoted, but kswapd never "
                f"demoted a page, so no engine had a flush to batch or defer; replay a longer "
                f"trace, lower replay.time_scale, or give less DRAM (memory.dram)")
    return None
