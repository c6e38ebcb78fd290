"""The built-in engines by name: the package's own plug-ins over the shared core.

A table, not self-registration: no engine module imports the package that lists it, so the
import graph has no circle (tests/test_import_graph.py). A new built-in engine is one module
and one line here (and its name in config.ENGINES).
"""

from __future__ import annotations


def classes() -> dict[str, type]:
    """Name -> class of every built-in engine of this build (imported on first use)."""
    from .baseline import Baseline
    from .luf import Luf
    from .migrc import Migrc
    from .migrc_unsafe import MigrcUnsafe
    from .nobatch import NoBatch

    return {cls.name: cls for cls in (NoBatch, Baseline, Migrc, Luf, MigrcUnsafe)}
