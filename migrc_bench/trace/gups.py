"""``trace gen gups``: HPCC RandomAccess (GUPS) as a memory-access trace.

The published algorithm (HPCC RandomAccess, ``core_single_cpu.c``; the scalar loop its comment
gives): a table of 2^n 64-bit words, ``Table[i] = i``, then NUPDATE = 4 × 2^n updates

    ran = (ran << 1) ^ ((s64) ran < 0 ? POLY : 0);      POLY = 7
    Table[ran & (2^n - 1)] ^= ran;

over HPCC's random stream, whose k-th element ``HPCC_starts(k)`` computes by repeated squaring.
OpenMP thread t of T runs updates [U·t/T, U·(t+1)/T) of the one stream, starting from
``HPCC_starts(first update)``, as the MPI version splits the stream across processes.
Write-heavy and uniform: every page of the table is written all the time, the negative
control for migrc, which can only defer the flush of pages nobody wrote since they were mapped.

The trace is what ``benchmarks/programs/gups.c`` (the same algorithm in C) does in its
``update`` function, compiled by GCC 12 -O2: per update one 8-byte read-modify-write of the
table (``xor %rax,(%rbx,%rdx,8)``), ``ran`` in a register. Per thread, before its first update,
the prologue of the OpenMP outlined function (five pushes, four loads of the shared argument
block on the master's stack, three calls) and ``HPCC_starts`` (64 stores of its ``m2`` table on
the stack, then one load of ``m2[j]`` per set bit j of each squaring); after its last update
five pops and the return. Instruction addresses are that build's (text offsets from
``objdump -d gups``), so the real trace and the generated one can be compared site by site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from ..errors import UserError
from .gencore import (CODE_BASE, OP_LOAD, OP_MODIFY, OP_STORE, BlockFiller, CodeMap, GenParams,
                      GenResult, Heap, Progress, emit, generate_trace, split_evenly,
                      stack_regions, stack_tops)
from .native import ROW_GROUP_ROWS, TraceMeta
from .sizes import SizeEstimate, estimate

POLY = np.uint64(7)
PERIOD = 1317624576693539401
MAX_THREADS = 65_535

# Text of the reference build (gcc 12.2 -O2 -fopenmp -no-pie), offsets from .text 0x401000.
FUNCTIONS = {"main": (0x0B0, 0x12A), "starts": (0x2D0, 0x110),
             "update._omp_fn.0": (0x3E0, 0x91), "update": (0x480, 0x2F)}
_F = "update._omp_fn.0"
_SITES = (
    ("push_r14", _F, 0x00, 2, OP_STORE, 8), ("push_r13", _F, 0x05, 2, OP_STORE, 8),
    ("push_r12", _F, 0x07, 2, OP_STORE, 8), ("push_rbp", _F, 0x09, 1, OP_STORE, 8),
    ("push_rbx", _F, 0x0A, 1, OP_STORE, 8),
    ("arg_updates", _F, 0x0B, 4, OP_LOAD, 8), ("arg_mask", _F, 0x0F, 4, OP_LOAD, 8),
    ("arg_table", _F, 0x13, 3, OP_LOAD, 8),
    ("call_thread_num", _F, 0x16, 5, OP_STORE, 8), ("call_num_threads", _F, 0x1E, 5, OP_STORE, 8),
    ("arg_first", _F, 0x26, 4, OP_LOAD, 8), ("call_starts", _F, 0x4C, 5, OP_STORE, 8),
    ("m2_store", "starts", 0x6C, 3, OP_STORE, 8), ("m2_load", "starts", 0xC6, 4, OP_LOAD, 8),
    ("starts_ret", "starts", 0xFF, 1, OP_LOAD, 8),
    ("table_xor", _F, 0x7F, 4, OP_MODIFY, 8),
    ("pop_rbx", _F, 0x88, 1, OP_LOAD, 8), ("pop_rbp", _F, 0x89, 1, OP_LOAD, 8),
    ("pop_r12", _F, 0x8A, 2, OP_LOAD, 8), ("pop_r13", _F, 0x8C, 2, OP_LOAD, 8),
    ("pop_r14", _F, 0x8E, 2, OP_LOAD, 8), ("fn_ret", _F, 0x90, 1, OP_LOAD, 8),
)
CODE = CodeMap(FUNCTIONS, _SITES, CODE_BASE)
S = CODE.ids
S_PUSH0, S_ARG0, S_CALL_TN, S_CALL_NT, S_ARG_FIRST, S_CALL_STARTS = (
    S["push_r14"], S["arg_updates"], S["call_thread_num"], S["call_num_threads"],
    S["arg_first"], S["call_starts"])
S_M2_STORE, S_M2_LOAD, S_STARTS_RET, S_XOR, S_POP0, S_RET = (
    S["m2_store"], S["m2_load"], S["starts_ret"], S["table_xor"], S["pop_rbx"], S["fn_ret"])

# Stack: the OpenMP function's entry stack pointer below each thread's stack top (thread 0 runs
# it under main -> update -> GOMP_parallel), the argument block in update()'s frame on the
# master's stack, HPCC_starts' m2[64] 0x78 bytes below its stack pointer (the red zone).
ENTRY_SP_MASTER = 0x1C8
ENTRY_SP_WORKER = 0x0F8
ARG_BLOCK = 0x0F0            # below the master's stack top: {table, mask, updates, first}
MAX_PROLOGUE = 2 * (12 + 64 + 63 * 64 + 1 + 6)


@dataclass(frozen=True)
class GupsParams(GenParams):
    log2_size: int
    updates: int
    threads: int
    seed: int

    @property
    def table_words(self) -> int:
        return 1 << self.log2_size

    @property
    def work_units(self) -> int:
        return self.updates

    generator = "gups"
    work_unit = "update"

    def extra_json(self) -> dict[str, Any]:
        return {"table_words": self.table_words, "poly": int(POLY)}


def click_params() -> list:
    import click

    return [
        click.Option(["-n", "--log2-size", "log2_size"], type=click.IntRange(3, 40), default=24,
                     show_default=True, help="Table of 2^N 64-bit words (HPCC's log2 TableSize)."),
        click.Option(["-u", "--updates"], type=click.IntRange(1, 2**62), default=None,
                     help="Updates [default: 4 x 2^N, HPCC's NUPDATE]."),
        click.Option(["-t", "--threads"], type=click.IntRange(1, MAX_THREADS), default=1,
                     show_default=True, help="OpenMP threads; thread t runs updates "
                                             "[U t/T, U (t+1)/T) of the one stream."),
        click.Option(["--seed"], type=click.IntRange(0, PERIOD - 1), default=0, show_default=True,
                     help="Index of the stream's first element (0: HPCC's own stream)."),
    ]


def resolve_params(log2_size: int = 24, updates: int | None = None, threads: int = 1,
                   seed: int = 0) -> GupsParams:
    if not 3 <= int(log2_size) <= 40:
        raise UserError(f"log2 table size (-n) must be between 3 and 40, got {log2_size}")
    if not 1 <= int(threads) <= MAX_THREADS:
        raise UserError(f"threads (-t) must be between 1 and {MAX_THREADS}, got {threads}")
    if not 0 <= int(seed) < PERIOD:
        raise UserError(f"seed must be between 0 and {PERIOD - 1}, got {seed}")
    n_updates = 4 << int(log2_size) if updates is None else int(updates)
    if n_updates < 1:
        raise UserError(f"updates (-u) must be at least 1, got {updates}")
    return GupsParams(int(log2_size), n_updates, int(threads), int(seed))


# ---- the random stream -----------------------------------------------------------------------
@nb.njit(inline="always")
def _next(ran):
    top = ran >> np.uint64(63)
    return (ran << np.uint64(1)) ^ (POLY * top)


@nb.njit(inline="always")
def _starts(n, out, pos, tid, sites, m2, m2_addr, rec):
    """HPCC_starts(n) with its stack accesses; returns (pos, ran)."""
    while n < 0:
        n += PERIOD
    while n > PERIOD:
        n -= PERIOD
    if n == 0:
        return pos, np.uint64(1)
    temp = np.uint64(1)
    for i in range(64):
        m2[i] = temp
        if rec:
            pos = emit(out, pos, True, tid, sites, S_M2_STORE, m2_addr + 8 * i)
        temp = _next(temp)
        temp = _next(temp)
    i = 62
    while i >= 0:
        if (n >> i) & 1:
            break
        i -= 1
    ran = np.uint64(2)
    while i > 0:
        temp = np.uint64(0)
        for j in range(64):
            if (ran >> np.uint64(j)) & np.uint64(1):
                temp ^= m2[j]
                if rec:
                    pos = emit(out, pos, True, tid, sites, S_M2_LOAD, m2_addr + 8 * j)
        ran = temp
        i -= 1
        if (n >> i) & 1:
            ran = _next(ran)
    return pos, ran


@nb.njit(cache=True, nogil=True)
def hpcc_starts(n):
    """HPCC_starts(n): the n-th element of the stream (for tests and the reference program)."""
    m2 = np.zeros(64, np.uint64)
    empty = np.zeros((1, 4), np.int64)
    out = (np.empty(0, np.uint16), np.empty(0, np.uint8), np.empty(0, np.uint64),
           np.empty(0, np.uint8))
    return _starts(n, out, 0, 0, empty, m2, 0, False)[1]


# ---- the kernel ------------------------------------------------------------------------------
C_THREADS, C_MASK, C_TABLE, C_FIRST, C_ARGS, C_SEQ_END = range(6)


@nb.njit(cache=True, nogil=True, _nrt=False)
def _fill(cfg, st, ran, lo, cnt, entry_sp, m2, sites, o_tid, o_op, o_addr, o_size, pos):
    """Updates from position st[0] until the block is nearly full; returns the new position."""
    out = (o_tid, o_op, o_addr, o_size)
    cap = len(o_tid)
    threads = cfg[C_THREADS]
    mask = np.uint64(cfg[C_MASK])
    table = np.uint64(cfg[C_TABLE])
    args = cfg[C_ARGS]
    seq = st[0]
    n_seq = cfg[C_SEQ_END]
    while seq < n_seq:
        if pos + MAX_PROLOGUE + 2 > cap:
            break
        t = seq % threads
        k = seq // threads
        seq += 1
        if k >= cnt[t]:
            continue
        sp = entry_sp[t]
        if k == 0:  # the outlined function's prologue and HPCC_starts
            for j in range(5):
                pos = emit(out, pos, True, t, sites, S_PUSH0 + j, sp - 8 * (j + 1))
            for j in range(3):
                pos = emit(out, pos, True, t, sites, S_ARG0 + j, args + 8 * (2 - j))
            pos = emit(out, pos, True, t, sites, S_CALL_TN, sp - 48)
            pos = emit(out, pos, True, t, sites, S_CALL_NT, sp - 48)
            pos = emit(out, pos, True, t, sites, S_ARG_FIRST, args + 24)
            pos = emit(out, pos, True, t, sites, S_CALL_STARTS, sp - 48)
            m2_addr = sp - 48 - 0x190 - 0x78
            pos, r0 = _starts(cfg[C_FIRST] + lo[t], out, pos, t, sites, m2, m2_addr, True)
            pos = emit(out, pos, True, t, sites, S_STARTS_RET, sp - 48)
            ran[t] = r0
        r = _next(ran[t])
        ran[t] = r
        pos = emit(out, pos, True, t, sites, S_XOR, table + np.uint64(8) * (r & mask))
        if k == cnt[t] - 1:
            for j in range(5):
                pos = emit(out, pos, True, t, sites, S_POP0 + j, sp - 8 * (5 - j))
            pos = emit(out, pos, True, t, sites, S_RET, sp)
    st[0] = seq
    return pos


# ---- the trace -------------------------------------------------------------------------------
def layout(p: GupsParams) -> tuple[Heap, tuple[int, ...]]:
    heap = Heap()
    heap.alloc("table", p.table_words, 8)
    return heap, stack_tops(p.threads)


def thread_ranges(p: GupsParams) -> tuple[np.ndarray, np.ndarray]:
    """(first update, count) per thread: [U t/T, U (t+1)/T)."""
    return split_evenly(p.updates, p.threads)


def expected_records(p: GupsParams) -> float:
    """Two records per update, plus ~2 x 2100 per thread for the prologue and HPCC_starts."""
    return 2.0 * p.updates + p.threads * 2.0 * (12 + 64 + 62 * 32 + 7)


def size_estimate(p: GupsParams) -> SizeEstimate:
    """For ``trace.sizes``: HPCC's default is 4 updates per word, so -n alone sets the length."""
    return estimate(f"{p.updates:,} updates of a 2^{p.log2_size}-word table",
                    expected_records(p), "-u", p.updates)


def generate(out: str | Path, p: GupsParams, progress: Progress | None = None,
             block_records: int = ROW_GROUP_ROWS) -> GenResult:
    heap, tops = layout(p)
    regions = [CODE.region(), heap.region("table")] + stack_regions(tops)
    meta = TraceMeta(source="gups-synth", threads=p.threads, regions=tuple(regions),
                     generator=p.to_json(), extra={"arrays": json.dumps(heap.to_json())})
    lo, cnt = thread_ranges(p)
    entry = np.array([top - (ENTRY_SP_MASTER if t == 0 else ENTRY_SP_WORKER)
                      for t, top in enumerate(tops)], np.int64)
    cfg = np.zeros(6, np.int64)
    cfg[[C_THREADS, C_MASK, C_TABLE, C_FIRST, C_ARGS, C_SEQ_END]] = [
        p.threads, p.table_words - 1, heap.arrays["table"].start, p.seed, tops[0] - ARG_BLOCK,
        int(cnt.max()) * p.threads]
    st = np.zeros(1, np.int64)
    ran = np.zeros(p.threads, np.uint64)
    m2 = np.zeros(64, np.uint64)
    sites = CODE.site_table()
    filler = BlockFiller(max(block_records, 2 * MAX_PROLOGUE + 4))

    def blocks():
        yield from filler.run(_fill, lambda: st[0] >= cfg[C_SEQ_END], cfg, st, ran, lo, cnt,
                              entry, m2, sites)
        yield from filler.flush()

    def done() -> int:
        return min(p.updates, int(st[0]) * p.updates // max(1, int(cfg[C_SEQ_END])))

    return generate_trace(out, p, meta, blocks(), done, progress)

