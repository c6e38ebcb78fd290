"""Migration engines: small plug-ins over the shared replay core (model.md §4.5).

This package is also the public interface for engines written outside it (docs/engines.md):
``from migrc_bench.engines import Engine, Unmapped, F_HELD, ...`` -- the names in ``__all__``.
They are imported on first use, so reading a config does not load the model.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..config import Config

# The public engine interface: name -> (module, attribute).
_PUBLIC = {
    "Engine": ("migrc_bench.engines.base", "Engine"),
    "Unmapped": ("migrc_bench.engines.base", "Unmapped"),
    "UnmapBatch": ("migrc_bench.engines.base", "UnmapBatch"),
    "MR_DEMOTION": ("migrc_bench.engines.base", "MR_DEMOTION"),
    "MR_NUMA_MISPLACED": ("migrc_bench.engines.base", "MR_NUMA_MISPLACED"),
    "F_FREE": ("migrc_bench.model.memory", "F_FREE"),
    "F_USED": ("migrc_bench.model.memory", "F_USED"),
    "F_HELD": ("migrc_bench.model.memory", "F_HELD"),
    "F_TAGGED": ("migrc_bench.model.memory", "F_TAGGED"),
    "PTE_PRESENT": ("migrc_bench.model.kernel", "PTE_PRESENT"),
    "PTE_PROTNONE": ("migrc_bench.model.kernel", "PTE_PROTNONE"),
    "PTE_WRITE": ("migrc_bench.model.kernel", "PTE_WRITE"),
    "PTE_DIRTY": ("migrc_bench.model.kernel", "PTE_DIRTY"),
    "PTE_YOUNG": ("migrc_bench.model.kernel", "PTE_YOUNG"),
    "C": ("migrc_bench.model.counters", "C"),  # counter name -> column of machine.counters
    "T": ("migrc_bench.model.counters", "T"),  # stall bucket name -> index (machine.charge)
}
__all__ = sorted(_PUBLIC) + ["create", "names"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module, attr = _PUBLIC[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def names() -> list[str]:
    """The built-in engines of this build."""
    from .builtin import classes

    return sorted(classes())


def create(cfg: Config):
    """An instance of the config's engine: built-in, from a file or installed (loader.py)."""
    from .loader import resolve

    cls, _ = resolve(cfg.engine, cfg.base_dir)
    return cls(cfg)
