"""Which config a command uses when it is given none.

With a trace of the user's, an unscaled machine (``configs/unscaled.toml``): the preset's
real TLB sizes, the kernel's default periods, ``time_scale`` 1 -- nothing tuned to a trace
the user did not make. Without a trace, the bundled demo config (``configs/default.toml``),
which names its own trace and is scaled to it.
"""

from __future__ import annotations

from .config import DEFAULT_CONFIG

UNSCALED_CONFIG = DEFAULT_CONFIG.parent / "unscaled.toml"


def config_for(config_path: str | None, trace_given: bool) -> str | None:
    """``--config`` as given; else the unscaled machine for a given trace; else None (the
    bundled default)."""
    if config_path is not None:
        return config_path
    return str(UNSCALED_CONFIG) if trace_given else None
