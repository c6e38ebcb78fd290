"""``trace info``: what a trace holds, computed in one streaming pass.

Reported: records by op and by thread; distinct 4 KiB pages split into code (touched by an
instruction fetch, or inside a region of kind ``code``) and data (every other touched page),
data pages only ever read versus ever written (store or modify); the footprint (data regions'
size when the trace has regions, else distinct data pages x 4096, the figure that capacities
such as ``"18%"`` are a share of); and the metadata (source, threads, regions, generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .native import OP_NAMES, PAGE_SHIFT, PAGE_SIZE, Region, TraceMeta
from .pageset import FETCH, WRITE, PageSet
from .readers import CHUNK_BYTES, NativeSource, open_reader


@dataclass
class TraceInfo:
    path: Path
    format: str
    meta: TraceMeta
    by_op: np.ndarray      # int64[4]
    by_thread: np.ndarray  # int64[65536]
    code_pages: int
    data_pages: int
    data_read_only_pages: int
    data_written_pages: int

    @property
    def records(self) -> int:
        return int(self.by_op.sum())

    @property
    def footprint_bytes(self) -> int:
        return self.meta.footprint_bytes or self.data_pages * PAGE_SIZE

    @property
    def footprint_from(self) -> str:
        return "regions" if self.meta.footprint_bytes else "data pages"

    def threads_seen(self) -> list[tuple[int, int]]:
        return [(int(t), int(self.by_thread[t])) for t in np.flatnonzero(self.by_thread)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the ``--format json`` output)."""
        return {
            "trace": str(self.path),
            "format": self.format,
            "source": self.meta.source,
            "trace_version": self.meta.version,
            "threads": self.meta.threads,
            "records": self.records,
            "records_by_op": {name: int(n) for name, n in zip(OP_NAMES, self.by_op)},
            "records_by_thread": [{"tid": t, "records": n} for t, n in self.threads_seen()],
            "pages": {
                "total": self.code_pages + self.data_pages,
                "code": self.code_pages,
                "data": self.data_pages,
                "data_read_only": self.data_read_only_pages,
                "data_written": self.data_written_pages,
            },
            "footprint_bytes": self.footprint_bytes,
            "footprint_from": self.footprint_from,
            "regions": [r.to_json() for r in self.meta.regions],
            "generator": self.meta.generator,
        }


def _in_code_regions(pages: np.ndarray, regions: tuple[Region, ...]) -> np.ndarray:
    inside = np.zeros(len(pages), bool)
    for r in regions:
        if r.kind == "code" and r.end > r.start:
            first, last = r.start >> PAGE_SHIFT, (r.end - 1) >> PAGE_SHIFT
            inside |= (pages >= np.uint64(first)) & (pages <= np.uint64(last))
    return inside


def trace_info(path: str | Path, fmt: str | None = None,
               chunk_bytes: int = CHUNK_BYTES) -> TraceInfo:
    """Stream ``path`` once (format ``fmt``, detected when None) and summarise it."""
    reader = open_reader(path, fmt, chunk_bytes)
    # A native trace's stored metadata is shown as it is; the per-thread table shows the tids seen.
    meta = reader.reader.meta if isinstance(reader, NativeSource) else reader.base_meta()
    by_op = np.zeros(4, np.int64)
    by_thread = np.zeros(1 << 16, np.int64)
    pages = PageSet()
    for batch in reader.iter_batches():
        by_op += np.bincount(batch.op, minlength=4)[:4]
        by_thread += np.bincount(batch.tid, minlength=1 << 16)
        pages.add(batch.op, batch.addr, batch.size)
    keys, flags = pages.items()
    code = ((flags & FETCH) != 0) | _in_code_regions(keys, meta.regions)
    data_flags = flags[~code]
    written = int(np.count_nonzero(data_flags & WRITE))
    return TraceInfo(path=Path(path), format=reader.format_name, meta=meta, by_op=by_op,
                     by_thread=by_thread, code_pages=int(np.count_nonzero(code)),
                     data_pages=len(data_flags), data_read_only_pages=len(data_flags) - written,
                     data_written_pages=written)
