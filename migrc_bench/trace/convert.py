"""``trace convert``: any readable trace -> a native Parquet trace, streamed and atomic.

The output is written with :class:`~.native.TraceWriter`, so on any error (bad line, full
disk, Ctrl-C) no output file is left behind and an existing one is untouched. An input with
no records is an error: an empty trace is almost always a failed capture, and replaying it
would report zeros that look like results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TraceError, UserError
from .native import TraceWriter
from .merge import open_inputs
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

    @property
    def rate(self) -> float:
        """Records per second, end to end (read, parse, write)."""
        return self.records / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        unit = {"champsim": "instructions", "native": "rows"}.get(self.format, "lines")
        return (f"converted {self.input_lines:,} {unit} -> {self.records:,} records "
                f"({self.format}, {self.threads} thread{'s' if self.threads != 1 else ''}) "
                f"to {self.out} in {self.seconds:.2f} s ({self.rate / 1e6:.2f} M records/s)")


def convert(src: str | Path | list[str | Path], out: str | Path, fmt: str | None = None,
            chunk_bytes: int = CHUNK_BYTES, start_at: int | None = None) -> ConvertResult:
    """Convert ``src`` (format ``fmt``, detected when None) to the native trace ``out``.

    Several inputs become one thread each; ``start_at`` cuts each input at its first
    instruction fetch at that address (``merge.py``)."""
    srcs = [Path(p) for p in src] if isinstance(src, (list, tuple)) else [Path(src)]
    src, out = srcs[0], Path(out)
    t0 = time.perf_counter()
    reader = open_inputs(srcs, lambda p: _open_one(p, fmt, chunk_bytes), start_at)
    if out.is_dir():
        raise UserError(f"{out}: is a directory; give the output file's name")
    meta = reader.base_meta()
    records = 0
    try:
        with TraceWriter(out, meta) as writer:
            for batch in reader.iter_batches():
                writer.write(batch.tid, batch.op, batch.addr, batch.size)
                records += len(batch)
            if records == 0:
                raise TraceError(src, "no records (empty trace)")
    except OSError as exc:
        raise UserError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return ConvertResult(src=src, out=out, format=reader.format_name, records=records,
                         input_lines=reader.stats.lines, threads=meta.threads,
                         seconds=time.perf_counter() - t0, notes=list(reader.stats.notes))


def _open_one(path: Path, fmt: str | None, chunk_bytes: int):
    reader = open_reader(path, fmt, chunk_bytes)
    if isinstance(reader, NativeSource):
        reader.renumber_threads = True  # what we write, `run` must accept
    return reader
