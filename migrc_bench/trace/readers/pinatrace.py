"""Intel Pin ``pinatrace`` text traces (``source/tools/ManualExamples/pinatrace.cpp``).

Lines are ``0x<ip>: R 0x<addr>`` (read) or ``0x<ip>: W 0x<addr>`` (write), one per memory
operand, and a final ``#eof``. Lines starting with ``#`` are skipped; blank lines too.

Mapping, and why:

* ``R`` -> load, ``W`` -> store. A read-modify-write operand is printed as an R and a W line
  and stays two records (the tool gives no way to tell it from two operands).
* The ip becomes an instruction-fetch record, emitted when it differs from the previous
  line's ip, so an instruction with several memory operands is fetched once. Instructions
  without memory operands never appear in pinatrace, so fetch counts are a lower bound;
  the code pages touched (what the ITLB sees) are still represented, which dropping the ip
  altogether would lose.
* The stock tool prints no size: data accesses are taken as 8 bytes, fetches as 4
  (:data:`~.protocol.DATA_SIZE`, :data:`~.protocol.IFETCH_SIZE`). Sizes only matter for
  accesses that straddle a page boundary.
* No thread id either: everything is thread 0.

A trace without ``#eof`` is accepted with a note (the traced program may have been killed).
"""

from __future__ import annotations

from typing import Iterator

import numba as nb
import numpy as np

from ...errors import TraceError
from ..native import Batch
from ._text import BAD, DONE, FULL, NL, at_line_end, end_of_line, is_blank, parse_hex
from .lines import TextLogReader, line_text
from .protocol import DATA_SIZE, IFETCH_SIZE, make_batch

REASONS = (
    "",
    "expected '0x<ip>: R|W 0x<addr>'",
    "bad hex ip",
    "bad hex address",
    "address longer than 16 hex digits",
    "access kind is not R or W",
    "unexpected text after the address",
)
_R_SHAPE, _R_IP, _R_ADDR, _R_LONG, _R_KIND, _R_TRAIL = range(1, 7)
NO_IP = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


@nb.njit(cache=True, inline="always")
def _is_eof_mark(buf, pos):
    """True when the line at ``pos`` is exactly ``#eof``."""
    n = buf.shape[0]
    return (pos + 3 < n and buf[pos + 1] == 101 and buf[pos + 2] == 111 and buf[pos + 3] == 102
            and at_line_end(buf, pos + 4))


@nb.njit(cache=True, boundscheck=False)
def parse_pinatrace(buf, pos, op, addr, size, nrec, prev_ip, ifetch_size, data_size):
    """Parse whole lines from ``pos``. Returns (status, pos, nrec, lines, skipped, reason,
    prev_ip, saw_eof); see :func:`..lackey.parse_lackey` for the protocol."""
    n = buf.shape[0]
    cap = op.shape[0]
    lines = 0
    skipped = 0
    saw_eof = False
    while pos < n:
        if nrec + 2 > cap:
            return FULL, pos, nrec, lines, skipped, 0, prev_ip, saw_eof
        c = buf[pos]
        if c != 48:  # not '0'
            if c == 35:  # '#'
                if _is_eof_mark(buf, pos):
                    saw_eof = True
            elif not is_blank(buf, pos):
                return BAD, pos, nrec, lines, skipped, _R_SHAPE, prev_ip, saw_eof
            pos = end_of_line(buf, pos)
            lines += 1
            skipped += 1
            continue
        p = pos
        if p + 1 >= n or (buf[p + 1] != 120 and buf[p + 1] != 88):  # 'x'
            return BAD, pos, nrec, lines, skipped, _R_SHAPE, prev_ip, saw_eof
        ip, p, digits = parse_hex(buf, p + 2)
        if digits == 0:
            return BAD, pos, nrec, lines, skipped, _R_IP, prev_ip, saw_eof
        if digits > 16:
            return BAD, pos, nrec, lines, skipped, _R_LONG, prev_ip, saw_eof
        if p + 3 >= n or buf[p] != 58 or buf[p + 1] != 32 or buf[p + 3] != 32:  # ': X '
            if p < n and buf[p] != 58:
                return BAD, pos, nrec, lines, skipped, _R_IP, prev_ip, saw_eof
            return BAD, pos, nrec, lines, skipped, _R_SHAPE, prev_ip, saw_eof
        k = buf[p + 2]
        if k == 82:
            kind = 1
        elif k == 87:
            kind = 2
        else:
            return BAD, pos, nrec, lines, skipped, _R_KIND, prev_ip, saw_eof
        p += 4
        if p + 1 >= n or buf[p] != 48 or (buf[p + 1] != 120 and buf[p + 1] != 88):
            return BAD, pos, nrec, lines, skipped, _R_ADDR, prev_ip, saw_eof
        a, p, digits = parse_hex(buf, p + 2)
        if digits == 0:
            return BAD, pos, nrec, lines, skipped, _R_ADDR, prev_ip, saw_eof
        if digits > 16:
            return BAD, pos, nrec, lines, skipped, _R_LONG, prev_ip, saw_eof
        if not at_line_end(buf, p):
            return BAD, pos, nrec, lines, skipped, _R_TRAIL, prev_ip, saw_eof
        if ip != prev_ip:
            op[nrec] = 0
            addr[nrec] = ip
            size[nrec] = ifetch_size
            nrec += 1
            prev_ip = ip
        op[nrec] = kind
        addr[nrec] = a
        size[nrec] = data_size
        nrec += 1
        while p < n and buf[p] != NL:
            p += 1
        pos = p + 1 if p < n else n
        lines += 1
    return DONE, pos, nrec, lines, skipped, 0, prev_ip, saw_eof


class PinatraceReader(TextLogReader):
    """Streams a pinatrace output file (plain or compressed) as native batches of thread 0."""

    format_name = "pinatrace"

    def iter_batches(self) -> Iterator[Batch]:
        stats = self.stats
        prev_ip = NO_IP
        saw_eof = False
        for chunk in self.chunks():
            buf = chunk.buf
            pos = 0
            done_lines = 0
            while pos < len(buf):
                cap = 2 * ((len(buf) - pos) // 11) + 4
                op = np.empty(cap, np.uint8)
                addr = np.empty(cap, np.uint64)
                size = np.empty(cap, np.uint8)
                status, pos, nrec, lines, skipped, reason, prev_ip, eof = parse_pinatrace(
                    buf, pos, op, addr, size, 0, np.uint64(prev_ip), IFETCH_SIZE, DATA_SIZE)
                saw_eof |= eof
                done_lines += lines
                stats.lines += lines
                stats.skipped += skipped
                stats.records += nrec
                if nrec:
                    yield make_batch(op[:nrec], addr[:nrec], size[:nrec])
                if status == BAD:
                    raise TraceError(self.path, f"malformed pinatrace line ({REASONS[reason]})",
                                     line=chunk.first_line + done_lines, text=line_text(buf, pos))
        if not saw_eof and stats.records:
            stats.notes.append(f"{self.path}: no '#eof' line: the trace may be cut short")
