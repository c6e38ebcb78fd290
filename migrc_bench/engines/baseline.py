"""v6.7 as released: batched unmap flush (7e12beb8ca2a), inaccessible PTEs skipped (4d4b6d66db)."""

from __future__ import annotations

from . import register
from .base import Engine


@register
class Baseline(Engine):
    name = "baseline"
