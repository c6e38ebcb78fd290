"""Parse values with units: sizes, percentages, durations, frequencies, bandwidths.

Configs are written by people; "1GiB", "250ns", "2.1GHz" read better than raw integers.
"""

from __future__ import annotations

import re

_NUM = r"([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)"

SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
TIME_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "min": 60e9}
FREQ_UNITS = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}


def _split(text: str) -> tuple[float, str]:
    m = re.fullmatch(_NUM + r"\s*([A-Za-zµ/%]*)", text.strip())
    if not m:
        raise ValueError(f"not a number with a unit: {text!r}")
    return float(m.group(1)), m.group(2)


def parse_size(value: int | float | str) -> int:
    """Bytes from 4096, "64KiB", "1GiB", "1.5GB"."""
    if isinstance(value, bool):
        raise ValueError("a size, not a boolean")
    if isinstance(value, (int, float)):
        return int(value)
    num, unit = _split(value)
    key = unit.lower()
    if key not in SIZE_UNITS:
        raise ValueError(f"unknown size unit {unit!r} (use B, KiB, MiB, GiB, KB, MB, GB)")
    return int(round(num * SIZE_UNITS[key]))


def parse_size_or_fraction(value: int | float | str) -> int | float:
    """A size in bytes (int) or, for "18%", a fraction of the trace footprint (float in (0, ∞))."""
    if isinstance(value, str) and value.strip().endswith("%"):
        num, _ = _split(value.strip()[:-1])
        return num / 100.0
    return parse_size(value)


def parse_time_ns(value: int | float | str) -> float:
    """Nanoseconds from "250ns", "1.5us", "1000ms", "2s"; a bare number is nanoseconds."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    num, unit = _split(value)
    if unit == "":
        return num
    if unit.lower() not in TIME_UNITS and unit not in TIME_UNITS:
        raise ValueError(f"unknown time unit {unit!r} (use ns, us, ms, s)")
    return num * TIME_UNITS.get(unit, TIME_UNITS.get(unit.lower(), 1.0))


def parse_freq_hz(value: int | float | str) -> float:
    """Hertz from "2.1GHz", "800MHz"; a bare number is Hz."""
    if isinstance(value, bool):
        raise ValueError("a frequency, not a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    num, unit = _split(value)
    if unit == "":
        return num
    if unit.lower() not in FREQ_UNITS:
        raise ValueError(f"unknown frequency unit {unit!r} (use Hz, MHz, GHz)")
    return num * FREQ_UNITS[unit.lower()]


def parse_bandwidth(value: int | float | str) -> float:
    """Bytes per second from "10GB/s", "12GiB/s"; a bare number is bytes per second."""
    if isinstance(value, bool):
        raise ValueError("a bandwidth, not a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if not text.lower().endswith("/s"):
        raise ValueError(f"a bandwidth ends in /s, e.g. '10GB/s': {value!r}")
    return float(parse_size(text[:-2]))


def format_size(nbytes: float) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(nbytes) >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{int(nbytes)} B"
