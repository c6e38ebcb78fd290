"""Every test writes what it caches (trace page sets, generated traces) under a temporary
directory of the session, never into the user's cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MIGRC_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()
