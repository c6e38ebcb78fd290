"""Helpers for benchmarks: run a callable in a fresh process and report time and peak RSS."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def in_subprocess(code: str, timeout: float = 3600) -> dict:
    """Run ``code`` (which must print one JSON object last) in a new interpreter.

    Peak RSS is then the benchmark's own, not the accumulated peak of earlier cases.
    The JSON gains ``peak_rss_mib`` from resource.getrusage of that process.
    """
    wrapper = textwrap.dedent(code) + textwrap.dedent("""
        import resource as _r, json as _j
        # ru_maxrss survives fork+exec on Linux: it would report the parent's peak if that
        # is higher. VmHWM belongs to this process's own address space.
        _kib = _r.getrusage(_r.RUSAGE_SELF).ru_maxrss
        try:
            with open("/proc/self/status") as _f:
                _kib = next(int(_l.split()[1]) for _l in _f if _l.startswith("VmHWM:"))
        except (OSError, StopIteration, ValueError):
            pass
        print(_j.dumps({"__peak_rss_mib": _kib / 1024}))
    """)
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    lines = [json.loads(x) for x in out.stdout.strip().splitlines() if x.startswith("{")]
    result = lines[-2]
    result["peak_rss_mib"] = round(lines[-1]["__peak_rss_mib"], 1)
    return result
