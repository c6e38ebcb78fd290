"""v6.7 as released: batched unmap flush (7e12beb8ca2a), inaccessible PTEs skipped (4d4b6d66db)."""

from __future__ import annotations

from .base import Engine


class Baseline(Engine):
    name = "baseline"
