"""Open a trace file as a stream of decompressed bytes, whatever its compression.

Compression is decided by the magic bytes, not the name, so a compressed file renamed
without its extension still reads instead of being parsed as garbage. A name that promises a
compression the content does not have is reported rather than guessed around: it usually
means a mislabelled or half-written file.

Every failure (missing file, directory, corrupt or truncated compressed data) becomes a
:class:`~migrc_bench.errors.TraceError` naming the file, so the CLI prints one line.
Reads are bounded (``read(n)`` returns at most ``n`` bytes), so memory does not grow with
input length.
"""

from __future__ import annotations

import gzip
import io
import lzma
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import zstandard

from ...errors import TraceError

CHUNK_BYTES = 4 << 20

MAGIC: dict[str, bytes] = {
    "gzip": b"\x1f\x8b",
    "xz": b"\xfd7zXZ\x00",
    "zstd": b"\x28\xb5\x2f\xfd",
}
EXTENSIONS: dict[str, str] = {".gz": "gzip", ".xz": "xz", ".zst": "zstd", ".zstd": "zstd"}
_DECODE_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


def check_file(path: Path) -> None:
    """Raise a one-line TraceError unless ``path`` is an existing, readable regular file."""
    if not path.exists():
        raise TraceError(path, "no such file")
    if path.is_dir():
        raise TraceError(path, "is a directory, not a trace file")
    if not path.is_file():
        raise TraceError(path, "not a regular file")


def _open_raw(path: Path) -> BinaryIO:
    check_file(path)
    try:
        return open(path, "rb")
    except OSError as exc:
        raise TraceError(path, f"cannot open ({exc.strerror or exc})") from None


def compression_of(path: str | Path) -> str | None:
    """The compression of ``path`` by magic bytes ("gzip", "xz", "zstd") or None for plain data."""
    path = Path(path)
    with _open_raw(path) as fh:
        try:
            head = fh.read(8)
        except OSError as exc:
            raise TraceError(path, f"cannot read ({exc.strerror or exc})") from None
    kind = next((k for k, m in MAGIC.items() if head.startswith(m)), None)
    named = EXTENSIONS.get(path.suffix.lower())
    if named and kind != named and head:
        raise TraceError(path, f"name ends in {path.suffix} but the content is not {named} data")
    return kind


class _ZstdReader(io.RawIOBase):
    """zstd decompression that notices truncation.

    ``zstandard``'s stream readers return a silent EOF when the input stops inside a frame,
    which would turn a truncated download into a shorter but "valid" trace. Driving a
    decompressobj ourselves lets us check that the last frame ended; concatenated frames
    (pzstd, ``cat a.zst b.zst``) are followed. Input is fed 16 KiB at a time, so the output
    held at once stays near 16 KiB times the compression ratio.
    """

    _IN = 1 << 14

    def __init__(self, fh: BinaryIO):
        super().__init__()
        self._fh = fh
        self._dctx = zstandard.ZstdDecompressor()
        self._dobj = self._dctx.decompressobj()
        self._in_frame = False
        self._out = b""
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while self._pos >= len(self._out) and not self._eof:
            data = self._fh.read(self._IN)
            if not data:
                self._eof = True
                if self._in_frame:
                    raise EOFError("compressed file ended before the end of the last zstd frame")
                return
            parts = []
            while data:
                self._in_frame = True
                parts.append(self._dobj.decompress(data))
                if self._dobj.eof:
                    data = self._dobj.unused_data
                    self._dobj = self._dctx.decompressobj()
                    self._in_frame = False
                else:
                    data = b""
            self._out, self._pos = b"".join(parts), 0

    def read(self, n: int = -1) -> bytes:
        self._fill()
        avail = len(self._out) - self._pos
        take = avail if n is None or n < 0 else min(n, avail)
        out = self._out[self._pos:self._pos + take]
        self._pos += take
        return out

    def close(self) -> None:
        self._fh.close()
        super().close()


def _decompressing(fh: BinaryIO, kind: str | None) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(fh, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        return _ZstdReader(fh)  # type: ignore[return-value]
    return fh


def iter_bytes(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield the decompressed content of ``path`` in pieces of at most ``chunk_bytes``."""
    path = Path(path)
    kind = compression_of(path)
    what = f"{kind} data" if kind else "file"
    with _open_raw(path) as fh:
        stream = _decompressing(fh, kind)
        try:
            while True:
                try:
                    data = stream.read(chunk_bytes)
                except EOFError as exc:
                    raise TraceError(path, f"truncated {what} ({exc})") from None
                except _DECODE_ERRORS as exc:
                    if kind is None:
                        raise TraceError(path, f"cannot read ({getattr(exc, 'strerror', None) or exc})") from None
                    raise TraceError(path, f"corrupt {what} ({exc})") from None
                if not data:
                    return
                yield data
        finally:
            stream.close()


def read_head(path: str | Path, nbytes: int = 1 << 16) -> bytes:
    """The first ``nbytes`` decompressed bytes (fewer if the file is shorter): for detection."""
    out = bytearray()
    it = iter_bytes(path, min(nbytes, CHUNK_BYTES))
    try:
        for data in it:
            out += data
            if len(out) >= nbytes:
                break
    finally:
        it.close()
    return bytes(out[:nbytes])
