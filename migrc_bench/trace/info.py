"""``trace info``: what a trace holds, from one streaming pass (a native trace's is the
cached pre-pass of ``prepass.py``).

Reported: records by op and by thread; distinct 4 KiB pages split into code (touched by an
instruction fetch, or inside a region of kind ``code``) and data (every other touched page),
data pages only ever read versus ever written (store or modify); the footprint (data regions'
size when the trace has regions, else distinct data pages x 4096, the figure that capacities
such as ``"18%"`` are a share of); and the metadata (source, threads, regions, generator).
A version-2 trace also shows its processes (pid, threads, records) and the files that
several regions map. Pages are counted by virtual address over the whole trace: two
processes' pages at one address count once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .native import OP_NAMES, PAGE_SIZE, TraceMeta
from .pageset import WRITE
from .prepass import scan, trace_profile
from .processes import shared_files
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

    def processes(self) -> list[dict[str, Any]]:
        """Each declared process: pid, name, thread ids, records, regions (version 2)."""
        return [{"pid": p.pid, "name": p.name, "tids": list(p.tids),
                 "records": int(self.by_thread[list(p.tids)].sum()),
                 "regions": sum(1 for r in self.meta.regions if r.pid == p.pid)}
                for p in self.meta.processes]

    def shared_files(self) -> list[dict[str, Any]]:
        """Each file that several regions map, with its mappings."""
        return [{"id": fid, "mappings": [{"pid": r.pid, "start": r.start, "end": r.end,
                                          "offset": r.file.offset, "pages": r.pages}
                                         for r in regions]}
                for fid, regions in shared_files(self.meta.regions).items()]

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
            "processes": self.processes(),
            "shared_files": self.shared_files(),
            "generator": self.meta.generator,
        }


def trace_info(path: str | Path, fmt: str | None = None,
               chunk_bytes: int = CHUNK_BYTES) -> TraceInfo:
    """Summarise ``path`` (format ``fmt``, detected when None): a native trace's pre-pass
    (cached, so asking again does not rescan it), or one pass over another format."""
    reader = open_reader(path, fmt, chunk_bytes)
    if isinstance(reader, NativeSource):
        # the stored metadata is shown as it is; the per-thread table shows the tids seen
        meta = reader.reader.meta
        profile = trace_profile(reader.reader)
    else:
        meta = reader.base_meta()
        profile = scan(reader.iter_batches(), meta.regions)
    data_flags = profile.flags[~profile.code]
    written = int(np.count_nonzero(data_flags & WRITE))
    return TraceInfo(path=Path(path), format=reader.format_name, meta=meta, by_op=profile.by_op,
                     by_thread=profile.by_thread(), code_pages=int(np.count_nonzero(profile.code)),
                     data_pages=len(data_flags), data_read_only_pages=len(data_flags) - written,
                     data_written_pages=written)
