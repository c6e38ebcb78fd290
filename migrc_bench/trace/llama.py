"""``trace gen llama``: LLM inference (llama2.c's ``run.c``) in N processes of T threads.

Each process runs llama2.c's generation loop: one ``forward(token, pos)`` per token step, then
greedy sampling (argmax over the logits; run.c's ``-t 0``) and printing the piece. The model
file is mapped read-only (``open(O_RDONLY)`` + ``mmap(PROT_READ, MAP_PRIVATE)``): a 28-byte
header of seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
a negative vocab_size means an unshared classifier), then float32 arrays, each contiguous over
all layers: token embedding (V·d), attention rmsnorm (L·d), wq (L·d·d), wk and wv (L·d·kv
each), wo (L·d·d), ffn rmsnorm (L·d), w1 (L·h·d), w2 (L·d·h), w3 (L·h·d), final rmsnorm (d),
the unused RoPE tables (S·hs) and, if unshared, the classifier (V·d). So **every token step
streams every layer's weights** once, in the order forward() uses them (w3 before w2, although
w2 comes first in the file), from a file mapping; the run state is calloc()ed per process:
x, xb, xb2, q (d floats each), hb, hb2 (h), the KV cache (key and value, L·S·kv each), att
(H·S) and the logits (V). A token step at position p writes row p of every layer's keys and
values and reads rows 0..p; the rest of its writes go to the few pages of activations.

``--weights shared`` maps one model file in every process (one page-cache copy, trace format
v2's shared file mapping); ``--weights per-process`` gives each process its own model file,
as the LUF v10/v12 llama.cpp runs did (three different 70 GB models, docs/reproduction.md).
The binary's text and read-only data and the libraries' are file mappings shared by all
processes, as they are in Linux.

The trace is what run.c compiled by GCC 12.2 ``-O3`` for x86-64 (SSE2, the reference build of
``migrc_bench/llama_check.py``) does, access for access, with one instruction fetch per data
access (the convention of every generator, ``gencore``):

* matmul, rows in parallel (OpenMP ``schedule(static)``, as llama2.c's ``runomp`` build
  splits them over threads): per row, 16-byte loads of the weights and of the input vector
  alternating (GCC vectorises the dot product in order), 4-byte scalar tails, one 4-byte
  store of the output; the row loops of wq and wo also reload their bound from the stack;
* rmsnorm: a 16-byte pass over x, then x, the weights and the output 16 bytes at a time;
* RoPE per pair of q (and k for i < kv_dim): 8-byte load and store of each pair, a call of
  powf and of sincosf (libm's table loads, the two results stored on the stack) and the
  spills of the loop;
* attention, heads in parallel: per position t <= p the 16-byte q·k dot product and a store
  of the score, softmax over p+1 scores (an expf call per score; the normalisation
  vectorised), memset of the head's output, and per t the weighted 16-byte accumulation of
  the value row;
* residual adds 16 bytes at a time, SwiGLU with an expf call per hidden unit, the classifier
  (a matmul of V rows), the argmax over the logits (inlined in generate);
* the register spills of forward() (per token, per layer, per head, per pair), the
  libraries' calls (call and return, the PLT's GOT load) and the printing of the piece
  (stdio: stack and libc data per token), in the counts the reference build makes.

Threads: thread 0 of a process runs everything that is not an OpenMP loop; the others wait at
its barriers (not traced). Processes are interleaved in slices of ~4096 records, round
robin; within a loop, threads one iteration per round (``gencore.loop_position``'s
convention). Not modelled: temperature sampling (softmax and top-p's qsort over V, run.c's
default ``-t 1``), the tokenizer and prompt processing, the lazy binding of each PLT entry
on its first call, and OpenMP's barriers and spin-waiting.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from ..errors import UserError
from .gencore import (CODE_BASE, LIB_BASE, OP_LOAD, OP_STORE, BlockFiller, CodeMap, GenParams,
                      GenResult, Heap, Progress, emit, emit_memcpy, emit_memset, emit_sized,
                      generate_trace, join_site_tables, round_up, stack_regions, stack_tops,
                      static_block)
from .native import PAGE_SIZE, ROW_GROUP_ROWS, Region, TraceMeta
from .processes import FileMapping, Process
from .sizes import HINT_RECORDS, SizeEstimate, estimate

HEADER_BYTES = 28                 # seven int32: the Config struct run.c freads
BOS = 1                           # run.c starts every sequence with token 1
MAX_TOTAL_THREADS = 65_535        # tid is uint16
QUANTUM = 4096                    # records of one process before the next one's turn
WEIGHTS_BASE = 0x7E00_0000_0000   # mmap(NULL, file_size): below the heap's mmap()ed chunks
WEIGHTS_MODES = ("shared", "per-process")

# Models llama2.c runs: its tinystories checkpoints (their configs) and Llama 2 (Meta's
# dimensions, seq_len set to its 4096-token context).
PRESETS: dict[str, dict[str, int | bool]] = {
    "stories15M": dict(dim=288, hidden_dim=768, layers=6, heads=6, kv_heads=6, vocab=32000,
                       seq_len=256, shared_classifier=True),
    "stories42M": dict(dim=512, hidden_dim=1376, layers=8, heads=8, kv_heads=8, vocab=32000,
                       seq_len=1024, shared_classifier=True),
    "stories110M": dict(dim=768, hidden_dim=2048, layers=12, heads=12, kv_heads=12,
                        vocab=32000, seq_len=1024, shared_classifier=True),
    "llama2-7b": dict(dim=4096, hidden_dim=11008, layers=32, heads=32, kv_heads=32,
                      vocab=32000, seq_len=4096, shared_classifier=False),
    "llama2-70b": dict(dim=8192, hidden_dim=28672, layers=80, heads=64, kv_heads=8,
                       vocab=32000, seq_len=4096, shared_classifier=False),
}
DEFAULT_PRESET = "stories15M"

# ---- the reference build's spill and library counts ------------------------------------------
# Stack accesses of forward() that no loop of the source explains (register spills and reloads
# around the inlined loops; objdump of the reference build, counted per execution in its lackey
# trace at d = 64, 2 layers, and checked at other dimensions by llama_check): per call of
# forward, per layer, per attention head.
SPILLS_PER_TOKEN = 78
SPILLS_PER_LAYER = 188
SPILLS_PER_HEAD = 48
# libm: table loads per call (expf, powf, sincosf); sincosf stores its two results on the stack
EXPF_LOADS, POWF_LOADS, SINCOSF_LOADS = 7, 13, 7
# decode + safe_printf + fflush of each piece: libc's stack and data accesses per token
STDIO_STACK, STDIO_DATA = 660, 305
MEMSET_DATA = 2                    # libc tunables memset reads per call

# ---- code ------------------------------------------------------------------------------------
# The reference build's text (offsets from the start of .text at 0x401000): the PLT, forward
# (matmul, rmsnorm and softmax inlined) and generate (the argmax inlined).
FUNCTIONS = {"plt": (0x020, 0x250), "forward": (0x1160, 0x20E3), "generate": (0x42F0, 0x378)}
LIB_FUNCTIONS = {"memcpy": (0x0000, 0x600), "memset": (0x0600, 0x300), "expf": (0x1000, 0x200),
                 "powf": (0x1200, 0x500), "sincosf": (0x1800, 0x400), "stdio": (0x2000, 0x2000)}
L_, S_ = OP_LOAD, OP_STORE


def _forward_sites() -> list[tuple[str, str, int, int, int, int]]:
    """forward()'s data-access sites in source order, spread over its text as in the build."""
    names: list[tuple[str, int, int]] = [("spill_tok", S_, 8), ("emb_call", S_, 8)]
    for inst in ("rms_att", "rms_ffn", "rms_final"):
        names += [(f"{inst}_x1", L_, 16), (f"{inst}_x2", L_, 16), (f"{inst}_w", L_, 16),
                  (f"{inst}_o", S_, 16)]
    for inst in ("wq", "wk", "wv", "wo", "w1", "w3", "w2", "cls"):
        names += [(f"{inst}_w", L_, 16), (f"{inst}_x", L_, 16), (f"{inst}_stk", L_, 8),
                  (f"{inst}_out", S_, 4)]
    names += [("spill_layer", S_, 8), ("rope_stk", L_, 8), ("rope_rodata", L_, 4),
              ("rope_pow_call", S_, 8), ("rope_sc_call", S_, 8), ("rope_res", L_, 4),
              ("rope_q_ld", L_, 8), ("rope_q_st", S_, 8), ("rope_k_ld", L_, 8),
              ("rope_k_st", S_, 8),
              ("att_spill", S_, 8), ("att_q", L_, 16), ("att_k", L_, 16), ("att_stk", L_, 8),
              ("att_score", S_, 4), ("sm_max", L_, 4), ("sm_ld", L_, 4), ("sm_spill", S_, 4),
              ("sm_call", S_, 8), ("sm_stk", L_, 8), ("sm_st", S_, 4), ("sm_norm_ld", L_, 16),
              ("sm_norm_st", S_, 16), ("att_memset_call", S_, 8), ("av_a", L_, 4),
              ("av_v", L_, 16), ("av_xb_ld", L_, 16), ("av_xb_st", S_, 16), ("av_stk", L_, 8),
              ("res_att_x", L_, 16), ("res_att_y", L_, 16), ("res_att_st", S_, 16),
              ("res_ffn_x", L_, 16), ("res_ffn_y", L_, 16), ("res_ffn_st", S_, 16),
              ("glu_hb", L_, 4), ("glu_mask", L_, 16), ("glu_spill", S_, 4),
              ("glu_call", S_, 8), ("glu_one", L_, 4), ("glu_reload", L_, 4),
              ("glu_hb2", L_, 4), ("glu_st", S_, 4)]
    f_off, f_size = FUNCTIONS["forward"]
    stride = (f_size - 16) // len(names)
    return [(n, "forward", i * stride, 4, op, size) for i, (n, op, size) in enumerate(names)]


_SITES = _forward_sites() + [
    ("got", "plt", 0x60, 6, L_, 8),
    ("argmax_stk", "generate", 0x154, 5, L_, 4), ("argmax_first", "generate", 0x166, 4, L_, 4),
    ("argmax", "generate", 0x180, 5, L_, 4), ("stdio_call", "generate", 0x1A0, 5, S_, 8),
]
_LIB_SITES = [
    ("memcpy_ld", "memcpy", 0x40, 4, L_, 32), ("memcpy_st", "memcpy", 0x80, 4, S_, 32),
    ("memcpy_ret", "memcpy", 0x5F0, 1, L_, 8),
    ("memset_tun", "memset", 0x10, 7, L_, 8), ("memset_st", "memset", 0x40, 4, S_, 32),
    ("memset_ret", "memset", 0x2F0, 1, L_, 8),
    ("expf_tab", "expf", 0x40, 5, L_, 8), ("expf_ret", "expf", 0x1F0, 1, L_, 8),
    ("powf_tab", "powf", 0x60, 5, L_, 8), ("powf_stk", "powf", 0x100, 5, S_, 8),
    ("powf_ret", "powf", 0x4F0, 1, L_, 8),
    ("sc_tab", "sincosf", 0x40, 5, L_, 8), ("sc_res", "sincosf", 0x200, 4, S_, 4),
    ("sc_stk", "sincosf", 0x240, 5, S_, 8), ("sc_ret", "sincosf", 0x3F0, 1, L_, 8),
    ("stdio_stk", "stdio", 0x100, 4, S_, 8), ("stdio_data", "stdio", 0x400, 4, L_, 8),
]
CODE = CodeMap(FUNCTIONS, _SITES, CODE_BASE, name="run:text")
LIB_CODE = CodeMap(LIB_FUNCTIONS, _LIB_SITES, LIB_BASE, name="libm+libc:text")
SITES, S = join_site_tables(CODE, LIB_CODE)

# Data the code reads besides the program's arrays: the binary's .rodata (float constants,
# after its text), its GOT (the PLT's jumps), the libraries' tables and libc's writable data.
RODATA_BASE = CODE_BASE + 0x5000
GOT_BASE = CODE_BASE + 0x7000
LIB_RODATA_BASE = LIB_BASE + 0x10000
LIB_DATA_BASE = LIB_BASE + 0x20000
TEXT_FILE, LIB_FILE = "llama2c-run", "libm+libc.so"

# ---- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LlamaParams(GenParams):
    dim: int
    hidden_dim: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    seq_len: int
    shared_classifier: bool
    steps: int
    threads: int
    processes: int
    weights: str
    seed: int
    model: str = ""

    generator = "llama"
    work_unit = "token"

    @property
    def kv_dim(self) -> int:
        return self.dim * self.kv_heads // self.heads

    @property
    def head_size(self) -> int:
        return self.dim // self.heads

    @property
    def total_threads(self) -> int:
        return self.processes * self.threads

    @property
    def work_units(self) -> int:
        """Token steps over all processes."""
        return self.processes * self.steps

    def weight_floats(self) -> dict[str, int]:
        """The checkpoint's float arrays in file order (run.c's memory_map_weights)."""
        d, h, L, V, kv = self.dim, self.hidden_dim, self.layers, self.vocab, self.kv_dim
        out = {"token_embedding": V * d, "rms_att": L * d, "wq": L * d * d, "wk": L * d * kv,
               "wv": L * d * kv, "wo": L * d * d, "rms_ffn": L * d, "w1": L * h * d,
               "w2": L * d * h, "w3": L * h * d, "rms_final": d,
               "freq_cis": self.seq_len * self.head_size}
        if not self.shared_classifier:
            out["wcls"] = V * d
        return out

    @property
    def file_bytes(self) -> int:
        return HEADER_BYTES + 4 * sum(self.weight_floats().values())

    def extra_json(self) -> dict[str, Any]:
        return {"kv_dim": self.kv_dim, "head_size": self.head_size,
                "model_file_bytes": self.file_bytes, "total_threads": self.total_threads}


def click_params() -> list:
    import click

    def opt(flags, dest, help_, **kw):
        return click.Option(flags, dest, default=None, help=help_, **kw)

    pos = click.IntRange(1, None)
    return [
        click.Option(["-m", "--model", "model"], type=click.Choice(list(PRESETS)),
                     default=DEFAULT_PRESET, show_default=True,
                     help="Dimensions of a llama2.c model (the flags below override them)."),
        opt(["--dim"], "dim", "Transformer dimension d.", type=pos),
        opt(["--hidden-dim"], "hidden_dim", "FFN hidden dimension h.", type=pos),
        opt(["--layers"], "layers", "Layers L.", type=pos),
        opt(["--heads"], "heads", "Query heads H (divides d).", type=pos),
        opt(["--kv-heads"], "kv_heads", "Key/value heads (divides H).", type=pos),
        opt(["--vocab"], "vocab", "Vocabulary size V.", type=pos),
        opt(["--seq-len"], "seq_len", "Maximum sequence length S (the KV cache's rows).",
            type=pos),
        click.Option(["--shared-classifier/--separate-classifier", "shared_classifier"],
                     default=None, help="Classifier = token embedding (tinystories) or its own "
                                        "array (Llama 2) [default: the model's]."),
        click.Option(["-n", "--steps"], type=click.IntRange(1, None), default=None,
                     help="Token steps per process [default: 256, at most --seq-len, as run.c]."),
        click.Option(["-t", "--threads"], type=click.IntRange(1, MAX_TOTAL_THREADS), default=1,
                     show_default=True, help="OpenMP threads per process (matmul rows and "
                                             "attention heads are split statically)."),
        click.Option(["-P", "--processes"], type=click.IntRange(1, MAX_TOTAL_THREADS),
                     default=1, show_default=True,
                     help="Processes running inference at the same time (pids 1..P)."),
        click.Option(["--weights"], type=click.Choice(WEIGHTS_MODES), default="shared",
                     show_default=True, help="One model file mapped by every process, or one "
                                             "model file per process."),
        click.Option(["--seed"], type=click.IntRange(0, 2**63 - 1), default=0,
                     show_default=True, help="Seed of the tokens each process generates."),
    ]


def resolve_params(model: str = DEFAULT_PRESET, dim: int | None = None,
                   hidden_dim: int | None = None, layers: int | None = None,
                   heads: int | None = None, kv_heads: int | None = None,
                   vocab: int | None = None, seq_len: int | None = None,
                   shared_classifier: bool | None = None, steps: int | None = None,
                   threads: int = 1, processes: int = 1, weights: str = "shared",
                   seed: int = 0) -> LlamaParams:
    if model not in PRESETS:
        raise UserError(f"unknown llama model {model!r} (known: {', '.join(PRESETS)})")
    given = dict(dim=dim, hidden_dim=hidden_dim, layers=layers, heads=heads, kv_heads=kv_heads,
                 vocab=vocab, seq_len=seq_len, shared_classifier=shared_classifier)
    cfg = dict(PRESETS[model])
    cfg.update({k: v for k, v in given.items() if v is not None})
    flag = {"dim": "--dim", "hidden_dim": "--hidden-dim", "layers": "--layers",
            "heads": "--heads", "kv_heads": "--kv-heads", "vocab": "--vocab",
            "seq_len": "--seq-len"}
    for k, f in flag.items():
        if int(cfg[k]) < 1:
            raise UserError(f"llama {f} must be at least 1, got {cfg[k]}")
    d, H, Hk = int(cfg["dim"]), int(cfg["heads"]), int(cfg["kv_heads"])
    if d % H:
        raise UserError(f"llama --heads {H} must divide --dim {d} (head_size = dim / heads)")
    if H % Hk:
        raise UserError(f"llama --kv-heads {Hk} must divide --heads {H} (grouped-query "
                        f"attention shares each key/value head among heads / kv_heads)")
    if d % 2 or (d // H) % 2:
        raise UserError(f"llama --dim {d} / --heads {H} must give an even head size (RoPE "
                        f"rotates pairs)")
    S = int(cfg["seq_len"])
    n = 256 if steps is None else int(steps)
    if steps is not None and n < 1:
        raise UserError(f"llama steps (-n) must be at least 1, got {steps}")
    if steps is not None and n > S:
        raise UserError(f"llama steps (-n) {n} exceed --seq-len {S} (the KV cache has S rows)")
    n = min(n, S)
    if weights not in WEIGHTS_MODES:
        raise UserError(f"llama --weights must be one of {', '.join(WEIGHTS_MODES)}, got "
                        f"{weights!r}")
    if not 1 <= int(threads) or not 1 <= int(processes) or \
            int(threads) * int(processes) > MAX_TOTAL_THREADS:
        raise UserError(f"llama processes x threads must be 1..{MAX_TOTAL_THREADS} (thread ids "
                        f"are 16-bit), got {processes} x {threads}")
    if not 0 <= int(seed) < 2**63:
        raise UserError(f"llama --seed must be between 0 and 2^63-1, got {seed}")
    custom = any(given[k] is not None for k in flag)    # "": dimensions of no preset
    return LlamaParams(d, int(cfg["hidden_dim"]), int(cfg["layers"]), H, Hk, int(cfg["vocab"]),
                       S, bool(cfg["shared_classifier"]), n, int(threads), int(processes),
                       weights, int(seed), "" if custom else model)


# ---- the program: one token step as a list of loops ------------------------------------------
# op kinds; an op row is (kind, a, b, c, n, rows, site, flag)
K_EMBED, K_RMS, K_MATMUL, K_ROPE, K_ATTN, K_RESID, K_GLU, K_ARGMAX, K_SPILL, K_STDIO = range(10)
F_KIND, F_A, F_B, F_C, F_N, F_ROWS, F_SITE, F_FLAG = range(8)
MM_STACK, MM_KV_ROW = 1, 2          # matmul flags: bound reloaded per row; output at row pos
# cfg fields
(C_PROCS, C_THREADS, C_STEPS, C_QUANTUM, C_MAXITEM, C_DIM, C_KV, C_HS, C_KVMUL, C_SEQ,
 C_EMB, C_X, C_Q, C_ATT, C_XB) = range(15)
N_CFG = 15


def _ops(p: LlamaParams, arr: dict[str, int], w: dict[str, int]) -> np.ndarray:
    """The loops of one token step in order: forward(), the argmax, the printing."""
    d, h, kv, V, seq = p.dim, p.hidden_dim, p.kv_dim, p.vocab, p.seq_len
    rows: list[tuple[int, ...]] = [(K_SPILL, 0, 0, 0, SPILLS_PER_TOKEN, 1, S["spill_tok"], 0),
                                   (K_EMBED, 0, 0, 0, 0, 1, 0, 0)]

    def mm(name: str, out: int, x: int, wa: int, n: int, r: int, flag: int = 0) -> None:
        rows.append((K_MATMUL, out, x, wa, n, r, S[f"{name}_w"], flag))

    for l in range(p.layers):
        kv_l = 4 * l * seq * kv
        rows.append((K_SPILL, 0, 0, 0, SPILLS_PER_LAYER, 1, S["spill_layer"], 0))
        rows.append((K_RMS, arr["xb"], arr["x"], w["rms_att"] + 4 * l * d, d, 1,
                     S["rms_att_x1"], 0))
        mm("wq", arr["q"], arr["xb"], w["wq"] + 4 * l * d * d, d, d, MM_STACK)
        mm("wk", arr["key_cache"] + kv_l, arr["xb"], w["wk"] + 4 * l * d * kv, d, kv, MM_KV_ROW)
        mm("wv", arr["value_cache"] + kv_l, arr["xb"], w["wv"] + 4 * l * d * kv, d, kv,
           MM_KV_ROW)
        rows.append((K_ROPE, arr["q"], arr["key_cache"] + kv_l, 0, d, d // 2, S["rope_stk"], 0))
        rows.append((K_ATTN, arr["key_cache"] + kv_l, arr["value_cache"] + kv_l, 0, 0,
                     p.heads, S["att_spill"], 0))
        mm("wo", arr["xb2"], arr["xb"], w["wo"] + 4 * l * d * d, d, d, MM_STACK)
        rows.append((K_RESID, arr["x"], arr["xb2"], 0, d, 1, S["res_att_x"], 0))
        rows.append((K_RMS, arr["xb"], arr["x"], w["rms_ffn"] + 4 * l * d, d, 1,
                     S["rms_ffn_x1"], 0))
        mm("w1", arr["hb"], arr["xb"], w["w1"] + 4 * l * h * d, d, h)
        mm("w3", arr["hb2"], arr["xb"], w["w3"] + 4 * l * h * d, d, h)
        rows.append((K_GLU, arr["hb"], arr["hb2"], 0, h, h, S["glu_hb"], 0))
        mm("w2", arr["xb"], arr["hb"], w["w2"] + 4 * l * d * h, h, d)
        rows.append((K_RESID, arr["x"], arr["xb"], 0, d, 1, S["res_ffn_x"], 0))
    rows.append((K_RMS, arr["x"], arr["x"], w["rms_final"], d, 1, S["rms_final_x1"], 0))
    mm("cls", arr["logits"], arr["x"], w["wcls"], d, V)
    rows.append((K_ARGMAX, arr["logits"], 0, 0, V, 1, S["argmax_stk"], 0))
    rows.append((K_STDIO, 0, 0, 0, 0, 1, S["stdio_call"], 0))
    return np.array(rows, np.int64)


# ---- the kernel ------------------------------------------------------------------------------
@nb.njit(inline="always")
def _vec_count(n):
    return n // 4 + n % 4


@nb.njit(inline="always")
def _libcall(out, pos, tid, sites, call_site, sp):
    """A call through the PLT: the return address pushed, the GOT entry loaded (the callee's
    return is ``_ret``)."""
    pos = emit(out, pos, True, tid, sites, call_site, sp - 8)
    return emit(out, pos, True, tid, sites, S_GOT, GOT_BASE + 8 * (call_site % 32))


@nb.njit(inline="always")
def _ret(out, pos, tid, sites, ret_site, sp):
    return emit(out, pos, True, tid, sites, ret_site, sp - 8)


@nb.njit(inline="always")
def _expf(out, pos, tid, sites, call_site, sp):
    pos = _libcall(out, pos, tid, sites, call_site, sp)
    for j in range(EXPF_LOADS):
        pos = emit(out, pos, True, tid, sites, S_EXPF_TAB, LIB_RODATA_BASE + 64 * j)
    return _ret(out, pos, tid, sites, S_EXPF_RET, sp)


@nb.njit(inline="always")
def _spills(out, pos, tid, sites, site, sp, n):
    """n spills and reloads in forward()'s frame: a third stores, the rest loads."""
    for j in range(n):
        a = sp + 8 * (j % 64)
        if j % 3 == 0:
            pos = emit_sized(out, pos, tid, sites, site, a, 8)
        else:
            pos = emit(out, pos, True, tid, sites, S_ROPE_STK, a)
    return pos


@nb.njit(inline="always")
def _loads16(out, pos, tid, sites, site, a, n):
    """n floats read 16 bytes at a time, then a scalar tail (one site)."""
    for v in range(n // 4):
        pos = emit_sized(out, pos, tid, sites, site, a + 16 * v, 16)
    for j in range(n % 4):
        pos = emit_sized(out, pos, tid, sites, site, a + 16 * (n // 4) + 4 * j, 4)
    return pos


@nb.njit(cache=True, nogil=True, _nrt=False)
def _item(cfg, op, step, unit, j, th, tid, sp, token, sites, out, pos):
    """One iteration (row, head item, pair, element, or a whole short loop) of ``op``."""
    kind = op[F_KIND]
    site = op[F_SITE]
    if kind == K_MATMUL:
        n = op[F_N]
        w = op[F_C] + 4 * unit * n
        x = op[F_B]
        for v in range(n // 4):
            pos = emit(out, pos, True, tid, sites, site, w + 16 * v)
            pos = emit(out, pos, True, tid, sites, site + 1, x + 16 * v)
        base = 16 * (n // 4)
        for t in range(n % 4):
            pos = emit_sized(out, pos, tid, sites, site, w + base + 4 * t, 4)
            pos = emit_sized(out, pos, tid, sites, site + 1, x + base + 4 * t, 4)
        if op[F_FLAG] == MM_STACK:
            pos = emit(out, pos, True, tid, sites, site + 2, sp)
        o = op[F_A] + 4 * unit
        if op[F_FLAG] == MM_KV_ROW:
            o += 4 * step * cfg[C_KV]
        return emit(out, pos, True, tid, sites, site + 3, o)
    if kind == K_RMS:
        o, x, w, n = op[F_A], op[F_B], op[F_C], op[F_N]
        pos = _loads16(out, pos, tid, sites, site, x, n)
        for v in range(_vec_count(n)):
            sz = 16 if v < n // 4 else 4
            off = 16 * v if v < n // 4 else 16 * (n // 4) + 4 * (v - n // 4)
            pos = emit_sized(out, pos, tid, sites, site + 1, x + off, sz)
            pos = emit_sized(out, pos, tid, sites, site + 2, w + off, sz)
            pos = emit_sized(out, pos, tid, sites, site + 3, o + off, sz)
        return pos
    if kind == K_RESID:
        x, y, n = op[F_A], op[F_B], op[F_N]
        for v in range(_vec_count(n)):
            sz = 16 if v < n // 4 else 4
            off = 16 * v if v < n // 4 else 16 * (n // 4) + 4 * (v - n // 4)
            pos = emit_sized(out, pos, tid, sites, site, x + off, sz)
            pos = emit_sized(out, pos, tid, sites, site + 1, y + off, sz)
            pos = emit_sized(out, pos, tid, sites, site + 2, x + off, sz)
        return pos
    if kind == K_ROPE:
        i = 2 * unit                                   # the pair (i, i+1)
        with_k = i < cfg[C_KV]
        pos = emit(out, pos, True, tid, sites, S_ROPE_STK, sp + 0x20)
        pos = emit(out, pos, True, tid, sites, S_ROPE_STK, sp)
        pos = _libcall(out, pos, tid, sites, S_ROPE_POW_CALL, sp)
        for t in range(POWF_LOADS):
            pos = emit(out, pos, True, tid, sites, S_POWF_TAB, LIB_RODATA_BASE + 0x400 + 64 * t)
        if unit % 2:
            pos = emit(out, pos, True, tid, sites, S_POWF_STK, sp - 0x40)
        pos = _ret(out, pos, tid, sites, S_POWF_RET, sp)
        if with_k:
            pos = emit(out, pos, True, tid, sites, S_ROPE_STK, sp + 0x38)
            pos = emit(out, pos, True, tid, sites, S_ROPE_STK, sp + 0x40)
        pos = emit(out, pos, True, tid, sites, S_ROPE_RODATA, RODATA_BASE + 0x3D0)
        pos = emit(out, pos, True, tid, sites, S_ROPE_STK, sp + 0x18)
        pos = _libcall(out, pos, tid, sites, S_ROPE_SC_CALL, sp)
        for t in range(SINCOSF_LOADS):
            pos = emit(out, pos, True, tid, sites, S_SC_TAB, LIB_RODATA_BASE + 0x800 + 64 * t)
        pos = emit(out, pos, True, tid, sites, S_SC_RES, sp + 0x198)
        pos = emit(out, pos, True, tid, sites, S_SC_RES, sp + 0x19C)
        if unit % 2 == 0:
            pos = emit(out, pos, True, tid, sites, S_SC_STK, sp - 0x48)
        pos = _ret(out, pos, tid, sites, S_SC_RET, sp)
        pos = emit(out, pos, True, tid, sites, S_ROPE_RES, sp + 0x198)
        pos = emit(out, pos, True, tid, sites, S_ROPE_RES, sp + 0x19C)
        q = op[F_A] + 4 * i
        pos = emit(out, pos, True, tid, sites, S_ROPE_Q_LD, q)
        pos = emit(out, pos, True, tid, sites, S_ROPE_Q_ST, q)
        if with_k:
            k = op[F_B] + 4 * (step * cfg[C_KV] + i)
            pos = emit(out, pos, True, tid, sites, S_ROPE_K_LD, k)
            pos = emit(out, pos, True, tid, sites, S_ROPE_K_ST, k)
        return pos
    if kind == K_ATTN:
        return _attn_item(cfg, op, step, unit, j, tid, sp, sites, out, pos)
    if kind == K_GLU:
        hb, hb2 = op[F_A] + 4 * unit, op[F_B] + 4 * unit
        pos = emit(out, pos, True, tid, sites, S_GLU_HB, hb)
        pos = emit(out, pos, True, tid, sites, S_GLU_MASK, RODATA_BASE + 0x3E0)
        pos = emit(out, pos, True, tid, sites, S_GLU_SPILL, sp)
        pos = _expf(out, pos, tid, sites, S_GLU_CALL, sp)
        pos = emit(out, pos, True, tid, sites, S_GLU_ONE, RODATA_BASE + 0x3D0)
        pos = emit(out, pos, True, tid, sites, S_GLU_RELOAD, sp)
        pos = emit(out, pos, True, tid, sites, S_GLU_ONE, RODATA_BASE + 0x3D0)
        pos = emit(out, pos, True, tid, sites, S_GLU_HB2, hb2)
        return emit(out, pos, True, tid, sites, S_GLU_ST, hb)
    if kind == K_EMBED:
        d4 = 4 * cfg[C_DIM]
        pos = _libcall(out, pos, tid, sites, S_EMB_CALL, sp)
        pos = emit_memcpy(out, pos, tid, sites, S_MEMCPY_LD, S_MEMCPY_ST, cfg[C_X],
                          cfg[C_EMB] + token * d4, d4)
        return _ret(out, pos, tid, sites, S_MEMCPY_RET, sp)
    if kind == K_ARGMAX:
        logits, n = op[F_A], op[F_N]
        pos = emit(out, pos, True, tid, sites, site, sp + 0x40)
        pos = emit(out, pos, True, tid, sites, S_ARGMAX_FIRST, logits)
        for t in range(1, n):
            pos = emit(out, pos, True, tid, sites, S_ARGMAX, logits + 4 * t)
        return pos
    if kind == K_SPILL:
        return _spills(out, pos, tid, sites, site, sp, op[F_N])
    if kind == K_STDIO:
        for t in range(STDIO_STACK):
            pos = emit(out, pos, True, tid, sites, S_STDIO_STK, sp - 0x100 - 8 * (t % 256))
        for t in range(STDIO_DATA):
            pos = emit(out, pos, True, tid, sites, S_STDIO_DATA, LIB_DATA_BASE + 8 * (t % 512))
        return pos
    return pos


@nb.njit(cache=True, nogil=True, _nrt=False)
def _attn_item(cfg, op, step, h, j, tid, sp, sites, out, pos):
    """Head h's j-th item: j <= p the score of position j, j = p+1 the softmax (and the head's
    spills and the memset of its output), j > p+1 the weighted value row j-p-2."""
    hs, kv = cfg[C_HS], cfg[C_KV]
    kvh = (h // cfg[C_KVMUL]) * hs
    q = cfg[C_Q] + 4 * h * hs
    att = cfg[C_ATT] + 4 * h * cfg[C_SEQ]
    xb = cfg[C_XB] + 4 * h * hs
    p = step
    if j <= p:
        k = op[F_A] + 4 * (j * kv + kvh)
        pos = emit(out, pos, True, tid, sites, S_ATT_STK, sp + 0x30)
        for v in range(hs // 4):
            pos = emit(out, pos, True, tid, sites, S_ATT_Q, q + 16 * v)
            pos = emit(out, pos, True, tid, sites, S_ATT_K, k + 16 * v)
        for t in range(hs % 4):
            pos = emit_sized(out, pos, tid, sites, S_ATT_Q, q + 16 * (hs // 4) + 4 * t, 4)
            pos = emit_sized(out, pos, tid, sites, S_ATT_K, k + 16 * (hs // 4) + 4 * t, 4)
        pos = emit(out, pos, True, tid, sites, S_ATT_STK, sp + 0x38)
        pos = emit(out, pos, True, tid, sites, S_ATT_SCORE, att + 4 * j)
        return emit(out, pos, True, tid, sites, S_ATT_STK, sp + 0x40)
    if j == p + 1:
        n = p + 1
        pos = _spills(out, pos, tid, sites, S_ATT_SPILL, sp, SPILLS_PER_HEAD)
        pos = emit(out, pos, True, tid, sites, S_SM_MAX, att)
        for t in range(1, n):
            pos = emit(out, pos, True, tid, sites, S_SM_MAX, att + 4 * t)
        for t in range(n):
            pos = emit(out, pos, True, tid, sites, S_SM_LD, att + 4 * t)
            pos = emit(out, pos, True, tid, sites, S_SM_SPILL, sp + 0x10)
            pos = _expf(out, pos, tid, sites, S_SM_CALL, sp)
            pos = emit(out, pos, True, tid, sites, S_SM_STK, sp + 0x10)
            pos = emit(out, pos, True, tid, sites, S_SM_STK, sp + 0x18)
            pos = emit(out, pos, True, tid, sites, S_SM_ST, att + 4 * t)
        for v in range(n // 4):
            pos = emit(out, pos, True, tid, sites, S_SM_NORM_LD, att + 16 * v)
            pos = emit(out, pos, True, tid, sites, S_SM_NORM_ST, att + 16 * v)
        a = att + 16 * (n // 4)
        if n % 4 >= 2:
            pos = emit_sized(out, pos, tid, sites, S_SM_NORM_LD, a, 8)
            pos = emit_sized(out, pos, tid, sites, S_SM_NORM_ST, a, 8)
            a += 8
        if n % 2:
            pos = emit_sized(out, pos, tid, sites, S_SM_NORM_LD, a, 4)
            pos = emit_sized(out, pos, tid, sites, S_SM_NORM_ST, a, 4)
        pos = _libcall(out, pos, tid, sites, S_ATT_MEMSET_CALL, sp)
        for t in range(MEMSET_DATA):
            pos = emit(out, pos, True, tid, sites, S_MEMSET_TUN, LIB_DATA_BASE + 0x1000 + 8 * t)
        pos = emit_memset(out, pos, tid, sites, S_MEMSET_ST, xb, 4 * hs)
        return _ret(out, pos, tid, sites, S_MEMSET_RET, sp)
    t = j - p - 2
    v_row = op[F_B] + 4 * (t * kv + kvh)
    pos = emit(out, pos, True, tid, sites, S_AV_A, att + 4 * t)
    for v in range(_vec_count(hs)):
        sz = 16 if v < hs // 4 else 4
        off = 16 * v if v < hs // 4 else 16 * (hs // 4) + 4 * (v - hs // 4)
        pos = emit_sized(out, pos, tid, sites, S_AV_V, v_row + off, sz)
        pos = emit_sized(out, pos, tid, sites, S_AV_XB_LD, xb + off, sz)
        pos = emit_sized(out, pos, tid, sites, S_AV_XB_ST, xb + off, sz)
    pos = emit(out, pos, True, tid, sites, S_AV_STK, sp + 0x48)
    return emit(out, pos, True, tid, sites, S_AV_STK, sp + 0x50)


@nb.njit(inline="always")
def _shape(cfg, op, step):
    """(units, items per unit, parallel) of an op at token position ``step``."""
    kind = op[F_KIND]
    if kind == K_MATMUL:
        return op[F_ROWS], 1, True
    if kind == K_ATTN:
        return op[F_ROWS], 2 * (step + 1) + 1, True
    if kind == K_ROPE or kind == K_GLU:
        return op[F_ROWS], 1, False
    return 1, 1, False


# per-process state
P_STEP, P_OP, P_SEQ = range(3)
# global state
G_PROC, G_SLICE = range(2)


@nb.njit(cache=True, nogil=True, _nrt=False)
def _fill(cfg, ops, pst, gst, tokens, sps, sites, o_tid, o_op, o_addr, o_size, pos):
    """Records from the processes' positions until the block is nearly full; returns the new
    position (``pst``/``gst`` say where to resume)."""
    out = (o_tid, o_op, o_addr, o_size)
    cap = len(o_tid)
    nproc, T, steps = cfg[C_PROCS], cfg[C_THREADS], cfg[C_STEPS]
    nops = ops.shape[0]
    while pos + cfg[C_MAXITEM] <= cap:
        p = gst[G_PROC]
        if pst[p, P_STEP] >= steps:
            done = True
            for r in range(nproc):
                if pst[r, P_STEP] < steps:
                    done = False
            if done:
                break
            gst[G_PROC] = (p + 1) % nproc
            gst[G_SLICE] = 0
            continue
        step, k, seq = pst[p, P_STEP], pst[p, P_OP], pst[p, P_SEQ]
        op = ops[k]
        units, ipu, par = _shape(cfg, op, step)
        te = T if par else 1
        per_thread = -(-units // te) * ipu
        if seq >= per_thread * te:
            k += 1
            if k == nops:
                k = 0
                pst[p, P_STEP] = step + 1
            pst[p, P_OP] = k
            pst[p, P_SEQ] = 0
            continue
        th = seq % te
        kk = seq // te
        pst[p, P_SEQ] = seq + 1
        lo, cnt = static_block(units, te, th)
        if kk < cnt * ipu:
            before = pos
            pos = _item(cfg, op, step, lo + kk // ipu, kk % ipu, th, p * T + th, sps[th],
                        tokens[p, step], sites, out, pos)
            gst[G_SLICE] += pos - before
            if gst[G_SLICE] >= cfg[C_QUANTUM] and nproc > 1:
                gst[G_PROC] = (p + 1) % nproc
                gst[G_SLICE] = 0
    return pos


S_GOT, S_EXPF_TAB, S_EXPF_RET = S["got"], S["expf_tab"], S["expf_ret"]
S_POWF_TAB, S_POWF_STK, S_POWF_RET = S["powf_tab"], S["powf_stk"], S["powf_ret"]
S_SC_TAB, S_SC_RES, S_SC_STK, S_SC_RET = S["sc_tab"], S["sc_res"], S["sc_stk"], S["sc_ret"]
S_MEMCPY_LD, S_MEMCPY_ST, S_MEMCPY_RET = S["memcpy_ld"], S["memcpy_st"], S["memcpy_ret"]
S_MEMSET_TUN, S_MEMSET_ST, S_MEMSET_RET = S["memset_tun"], S["memset_st"], S["memset_ret"]
S_STDIO_STK, S_STDIO_DATA = S["stdio_stk"], S["stdio_data"]
S_ROPE_STK, S_ROPE_RODATA, S_ROPE_POW_CALL, S_ROPE_SC_CALL, S_ROPE_RES = (
    S["rope_stk"], S["rope_rodata"], S["rope_pow_call"], S["rope_sc_call"], S["rope_res"])
S_ROPE_Q_LD, S_ROPE_Q_ST, S_ROPE_K_LD, S_ROPE_K_ST = (
    S["rope_q_ld"], S["rope_q_st"], S["rope_k_ld"], S["rope_k_st"])
S_ATT_SPILL, S_ATT_Q, S_ATT_K, S_ATT_STK, S_ATT_SCORE = (
    S["att_spill"], S["att_q"], S["att_k"], S["att_stk"], S["att_score"])
S_SM_MAX, S_SM_LD, S_SM_SPILL, S_SM_CALL, S_SM_STK, S_SM_ST = (
    S["sm_max"], S["sm_ld"], S["sm_spill"], S["sm_call"], S["sm_stk"], S["sm_st"])
S_SM_NORM_LD, S_SM_NORM_ST, S_ATT_MEMSET_CALL = (S["sm_norm_ld"], S["sm_norm_st"],
                                                 S["att_memset_call"])
S_AV_A, S_AV_V, S_AV_XB_LD, S_AV_XB_ST, S_AV_STK = (
    S["av_a"], S["av_v"], S["av_xb_ld"], S["av_xb_st"], S["av_stk"])
S_GLU_HB, S_GLU_MASK, S_GLU_SPILL, S_GLU_CALL, S_GLU_ONE, S_GLU_RELOAD, S_GLU_HB2, S_GLU_ST = (
    S["glu_hb"], S["glu_mask"], S["glu_spill"], S["glu_call"], S["glu_one"], S["glu_reload"],
    S["glu_hb2"], S["glu_st"])
S_EMB_CALL, S_ARGMAX_FIRST, S_ARGMAX = S["emb_call"], S["argmax_first"], S["argmax"]


# ---- the trace -------------------------------------------------------------------------------
FRAME = 0xA00          # forward()'s frame below each thread's stack top (spills, libm results)
RUN_STATE = ("x", "xb", "xb2", "hb", "hb2", "q", "key_cache", "value_cache", "att", "logits")


def layout(p: LlamaParams) -> tuple[Heap, dict[str, int]]:
    """The run state in calloc order (malloc_run_state) and each weight array's address."""
    d, h, kv = p.dim, p.hidden_dim, p.kv_dim
    heap = Heap()
    sizes = {"x": d, "xb": d, "xb2": d, "hb": h, "hb2": h, "q": d,
             "key_cache": p.layers * p.seq_len * kv, "value_cache": p.layers * p.seq_len * kv,
             "att": p.heads * p.seq_len, "logits": p.vocab}
    for name in RUN_STATE:
        heap.alloc(name, sizes[name], 4)
    weights: dict[str, int] = {}
    a = WEIGHTS_BASE + HEADER_BYTES
    for name, n in p.weight_floats().items():
        weights[name] = a
        a += 4 * n
    if p.shared_classifier:
        weights["wcls"] = weights["token_embedding"]
    return heap, weights


def model_file(p: LlamaParams, pid: int) -> str:
    return "model" if p.weights == "shared" else f"model-{pid}"


def regions(p: LlamaParams, heap: Heap, tops: tuple[int, ...]) -> list[Region]:
    """Every process's mappings (the same addresses in each: separate mms)."""
    out: list[Region] = []
    text = Region(CODE.base, round_up(CODE.base + CODE.nbytes, PAGE_SIZE), "code", False, True,
                  CODE.name, file=FileMapping(TEXT_FILE, 0x1000))
    lib = Region(LIB_CODE.base, round_up(LIB_CODE.base + LIB_CODE.nbytes, PAGE_SIZE), "code",
                 False, True, LIB_CODE.name, file=FileMapping(LIB_FILE, 0))
    fixed = [text,
             Region(RODATA_BASE, RODATA_BASE + PAGE_SIZE, "file", False, False, "run:rodata",
                    file=FileMapping(TEXT_FILE, 0x6000)),
             Region(GOT_BASE, GOT_BASE + PAGE_SIZE, "anon", True, False, "run:got"),
             lib,
             Region(LIB_RODATA_BASE, LIB_RODATA_BASE + 4 * PAGE_SIZE, "file", False, False,
                    "libm:rodata", file=FileMapping(LIB_FILE, 0x100000)),
             Region(LIB_DATA_BASE, LIB_DATA_BASE + 2 * PAGE_SIZE, "anon", True, False,
                    "libc:data")]
    weights_end = round_up(WEIGHTS_BASE + p.file_bytes, PAGE_SIZE)
    for i in range(p.processes):
        pid = i + 1
        mine = fixed + heap.array_regions() + stack_regions(
            tops[i * p.threads:(i + 1) * p.threads])
        mine.append(Region(WEIGHTS_BASE, weights_end, "file", False, False, "weights",
                           file=FileMapping(model_file(p, pid), 0)))
        out += [dataclasses.replace(r, pid=pid) for r in mine]
    return out


def thread_stacks(p: LlamaParams) -> tuple[int, ...]:
    """Stack tops per tid: each process's thread 0 on the main stack, its others below the
    libraries (the same addresses in every process)."""
    one = stack_tops(p.threads)
    return one * p.processes


def tokens(p: LlamaParams) -> np.ndarray:
    """int64[P, steps]: each process's input token per step: BOS, then splitmix64 draws
    (never BOS, after which run.c stops), standing in for the argmax of random weights."""
    out = np.empty((p.processes, p.steps), np.int64)
    mask = (1 << 64) - 1
    for i in range(p.processes):
        x = (p.seed * 0x9E3779B97F4A7C15 + i + 1) & mask
        out[i, 0] = BOS
        for s in range(1, p.steps):
            x = (x + 0x9E3779B97F4A7C15) & mask
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
            z ^= z >> 31
            t = z % p.vocab
            out[i, s] = t if t != BOS or p.vocab == 1 else (t + 1) % p.vocab
    return out


def _max_item(p: LlamaParams) -> int:
    """An upper bound on the records of one item (the block must hold one)."""
    d, h, V, seq = p.dim, p.hidden_dim, p.vocab, p.seq_len
    row = 2 * (2 * (max(d, h) // 4 + 4) + 2)
    softmax = 2 * (SPILLS_PER_HEAD + seq * (6 + 3 + EXPF_LOADS) + 2 * seq + 64)
    return max(row, softmax, 2 * (V + 4), 2 * (8 * d + 16), 2 * (STDIO_STACK + STDIO_DATA),
               2 * (SPILLS_PER_LAYER + 4), 2 * (10 * d // 4 + 64), 256)


def _cfg(p: LlamaParams, heap: Heap, w: dict[str, int]) -> np.ndarray:
    a = {n: heap.arrays[n].start for n in RUN_STATE}
    cfg = np.zeros(N_CFG, np.int64)
    cfg[[C_PROCS, C_THREADS, C_STEPS, C_QUANTUM, C_MAXITEM, C_DIM, C_KV, C_HS, C_KVMUL,
         C_SEQ, C_EMB, C_X, C_Q, C_ATT, C_XB]] = [
        p.processes, p.threads, p.steps, QUANTUM, _max_item(p), p.dim, p.kv_dim, p.head_size,
        p.heads // p.kv_heads, p.seq_len, w["token_embedding"], a["x"], a["q"], a["att"],
        a["xb"]]
    return cfg


class LlamaResult(GenResult):
    def summary(self) -> str:
        p = self.params
        return (f"{self.records:,} records ({p.work_units:,} tokens: {p.processes} process"
                f"{'es' if p.processes != 1 else ''} x {p.steps} steps x {p.threads} thread"
                f"{'s' if p.threads != 1 else ''}, {p.weights} weights)")


def trace_meta(p: LlamaParams) -> TraceMeta:
    heap, w = layout(p)
    tops = thread_stacks(p)
    procs = tuple(Process(i + 1, tuple(range(i * p.threads, (i + 1) * p.threads)),
                          f"llama:{i + 1}") for i in range(p.processes))
    arrays = heap.to_json()
    arrays["weights"] = {"start": WEIGHTS_BASE, "length": p.file_bytes, "elem_size": 1}
    extra = {"arrays": json.dumps(arrays),
             "llama_weights": json.dumps({k: v for k, v in w.items()})}
    return TraceMeta(source="llama-synth", threads=p.total_threads,
                     regions=tuple(regions(p, heap, tops)), generator=p.to_json(), extra=extra,
                     processes=procs)


def generate(out: str | Path, p: LlamaParams, progress: Progress | None = None,
             block_records: int = ROW_GROUP_ROWS) -> GenResult:
    meta = trace_meta(p)
    heap, w = layout(p)
    ops = _ops(p, {n: heap.arrays[n].start for n in RUN_STATE}, w)
    cfg = _cfg(p, heap, w)
    pst = np.zeros((p.processes, 3), np.int64)
    gst = np.zeros(2, np.int64)
    toks = tokens(p)
    sps = np.array([top - FRAME for top in stack_tops(p.threads)], np.int64)
    filler = BlockFiller(max(block_records, 2 * int(cfg[C_MAXITEM])))
    T = p.threads

    def with_pid(block):
        tid = block[0]
        return (*block, (tid // T).astype(np.uint32) + np.uint32(1))

    def blocks():
        for b in filler.run(_fill, lambda: bool((pst[:, P_STEP] >= p.steps).all()), cfg, ops,
                            pst, gst, toks, sps, SITES):
            yield with_pid(b)
        for b in filler.flush():
            yield with_pid(b)

    def done() -> int:
        return int(np.minimum(pst[:, P_STEP], p.steps).sum())

    r = generate_trace(out, p, meta, blocks(), done, progress)
    return LlamaResult(r.path, r.meta, r.params, r.records)


# ---- sizes -----------------------------------------------------------------------------------
def records_per_step(p: LlamaParams, pos: int) -> int:
    """Records of one process's token step at position ``pos`` (two per data access), by the
    loops' counts; ``expected_records`` sums them."""
    d, h, kv, V, H, hs = p.dim, p.hidden_dim, p.kv_dim, p.vocab, p.heads, p.head_size
    vc = lambda n: n // 4 + n % 4          # noqa: E731
    call = 3                                # push, GOT, return
    expf = call + EXPF_LOADS
    n = pos + 1
    mm = lambda k, rows: rows * (2 * vc(k) + 1)   # noqa: E731
    rms, resid = 4 * vc(d), 3 * vc(d)
    pairs = d // 2
    k_pairs = min(pairs, (kv + 1) // 2)
    rope = (pairs * (2 + call + POWF_LOADS + 2 + call + SINCOSF_LOADS + 2 + 2 + 2)
            + pairs // 2 + (pairs + 1) // 2 + k_pairs * 4)
    norm = 2 * (n // 4 + (1 if n % 4 >= 2 else 0) + n % 2)
    head = (n * (2 * vc(hs) + 3 + 1) + SPILLS_PER_HEAD + n + n * (5 + expf) + norm
            + call + MEMSET_DATA + _memset_records(4 * hs) + n * (1 + 3 * vc(hs) + 2))
    layer = (SPILLS_PER_LAYER + 2 * rms + mm(d, d) + d + 2 * mm(d, kv) + rope + H * head
             + mm(d, d) + d + 2 * resid + 2 * mm(d, h) + h * (8 + expf) + mm(h, d))
    token = (SPILLS_PER_TOKEN + call + _memcpy_records(4 * d) + p.layers * layer + rms
             + mm(d, V) + V + 1 + STDIO_STACK + STDIO_DATA)
    return 2 * token


def _memcpy_records(n: int) -> int:
    heap, _ = layout(_TINY)
    return _count(lambda out: emit_memcpy(out, 0, 0, SITES, S_MEMCPY_LD, S_MEMCPY_ST,
                                          heap.arrays["x"].start, WEIGHTS_BASE + HEADER_BYTES, n))


def _memset_records(n: int) -> int:
    return _count(lambda out: emit_memset(out, 0, 0, SITES, S_MEMSET_ST, 0x1000, n))


def _count(fn) -> int:
    cap = 1 << 16
    out = (np.empty(cap, np.uint16), np.empty(cap, np.uint8), np.empty(cap, np.uint64),
           np.empty(cap, np.uint8))
    return int(fn(out)) // 2


_TINY = LlamaParams(8, 8, 1, 2, 2, 8, 8, True, 1, 1, 1, "shared", 0)


def expected_records(p: LlamaParams) -> float:
    return float(p.processes * sum(records_per_step(p, s) for s in range(p.steps)))


def size_estimate(p: LlamaParams) -> SizeEstimate:
    """For ``trace.sizes``: fewer token steps (-n), or, when one step of every process is
    already too long (every step reads the whole model), fewer layers as well."""
    what = f"{p.processes} x {p.steps} token steps of a {p.file_bytes / 1e6:,.1f} MB model"
    records = expected_records(p)
    first_step = p.processes * records_per_step(p, 0)
    if first_step <= HINT_RECORDS:
        return estimate(what, records, "-n", p.steps)
    layers = max(1, p.layers * HINT_RECORDS // first_step)
    return SizeEstimate(what, records, f"for about 10^8 records give -n 1 --layers {layers}")


def cache_label(p: LlamaParams) -> str:
    model = p.model or f"d{p.dim}L{p.layers}"
    return f"llama-{model}-P{p.processes}t{p.threads}-{p.weights}"
