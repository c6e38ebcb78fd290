"""ChampSim binary traces (``inc/trace_instruction.h``, ``input_instr``).

A trace is a bare array of 64-byte little-endian records, Python struct ``<QBB2B4B2Q4Q``:
ip, is_branch, branch_taken, dst_regs[2], src_regs[4], dst_mem[2], src_mem[4]; a zero memory
address is an unused slot. Usually shipped as ``.champsimtrace.xz`` or ``.gz``.

Mapping, per instruction and in this order: the ip -> instruction fetch; each nonzero
``src_mem`` -> load; each nonzero ``dst_mem`` -> store, except that a destination equal to one
of the instruction's sources becomes a single *modify* at the load's place (as lackey's ``M``:
a read-modify-write of one address). Sizes are not recorded: fetches are taken as 4 bytes and
data accesses as 8 (:mod:`.protocol`). ChampSim traces are per core with no thread id:
everything is thread 0.

Decoding is a numpy structured dtype over the bytes, vectorised per chunk. A file whose length
is not a multiple of 64 ends in a partial record: an error naming its byte offset, since it
usually means a truncated download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import TraceError
from ..native import OP_IFETCH, OP_LOAD, OP_MODIFY, OP_STORE, Batch, TraceMeta
from .protocol import DATA_SIZE, IFETCH_SIZE, ReadStats, make_batch
from .streams import CHUNK_BYTES, iter_bytes

RECORD_BYTES = 64
CHAMPSIM_DTYPE = np.dtype([
    ("ip", "<u8"),
    ("is_branch", "u1"),
    ("branch_taken", "u1"),
    ("dst_regs", "u1", (2,)),
    ("src_regs", "u1", (4,)),
    ("dst_mem", "<u8", (2,)),
    ("src_mem", "<u8", (4,)),
])
assert CHAMPSIM_DTYPE.itemsize == RECORD_BYTES

# Columns of the per-instruction slot matrix: ip, src_mem[0..3], dst_mem[0..1].
_SLOT_OPS = np.array([OP_IFETCH] + [OP_LOAD] * 4 + [OP_STORE] * 2, np.uint8)
_SLOT_SIZES = np.array([IFETCH_SIZE] + [DATA_SIZE] * 6, np.uint8)


def records_to_batch(rec: np.ndarray) -> Batch:
    """Native records of an array of ChampSim records, in program order."""
    n = len(rec)
    slots = np.empty((n, 7), np.uint64)
    slots[:, 0] = rec["ip"]
    slots[:, 1:5] = rec["src_mem"]
    slots[:, 5:7] = rec["dst_mem"]
    keep = slots != 0
    keep[:, 0] = True
    ops = np.broadcast_to(_SLOT_OPS, (n, 7)).copy()
    for d in (5, 6):
        for s in (1, 2, 3, 4):
            same = keep[:, d] & keep[:, s] & (slots[:, d] == slots[:, s])
            ops[same, s] = OP_MODIFY
            keep[same, d] = False
    sizes = np.broadcast_to(_SLOT_SIZES, (n, 7))
    return make_batch(ops[keep], slots[keep], sizes[keep])


def looks_like_champsim(head: bytes, records: int = 64) -> bool:
    """Heuristic for detection: the first records have boolean branch flags and a nonzero ip.

    Random bytes pass for one record with odds 3 in 65536, so a few records make a false
    positive negligible; a file too short for one record is not recognised.
    """
    n = min(len(head) // RECORD_BYTES, records)
    if n == 0:
        return False
    rec = np.frombuffer(head, CHAMPSIM_DTYPE, count=n)
    br, taken = rec["is_branch"], rec["branch_taken"]
    return bool(np.all(br <= 1) and np.all(taken <= br) and np.all(rec["ip"] != 0))


class ChampSimReader:
    """Streams a ChampSim trace (plain or compressed) as native batches of thread 0."""

    format_name = "champsim"

    def __init__(self, path: str | Path, chunk_bytes: int = CHUNK_BYTES):
        self.path = Path(path)
        self.chunk_bytes = max(RECORD_BYTES, chunk_bytes - chunk_bytes % RECORD_BYTES)
        self.stats = ReadStats()

    def base_meta(self) -> TraceMeta:
        return TraceMeta(source=self.format_name, threads=1)

    def iter_batches(self) -> Iterator[Batch]:
        stats = self.stats
        carry = b""
        offset = 0  # byte offset of the first byte of ``carry``
        for data in iter_bytes(self.path, self.chunk_bytes):
            block = carry + data if carry else data
            whole = len(block) - len(block) % RECORD_BYTES
            if whole:
                rec = np.frombuffer(block, CHAMPSIM_DTYPE, count=whole // RECORD_BYTES)
                batch = records_to_batch(rec)
                stats.lines += len(rec)
                stats.records += len(batch)
                yield batch
            carry = block[whole:]
            offset += whole
        if carry:
            raise TraceError(self.path, f"truncated ChampSim record at byte offset {offset}: "
                                        f"{len(carry)} of {RECORD_BYTES} bytes")
