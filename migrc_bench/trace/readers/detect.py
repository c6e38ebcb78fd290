"""Guess a trace's format from its first bytes, so users need not pass ``--format``.

Content decides, not the name: lackey logs are called anything (``--log-file=F``), and
pinatrace always writes ``pinatrace.out``. The first line that is neither blank nor a
Valgrind log line decides between the text formats; a binary file must look like ChampSim
records or be our Parquet. When nothing fits, the error says which formats were tried.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import TraceError
from .champsim import looks_like_champsim
from .streams import compression_of, read_head

HEAD_BYTES = 1 << 16

_LACKEY = re.compile(rb"^(I  | [LSM] )[0-9a-fA-F]+,\d+\r?$")
_PINATRACE = re.compile(rb"^0[xX][0-9a-fA-F]+: [RW] 0[xX][0-9a-fA-F]+\r?$")
_VALGRIND = re.compile(rb"^(==\d+==|--\d+--)")


def _text_lines(head: bytes) -> list[bytes] | None:
    """The complete lines of ``head`` if it looks like text, else None."""
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a character cut at the end of the head is fine
            return None
    lines = head.split(b"\n")
    if len(head) == HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # last one may be cut
    return lines


def detect_format(path: str | Path) -> str:
    """One of "native", "lackey", "pinatrace", "champsim"; TraceError when none fits."""
    path = Path(path)
    compression = compression_of(path)
    head = read_head(path, HEAD_BYTES)
    if not head:
        raise TraceError(path, "empty file (no records)")
    if head.startswith(b"PAR1"):
        if compression:
            raise TraceError(path, f"a {compression}-compressed Parquet file: decompress it first")
        return "native"
    lines = _text_lines(head)
    if lines is not None:
        saw_valgrind = False
        for line in lines:
            if not line.strip():
                continue
            if _VALGRIND.match(line):
                saw_valgrind = True
                continue
            if _LACKEY.match(line):
                return "lackey"
            if _PINATRACE.match(line) or line.rstrip() == b"#eof":
                return "pinatrace"
            if saw_valgrind:
                return "lackey"  # a Valgrind log: the lackey reader names the bad line
            shown = line[:60].decode("utf-8", errors="replace")
            raise TraceError(path, f"unknown trace format: first line {shown!r} is neither "
                                   f"lackey nor pinatrace; give --format")
        if saw_valgrind:
            return "lackey"  # a Valgrind log without records: the lackey reader says so
        if len(head) < HEAD_BYTES:
            raise TraceError(path, "no records (only blank lines)")
    if looks_like_champsim(head) or "champsim" in path.name.lower():
        return "champsim"
    raise TraceError(path, "unknown trace format (not lackey, pinatrace, ChampSim or a "
                           "migrc-bench Parquet trace); give --format")
