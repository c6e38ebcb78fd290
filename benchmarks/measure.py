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
        print(_j.dumps({"__peak_rss_mib": _r.getrusage(_r.RUSAGE_SELF).ru_maxrss / 1024}))
    """)
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    lines = [json.loads(x) for x in out.stdout.strip().splitlines() if x.startswith("{")]
    result = lines[-2]
    result["peak_rss_mib"] = round(lines[-1]["__peak_rss_mib"], 1)
    return result
