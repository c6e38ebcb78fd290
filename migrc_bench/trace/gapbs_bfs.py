"""``trace gen gapbs-bfs``: GAP's direction-optimising BFS (``bfs``) on its Kronecker graph.

``DOBFS`` of gapbs b5e3e19 (src/bfs.cc; Beamer, Asanović and Patterson, SC'12), one trial per
source from GAP's ``SourcePicker``:

* ``InitParent``: parent[u] = -degree(u) (or -1), static schedule;
* top-down steps (``TDStep``, static over the frontier in the ``SlidingQueue``): each
  frontier vertex claims its unvisited neighbours with a compare-and-swap on parent[v] and
  pushes them onto its thread's 16384-entry ``QueueBuffer``, flushed into the shared queue;
* when the edges leaving the frontier exceed 1/15 (alpha) of those still unexplored, the
  frontier becomes a bitmap (``QueueToBitmap``) and bottom-up steps (``BUStep``,
  schedule(dynamic, 1024) over all vertices) let every unvisited vertex look for a parent in
  the front bitmap, until the frontier shrinks and is under n/18 (beta); then
  ``BitmapToQueue`` and top-down again;
* the final loop sets the unvisited vertices' parent to -1.

The control flow is the real one (the same graph, sources and alpha/beta tests, so the same
sequence of top-down and bottom-up steps); threads are interleaved as ``gencore`` does, the
compare-and-swap races resolved in that order. The accesses are those of the code g++ 12.2 -O3
makes of it (site offsets from ``objdump -d bfs``): the compiler reloads the graph, bitmap and
pvector fields from the master's stack inside the loops (they may alias the stores), so a
bottom-up step reads the front bitmap's start pointer and a top-down step the parent array's
for every edge, as the real program does. Bitmap resets are glibc's AVX2 memset, queue-buffer
flushes its memcpy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from ..errors import UserError
from .gapbs_common import (B_ARGS, B_FRAME, B_GRAPH, B_SP, G_IN_INDEX, G_NUM_NODES, G_OUT_INDEX,
                           GapParams, build_graph, check_common, common_click_params, emit_seq,
                           graph_layout, pack_sequences, seq_index, sequence)
from .gapbs_graph import pick_sources
from .gencore import (CODE_BASE, LIB_BASE, OP_LOAD, OP_MODIFY, OP_STORE, STATIC, BlockFiller,
                      CodeMap, GenResult, Progress, dynamic_chunk_bounds, emit, emit_memcpy,
                      emit_memset, generate_trace, join_site_tables, loop_step,
                      stack_regions)
from .native import ROW_GROUP_ROWS, TraceMeta
from .sizes import SizeEstimate

ALPHA, BETA = 15, 18
BU_CHUNK = 1024
QBUF = 16384                     # QueueBuffer's local_size
L, S, M = OP_LOAD, OP_STORE, OP_MODIFY

# Text of the reference build (g++ 12.2 -O3 -fopenmp -no-pie), offsets from 0x403000.
FN_BU, FN_Q2B, FN_INIT, FN_FINAL, FN_B2Q, FN_TD, FN_MAIN = (
    "BUStep._omp_fn.0", "QueueToBitmap._omp_fn.0", "InitParent._omp_fn.0", "DOBFS._omp_fn.0",
    "BitmapToQueue._omp_fn.0", "TDStep._omp_fn.0", "DOBFS")
FUNCTIONS = {FN_BU: (0x1360, 0x12F), FN_Q2B: (0x1490, 0xD0), FN_INIT: (0x1560, 0x8F),
             FN_FINAL: (0x15F0, 0x77), FN_B2Q: (0x1EE0, 0x142), FN_TD: (0x2030, 0x1E3),
             FN_MAIN: (0x2C00, 0x7C4)}


def _pushes(fn: str, offsets: list[int], isizes: list[int]) -> list:
    return [(f"{fn}:push{i}", fn, off, isz, S, 8) for i, (off, isz) in enumerate(zip(offsets,
                                                                                       isizes))]


def _pops(fn: str, offsets: list[int], isizes: list[int]) -> list:
    return [(f"{fn}:pop{i}", fn, off, isz, L, 8) for i, (off, isz) in enumerate(zip(offsets,
                                                                                      isizes))]


_SITES = (
    # InitParent (static over vertices)
    _pushes(FN_INIT, [0x0, 0x2, 0x6], [2, 1, 1]) + [
        ("ip_arg_g", FN_INIT, 0x7, 3, L, 8), ("ip_call_nt", FN_INIT, 0xA, 5, S, 8),
        ("ip_call_tn", FN_INIT, 0x11, 5, S, 8), ("ip_num_nodes", FN_INIT, 0x18, 5, L, 8),
        ("ip_arg_parent", FN_INIT, 0x2F, 4, L, 8), ("ip_out_index", FN_INIT, 0x33, 5, L, 8),
        ("ip_parent_start", FN_INIT, 0x3B, 3, L, 8),
        ("ip_hi", FN_INIT, 0x40, 5, L, 8), ("ip_lo", FN_INIT, 0x45, 4, L, 8),
        ("ip_set", FN_INIT, 0x57, 3, S, 4), ("ip_set_isolated", FN_INIT, 0x70, 7, S, 4)]
    + _pops(FN_INIT, [0x62, 0x63, 0x64, 0x66], [1, 1, 2, 1])
    # TDStep (static over the frontier)
    + _pushes(FN_TD, [0x0, 0x2, 0x4, 0x9, 0xB, 0xC], [2, 2, 2, 2, 1, 1]) + [
        ("td_arg_queue", FN_TD, 0x11, 4, L, 8), ("td_call_new", FN_TD, 0x1A, 5, S, 8),
        ("td_arg_queue2", FN_TD, 0x22, 4, L, 8), ("td_shared", FN_TD, 0x26, 3, L, 8),
        ("td_out_start", FN_TD, 0x29, 4, L, 8), ("td_out_end", FN_TD, 0x2D, 4, L, 8),
        ("td_call_nt", FN_TD, 0x42, 5, S, 8), ("td_call_tn", FN_TD, 0x4A, 5, S, 8),
        ("td_spill_in", FN_TD, 0x95, 5, S, 8),
        ("td_arg_g", FN_TD, 0xA0, 4, L, 8), ("td_u", FN_TD, 0xA4, 3, L, 4),
        ("td_out_index", FN_TD, 0xA7, 4, L, 8), ("td_hi", FN_TD, 0xB2, 4, L, 8),
        ("td_lo", FN_TD, 0xB6, 5, L, 8),
        ("td_arg_parent", FN_TD, 0xD1, 4, L, 8), ("td_v", FN_TD, 0xD5, 3, L, 4),
        ("td_parent_start", FN_TD, 0xD8, 3, L, 8), ("td_parent_v", FN_TD, 0xE2, 2, L, 4),
        ("td_cas", FN_TD, 0xEA, 5, M, 4), ("td_push", FN_TD, 0x108, 3, S, 4),
        ("td_scout", FN_TD, 0x11F, 5, M, 8), ("td_shared2", FN_TD, 0x124, 3, L, 8),
        ("td_reload_in", FN_TD, 0x127, 5, L, 8), ("td_xadd", FN_TD, 0x12F, 5, M, 8),
        ("td_call_memcpy", FN_TD, 0x141, 5, S, 8),
        ("td_f_spill", FN_TD, 0x178, 5, S, 8), ("td_f_xadd", FN_TD, 0x19D, 5, M, 8),
        ("td_f_call_memcpy", FN_TD, 0x1AE, 5, S, 8), ("td_f_reload", FN_TD, 0x1B3, 5, L, 8)]
    + _pops(FN_TD, [0x163, 0x164, 0x165, 0x167, 0x169, 0x16B], [1, 1, 2, 2, 2, 2])
    # BUStep (dynamic 1024 over vertices)
    + _pushes(FN_BU, [0x0, 0xC, 0xE, 0x10, 0x15, 0x16], [2, 2, 2, 2, 1, 1]) + [
        ("bu_arg_g", FN_BU, 0x1D, 3, L, 8), ("bu_num_nodes", FN_BU, 0x2C, 4, L, 4),
        ("bu_call_start", FN_BU, 0x36, 5, S, 8), ("bu_spill", FN_BU, 0x43, 5, S, 8),
        ("bu_c_start", FN_BU, 0x50, 5, L, 4), ("bu_c_parent", FN_BU, 0x55, 5, L, 8),
        ("bu_c_front", FN_BU, 0x5A, 5, L, 8), ("bu_c_end", FN_BU, 0x5F, 5, L, 4),
        ("bu_c_parent_start", FN_BU, 0x68, 3, L, 8), ("bu_c_g", FN_BU, 0x6B, 4, L, 8),
        ("bu_parent_u", FN_BU, 0x90, 4, L, 4), ("bu_in_index", FN_BU, 0x98, 4, L, 8),
        ("bu_hi", FN_BU, 0x9C, 4, L, 8), ("bu_lo", FN_BU, 0xA0, 4, L, 8),
        ("bu_front_start", FN_BU, 0xA9, 4, L, 8), ("bu_v", FN_BU, 0xB9, 4, L, 4),
        ("bu_front_word", FN_BU, 0xC3, 4, L, 8), ("bu_arg_next", FN_BU, 0xCD, 5, L, 8),
        ("bu_set_parent", FN_BU, 0xD5, 4, S, 4), ("bu_next_start", FN_BU, 0xEA, 3, L, 8),
        ("bu_next_word", FN_BU, 0xF3, 4, M, 8),
        ("bu_t_reload", FN_BU, 0x100, 5, L, 8), ("bu_t_call_next", FN_BU, 0x108, 5, S, 8),
        ("bu_e_call_end", FN_BU, 0x115, 5, S, 8), ("bu_e_awake", FN_BU, 0x11A, 6, M, 8)]
    + _pops(FN_BU, [0x124, 0x125, 0x126, 0x128, 0x12A, 0x12C, 0x12E], [1, 1, 2, 2, 2, 2, 1])
    # QueueToBitmap (static over the frontier)
    + _pushes(FN_Q2B, [0x0, 0x2, 0x4, 0x5], [2, 2, 1, 1]) + [
        ("qb_arg_queue", FN_Q2B, 0xA, 3, L, 8), ("qb_shared", FN_Q2B, 0xD, 3, L, 8),
        ("qb_out_start", FN_Q2B, 0x10, 4, L, 8), ("qb_out_end", FN_Q2B, 0x14, 4, L, 8),
        ("qb_call_nt", FN_Q2B, 0x2C, 5, S, 8), ("qb_call_tn", FN_Q2B, 0x34, 5, S, 8),
        ("qb_u", FN_Q2B, 0x80, 4, L, 4), ("qb_arg_bm", FN_Q2B, 0x86, 4, L, 8),
        ("qb_bm_start", FN_Q2B, 0x98, 3, L, 8), ("qb_word", FN_Q2B, 0x9E, 3, L, 8),
        ("qb_cas", FN_Q2B, 0xA7, 5, M, 8)]
    + _pops(FN_Q2B, [0xBB, 0xBC, 0xBD, 0xBF, 0xC1], [1, 1, 2, 2, 1])
    # BitmapToQueue (static over vertices)
    + _pushes(FN_B2Q, [0x0, 0x2, 0x4, 0x6, 0xB, 0xC], [2, 2, 2, 2, 1, 1]) + [
        ("bq_arg_queue", FN_B2Q, 0x11, 4, L, 8), ("bq_call_new", FN_B2Q, 0x1A, 5, S, 8),
        ("bq_call_nt", FN_B2Q, 0x22, 5, S, 8), ("bq_call_tn", FN_B2Q, 0x2A, 5, S, 8),
        ("bq_arg_g", FN_B2Q, 0x31, 4, L, 8), ("bq_num_nodes", FN_B2Q, 0x35, 4, L, 8),
        ("bq_arg_bm", FN_B2Q, 0x79, 5, L, 8), ("bq_bm_start", FN_B2Q, 0x88, 3, L, 8),
        ("bq_word", FN_B2Q, 0x8B, 4, L, 8), ("bq_push", FN_B2Q, 0xAA, 3, S, 4),
        ("bq_shared", FN_B2Q, 0xB2, 4, L, 8), ("bq_xadd", FN_B2Q, 0xB9, 5, M, 8),
        ("bq_call_memcpy", FN_B2Q, 0xCB, 5, S, 8)]
    + _pops(FN_B2Q, [0xD7, 0xD8, 0xD9, 0xDB, 0xDD, 0xDF], [1, 1, 2, 2, 2, 2])
    # DOBFS's final loop (static over vertices)
    + _pushes(FN_FINAL, [0x0, 0x4], [1, 1]) + [
        ("fl_call_nt", FN_FINAL, 0x9, 5, S, 8), ("fl_call_tn", FN_FINAL, 0x10, 5, S, 8),
        ("fl_arg_g", FN_FINAL, 0x17, 4, L, 8), ("fl_num_nodes", FN_FINAL, 0x1B, 4, L, 8),
        ("fl_arg_parent", FN_FINAL, 0x32, 4, L, 8), ("fl_parent_start", FN_FINAL, 0x3E, 3, L, 8),
        ("fl_parent", FN_FINAL, 0x50, 3, L, 4), ("fl_reset", FN_FINAL, 0x55, 6, S, 4)]
    + _pops(FN_FINAL, [0x68, 0x69, 0x6A], [1, 1, 1])
    # DOBFS itself: its frame, the parent/queue set-up, the step bookkeeping
    + [("db_store", FN_MAIN, 0x20, 5, S, 8), ("db_load", FN_MAIN, 0x90, 4, L, 8),
       ("db_parent_src", FN_MAIN, 0x17A, 4, S, 4), ("db_push_src", FN_MAIN, 0x196, 3, S, 4),
       ("db_decide", FN_MAIN, 0x2B0, 7, L, 8), ("db_bu_load", FN_MAIN, 0x364, 5, L, 8),
       ("db_bu_store", FN_MAIN, 0x395, 8, S, 8), ("db_swap_load", FN_MAIN, 0x3BE, 6, L, 16),
       ("db_swap_store", FN_MAIN, 0x3D2, 5, S, 16), ("db_flag", FN_MAIN, 0x3E1, 5, L, 1),
       ("db_td_load", FN_MAIN, 0x485, 5, L, 8), ("db_td_store", FN_MAIN, 0x49D, 8, S, 8),
       ("db_td_window", FN_MAIN, 0x4DC, 8, S, 16), ("db_td_edges", FN_MAIN, 0x4F4, 6, M, 8),
       ("db_pop", FN_MAIN, 0x300, 1, L, 8)]
)
CODE = CodeMap(FUNCTIONS, _SITES, CODE_BASE)
LIBC = CodeMap({"__memmove_avx_unaligned_erms": (0x1A0, 0x6C0),
                "__memset_avx2_unaligned_erms": (0x9A0, 0x2A0)},
               (("memcpy_load", "__memmove_avx_unaligned_erms", 0x20, 4, L, 32),
                ("memcpy_store", "__memmove_avx_unaligned_erms", 0x40, 4, S, 32),
                ("memcpy_ret", "__memmove_avx_unaligned_erms", 0x5A, 1, L, 8),
                ("memset_store", "__memset_avx2_unaligned_erms", 0x30, 4, S, 32),
                ("memset_ret", "__memset_avx2_unaligned_erms", 0x44, 1, L, 8)),
               LIB_BASE, "libc")
SITES, SITE = join_site_tables(CODE, LIBC)

# frame offsets (DOBFS's rsp): bitmaps curr 0x50 and front 0x60 {start_, end_}, the queue
# {shared, shared_in, out_start, out_end} at 0x70; parent is DOBFS's return value (NRVO), in
# its caller's frame above.
CURR_OBJ, FRONT_OBJ, QUEUE_OBJ, PARENT_OBJ = 0x50, 0x60, 0x70, 0x120


def _fn_seqs(fn: str, prefix_regs: int, body: list, tail: list, frame: int = 0):
    pushes = [(f"{fn}:push{i}", B_SP, -8 * (i + 1)) for i in range(prefix_regs)]
    n_pops = sum(1 for n in SITE if n.startswith(f"{fn}:pop"))
    pops = [(f"{fn}:pop{i}", B_SP, -8 * prefix_regs + 8 * i) for i in range(n_pops)]
    return sequence(SITE, pushes + body), sequence(SITE, tail + pops)


_SP = lambda n: -8 * n  # noqa: E731 - the outlined function's rsp after n pushes
SEQ_INIT = _fn_seqs(FN_INIT, 3, [
    ("ip_arg_g", B_ARGS, 0), ("ip_call_nt", B_SP, _SP(3) - 8), ("ip_call_tn", B_SP, _SP(3) - 8),
    ("ip_num_nodes", B_GRAPH, G_NUM_NODES), ("ip_arg_parent", B_ARGS, 8),
    ("ip_out_index", B_GRAPH, G_OUT_INDEX), ("ip_parent_start", B_FRAME, PARENT_OBJ)], [])
SEQ_TD = _fn_seqs(FN_TD, 6, [
    ("td_arg_queue", B_ARGS, 0x10), ("td_call_new", B_SP, _SP(6) - 0x40),
    ("td_arg_queue2", B_ARGS, 0x10), ("td_shared", B_FRAME, QUEUE_OBJ),
    ("td_out_start", B_FRAME, QUEUE_OBJ + 0x10), ("td_out_end", B_FRAME, QUEUE_OBJ + 0x18),
    ("td_call_nt", B_SP, _SP(6) - 0x40), ("td_call_tn", B_SP, _SP(6) - 0x40),
    ("td_spill_in", B_SP, _SP(6) - 0x38 + 0x28)], [
    ("td_scout", B_ARGS, 0x18), ("td_shared2", B_FRAME, QUEUE_OBJ),
    ("td_reload_in", B_SP, _SP(6) - 0x38 + 0x28), ("td_xadd", B_FRAME, QUEUE_OBJ + 8)])
SEQ_TD_FLUSH = (sequence(SITE, [("td_f_spill", B_SP, _SP(6) - 0x38 + 8 * i) for i in range(5)]
                         + [("td_shared2", B_FRAME, QUEUE_OBJ),
                            ("td_reload_in", B_SP, _SP(6) - 0x38 + 0x28),
                            ("td_f_xadd", B_FRAME, QUEUE_OBJ + 8),
                            ("td_f_call_memcpy", B_SP, _SP(6) - 0x40)]),
                sequence(SITE, [("td_f_reload", B_SP, _SP(6) - 0x38 + 8 * i) for i in range(5)]))
SEQ_BU = _fn_seqs(FN_BU, 6, [
    ("bu_arg_g", B_ARGS, 0), ("bu_num_nodes", B_GRAPH, G_NUM_NODES),
    ("bu_call_start", B_SP, _SP(6) - 0x30), ("bu_spill", B_SP, _SP(6) - 0x28 + 8)], [
    ("bu_e_call_end", B_SP, _SP(6) - 0x30), ("bu_e_awake", B_ARGS, 0x20)])
SEQ_BU_CHUNK = (sequence(SITE, [
    ("bu_c_start", B_SP, _SP(6) - 0x28 + 0x10), ("bu_c_parent", B_ARGS, 8),
    ("bu_c_front", B_ARGS, 0x10), ("bu_c_end", B_SP, _SP(6) - 0x28 + 0x18),
    ("bu_c_parent_start", B_FRAME, PARENT_OBJ), ("bu_c_g", B_ARGS, 0)]),
    sequence(SITE, [("bu_t_reload", B_SP, _SP(6) - 0x28 + 8),
                    ("bu_t_call_next", B_SP, _SP(6) - 0x30)]))
SEQ_Q2B = _fn_seqs(FN_Q2B, 4, [
    ("qb_arg_queue", B_ARGS, 0), ("qb_shared", B_FRAME, QUEUE_OBJ),
    ("qb_out_start", B_FRAME, QUEUE_OBJ + 0x10), ("qb_out_end", B_FRAME, QUEUE_OBJ + 0x18),
    ("qb_call_nt", B_SP, _SP(4) - 0x10), ("qb_call_tn", B_SP, _SP(4) - 0x10)], [])
SEQ_B2Q = _fn_seqs(FN_B2Q, 6, [
    ("bq_arg_queue", B_ARGS, 0x10), ("bq_call_new", B_SP, _SP(6) - 0x20),
    ("bq_call_nt", B_SP, _SP(6) - 0x20), ("bq_call_tn", B_SP, _SP(6) - 0x20),
    ("bq_arg_g", B_ARGS, 0), ("bq_num_nodes", B_GRAPH, G_NUM_NODES)], [
    ("bq_shared", B_FRAME, QUEUE_OBJ), ("bq_xadd", B_FRAME, QUEUE_OBJ + 8)])
SEQ_FINAL = _fn_seqs(FN_FINAL, 2, [
    ("fl_call_nt", B_SP, _SP(2) - 0x10), ("fl_call_tn", B_SP, _SP(2) - 0x10),
    ("fl_arg_g", B_ARGS, 0), ("fl_num_nodes", B_GRAPH, G_NUM_NODES), ("fl_arg_parent", B_ARGS, 8),
    ("fl_parent_start", B_FRAME, PARENT_OBJ)], [])
# DOBFS's own accesses (counts as in the real trace: ~100 per trial, ~20 per step)
SEQ_TRIAL_START = sequence(SITE, [("db_store", B_FRAME, 0xC0 + 8 * i) for i in range(6)] + [
    ("db_store", B_FRAME, 0x90 + 8 * (i % 6)) for i in range(30)] + [
    ("db_load", B_FRAME, 8 * (i % 8)) for i in range(20)] + [
    ("db_store", B_FRAME, PARENT_OBJ + 8 * i) for i in range(3)] + [
    ("db_store", B_FRAME, QUEUE_OBJ + 8 * i) for i in range(4)] + [
    ("db_store", B_FRAME, CURR_OBJ + 8 * i) for i in range(4)])
SEQ_DECIDE = sequence(SITE, [("db_decide", B_FRAME, QUEUE_OBJ + 0x10),
                             ("db_decide", B_FRAME, QUEUE_OBJ + 0x18)])
SEQ_TD_MAIN = sequence(SITE, [("db_td_load", B_FRAME, 0x10), ("db_td_load", B_FRAME, 0x30)] + [
    ("db_td_store", B_ARGS, 8 * i) for i in range(4)] + [("db_td_store", B_FRAME, -8)] + [
    ("db_td_load", B_ARGS, 0x18), ("db_td_load", B_FRAME, QUEUE_OBJ + 0x18),
    ("db_td_load", B_FRAME, QUEUE_OBJ + 8), ("db_td_window", B_FRAME, QUEUE_OBJ + 0x10),
    ("db_td_store", B_FRAME, -8), ("db_flag", B_FRAME, 0x1B), ("db_td_edges", B_FRAME, 0x20),
    ("db_td_load", B_FRAME, QUEUE_OBJ + 0x18), ("db_td_load", B_FRAME, QUEUE_OBJ + 0x10)])
SEQ_BU_MAIN = sequence(SITE, [
    ("db_bu_store", B_FRAME, -8), ("db_bu_load", B_FRAME, CURR_OBJ + 8),
    ("db_bu_load", B_FRAME, CURR_OBJ), ("db_bu_store", B_FRAME, -8),
    ("db_swap_load", B_FRAME, 0), ("db_bu_load", B_FRAME, 0x10), ("db_bu_store", B_ARGS, 0),
    ("db_swap_store", B_ARGS, 0x10), ("db_bu_store", B_ARGS, 0x20), ("db_bu_store", B_ARGS, 8),
    ("db_bu_store", B_FRAME, -8), ("db_swap_load", B_FRAME, FRONT_OBJ),
    ("db_swap_load", B_FRAME, CURR_OBJ), ("db_bu_load", B_ARGS, 0x20),
    ("db_swap_store", B_FRAME, CURR_OBJ), ("db_swap_store", B_FRAME, FRONT_OBJ),
    ("db_bu_store", B_FRAME, -8), ("db_flag", B_FRAME, 0x1B)])
SEQ_Q2B_MAIN = sequence(SITE, [("db_bu_load", B_FRAME, 0x10), ("db_bu_store", B_ARGS, 0),
                               ("db_bu_store", B_ARGS, 8), ("db_bu_store", B_FRAME, -8),
                               ("db_td_window", B_FRAME, QUEUE_OBJ + 0x10)])
SEQ_B2Q_MAIN = sequence(SITE, [("db_bu_store", B_ARGS, 8 * i) for i in range(3)] + [
    ("db_bu_store", B_FRAME, -8), ("db_td_window", B_FRAME, QUEUE_OBJ + 0x10)])
SEQ_TRIAL_END = sequence(SITE, [("db_bu_store", B_ARGS, 8 * i) for i in range(2)] + [
    ("db_bu_store", B_FRAME, -8)] + [("db_load", B_FRAME, CURR_OBJ + 8 * (i % 6))
                                     for i in range(12)] + [
    ("db_pop", B_FRAME, 0xC0 + 8 * i) for i in range(7)])


@dataclass(frozen=True)
class BfsParams(GapParams):
    source: int = -1

    @property
    def work_units(self) -> int:
        """Directed edges of the graph times trials (an estimate until the graph is built)."""
        return self.trials * self.est_edges_directed

    work_unit = "edge"

    def to_json(self) -> dict[str, Any]:
        d = self.common_json("gapbs-bfs")
        d.update(source=self.source)
        return d


def click_params() -> list:
    import click

    return common_click_params() + [
        click.Option(["-r", "--source"], type=click.IntRange(-1, 2**31 - 1), default=-1,
                     show_default=True, help="Start every trial from this vertex (GAP's -r; "
                                             "-1: GAP's random sources)."),
    ]


def resolve_params(scale: int, degree: int = 16, trials: int = 16, threads: int = 1,
                   seed: int = 27491095, source: int = -1) -> BfsParams:
    check_common(scale, degree, trials, threads, seed)
    if int(source) < -1:
        raise UserError(f"source (-r) must be a vertex or -1, got {source}")
    return BfsParams(int(scale), int(degree), int(trials), int(threads), int(seed), int(source))


# ---- the kernel ------------------------------------------------------------------------------
(ST_TRIAL, ST_PHASE, ST_SEQ, ST_LO, ST_HI, ST_IN, ST_SCOUT, ST_EDGES, ST_AWAKE, ST_OLD_AWAKE,
 ST_FRONT, ST_TD_STEPS, ST_BU_STEPS, ST_VISITED, ST_DONE_EDGES) = range(15)
N_ST = 15
(PH_START, PH_INIT, PH_SETUP, PH_DECIDE, PH_TD, PH_Q2B, PH_BU, PH_B2Q, PH_FINAL, PH_END,
 PH_DONE) = range(11)
(C_THREADS, C_N, C_M, C_TRIALS, C_NEIGHS, C_INDEX, C_PARENT, C_QUEUE, C_BITS0, C_BITS1,
 C_WORDS, C_MAX_REC) = range(12)
N_CFG = 12
_SEQ_LIST = (SEQ_INIT[0], SEQ_INIT[1], SEQ_TD[0], SEQ_TD[1], SEQ_TD_FLUSH[0], SEQ_TD_FLUSH[1],
             SEQ_BU[0], SEQ_BU[1], SEQ_BU_CHUNK[0], SEQ_BU_CHUNK[1], SEQ_Q2B[0], SEQ_Q2B[1],
             SEQ_B2Q[0], SEQ_B2Q[1], SEQ_FINAL[0], SEQ_FINAL[1], SEQ_TRIAL_START, SEQ_DECIDE,
             SEQ_TD_MAIN, SEQ_BU_MAIN, SEQ_Q2B_MAIN, SEQ_B2Q_MAIN, SEQ_TRIAL_END)
SEQS = pack_sequences(_SEQ_LIST)
(Q_INIT, Q_INIT_END, Q_TD, Q_TD_END, Q_TD_FLUSH, Q_TD_FLUSH_END, Q_BU, Q_BU_END, Q_BU_CHUNK,
 Q_BU_CHUNK_END, Q_Q2B, Q_Q2B_END, Q_B2Q, Q_B2Q_END, Q_FINAL, Q_FINAL_END, Q_TRIAL_START,
 Q_DECIDE, Q_TD_MAIN, Q_BU_MAIN, Q_Q2B_MAIN, Q_B2Q_MAIN, Q_TRIAL_END) = seq_index(_SEQ_LIST)
# Site and sequence ids are numpy ints: numba compiles a callee once per literal argument value,
# and the helpers below are called with many different ones.
T0, RET_TD, RET_B2Q = np.int64(0), np.int64(-0x78), np.int64(-0x58)
(S_IP_HI, S_IP_LO, S_IP_SET, S_IP_SET0, S_TD_ARG_G, S_TD_U, S_TD_OUT_INDEX, S_TD_HI, S_TD_LO,
 S_TD_ARG_PARENT, S_TD_V, S_TD_PARENT_START, S_TD_PARENT_V, S_TD_CAS, S_TD_PUSH,
 S_TD_CALL_MEMCPY, S_BU_PARENT_U, S_BU_IN_INDEX, S_BU_HI, S_BU_LO, S_BU_FRONT_START, S_BU_V,
 S_BU_FRONT_WORD, S_BU_ARG_NEXT, S_BU_SET_PARENT, S_BU_NEXT_START, S_BU_NEXT_WORD, S_QB_U,
 S_QB_ARG_BM, S_QB_BM_START, S_QB_WORD, S_QB_CAS, S_BQ_ARG_BM, S_BQ_BM_START, S_BQ_WORD,
 S_BQ_PUSH, S_BQ_CALL_MEMCPY, S_FL_PARENT, S_FL_RESET, S_DB_PARENT_SRC, S_DB_PUSH_SRC,
 S_MC_LOAD, S_MC_STORE, S_MC_RET, S_MS_STORE, S_MS_RET) = (np.int64(SITE[n]) for n in (
    "ip_hi", "ip_lo", "ip_set", "ip_set_isolated", "td_arg_g", "td_u", "td_out_index", "td_hi",
    "td_lo", "td_arg_parent", "td_v", "td_parent_start", "td_parent_v", "td_cas", "td_push",
    "td_call_memcpy", "bu_parent_u", "bu_in_index", "bu_hi", "bu_lo", "bu_front_start", "bu_v",
    "bu_front_word", "bu_arg_next", "bu_set_parent", "bu_next_start", "bu_next_word", "qb_u",
    "qb_arg_bm", "qb_bm_start", "qb_word", "qb_cas", "bq_arg_bm", "bq_bm_start", "bq_word",
    "bq_push", "bq_call_memcpy", "fl_parent", "fl_reset", "db_parent_src", "db_push_src",
    "memcpy_load", "memcpy_store", "memcpy_ret", "memset_store", "memset_ret"))


@nb.njit(cache=True, nogil=True, _nrt=False)
def _flush(out, pos, t, sites, st, lin, lbuf, queue, qaddr, lbuf_addr, bases, ret_slot):
    """QueueBuffer::flush: fetch_and_add the shared tail, memcpy the local entries."""
    k = lin[t]
    start = st[ST_IN]
    st[ST_IN] = start + k
    for i in range(k):
        queue[start + i] = lbuf[t, i]
    if k > 0:
        pos = emit_memcpy(out, pos, t, sites, S_MC_LOAD, S_MC_STORE, qaddr + 4 * start,
                          lbuf_addr[t], 4 * k)
        pos = emit(out, pos, True, t, sites, S_MC_RET, bases[t, B_SP] + ret_slot)
    lin[t] = 0
    return pos


@nb.njit(cache=True, nogil=True, _nrt=False)
def _end_flush(out, pos, t, sites, seqs, end_seq, call_site, ret_slot, st, lin, lbuf, queue, qaddr,
               lbuf_addr, bases):
    """A thread's end of TDStep or BitmapToQueue: the epilogue, then QueueBuffer::flush (the
    memcpy call only when the buffer holds something)."""
    pos = emit_seq(out, pos, t, sites, seqs, end_seq, bases)
    if lin[t] > 0:
        pos = emit(out, pos, True, t, sites, call_site, bases[t, B_SP] + ret_slot)
    return _flush(out, pos, t, sites, st, lin, lbuf, queue, qaddr, lbuf_addr, bases, ret_slot)


@nb.njit(cache=True, nogil=True, _nrt=False)
def _push(out, pos, t, sites, site, v, st, lin, lbuf, queue, qaddr, lbuf_addr, bases, seqs):
    """QueueBuffer::push_back (flushing a full buffer first)."""
    if lin[t] == QBUF:
        pos = emit_seq(out, pos, t, sites, seqs, Q_TD_FLUSH, bases)
        pos = _flush(out, pos, t, sites, st, lin, lbuf, queue, qaddr, lbuf_addr, bases, RET_TD)
        pos = emit_seq(out, pos, t, sites, seqs, Q_TD_FLUSH_END, bases)
    pos = emit(out, pos, True, t, sites, site, lbuf_addr[t] + 4 * lin[t])
    lbuf[t, lin[t]] = v
    lin[t] += 1
    return pos


@nb.njit(cache=True, nogil=True, _nrt=False)
def _fill(cfg, st, sources, offsets, neighs, parent, queue, bits, lin, lbuf, lbuf_addr, tcount,
          bases, sites, seqs, o_tid, o_op, o_addr, o_size, pos):
    """BFS trials from the state in st until the block is nearly full (see ST_*, PH_*)."""
    out = (o_tid, o_op, o_addr, o_size)
    cap = len(o_tid)
    threads = cfg[C_THREADS]
    n = cfg[C_N]
    nb_ = cfg[C_NEIGHS]
    index = cfg[C_INDEX]
    paddr = cfg[C_PARENT]
    qaddr = cfg[C_QUEUE]
    words = cfg[C_WORDS]
    while st[ST_PHASE] != PH_DONE:
        if pos + cfg[C_MAX_REC] > cap:
            break
        ph = st[ST_PHASE]
        seq = st[ST_SEQ]
        if ph == PH_START:
            pos = emit_seq(out, pos, T0, sites, seqs, Q_TRIAL_START, bases)
            st[ST_PHASE] = PH_INIT
            st[ST_SEQ] = 0
        elif ph == PH_INIT:  # InitParent
            done, t, u, first, last = loop_step(st, ST_SEQ, n, threads, STATIC)
            if done:
                st[ST_PHASE] = PH_SETUP
                continue
            if u < 0:
                continue
            if first:
                pos = emit_seq(out, pos, t, sites, seqs, Q_INIT, bases)
            pos = emit(out, pos, True, t, sites, S_IP_HI, index + 8 * (u + 1))
            pos = emit(out, pos, True, t, sites, S_IP_LO, index + 8 * u)
            deg = offsets[u + 1] - offsets[u]
            parent[u] = -deg if deg != 0 else -1
            pos = emit(out, pos, True, t, sites, S_IP_SET if deg != 0 else S_IP_SET0,
                       paddr + 4 * u)
            if last:
                pos = emit_seq(out, pos, t, sites, seqs, Q_INIT_END, bases)
        elif ph == PH_SETUP:  # parent[source] = source; the queue; curr/front reset
            src = sources[st[ST_TRIAL]]
            parent[src] = src
            pos = emit(out, pos, True, 0, sites, S_DB_PARENT_SRC, paddr + 4 * src)
            queue[0] = src
            pos = emit(out, pos, True, 0, sites, S_DB_PUSH_SRC, qaddr)
            st[ST_IN] = 1
            st[ST_LO] = 0
            st[ST_HI] = 1
            for b in range(2):
                bits[b, :] = 0
                pos = emit_memset(out, pos, T0, sites, S_MS_STORE, cfg[C_BITS0 + b], 8 * words)
                pos = emit(out, pos, True, 0, sites, S_MS_RET, bases[0, B_FRAME] - 8)
            st[ST_FRONT] = 1
            st[ST_EDGES] = cfg[C_M]
            st[ST_SCOUT] = offsets[src + 1] - offsets[src]
            st[ST_PHASE] = PH_DECIDE
        elif ph == PH_DECIDE:
            pos = emit_seq(out, pos, T0, sites, seqs, Q_DECIDE, bases)
            st[ST_SEQ] = 0
            tcount[:] = 0
            if st[ST_LO] == st[ST_HI]:
                st[ST_PHASE] = PH_FINAL
            elif st[ST_SCOUT] > st[ST_EDGES] // ALPHA:
                st[ST_PHASE] = PH_Q2B
                pos = emit_seq(out, pos, T0, sites, seqs, Q_Q2B_MAIN, bases)
            else:
                st[ST_EDGES] -= st[ST_SCOUT]
                st[ST_PHASE] = PH_TD
                st[ST_TD_STEPS] += 1
        elif ph == PH_TD:  # TDStep, static over the queue's window
            w = st[ST_HI] - st[ST_LO]
            done, t, i, first, last = loop_step(st, ST_SEQ, w, threads, STATIC)
            if done:
                st[ST_SCOUT] = tcount.sum()
                st[ST_LO] = st[ST_HI]
                st[ST_HI] = st[ST_IN]
                pos = emit_seq(out, pos, T0, sites, seqs, Q_TD_MAIN, bases)
                st[ST_PHASE] = PH_DECIDE
                continue
            if i < 0:
                continue
            if first:
                pos = emit_seq(out, pos, t, sites, seqs, Q_TD, bases)
            pos = emit(out, pos, True, t, sites, S_TD_ARG_G, bases[t, B_ARGS])
            u = queue[st[ST_LO] + i]
            pos = emit(out, pos, True, t, sites, S_TD_U, qaddr + 4 * (st[ST_LO] + i))
            pos = emit(out, pos, True, t, sites, S_TD_OUT_INDEX, bases[t, B_GRAPH] + G_OUT_INDEX)
            pos = emit(out, pos, True, t, sites, S_TD_HI, index + 8 * (u + 1))
            pos = emit(out, pos, True, t, sites, S_TD_LO, index + 8 * u)
            for j in range(offsets[u], offsets[u + 1]):
                v = neighs[j]
                pos = emit(out, pos, True, t, sites, S_TD_ARG_PARENT, bases[t, B_ARGS] + 8)
                pos = emit(out, pos, True, t, sites, S_TD_V, nb_ + 4 * j)
                pos = emit(out, pos, True, t, sites, S_TD_PARENT_START,
                           bases[t, B_FRAME] + PARENT_OBJ)
                pos = emit(out, pos, True, t, sites, S_TD_PARENT_V, paddr + 4 * v)
                cur = parent[v]
                if cur < 0:
                    pos = emit(out, pos, True, t, sites, S_TD_CAS, paddr + 4 * v)
                    parent[v] = u
                    tcount[t] += -cur
                    pos = _push(out, pos, t, sites, S_TD_PUSH, np.int64(v), st, lin, lbuf,
                                queue, qaddr, lbuf_addr, bases, seqs)
            st[ST_DONE_EDGES] += offsets[u + 1] - offsets[u]
            if last:
                pos = _end_flush(out, pos, t, sites, seqs, Q_TD_END, S_TD_CALL_MEMCPY, RET_TD, st,
                                 lin, lbuf, queue, qaddr, lbuf_addr, bases)
        elif ph == PH_Q2B:  # QueueToBitmap(queue, front), static over the window
            w = st[ST_HI] - st[ST_LO]
            front = st[ST_FRONT]
            done, t, i, first, last = loop_step(st, ST_SEQ, w, threads, STATIC)
            if done:
                st[ST_AWAKE] = w
                st[ST_LO] = st[ST_HI]
                st[ST_PHASE] = PH_BU
                st[ST_SEQ] = 0
                continue
            if i < 0:
                continue
            if first:
                pos = emit_seq(out, pos, t, sites, seqs, Q_Q2B, bases)
            u = queue[st[ST_LO] + i]
            pos = emit(out, pos, True, t, sites, S_QB_U, qaddr + 4 * (st[ST_LO] + i))
            pos = emit(out, pos, True, t, sites, S_QB_ARG_BM, bases[t, B_ARGS] + 8)
            pos = emit(out, pos, True, t, sites, S_QB_BM_START, bases[t, B_FRAME] + FRONT_OBJ)
            word = cfg[C_BITS0 + front] + 8 * (u >> 6)
            pos = emit(out, pos, True, t, sites, S_QB_WORD, word)
            pos = emit(out, pos, True, t, sites, S_QB_CAS, word)
            bits[front, u >> 6] |= np.uint64(1) << np.uint64(u & 63)
            if last:
                pos = emit_seq(out, pos, t, sites, seqs, Q_Q2B_END, bases)
        elif ph == PH_BU:  # BUStep(g, parent, front, next = curr): dynamic 1024
            front = st[ST_FRONT]
            nxt = 1 - front
            if seq == 0:
                st[ST_OLD_AWAKE] = st[ST_AWAKE]
                bits[nxt, :] = 0
                pos = emit_memset(out, pos, T0, sites, S_MS_STORE, cfg[C_BITS0 + nxt], 8 * words)
                pos = emit(out, pos, True, 0, sites, S_MS_RET, bases[0, B_FRAME] - 8)
                pos = emit_seq(out, pos, T0, sites, seqs, Q_BU_MAIN, bases)
                tcount[:] = 0
                st[ST_BU_STEPS] += 1
            done, t, u, first, last = loop_step(st, ST_SEQ, n, threads, BU_CHUNK)
            if done:
                awake = tcount.sum()
                st[ST_AWAKE] = awake
                st[ST_FRONT] = nxt               # front.swap(curr)
                st[ST_SEQ] = 0
                if not (awake >= st[ST_OLD_AWAKE] or awake > n // BETA):
                    st[ST_PHASE] = PH_B2Q
                    tcount[:] = 0
                    pos = emit_seq(out, pos, T0, sites, seqs, Q_B2Q_MAIN, bases)
                continue
            if u < 0:
                continue
            thread_first, thread_last = dynamic_chunk_bounds(u, n, threads, BU_CHUNK)
            if first:
                if thread_first:
                    pos = emit_seq(out, pos, t, sites, seqs, Q_BU, bases)
                pos = emit_seq(out, pos, t, sites, seqs, Q_BU_CHUNK, bases)
            pos = emit(out, pos, True, t, sites, S_BU_PARENT_U, paddr + 4 * u)
            if parent[u] < 0:
                pos = emit(out, pos, True, t, sites, S_BU_IN_INDEX, bases[t, B_GRAPH] + G_IN_INDEX)
                pos = emit(out, pos, True, t, sites, S_BU_HI, index + 8 * (u + 1))
                pos = emit(out, pos, True, t, sites, S_BU_LO, index + 8 * u)
                if offsets[u + 1] > offsets[u]:
                    pos = emit(out, pos, True, t, sites, S_BU_FRONT_START,
                               bases[t, B_FRAME] + FRONT_OBJ)
                for j in range(offsets[u], offsets[u + 1]):
                    v = neighs[j]
                    pos = emit(out, pos, True, t, sites, S_BU_V, nb_ + 4 * j)
                    pos = emit(out, pos, True, t, sites, S_BU_FRONT_WORD,
                               cfg[C_BITS0 + front] + 8 * (v >> 6))
                    st[ST_DONE_EDGES] += 1
                    if (bits[front, v >> 6] >> np.uint64(v & 63)) & np.uint64(1):
                        pos = emit(out, pos, True, t, sites, S_BU_ARG_NEXT, bases[t, B_ARGS] + 0x18)
                        parent[u] = v
                        pos = emit(out, pos, True, t, sites, S_BU_SET_PARENT, paddr + 4 * u)
                        pos = emit(out, pos, True, t, sites, S_BU_NEXT_START,
                                   bases[t, B_FRAME] + CURR_OBJ)
                        pos = emit(out, pos, True, t, sites, S_BU_NEXT_WORD,
                                   cfg[C_BITS0 + nxt] + 8 * (u >> 6))
                        bits[nxt, u >> 6] |= np.uint64(1) << np.uint64(u & 63)
                        tcount[t] += 1
                        break
            if last:
                pos = emit_seq(out, pos, t, sites, seqs, Q_BU_CHUNK_END, bases)
                if thread_last:
                    pos = emit_seq(out, pos, t, sites, seqs, Q_BU_END, bases)
        elif ph == PH_B2Q:  # BitmapToQueue(g, front, queue): static over vertices
            front = st[ST_FRONT]
            done, t, u, first, last = loop_step(st, ST_SEQ, n, threads, STATIC)
            if done:
                st[ST_HI] = st[ST_IN]          # slide_window (LO is the old end)
                st[ST_SCOUT] = 1
                st[ST_PHASE] = PH_DECIDE
                continue
            if u < 0:
                continue
            if first:
                pos = emit_seq(out, pos, t, sites, seqs, Q_B2Q, bases)
            pos = emit(out, pos, True, t, sites, S_BQ_ARG_BM, bases[t, B_ARGS] + 8)
            pos = emit(out, pos, True, t, sites, S_BQ_BM_START, bases[t, B_FRAME] + FRONT_OBJ)
            pos = emit(out, pos, True, t, sites, S_BQ_WORD, cfg[C_BITS0 + front] + 8 * (u >> 6))
            if (bits[front, u >> 6] >> np.uint64(u & 63)) & np.uint64(1):
                pos = _push(out, pos, t, sites, S_BQ_PUSH, u, st, lin, lbuf, queue, qaddr,
                            lbuf_addr, bases, seqs)
            if last:
                pos = _end_flush(out, pos, t, sites, seqs, Q_B2Q_END, S_BQ_CALL_MEMCPY, RET_B2Q,
                                 st, lin, lbuf, queue, qaddr, lbuf_addr, bases)
        elif ph == PH_FINAL:  # parent[n] < -1 -> -1, static
            done, t, u, first, last = loop_step(st, ST_SEQ, n, threads, STATIC)
            if done:
                st[ST_PHASE] = PH_END
                continue
            if u < 0:
                continue
            if first:
                pos = emit_seq(out, pos, t, sites, seqs, Q_FINAL, bases)
            pos = emit(out, pos, True, t, sites, S_FL_PARENT, paddr + 4 * u)
            if parent[u] < -1:
                parent[u] = -1
                pos = emit(out, pos, True, t, sites, S_FL_RESET, paddr + 4 * u)
            if parent[u] >= 0:
                st[ST_VISITED] += 1
            if last:
                pos = emit_seq(out, pos, t, sites, seqs, Q_FINAL_END, bases)
        elif ph == PH_END:
            pos = emit_seq(out, pos, T0, sites, seqs, Q_TRIAL_END, bases)
            st[ST_TRIAL] += 1
            st[ST_SEQ] = 0
            st[ST_PHASE] = PH_START if st[ST_TRIAL] < cfg[C_TRIALS] else PH_DONE
    return pos


# ---- the trace -------------------------------------------------------------------------------
def expected_records(p: BfsParams) -> float:
    """About 2 x (0.4 per directed edge + 12 per vertex) per trial: the direction-optimising
    search reads few edges (InitParent, the bottom-up scans and the final loop read every
    vertex); within 20 % of -g 14..19 runs."""
    return 2.0 * p.trials * (0.4 * p.est_edges_directed + 12 * (1 << p.scale))


def size_estimate(p: BfsParams) -> SizeEstimate:
    return p.size_estimate("BFS", expected_records(p))


@dataclass(frozen=True)
class BfsResult(GenResult):
    num_nodes: int = 0
    num_edges: int = 0
    td_steps: int = 0
    bu_steps: int = 0
    visited: int = 0
    edges_examined: int = 0
    sources: tuple[int, ...] = ()

    @property
    def units(self) -> int:
        """Work units: directed edges of the graph x trials."""
        return 2 * self.num_edges * self.params.trials

    def summary(self) -> str:
        p = self.params
        return (f"{self.records:,} records (BFS on 2^{p.scale} vertices, {self.num_edges:,} "
                f"undirected edges; {p.trials} trial{'s' if p.trials != 1 else ''}, "
                f"{self.td_steps} top-down and {self.bu_steps} bottom-up steps, "
                f"{self.visited:,} vertices reached, {self.edges_examined:,} edges examined; "
                f"{p.threads} "
                f"thread{'s' if p.threads != 1 else ''})")


def generate(out: str | Path, p: BfsParams, progress: Progress | None = None,
             block_records: int = ROW_GROUP_ROWS) -> BfsResult:
    g = build_graph(p)
    n = g.num_nodes
    if p.source >= n:
        raise UserError(f"source (-r) {p.source} is not a vertex of this graph (n = {n:,})")
    words = (n + 63) // 64
    arrays = [("parent", n, 4), ("queue", n, 4), ("bitmap:0", words, 8), ("bitmap:1", words, 8)]
    arrays += [(f"queue_buffer:{t}", QBUF, 4) for t in range(p.threads)]
    lay = graph_layout(g, p.threads, arrays)
    regions = [CODE.region(), LIBC.region()] + lay.heap.array_regions() + stack_regions(lay.tops)
    sources = (np.full(p.trials, p.source, np.int64) if p.source >= 0
               else pick_sources(g.offsets, p.trials, p.seed))
    meta = TraceMeta(source="gapbs-bfs-synth", threads=p.threads, regions=tuple(regions),
                     generator=p.to_json(),
                     extra={"arrays": json.dumps(lay.heap.to_json()),
                            "graph": json.dumps({"num_nodes": n, "num_edges": g.num_edges,
                                                 "sources": sources.tolist()})})
    max_deg = int(g.degree().max()) if n else 0
    copy = 4 * QBUF * 4 // 32 + 64
    cfg = np.zeros(N_CFG, np.int64)
    cfg[[C_THREADS, C_N, C_M, C_TRIALS, C_NEIGHS, C_INDEX, C_PARENT, C_QUEUE, C_BITS0, C_BITS1,
         C_WORDS, C_MAX_REC]] = [
        p.threads, n, g.num_edges_directed, p.trials, lay.start("neighs"), lay.start("index"),
        lay.start("parent"), lay.start("queue"), lay.start("bitmap:0"), lay.start("bitmap:1"),
        words, 2 * (16 + 6 * max_deg + copy + words // 2 + 300)]
    st = np.zeros(N_ST, np.int64)
    parent = np.zeros(n, np.int32)
    queue = np.zeros(n, np.int32)
    bits = np.zeros((2, words), np.uint64)
    lin = np.zeros(p.threads, np.int64)
    lbuf = np.zeros((p.threads, QBUF), np.int32)
    lbuf_addr = np.array([lay.start(f"queue_buffer:{t}") for t in range(p.threads)], np.int64)
    tcount = np.zeros(p.threads, np.int64)
    filler = BlockFiller(max(block_records, 2 * int(cfg[C_MAX_REC])))

    def blocks():
        yield from filler.run(_fill, lambda: st[ST_PHASE] == PH_DONE, cfg, st, sources,
                              g.offsets, g.neighs, parent, queue, bits, lin, lbuf, lbuf_addr,
                              tcount, lay.bases(), SITES, SEQS)
        yield from filler.flush()

    total = p.trials * g.num_edges_directed

    def done() -> int:      # the graph's edges per finished trial (a trial reads few of them)
        return int(st[ST_TRIAL]) * g.num_edges_directed

    base = generate_trace(out, p, meta, blocks(), done,
                          None if progress is None else (lambda d, _t: progress(d, total)))
    return BfsResult(base.path, base.meta, p, base.records, num_nodes=n, num_edges=g.num_edges,
                     td_steps=int(st[ST_TD_STEPS]), bu_steps=int(st[ST_BU_STEPS]),
                     visited=int(st[ST_VISITED]), edges_examined=int(st[ST_DONE_EDGES]),
                     sources=tuple(int(s) for s in sources))
