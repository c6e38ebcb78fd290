"""Byte-level helpers shared by the compiled text parsers (numba, no Python per line)."""

from __future__ import annotations

import numba as nb
import numpy as np

HEX = np.full(256, -1, np.int8)
for _i, _c in enumerate(b"0123456789abcdef"):
    HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    HEX[_c] = 10 + _i

NL, CR, TAB, SPACE = 10, 13, 9, 32

# Kernel results.
DONE, FULL, BAD = 0, 1, 2


@nb.njit(cache=True, inline="always")
def end_of_line(buf, pos):
    """Index just past the newline of the line containing ``pos`` (or len(buf))."""
    n = buf.shape[0]
    while pos < n and buf[pos] != NL:
        pos += 1
    return pos + 1 if pos < n else n


@nb.njit(cache=True, inline="always")
def is_blank(buf, pos):
    """True when the line starting at ``pos`` holds only spaces, tabs or a CR."""
    n = buf.shape[0]
    while pos < n and buf[pos] != NL:
        c = buf[pos]
        if c != SPACE and c != TAB and c != CR:
            return False
        pos += 1
    return True


@nb.njit(cache=True, inline="always")
def at_line_end(buf, pos):
    """True when ``pos`` is at the end of a line (newline, CR-newline or end of buffer)."""
    n = buf.shape[0]
    if pos < n and buf[pos] == CR:
        pos += 1
    return pos >= n or buf[pos] == NL


@nb.njit(cache=True, inline="always")
def parse_hex(buf, pos):
    """Parse hex digits at ``pos``: returns (value, new_pos, digits)."""
    n = buf.shape[0]
    value = np.uint64(0)
    start = pos
    while pos < n:
        v = HEX[buf[pos]]
        if v < 0:
            break
        value = (value << np.uint64(4)) | np.uint64(v)
        pos += 1
    return value, pos, pos - start
