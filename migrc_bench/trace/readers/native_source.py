"""Our own Parquet traces seen through the reader protocol, so ``convert`` and ``info`` take
them like any other format (re-writing one re-chunks it and checks every row)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

from ..native import Batch, TraceMeta, TraceReader
from .protocol import ReadStats
from .streams import CHUNK_BYTES, check_file


class NativeSource:
    """A native trace. Its metadata (source, regions, generator) is carried over as it is."""

    format_name = "native"

    def __init__(self, path: str | Path, chunk_bytes: int = CHUNK_BYTES):
        self.path = Path(path)
        check_file(self.path)
        self.reader = TraceReader(self.path)
        self.stats = ReadStats()

    def base_meta(self) -> TraceMeta:
        """The input's metadata, with ``threads`` recounted from the tid column."""
        return dataclasses.replace(self.reader.meta, threads=len(self.reader.thread_ids()))

    def iter_batches(self) -> Iterator[Batch]:
        for batch in self.reader.iter_batches():
            self.stats.lines += len(batch)
            self.stats.records += len(batch)
            yield batch
