"""Every test session gets its own cache directory: generated traces never go to the user's
~/.cache, and a trace generated once (e.g. the CI config's) serves the whole session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("migrc-bench-cache")
    old = os.environ.get("MIGRC_BENCH_CACHE")
    os.environ["MIGRC_BENCH_CACHE"] = str(path)  # inherited by CLI subprocesses too
    yield path
    if old is None:
        os.environ.pop("MIGRC_BENCH_CACHE", None)
    else:
        os.environ["MIGRC_BENCH_CACHE"] = old
