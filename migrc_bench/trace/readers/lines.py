"""Cut a decompressed byte stream into chunks of whole lines for the compiled parsers.

The parsers work on a numpy ``uint8`` view of a few MB at a time; a line split between two
reads is carried over to the next chunk, so a parser never sees half a line. Each chunk
comes with the 1-based number of its first line, so an error deep in a compressed file still
names the right line. Memory is one chunk plus the longest line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import TraceError
from .streams import CHUNK_BYTES, iter_bytes

MAX_LINE_BYTES = 1 << 16
"""A longer line is not a trace line: stops a binary file from being buffered whole."""


@dataclass(frozen=True)
class LineChunk:
    """Whole lines (the last one may lack its newline at end of file)."""

    buf: np.ndarray  # uint8, read-only view
    first_line: int  # 1-based number of the first line in ``buf``


def line_text(buf: np.ndarray, pos: int) -> str:
    """The line that starts at ``pos`` in ``buf``, without its end of line, for messages."""
    end = pos
    n = len(buf)
    limit = min(n, pos + 200)
    while end < limit and buf[end] != 10:
        end += 1
    return bytes(buf[pos:end]).decode("utf-8", errors="replace").rstrip("\r")


def iter_line_chunks(path: str | Path, fmt: str, chunk_bytes: int = CHUNK_BYTES,
                     max_line: int = MAX_LINE_BYTES) -> Iterator[LineChunk]:
    """Yield chunks of whole lines of ``path`` (decompressed); ``fmt`` names the format in errors."""
    path = Path(path)
    carry = b""
    line_no = 1
    for data in iter_bytes(path, chunk_bytes):
        block = carry + data if carry else data
        cut = block.rfind(b"\n")
        if cut < 0:
            carry = block
            if len(carry) > max_line:
                raise TraceError(path, f"line longer than {max_line} bytes: not a {fmt} trace",
                                 line=line_no, text=carry[:80].decode("utf-8", errors="replace"))
            continue
        whole = memoryview(block)[:cut + 1]
        yield LineChunk(np.frombuffer(whole, dtype=np.uint8), line_no)
        line_no += block.count(b"\n", 0, cut + 1)
        carry = block[cut + 1:]
        if len(carry) > max_line:
            raise TraceError(path, f"line longer than {max_line} bytes: not a {fmt} trace",
                             line=line_no, text=carry[:80].decode("utf-8", errors="replace"))
    if carry:
        yield LineChunk(np.frombuffer(carry, dtype=np.uint8), line_no)


class TextLogReader:
    """What the text readers (lackey, pinatrace) share: a path read in chunks of whole lines,
    running statistics, and the metadata of a single-thread trace."""

    format_name = "text"

    def __init__(self, path: "str | Path", chunk_bytes: int = CHUNK_BYTES):
        from .protocol import ReadStats

        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.stats = ReadStats()

    def base_meta(self):
        from ..native import TraceMeta

        return TraceMeta(source=self.format_name, threads=1)

    def chunks(self):
        return iter_line_chunks(self.path, self.format_name, self.chunk_bytes)
