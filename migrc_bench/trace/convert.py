"""``trace convert``: any readable trace -> a native Parquet trace, streamed and atomic.

The output is written with :class:`~.native.TraceWriter`, so on any error (bad line, full
disk, Ctrl-C) no output file is left behind and an existing one is untouched. An input with
no records is an error: an empty trace is almost always a failed capture, and replaying it
would report zeros that look like results. ``merge`` is the same pass over several inputs
laid out as processes or threads (``layout.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TraceError, UserError
from .native import TraceWriter
from .layout import merged_layout
from .merge import Interleaved, open_inputs
from .readers import CHUNK_BYTES, NativeSource, open_reader


@dataclass
class ConvertResult:
    src: Path
    out: Path
    format: str
    records: int
    input_lines: int
    threads: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    processes: int = 1

    @property
    def rate(self) -> float:
        """Records per second, end to end (read, parse, write)."""
        return self.records / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        unit = {"champsim": "instructions", "native": "rows", "merge": "input lines or rows"}.get(self.format, "lines")
        procs = f"{self.processes} processes, " if self.processes > 1 else ""
        return (f"{'merged' if self.format == 'merge' else 'converted'} {self.input_lines:,} "
                f"{unit} -> {self.records:,} records ({self.format}, {procs}{self.threads} "
                f"thread{'s' if self.threads != 1 else ''}) to {self.out} in {self.seconds:.2f} s "
                f"({self.rate / 1e6:.2f} M records/s)")


def convert(src: str | Path | list[str | Path], out: str | Path, fmt: str | None = None,
            chunk_bytes: int = CHUNK_BYTES, start_at: int | None = None) -> ConvertResult:
    """Convert ``src`` (format ``fmt``, detected when None) to the native trace ``out``.

    Several inputs become one thread each; ``start_at`` cuts each input at its first
    instruction fetch at that address (``merge.py``)."""
    srcs = [Path(p) for p in src] if isinstance(src, (list, tuple)) else [Path(src)]
    t0 = time.perf_counter()
    reader = open_inputs(srcs, lambda p: _open_one(p, fmt, chunk_bytes), start_at)
    return _write(reader, srcs[0], Path(out), reader.format_name, t0)


def merge(srcs: list[str | Path], out: str | Path, as_: str = "processes",
          shared: tuple[str, ...] = (), fmt: str | None = None,
          chunk_bytes: int = CHUNK_BYTES) -> ConvertResult:
    """Merge ``srcs`` into the version-2 trace ``out``: each input a process (``as_`` =
    "processes") or threads of one ("threads"); ``shared`` selects regions that map one file."""
    paths = [Path(p) for p in srcs]
    if len(paths) < 2:
        raise UserError("trace merge: give at least two input traces")
    t0 = time.perf_counter()
    readers = [_open_one(p, fmt, chunk_bytes) for p in paths]
    layout = merged_layout(paths, [r.base_meta() for r in readers], as_, tuple(shared))
    reader = Interleaved(readers, layout=layout)
    reader.stats.notes += layout.notes
    return _write(reader, paths[0], Path(out), "merge", t0)


def _write(reader, src: Path, out: Path, format_name: str, t0: float) -> ConvertResult:
    """Stream ``reader`` into the native trace ``out`` (atomic; an empty input is an error)."""
    if out.is_dir():
        raise UserError(f"{out}: is a directory; give the output file's name")
    meta = reader.base_meta()
    records = 0
    try:
        with TraceWriter(out, meta) as writer:
            for batch in reader.iter_batches():
                writer.write(batch.tid, batch.op, batch.addr, batch.size, batch.pid)
                records += len(batch)
            if records == 0:
                raise TraceError(src, "no records (empty trace)")
    except OSError as exc:
        raise UserError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return ConvertResult(src=src, out=out, format=format_name, records=records,
                         input_lines=reader.stats.lines, threads=meta.threads,
                         seconds=time.perf_counter() - t0, notes=list(reader.stats.notes),
                         processes=max(1, len(meta.processes)))


def _open_one(path: Path, fmt: str | None, chunk_bytes: int):
    reader = open_reader(path, fmt, chunk_bytes)
    if isinstance(reader, NativeSource):
        reader.renumber_threads = True  # what we write, `run` must accept
    return reader
