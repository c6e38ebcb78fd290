"""Readers that turn foreign traces into native record batches (model.md §2, anchors.md §2).

Each format has one module; all follow :class:`.protocol.ReaderProtocol`. Use
:func:`open_reader` to get a reader for a file, detecting the format when none is given.
Text parsers are compiled with numba and work on chunks of a few MB, so memory does not
grow with the input and there is no Python per line.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import TraceError
from ..records import check_reader
from .champsim import ChampSimReader
from .detect import detect_format
from .lackey import LackeyReader
from .native_source import NativeSource
from .pinatrace import PinatraceReader
from .protocol import DATA_SIZE, IFETCH_SIZE, ReaderProtocol, ReadStats
from .streams import CHUNK_BYTES

READERS: dict[str, type] = {
    "lackey": LackeyReader,
    "pinatrace": PinatraceReader,
    "champsim": ChampSimReader,
    "native": NativeSource,
}
FORMATS = tuple(READERS)


def open_reader(path: str | Path, fmt: str | None = None,
                chunk_bytes: int = CHUNK_BYTES) -> ReaderProtocol:
    """A reader for ``path`` in format ``fmt`` (detected from the content when None)."""
    path = Path(path)
    if fmt is None:
        fmt = detect_format(path)
    try:
        cls = READERS[fmt]
    except KeyError:
        raise TraceError(path, f"unknown format {fmt!r} (known: {', '.join(FORMATS)})") from None
    reader = cls(path, chunk_bytes=chunk_bytes)
    # the native reader checks its records itself (from the file's statistics when it can)
    return reader if fmt == "native" else check_reader(reader)


__all__ = ["CHUNK_BYTES", "DATA_SIZE", "FORMATS", "IFETCH_SIZE", "READERS", "ChampSimReader",
           "LackeyReader", "NativeSource", "PinatraceReader", "ReadStats", "ReaderProtocol",
           "detect_format", "open_reader"]
