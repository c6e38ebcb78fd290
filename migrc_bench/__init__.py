"""migrc-bench: replay memory traces through a model of TLBs, tiering and migration engines."""

import os as _os
from pathlib import Path as _Path

__version__ = "0.1.0"


def _numba_cache_outside_site_packages() -> None:
    """Installed (not a checkout): numba's compiled-code cache goes to our cache directory.

    numba keeps it beside the sources by default, which for an installed package is inside
    site-packages (shared, maybe read-only). Must run before numba is imported; a
    NUMBA_CACHE_DIR the user set wins.
    """
    if "NUMBA_CACHE_DIR" in _os.environ:
        return
    here = _Path(__file__).resolve().parent
    if {"site-packages", "dist-packages"} & set(here.parts):
        from .cache import cache_path

        _os.environ["NUMBA_CACHE_DIR"] = str(cache_path("numba"))


_numba_cache_outside_site_packages()
