"""What every trace reader offers, so ``convert`` and ``info`` need not know the format.

Modelled on libCacheSim-python's ``ReaderProtocol``, reduced to what a streaming converter
needs: batches rather than single requests, because the parsers are compiled and per-record
Python calls would cost more than the parsing itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from ..native import Batch, TraceMeta

IFETCH_SIZE = 4
"""Bytes assumed for an instruction fetch when the format does not say (pinatrace, ChampSim):
about the mean x86-64 instruction length; only matters for fetches that straddle a page."""

DATA_SIZE = 8
"""Bytes assumed for a data access when the format does not say: the commonest operand size."""


@dataclass
class ReadStats:
    """Filled in while a reader is iterated; read it after the last batch."""

    lines: int = 0          # input lines (text formats) or input records (binary formats)
    records: int = 0        # native records produced
    skipped: int = 0        # lines skipped: blank, comments, Valgrind log lines
    notes: list[str] = field(default_factory=list)  # things the user should know (not errors)


@runtime_checkable
class ReaderProtocol(Protocol):
    """A reader of one trace file in one format, producing native batches in program order."""

    format_name: str
    path: Path
    stats: ReadStats

    def iter_batches(self) -> Iterator[Batch]:
        """Stream the trace; memory must not grow with its length. Raises TraceError on bad input."""
        ...

    def base_meta(self) -> TraceMeta:
        """Metadata known before reading the records (source, threads, regions, generator)."""
        ...


def make_batch(op: np.ndarray, addr: np.ndarray, size: np.ndarray, tid: int = 0) -> Batch:
    """A batch of one thread (the text and ChampSim formats carry no thread id)."""
    return Batch(np.full(len(op), tid, np.uint16), op, addr, size)
