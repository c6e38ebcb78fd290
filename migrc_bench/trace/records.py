"""What a trace record may hold, checked in one place for every reader (native Parquet,
lackey, pinatrace, ChampSim): a trace that reads is a trace that ``run`` replays.

- ``op`` 0..3 (ifetch, load, store, modify);
- ``addr`` below 2^57: x86-64's largest virtual address space (5-level paging, LA57); a
  bigger value is a parsing or capture error, not an address;
- ``size`` at least 1: an access touches a byte (0 would cross no page and count as one);
- ``tid`` below the trace's declared thread count: ``run`` puts thread t on CPU t.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TraceError

ADDR_LIMIT = 1 << 57
OP_MAX = 3
OP_NAMES = ("ifetch", "load", "store", "modify")


def first_bad(tid: np.ndarray, op: np.ndarray, addr: np.ndarray, size: np.ndarray,
              threads: int) -> tuple[int, str] | None:
    """(index, what is wrong) of the first bad record of one batch, or None (vectorised)."""
    n = len(op)
    if not n:
        return None
    checks = []
    if int(op.max()) > OP_MAX:
        i = int(np.flatnonzero(op > OP_MAX)[0])
        checks.append((i, f"op {int(op[i])} is not one of 0..3 ({', '.join(OP_NAMES)})"))
    if int(addr.max()) >= ADDR_LIMIT:
        i = int(np.flatnonzero(addr >= np.uint64(ADDR_LIMIT))[0])
        checks.append((i, f"address {int(addr[i]):#x} is not below 2^57 (the largest x86-64 "
                          f"virtual address space)"))
    if int(size.min()) < 1:
        i = int(np.flatnonzero(size < 1)[0])
        checks.append((i, "size 0 (an access touches at least one byte)"))
    if int(tid.max()) >= threads:
        i = int(np.flatnonzero(tid >= threads)[0])
        checks.append((i, f"thread id {int(tid[i])}, but the trace declares {threads} "
                          f"thread{'s' if threads != 1 else ''} (ids 0..{threads - 1})"))
    return min(checks) if checks else None


def check_records(path: str | Path, batch, threads: int, first_row: int) -> None:
    """Raise a one-line TraceError naming the row of the first bad record of ``batch``."""
    bad = first_bad(batch.tid, batch.op, batch.addr, batch.size, threads)
    if bad is not None:
        raise TraceError(path, f"row {first_row + bad[0]:,}: {bad[1]}")


def check_reader(reader):
    """Make ``reader.iter_batches`` check every batch it yields (the foreign formats; the
    native reader checks its own, from the file's statistics when it can). Returns it."""
    plain = reader.iter_batches

    def iter_batches():
        threads = max(1, reader.base_meta().threads)
        row = 0
        for batch in plain():
            check_records(reader.path, batch, threads, row)
            row += len(batch)
            yield batch

    reader.iter_batches = iter_batches
    return reader
