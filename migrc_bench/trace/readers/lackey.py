"""Valgrind lackey ``--trace-mem=yes`` text traces.

Lines (``lackey/lk_main.c``): ``I  <hex>,<size>`` instruction fetch, `` L <hex>,<size>`` load,
`` S <hex>,<size>`` store, `` M <hex>,<size>`` modify (load and store of one address, kept as
op 3). Addresses are hex without ``0x`` (``%08lx``), sizes decimal. Skipped: blank lines and
Valgrind's own log lines, ``==<pid>==`` (and ``--<pid>--``, which ``-v`` and some warnings
use). Anything else is an error naming the line: a trace with silently dropped lines would
give wrong counts with no sign of it.

Sizes must be 1..4096. Lackey reports up to 512 bytes for some instructions (``fxsave``,
``xsave``), more than the native ``uint8`` size holds; such an access is split into
consecutive records of at most 255 bytes, so every page it touches is still touched.

Parsing is one compiled (numba) pass over each chunk of bytes; there is no Python per line.
"""

from __future__ import annotations

from typing import Iterator

import numba as nb
import numpy as np

from ...errors import TraceError
from ..native import Batch
from ._text import BAD, DONE, FULL, NL, at_line_end, end_of_line, is_blank, parse_hex
from .lines import TextLogReader, line_text
from .protocol import make_batch

MAX_SIZE = 4096
PIECE = 255
MAX_PIECES = -(-MAX_SIZE // PIECE)

REASONS = (
    "",
    "unknown record kind",
    "bad hex address",
    "address longer than 16 hex digits",
    "missing size",
    "bad size",
    f"size out of range 1..{MAX_SIZE}",
    "unexpected text after the size",
)
_R_KIND, _R_HEX, _R_LONG, _R_NOSIZE, _R_SIZE, _R_RANGE, _R_TRAIL = range(1, 8)


@nb.njit(cache=True, inline="always")
def _log_line(buf, pos, mark):
    """True for Valgrind's own ``==123==`` / ``--123--`` lines (mark is '=' or '-')."""
    n = buf.shape[0]
    if pos + 1 >= n or buf[pos] != mark or buf[pos + 1] != mark:
        return False
    p = pos + 2
    start = p
    while p < n and 48 <= buf[p] <= 57:
        p += 1
    return p > start and p + 1 < n and buf[p] == mark and buf[p + 1] == mark


@nb.njit(cache=True, boundscheck=False)
def parse_lackey(buf, pos, op, addr, size, nrec):
    """Parse whole lines from ``pos``; stop when done, out of output room, or at a bad line.

    Returns (status, pos, nrec, lines, skipped, reason): ``pos`` is where to resume (FULL) or
    the start of the bad line (BAD); ``lines`` counts the lines finished in this call.
    """
    n = buf.shape[0]
    cap = op.shape[0]
    lines = 0
    skipped = 0
    while pos < n:
        if nrec + MAX_PIECES > cap:
            return FULL, pos, nrec, lines, skipped, 0
        c = buf[pos]
        kind = -1
        if c == 73:  # 'I'
            if pos + 2 < n and buf[pos + 1] == 32 and buf[pos + 2] == 32:
                kind = 0
        elif c == 32:  # ' '
            if pos + 2 < n and buf[pos + 2] == 32:
                k = buf[pos + 1]
                if k == 76:
                    kind = 1
                elif k == 83:
                    kind = 2
                elif k == 77:
                    kind = 3
        if kind < 0:
            if is_blank(buf, pos) or _log_line(buf, pos, 61) or _log_line(buf, pos, 45):
                pos = end_of_line(buf, pos)
                lines += 1
                skipped += 1
                continue
            return BAD, pos, nrec, lines, skipped, _R_KIND
        p = pos + 3
        a, p, digits = parse_hex(buf, p)
        if digits == 0:
            return BAD, pos, nrec, lines, skipped, _R_HEX
        if digits > 16:
            return BAD, pos, nrec, lines, skipped, _R_LONG
        if p >= n or buf[p] != 44:  # ','
            if at_line_end(buf, p):
                return BAD, pos, nrec, lines, skipped, _R_NOSIZE
            return BAD, pos, nrec, lines, skipped, _R_HEX
        p += 1
        s = 0
        start = p
        while p < n and 48 <= buf[p] <= 57 and p - start < 6:
            s = s * 10 + (buf[p] - 48)
            p += 1
        if p == start:
            if at_line_end(buf, p):
                return BAD, pos, nrec, lines, skipped, _R_NOSIZE
            return BAD, pos, nrec, lines, skipped, _R_SIZE
        if p < n and 48 <= buf[p] <= 57:
            return BAD, pos, nrec, lines, skipped, _R_RANGE
        if not at_line_end(buf, p):
            return BAD, pos, nrec, lines, skipped, _R_TRAIL
        if s < 1 or s > MAX_SIZE:
            return BAD, pos, nrec, lines, skipped, _R_RANGE
        while s > PIECE:
            op[nrec] = kind
            addr[nrec] = a
            size[nrec] = PIECE
            nrec += 1
            a += np.uint64(PIECE)
            s -= PIECE
        op[nrec] = kind
        addr[nrec] = a
        size[nrec] = s
        nrec += 1
        while p < n and buf[p] != NL:
            p += 1
        pos = p + 1 if p < n else n
        lines += 1
    return DONE, pos, nrec, lines, skipped, 0


class LackeyReader(TextLogReader):
    """Streams a lackey log (plain or compressed) as native batches of thread 0."""

    format_name = "lackey"

    def iter_batches(self) -> Iterator[Batch]:
        stats = self.stats
        for chunk in self.chunks():
            buf = chunk.buf
            pos = 0
            done_lines = 0
            while pos < len(buf):
                cap = (len(buf) - pos) // 7 + MAX_PIECES + 1
                op = np.empty(cap, np.uint8)
                addr = np.empty(cap, np.uint64)
                size = np.empty(cap, np.uint8)
                status, pos, nrec, lines, skipped, reason = parse_lackey(buf, pos, op, addr, size, 0)
                done_lines += lines
                stats.lines += lines
                stats.skipped += skipped
                stats.records += nrec
                if nrec:
                    yield make_batch(op[:nrec], addr[:nrec], size[:nrec])
                if status == BAD:
                    raise TraceError(self.path, f"malformed lackey line ({REASONS[reason]})",
                                     line=chunk.first_line + done_lines, text=line_text(buf, pos))
