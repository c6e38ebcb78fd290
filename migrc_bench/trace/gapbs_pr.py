"""``trace gen gapbs-pr``: GAP's PageRank (``pr``) on its Kronecker graph, as a trace.

``PageRankPullGS`` of gapbs b5e3e19 (src/pr.cc): scores filled with 1/n, each vertex's outgoing
contribution score/degree, then up to ``-i`` iterations (20) of the pull loop

    for u (schedule(dynamic, 16384)):  incoming = sum of contrib[v] over u's neighbours
        scores[u] = (1 - 0.85)/n + 0.85 * incoming;  error += |new - old|
        contrib[u] = scores[u] / degree(u)

(Gauss-Seidel: new contributions are seen at once), stopping when the total error falls below
the tolerance (1e-4). The arithmetic is gapbs's float arithmetic in the order the trace runs it,
so the iteration count is the real one (12 at -g 14). ``-n`` trials each run it again on fresh
(same-address) arrays. The graph is ``gapbs_graph.kronecker``, GAP's own.

The accesses are those of the code g++ 12.2 -O3 makes of it (site offsets from ``objdump -d
pr``): per vertex two loads of index[u], index[u+1] for the in-neighbours, a load of each
neighbour id and of its contribution, the old score, index[u], index[u+1] again for the
out-degree (one array: the graph is undirected), and the two stores; per chunk of 16384 the
loads of the argument block and of the graph and pvector objects on the master's stack, the
spills around ``GOMP_loop_nonmonotonic_dynamic_next``; the fill (16-byte stores), the
contribution loop and the kernel's own frame as recorded in ``gapbs_common``.
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
                           graph_layout, pack_sequences, push_pop, seq_index, sequence)
from .gencore import (CODE_BASE, OP_LOAD, OP_MODIFY, OP_STORE, STATIC, BlockFiller, CodeMap,
                      GenResult, Progress, dynamic_chunk_bounds, emit, generate_trace, loop_step,
                      stack_regions, static_block)
from .native import ROW_GROUP_ROWS, TraceMeta
from .sizes import SizeEstimate

K_DAMP = np.float32(0.85)
PR_CHUNK = 16384
L, S, M = OP_LOAD, OP_STORE, OP_MODIFY

# Text of the reference build (g++ 12.2 -O3 -fopenmp -no-pie), offsets from 0x403000.
FN_MAIN, FN_INIT, FN_ITER, FN_FILL = ("PageRankPullGS", "PageRankPullGS._omp_fn.0",
                                      "PageRankPullGS._omp_fn.1", "pvector<float>::fill._omp_fn.0")
FUNCTIONS = {FN_ITER: (0x11F0, 0x17F), FN_INIT: (0x1370, 0x87), FN_FILL: (0x1400, 0x11B),
             FN_MAIN: (0x25E0, 0x444)}
_SITES = [
    # the pull loop (per vertex and per neighbour)
    ("it_in_hi", FN_ITER, 0x90, 5, L, 8), ("it_in_lo", FN_ITER, 0x95, 4, L, 8),
    ("it_neigh", FN_ITER, 0xA8, 4, L, 4), ("it_contrib", FN_ITER, 0xAF, 6, L, 4),
    ("it_old", FN_ITER, 0xC1, 6, L, 4), ("it_out_hi", FN_ITER, 0xC7, 5, L, 8),
    ("it_out_lo", FN_ITER, 0xCC, 4, L, 8), ("it_score", FN_ITER, 0xD7, 6, S, 4),
    ("it_contrib_set", FN_ITER, 0xF9, 5, S, 4),
    # its region and chunk code
    ("it_push_r12", FN_ITER, 0x0, 2, S, 8), ("it_push_rbp", FN_ITER, 0xF, 1, S, 8),
    ("it_push_rbx", FN_ITER, 0x10, 1, S, 8), ("it_arg_g", FN_ITER, 0x15, 3, L, 8),
    ("it_arg_base", FN_ITER, 0x18, 5, L, 4), ("it_num_nodes", FN_ITER, 0x29, 4, L, 4),
    ("it_spill_base", FN_ITER, 0x33, 5, S, 4), ("it_call_start", FN_ITER, 0x38, 5, S, 8),
    ("it_reload_base", FN_ITER, 0x51, 5, L, 4),
    ("it_c_g", FN_ITER, 0x60, 4, L, 8), ("it_c_scores", FN_ITER, 0x64, 5, L, 8),
    ("it_c_end", FN_ITER, 0x69, 5, L, 4), ("it_c_start", FN_ITER, 0x6E, 5, L, 4),
    ("it_c_in_index", FN_ITER, 0x73, 4, L, 8), ("it_c_out_index", FN_ITER, 0x77, 4, L, 8),
    ("it_c_contrib", FN_ITER, 0x7B, 5, L, 8), ("it_c_scores_start", FN_ITER, 0x80, 3, L, 8),
    ("it_c_contrib_start", FN_ITER, 0x83, 3, L, 8),
    ("it_t_spill_base", FN_ITER, 0x10D, 6, S, 4), ("it_t_spill_err", FN_ITER, 0x113, 5, S, 8),
    ("it_t_call_next", FN_ITER, 0x118, 5, S, 8), ("it_t_reload_err", FN_ITER, 0x11D, 5, L, 8),
    ("it_t_reload_base", FN_ITER, 0x122, 6, L, 4),
    ("it_e_spill_err", FN_ITER, 0x140, 5, S, 8), ("it_e_call_end", FN_ITER, 0x145, 5, S, 8),
    ("it_e_err", FN_ITER, 0x14A, 5, L, 8), ("it_e_reload_err", FN_ITER, 0x14F, 5, L, 8),
    ("it_e_add_err", FN_ITER, 0x16A, 5, M, 8),
    ("it_pop_rbx", FN_ITER, 0x175, 1, L, 8), ("it_pop_rbp", FN_ITER, 0x176, 1, L, 8),
    ("it_pop_r12", FN_ITER, 0x177, 2, L, 8), ("it_ret", FN_ITER, 0x179, 1, L, 8),
    # contributions' initial loop (static)
    ("in_hi", FN_INIT, 0x48, 5, L, 8), ("in_lo", FN_INIT, 0x4D, 4, L, 8),
    ("in_set", FN_INIT, 0x65, 5, S, 4),
    ("in_push_r12", FN_INIT, 0x0, 2, S, 8), ("in_push_rbp", FN_INIT, 0x2, 1, S, 8),
    ("in_push_rbx", FN_INIT, 0x3, 1, S, 8), ("in_arg_g", FN_INIT, 0x7, 3, L, 8),
    ("in_call_nt", FN_INIT, 0xA, 5, S, 8), ("in_call_tn", FN_INIT, 0x11, 5, S, 8),
    ("in_num_nodes", FN_INIT, 0x18, 5, L, 8), ("in_arg_contrib", FN_INIT, 0x2F, 4, L, 8),
    ("in_arg_init", FN_INIT, 0x33, 5, L, 4), ("in_out_index", FN_INIT, 0x3B, 5, L, 8),
    ("in_contrib_start", FN_INIT, 0x40, 3, L, 8),
    ("in_pop_rbx", FN_INIT, 0x72, 1, L, 8), ("in_pop_rbp", FN_INIT, 0x73, 1, L, 8),
    ("in_pop_r12", FN_INIT, 0x74, 2, L, 8), ("in_ret", FN_INIT, 0x76, 1, L, 8),
    # pvector<float>::fill (static, 16-byte stores)
    ("fi_store", FN_FILL, 0xC0, 3, S, 16), ("fi_tail", FN_FILL, 0xE0, 4, S, 4),
    ("fi_push_r13", FN_FILL, 0x0, 2, S, 8), ("fi_push_r12", FN_FILL, 0x2, 2, S, 8),
    ("fi_push_rbp", FN_FILL, 0x4, 1, S, 8), ("fi_push_rbx", FN_FILL, 0x5, 1, S, 8),
    ("fi_arg_vec", FN_FILL, 0xA, 3, L, 8), ("fi_start", FN_FILL, 0xD, 3, L, 8),
    ("fi_end", FN_FILL, 0x10, 4, L, 8), ("fi_call_nt", FN_FILL, 0x20, 5, S, 8),
    ("fi_call_tn", FN_FILL, 0x28, 5, S, 8), ("fi_arg_value", FN_FILL, 0x6C, 6, L, 4),
    ("fi_pop_rbx", FN_FILL, 0x100, 1, L, 8), ("fi_pop_rbp", FN_FILL, 0x101, 1, L, 8),
    ("fi_pop_r12", FN_FILL, 0x102, 2, L, 8), ("fi_pop_r13", FN_FILL, 0x104, 2, L, 8),
    ("fi_ret", FN_FILL, 0x106, 1, L, 8),
    # the kernel's own frame: per trial, per iteration
    ("pr_stack_store", FN_MAIN, 0x10, 5, S, 8), ("pr_stack_load", FN_MAIN, 0x29, 5, L, 8),
    ("pr_new_scores", FN_MAIN, 0x83, 4, S, 8), ("pr_new_contrib", FN_MAIN, 0xC2, 5, S, 8),
    ("pr_it_load", FN_MAIN, 0x128, 6, L, 8), ("pr_it_store", FN_MAIN, 0x160, 5, S, 8),
    ("pr_it_flag", FN_MAIN, 0x18C, 5, L, 1), ("pr_pop", FN_MAIN, 0x329, 1, L, 8),
]
CODE = CodeMap(FUNCTIONS, _SITES, CODE_BASE)
SITE = CODE.ids
SITES = CODE.site_table()
(S_IN_HI, S_IN_LO, S_NEIGH, S_CONTRIB, S_OLD, S_OUT_HI, S_OUT_LO, S_SCORE, S_CONTRIB_SET,
 S_INIT_HI, S_INIT_LO, S_INIT_SET, S_FILL, S_FILL_TAIL) = (np.int64(SITE[n]) for n in (
    "it_in_hi", "it_in_lo", "it_neigh", "it_contrib", "it_old", "it_out_hi", "it_out_lo",
    "it_score", "it_contrib_set", "in_hi", "in_lo", "in_set", "fi_store", "fi_tail"))

# Frame offsets (kernel frame = PageRankPullGS's rsp; the scores pvector is its return value,
# in the caller's frame just above; contrib is at 0x40; the argument block at 0x60).
SCORES_OBJ, CONTRIB_OBJ = 0xC0, 0x40
_IT_PUSH, _IT_POP = push_pop([("it_push_r12", "it_pop_r12"), ("it_push_rbp", "it_pop_rbp"),
                              ("it_push_rbx", "it_pop_rbx")])
_IT_RSP = -24 - 0x20
SEQ_ITER_START = sequence(SITE, _IT_PUSH + [
    ("it_arg_g", B_ARGS, 0), ("it_arg_base", B_ARGS, 0x20), ("it_num_nodes", B_GRAPH, G_NUM_NODES),
    ("it_spill_base", B_SP, _IT_RSP), ("it_call_start", B_SP, _IT_RSP - 8),
    ("it_reload_base", B_SP, _IT_RSP)])
SEQ_ITER_CHUNK = sequence(SITE, [
    ("it_c_g", B_ARGS, 0), ("it_c_scores", B_ARGS, 8), ("it_c_end", B_SP, _IT_RSP + 0x18),
    ("it_c_start", B_SP, _IT_RSP + 0x10), ("it_c_in_index", B_GRAPH, G_IN_INDEX),
    ("it_c_out_index", B_GRAPH, G_OUT_INDEX), ("it_c_contrib", B_ARGS, 0x10),
    ("it_c_scores_start", B_FRAME, SCORES_OBJ), ("it_c_contrib_start", B_FRAME, CONTRIB_OBJ)])
SEQ_ITER_CHUNK_END = sequence(SITE, [
    ("it_t_spill_base", B_SP, _IT_RSP + 0xC), ("it_t_spill_err", B_SP, _IT_RSP),
    ("it_t_call_next", B_SP, _IT_RSP - 8), ("it_t_reload_err", B_SP, _IT_RSP),
    ("it_t_reload_base", B_SP, _IT_RSP + 0xC)])
SEQ_ITER_END = sequence(SITE, [
    ("it_e_spill_err", B_SP, _IT_RSP), ("it_e_call_end", B_SP, _IT_RSP - 8),
    ("it_e_err", B_ARGS, 0x18), ("it_e_reload_err", B_SP, _IT_RSP),
    ("it_e_add_err", B_ARGS, 0x18)] + _IT_POP + [("it_ret", B_SP, 0)])
_IN_PUSH, _IN_POP = push_pop([("in_push_r12", "in_pop_r12"), ("in_push_rbp", "in_pop_rbp"),
                              ("in_push_rbx", "in_pop_rbx")])
SEQ_INIT_START = sequence(SITE, _IN_PUSH + [
    ("in_arg_g", B_ARGS, 0), ("in_call_nt", B_SP, -32), ("in_call_tn", B_SP, -32),
    ("in_num_nodes", B_GRAPH, G_NUM_NODES), ("in_arg_contrib", B_ARGS, 8),
    ("in_arg_init", B_ARGS, 0x10), ("in_out_index", B_GRAPH, G_OUT_INDEX),
    ("in_contrib_start", B_FRAME, CONTRIB_OBJ)])
SEQ_INIT_END = sequence(SITE, _IN_POP + [("in_ret", B_SP, 0)])
_FI_PUSH, _FI_POP = push_pop([("fi_push_r13", "fi_pop_r13"), ("fi_push_r12", "fi_pop_r12"),
                              ("fi_push_rbp", "fi_pop_rbp"), ("fi_push_rbx", "fi_pop_rbx")])
SEQ_FILL_START = sequence(SITE, _FI_PUSH + [
    ("fi_arg_vec", B_ARGS, 0), ("fi_start", B_FRAME, SCORES_OBJ),
    ("fi_end", B_FRAME, SCORES_OBJ + 8),
    ("fi_call_nt", B_SP, -48), ("fi_call_tn", B_SP, -48), ("fi_arg_value", B_ARGS, 8)])
SEQ_FILL_END = sequence(SITE, _FI_POP + [("fi_ret", B_SP, 0)])
# PageRankPullGS itself: its frame set-up and the two new[] per trial, each iteration's
# bookkeeping (the tolerance test, the argument block, GOMP_parallel), the return.
SEQ_TRIAL_START = sequence(SITE, [("pr_stack_store", B_FRAME, 8 * i) for i in range(10)] + [
    ("pr_new_scores", B_FRAME, SCORES_OBJ + 8 * i) for i in range(3)] + [
    ("pr_new_contrib", B_FRAME, CONTRIB_OBJ + 8 * i) for i in range(3)] + [
    ("pr_stack_store", B_FRAME, 0x60 + 8 * i) for i in range(6)] + [
    ("pr_stack_load", B_FRAME, 8 * i) for i in range(6)])
SEQ_TRIAL_ITER = sequence(SITE, [("pr_it_load", B_FRAME, 8 * i) for i in range(4)] + [
    ("pr_it_store", B_FRAME, 0x60 + 8 * i) for i in range(6)] + [
    ("pr_it_load", B_FRAME, 0x78), ("pr_it_flag", B_FRAME, 0x1F), ("pr_it_store", B_FRAME, 8)])
SEQ_TRIAL_END = sequence(SITE, [("pr_stack_load", B_FRAME, CONTRIB_OBJ)] + [
    ("pr_pop", B_FRAME, 0x88 + 8 * i) for i in range(7)])


@dataclass(frozen=True)
class PrParams(GapParams):
    max_iters: int = 20
    tolerance: float = 1e-4

    @property
    def work_units(self) -> int:
        """Estimated directed edges read over the run (before the graph and the iteration
        count are known): trials x max_iters x edges."""
        return self.trials * self.max_iters * self.est_edges_directed

    work_unit = "edge"

    def to_json(self) -> dict[str, Any]:
        d = self.common_json("gapbs-pr")
        d.update(max_iters=self.max_iters, tolerance=self.tolerance)
        return d


def click_params() -> list:
    import click

    return common_click_params() + [
        click.Option(["-i", "--max-iters", "max_iters"], type=click.IntRange(1, 1 << 20),
                     default=20, show_default=True,
                     help="At most this many iterations (GAP's -i)."),
        click.Option(["--tolerance"], type=click.FloatRange(0.0), default=1e-4, show_default=True,
                     help="Stop when the total change is below this (GAP's -t; -t is threads "
                          "here)."),
    ]


def resolve_params(scale: int, degree: int = 16, trials: int = 16, threads: int = 1,
                   seed: int = 27491095, max_iters: int = 20, tolerance: float = 1e-4
                   ) -> PrParams:
    check_common(scale, degree, trials, threads, seed)
    if not 1 <= int(max_iters) <= 1 << 20:
        raise UserError(f"iterations (-i) must be between 1 and {1 << 20:,}, got {max_iters}")
    if float(tolerance) < 0:
        raise UserError(f"tolerance must be >= 0, got {tolerance}")
    return PrParams(int(scale), int(degree), int(trials), int(threads), int(seed),
                    int(max_iters), float(tolerance))


_SEQ_LIST = (SEQ_TRIAL_START, SEQ_FILL_START, SEQ_FILL_END, SEQ_INIT_START, SEQ_INIT_END,
             SEQ_ITER_START, SEQ_ITER_CHUNK, SEQ_ITER_CHUNK_END, SEQ_ITER_END, SEQ_TRIAL_ITER,
             SEQ_TRIAL_END)
SEQS = pack_sequences(_SEQ_LIST)
(Q_TRIAL_START, Q_FILL_START, Q_FILL_END, Q_INIT_START, Q_INIT_END, Q_ITER_START, Q_ITER_CHUNK,
 Q_ITER_CHUNK_END, Q_ITER_END, Q_TRIAL_ITER, Q_TRIAL_END) = seq_index(_SEQ_LIST)
T0 = np.int64(0)


# ---- the kernel ------------------------------------------------------------------------------
# st slots: trial, phase, seq, iteration, iterations run (all trials), edges read
ST_TRIAL, ST_PHASE, ST_SEQ, ST_ITER, ST_ITERS, ST_EDGES = range(6)
PH_START, PH_FILL, PH_INIT, PH_ITER, PH_END, PH_DONE = range(6)
# cfg slots
C_THREADS, C_N, C_TRIALS, C_MAX_ITERS, C_NEIGHS, C_INDEX, C_SCORES, C_CONTRIB, C_MAX_REC = \
    range(9)


@nb.njit(cache=True, nogil=True, _nrt=False, error_model="numpy")
def _fill(cfg, st, fst, err, offsets, neighs, scores, contrib, bases, sites, seqs, o_tid, o_op,
          o_addr, o_size, pos):
    """PR trials from the state in st until the block is nearly full (see ST_*, PH_*)."""
    out = (o_tid, o_op, o_addr, o_size)
    cap = len(o_tid)
    threads = cfg[C_THREADS]
    n = cfg[C_N]
    neigh_base = cfg[C_NEIGHS]
    index = cfg[C_INDEX]
    sc_base = cfg[C_SCORES]
    co_base = cfg[C_CONTRIB]
    init_score = np.float32(1.0) / np.float32(n)
    base_score = (np.float32(1.0) - K_DAMP) / np.float32(n)
    tolerance = fst[0]
    while st[ST_PHASE] != PH_DONE:
        if pos + cfg[C_MAX_REC] > cap:
            break
        ph = st[ST_PHASE]
        if ph == PH_START:
            pos = emit_seq(out, pos, T0, sites, seqs, Q_TRIAL_START, bases)
            st[ST_PHASE] = PH_FILL
            st[ST_SEQ] = 0
        elif ph == PH_FILL:   # pvector<float> scores(n, init_score): static, 4 floats a store
            done, t, i, first, last = loop_step(st, ST_SEQ, n, threads, STATIC)
            if done:
                for i in range(n):
                    scores[i] = init_score
                st[ST_PHASE] = PH_INIT
                st[ST_SEQ] = 0
                continue
            if i < 0:
                continue
            if first:
                pos = emit_seq(out, pos, t, sites, seqs, Q_FILL_START, bases)
            lo, length = static_block(n, threads, t)
            vec_end = lo + (length // 4) * 4 if length >= 12 else lo
            if i >= vec_end:
                pos = emit(out, pos, True, t, sites, S_FILL_TAIL, sc_base + 4 * i)
            elif (i - lo) % 4 == 0:
                pos = emit(out, pos, True, t, sites, S_FILL, sc_base + 4 * i)
            if last:
                pos = emit_seq(out, pos, t, sites, seqs, Q_FILL_END, bases)
        elif ph == PH_INIT:   # outgoing_contrib[u] = init_score / out_degree(u): static
            done, t, u, first, last = loop_step(st, ST_SEQ, n, threads, STATIC)
            if done:
                st[ST_PHASE] = PH_ITER
                st[ST_SEQ] = 0
                st[ST_ITER] = 0
                err[:] = 0.0
                continue
            if u < 0:
                continue
            if first:
                pos = emit_seq(out, pos, t, sites, seqs, Q_INIT_START, bases)
            pos = emit(out, pos, True, t, sites, S_INIT_HI, index + 8 * (u + 1))
            pos = emit(out, pos, True, t, sites, S_INIT_LO, index + 8 * u)
            contrib[u] = init_score / np.float32(offsets[u + 1] - offsets[u])
            pos = emit(out, pos, True, t, sites, S_INIT_SET, co_base + 4 * u)
            if last:
                pos = emit_seq(out, pos, t, sites, seqs, Q_INIT_END, bases)
        elif ph == PH_ITER:   # one iteration of the pull loop: dynamic, 16384
            seq = st[ST_SEQ]
            if seq == 0:
                pos = emit_seq(out, pos, T0, sites, seqs, Q_TRIAL_ITER, bases)
            done, t, u, first, last = loop_step(st, ST_SEQ, n, threads, PR_CHUNK)
            if done:
                error = 0.0
                for t in range(threads):   # the reduction: each thread adds its part
                    error += err[t]
                err[:] = 0.0
                st[ST_ITER] += 1
                st[ST_ITERS] += 1
                st[ST_SEQ] = 0
                if error < tolerance or st[ST_ITER] >= cfg[C_MAX_ITERS]:
                    st[ST_PHASE] = PH_END
                continue
            if u < 0:
                continue
            thread_first, thread_last = dynamic_chunk_bounds(u, n, threads, PR_CHUNK)
            if first:
                if thread_first:     # the thread's first chunk: its region starts
                    pos = emit_seq(out, pos, t, sites, seqs, Q_ITER_START, bases)
                pos = emit_seq(out, pos, t, sites, seqs, Q_ITER_CHUNK, bases)
            pos = emit(out, pos, True, t, sites, S_IN_HI, index + 8 * (u + 1))
            pos = emit(out, pos, True, t, sites, S_IN_LO, index + 8 * u)
            incoming = np.float32(0.0)
            for i in range(offsets[u], offsets[u + 1]):
                v = neighs[i]
                pos = emit(out, pos, True, t, sites, S_NEIGH, neigh_base + 4 * i)
                pos = emit(out, pos, True, t, sites, S_CONTRIB, co_base + 4 * v)
                incoming += contrib[v]
            st[ST_EDGES] += offsets[u + 1] - offsets[u]
            old = scores[u]
            pos = emit(out, pos, True, t, sites, S_OLD, sc_base + 4 * u)
            new = base_score + K_DAMP * incoming
            pos = emit(out, pos, True, t, sites, S_OUT_HI, index + 8 * (u + 1))
            pos = emit(out, pos, True, t, sites, S_OUT_LO, index + 8 * u)
            scores[u] = new
            pos = emit(out, pos, True, t, sites, S_SCORE, sc_base + 4 * u)
            err[t] += np.float64(abs(new - old))
            contrib[u] = new / np.float32(offsets[u + 1] - offsets[u])
            pos = emit(out, pos, True, t, sites, S_CONTRIB_SET, co_base + 4 * u)
            if last:
                pos = emit_seq(out, pos, t, sites, seqs, Q_ITER_CHUNK_END, bases)
                if thread_last:      # no further chunk of this thread: its region ends
                    pos = emit_seq(out, pos, t, sites, seqs, Q_ITER_END, bases)
        elif ph == PH_END:
            pos = emit_seq(out, pos, T0, sites, seqs, Q_TRIAL_END, bases)
            st[ST_TRIAL] += 1
            st[ST_PHASE] = PH_START if st[ST_TRIAL] < cfg[C_TRIALS] else PH_DONE
    return pos


# ---- the trace -------------------------------------------------------------------------------
def expected_records(p: PrParams) -> float:
    """2 x (2 per edge + 7 per vertex) per iteration, max_iters iterations (an upper bound)."""
    m = p.est_edges_directed
    return 2.0 * p.trials * p.max_iters * (2 * m + 7 * (1 << p.scale))


def size_estimate(p: PrParams) -> SizeEstimate:
    return p.size_estimate("PageRank", expected_records(p))


@dataclass(frozen=True)
class PrResult(GenResult):
    iterations: int = 0
    edges_read: int = 0
    num_nodes: int = 0
    num_edges: int = 0

    @property
    def units(self) -> int:
        return self.edges_read

    def summary(self) -> str:
        p = self.params
        return (f"{self.records:,} records (PageRank on 2^{p.scale} vertices, {self.num_edges:,} "
                f"undirected edges; {p.trials} trial{'s' if p.trials != 1 else ''}, "
                f"{self.iterations} iterations in all, {self.edges_read:,} edges read; "
                f"{p.threads} thread{'s' if p.threads != 1 else ''})")


def generate(out: str | Path, p: PrParams, progress: Progress | None = None,
             block_records: int = ROW_GROUP_ROWS) -> PrResult:
    g = build_graph(p)
    n = g.num_nodes
    lay = graph_layout(g, p.threads, [("scores", n, 4), ("contrib", n, 4)])
    regions = [CODE.region()] + lay.heap.array_regions() + stack_regions(lay.tops)
    meta = TraceMeta(source="gapbs-pr-synth", threads=p.threads, regions=tuple(regions),
                     generator=p.to_json(),
                     extra={"arrays": json.dumps(lay.heap.to_json()),
                            "graph": json.dumps({"num_nodes": n, "num_edges": g.num_edges})})
    max_deg = int(g.degree().max()) if n else 0
    cfg = np.zeros(9, np.int64)
    cfg[[C_THREADS, C_N, C_TRIALS, C_MAX_ITERS, C_NEIGHS, C_INDEX, C_SCORES, C_CONTRIB,
         C_MAX_REC]] = [p.threads, n, p.trials, p.max_iters, lay.start("neighs"),
                        lay.start("index"), lay.start("scores"), lay.start("contrib"),
                        2 * (4 * max_deg + 200)]
    st = np.zeros(6, np.int64)
    fst = np.array([p.tolerance], np.float64)
    err = np.zeros(p.threads, np.float64)
    scores = np.zeros(n, np.float32)
    contrib = np.zeros(n, np.float32)
    filler = BlockFiller(max(block_records, 2 * int(cfg[C_MAX_REC])))

    def blocks():
        yield from filler.run(_fill, lambda: st[ST_PHASE] == PH_DONE, cfg, st, fst, err,
                              g.offsets, g.neighs, scores, contrib, lay.bases(), SITES, SEQS)
        yield from filler.flush()

    est = p.trials * p.max_iters * g.num_edges_directed   # a bound: PR may converge earlier

    def done() -> int:
        return min(est, int(st[ST_EDGES]))

    base = generate_trace(out, p, meta, blocks(), done,
                          None if progress is None else (lambda d, _t: progress(d, est)))
    return PrResult(base.path, base.meta, p, base.records, iterations=int(st[ST_ITERS]),
                    edges_read=int(st[ST_EDGES]), num_nodes=n, num_edges=g.num_edges)
