"""The forms an ``engine`` value takes, checked without loading anything (engines/loader.py
loads them): a built-in name, an installed engine's entry point name, or ``PATH.py:CLASS``.

Below config.py, which validates the ``engine`` key with it; the engines themselves sit above
the model, which config.py must not reach.
"""

from __future__ import annotations

import functools
from typing import Any

ENTRY_POINT_GROUP = "migrc_bench.engines"


def split_file_spec(value: str) -> tuple[str, str] | None:
    """(PATH, CLASS) of a file engine ``PATH.py:CLASS``; None for a name."""
    path, sep, cls = value.rpartition(":")
    if sep and path.endswith(".py"):
        return path, cls
    return None


@functools.lru_cache(maxsize=1)
def installed() -> dict[str, Any]:
    """Installed engines: entry point name -> importlib.metadata.EntryPoint."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def spec_problem(value: Any, builtins: tuple[str, ...]) -> str | None:
    """Why ``value`` cannot name an engine ("unknown" for a name nobody provides), or None.

    The config schema's check: the form only; whether a file exists and holds a good class
    is checked when the engine is loaded (``loader.resolve``), before any replay starts.
    """
    if not isinstance(value, str) or not value:
        return "unknown"
    parts = split_file_spec(value)
    if parts is not None:
        path, cls = parts
        if path == ".py" or not path:
            return "a file engine needs a file name before ':'"
        if not cls.isidentifier():
            return f"the class after ':' must be a Python name, got {cls!r}"
        return None
    if value.endswith(".py"):
        return "a file engine also names its class: PATH.py:CLASS"
    if value in builtins or value in installed():
        return None
    return "unknown"


def describe_forms(builtins: tuple[str, ...]) -> str:
    """The accepted forms, for error messages."""
    names = ", ".join(repr(n) for n in builtins)
    inst = ", ".join(repr(n) for n in sorted(installed()))
    return (f"one of {names}, an installed engine (entry point group '{ENTRY_POINT_GROUP}': "
            f"{inst or 'none installed'}) or a file engine PATH.py:CLASS")
