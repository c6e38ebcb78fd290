"""Refuse a trace nobody meant: estimate records and bytes from a generator's parameters first.

In XSBench's history mode ``-l`` is lookups *per particle*, so ``-s large -l 200000`` asks for
10^11 lookups: hours of writing and terabytes. Every generator states its estimate before it
writes anything; above :data:`MAX_RECORDS` records, or above the free space where the trace
goes, the command stops (exit 2) with the estimate and the flags the user most likely meant,
unless forced.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

MAX_RECORDS = 2 * 10**9
# Bytes per record on disk as TraceWriter writes them (plain encoding, lz4): measured 1.8-2.5
# on XSBench traces (small/large, event/history); the larger figure, so the estimate errs high.
BYTES_PER_RECORD = 2.5
# What the hints aim at: a trace that replays in about a minute.
HINT_RECORDS = 10**8


@dataclass(frozen=True)
class SizeEstimate:
    what: str            # e.g. "17,000,000 lookups (500,000 particles x 34)"
    records: float
    hint: str = ""       # the flags the user most likely meant

    @property
    def bytes(self) -> float:
        return self.records * BYTES_PER_RECORD

    def describe(self) -> str:
        return f"{self.what}: about {self.records:.3g} records, ~{human_bytes(self.bytes)}"


def shorter(records: float, flag: str, value: int) -> str:
    """The hint for a run whose records grow with ``flag``'s ``value``: the value for about
    :data:`HINT_RECORDS` records."""
    scale = max(1, -(-int(records) // HINT_RECORDS))
    return f"for about 10^8 records give {flag} {max(1, value // scale)}"


def estimate(what: str, records: float, flag: str, value: int) -> SizeEstimate:
    """The estimate of a run whose records grow with ``flag``'s ``value``, with its hint."""
    return SizeEstimate(what, records, shorter(records, flag, value))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def free_bytes(out: str | Path) -> int | None:
    """Free space where ``out`` will be written (its nearest existing parent), None if unknown."""
    p = Path(out).expanduser().absolute().parent
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def check_size(est: SizeEstimate, out: str | Path, force: bool, override: str = "--force") -> None:
    """Raise a one-line UserError when ``est`` is beyond what anyone means, unless ``force``."""
    if force:
        return
    problem = hint = ""
    if est.records > MAX_RECORDS:
        problem = f"more than {MAX_RECORDS:.0e} records".replace("e+0", "e")
        hint = est.hint
    else:
        free = free_bytes(out)
        if free is not None and est.bytes > free:
            problem = f"more than the {human_bytes(free)} free for {out}"
            hint = "write it where there is room, or make it shorter"
    if problem:
        hint = f"; {hint}" if hint else ""
        raise UserError(f"refusing to write {out}: {est.describe()}, {problem}{hint} "
                        f"({override} writes it anyway)")
