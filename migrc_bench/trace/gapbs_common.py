"""What the GAP generators (``gapbs-bfs``, ``gapbs-pr``) share: flags, the graph's address
space, the fixed code of OpenMP regions, and the driver that runs their phases.

Address space, as the real process has it while the kernel runs (gapbs b5e3e19 built by
g++ 12.2 -O3 -fopenmp): the CSR arrays in the order the builder allocates them (neighbours,
``new int[m]``; then the index of n+1 pointers into it, ``GenIndex``), then each trial's
arrays (BFS: parent, queue, the two bitmaps; PR: scores and contributions). Trials free and
reallocate theirs; glibc hands the same blocks back, so they keep their addresses. Stack
objects live where the compiled code has them: the ``CSRGraph`` in main's frame (its
num_nodes, out_index and in_index fields are loaded inside the kernels), the kernel's
pvectors, bitmaps and queue, and the argument block of every OpenMP region, on the master
thread's stack; every thread's outlined function has its own frame on its own stack.

Per-call code (pushes, argument loads, register spills around libgomp calls) is written as
*sequences*: rows (site, base, offset) that ``emit_seq`` turns into accesses, the base being
one of the addresses in ``bases[tid]`` (``B_*``). libgomp's own accesses (team set-up, the
dynamic schedule's work share) are not modelled: about 600 per parallel region, under 0.1 %
of the records at ``-g 14``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numba as nb
import numpy as np

from ..errors import UserError
from .gapbs_graph import K_RAND_SEED, Graph, kronecker
from .gencore import Heap, emit, stack_tops
from .sizes import HINT_RECORDS, SizeEstimate, shorter

MAX_THREADS = 4096
MAX_SCALE = 30

# bases of sequence rows
B_SP, B_ARGS, B_GRAPH, B_FRAME, B_MAIN_SP = range(5)
N_BASES = 5
# where things are below the stack tops
GRAPH_OBJ = 0x150            # main's CSRGraph object, below the master's stack top
KERNEL_FRAME = 0x3C0         # the kernel's frame (its pvectors, bitmaps, queue) on the master
ARGS_BLOCK = 0x430           # an OpenMP region's argument block, in the kernel's frame
ENTRY_SP_MASTER = 0x520      # an outlined function's entry stack pointer on the master
ENTRY_SP_WORKER = 0x0F8      # ... on a worker thread (gomp_thread_start's frame above it)
# CSRGraph fields
G_NUM_NODES, G_OUT_INDEX, G_IN_INDEX = 0x8, 0x18, 0x28


@dataclass(frozen=True)
class GapParams:
    """Flags every GAP kernel takes (-g -k -n as gapbs; -t threads; --seed = kRandSeed)."""

    scale: int
    degree: int
    trials: int
    threads: int
    seed: int

    @property
    def est_edges_directed(self) -> int:
        """Directed CSR edges, before the graph is built (~0.72 of 2 x 2^g x k survive the
        de-duplication at k = 16)."""
        return int(2 * (1 << self.scale) * self.degree * 0.72)

    def size_estimate(self, kernel: str, records: float) -> SizeEstimate:
        """For ``trace.sizes``: fewer trials (-n), or, when one trial is already too long, the
        scale whose trial is about 10^8 records (a trial's records grow with 2^g)."""
        trials = f"{self.trials:,} {kernel} trial{'s' * (self.trials != 1)}"
        what = (f"{trials} on the -g {self.scale} -k {self.degree} graph "
                f"(~{self.est_edges_directed:,} directed edges)")
        per_trial = records / self.trials
        if per_trial <= HINT_RECORDS:
            return SizeEstimate(what, records, shorter(records, "-n", self.trials))
        scale = max(1, self.scale - math.ceil(math.log2(per_trial / HINT_RECORDS)))
        return SizeEstimate(what, records, f"for about 10^8 records give -n 1 -g {scale}")

    def common_json(self, name: str) -> dict[str, Any]:
        return {"generator": name, "scale": self.scale, "degree": self.degree,
                "trials": self.trials, "threads": self.threads, "seed": self.seed,
                "gapbs": "b5e3e19"}


def common_click_params() -> list:
    import click

    return [
        click.Option(["-g", "--scale"], type=click.IntRange(1, MAX_SCALE), required=True,
                     help="Generate a 2^SCALE-vertex Kronecker graph (GAP's -g)."),
        click.Option(["-k", "--degree"], type=click.IntRange(1, 1024), default=16,
                     show_default=True, help="Average degree of the synthetic graph (GAP's -k)."),
        click.Option(["-n", "--trials"], type=click.IntRange(1, 1 << 20), default=16,
                     show_default=True, help="Trials (GAP's -n)."),
        click.Option(["-t", "--threads"], type=click.IntRange(1, MAX_THREADS), default=1,
                     show_default=True, help="OpenMP threads (OMP_NUM_THREADS for GAP)."),
        click.Option(["--seed"], type=click.IntRange(0, 2**31 - 1), default=K_RAND_SEED,
                     show_default=True, help="GAP's kRandSeed (graph and sources); the "
                                             "default is GAP's own."),
    ]


def check_common(scale: int, degree: int, trials: int, threads: int, seed: int) -> None:
    checks = ((scale, 1, MAX_SCALE, "scale (-g)"), (degree, 1, 1024, "degree (-k)"),
              (trials, 1, 1 << 20, "trials (-n)"), (threads, 1, MAX_THREADS, "threads (-t)"),
              (seed, 0, 2**31 - 1, "seed"))
    for value, lo, hi, what in checks:
        if not lo <= int(value) <= hi:
            raise UserError(f"{what} must be between {lo} and {hi:,}, got {value}")


# ---- the address space -------------------------------------------------------------------------
@dataclass
class GapLayout:
    heap: Heap
    tops: tuple[int, ...]

    def bases(self) -> np.ndarray:
        """int64[threads, N_BASES]: the base addresses of sequence rows per thread."""
        master = self.tops[0]
        out = np.zeros((len(self.tops), N_BASES), np.int64)
        for t, top in enumerate(self.tops):
            out[t, B_SP] = top - (ENTRY_SP_MASTER if t == 0 else ENTRY_SP_WORKER)
            out[t, B_ARGS] = master - ARGS_BLOCK
            out[t, B_GRAPH] = master - GRAPH_OBJ
            out[t, B_FRAME] = master - KERNEL_FRAME
            out[t, B_MAIN_SP] = master - KERNEL_FRAME - 0x40
        return out

    def start(self, name: str) -> int:
        return self.heap.arrays[name].start


def graph_layout(g: Graph, threads: int, arrays: Iterable[tuple[str, int, int]]) -> GapLayout:
    """The CSR arrays, then the kernel's ``arrays`` (name, length, element size) in order."""
    heap = Heap()
    heap.alloc("neighs", g.num_edges_directed, 4)
    heap.alloc("index", g.num_nodes + 1, 8)
    for name, length, elem in arrays:
        heap.alloc(name, length, elem)
    return GapLayout(heap, stack_tops(threads))


def build_graph(p: GapParams) -> Graph:
    return kronecker(p.scale, p.degree, p.seed)


# ---- fixed code as sequences -------------------------------------------------------------------
def sequence(code_ids: dict[str, int], rows: Iterable[tuple[str, int, int]]) -> np.ndarray:
    """int64[k, 3] rows (site id, base, offset) from (site name, base, offset)."""
    out = [(code_ids[s], b, off) for s, b, off in rows]
    return np.array(out, np.int64).reshape(-1, 3)


def pack_sequences(seqs: Iterable[np.ndarray]) -> np.ndarray:
    """Several sequences as one int64[k, 3] table, each led by a row (-1, length, 0): kernels
    take one array instead of a tuple of many (a tuple of 23 arrays made every function that
    takes it slow to compile). ``seq_index`` gives each sequence's header row."""
    rows = []
    for seq in seqs:
        rows.append(np.array([[-1, len(seq), 0]], np.int64))
        rows.append(seq)
    return np.concatenate(rows)


def seq_index(seqs: Iterable[np.ndarray]) -> list[np.int64]:
    """Header rows of ``pack_sequences``' table (numpy ints: see the kernels' site ids)."""
    out, at = [], 0
    for seq in seqs:
        out.append(np.int64(at))
        at += 1 + len(seq)
    return out


@nb.njit(cache=True, nogil=True, _nrt=False)
def emit_seq(out, pos, tid, sites, table, at, bases):
    """Emit the sequence whose header is row ``at`` of ``table`` on thread ``tid``: site
    table[r, 0] at bases[tid, table[r, 1]] + table[r, 2] for each of its rows."""
    for r in range(at + 1, at + 1 + table[at, 1]):
        pos = emit(out, pos, True, tid, sites, table[r, 0], bases[tid, table[r, 1]] + table[r, 2])
    return pos


def push_pop(regs: list[tuple[str, int]], frame: int = 0) -> tuple[list, list]:
    """Sequence rows for a function's pushes and matching pops: ``regs`` are (push site,
    pop site) names in push order; ``frame`` is the stack bytes the function also reserves
    (its locals are at B_SP - 8 x pushes - frame + offset)."""
    pushes = [(ps, B_SP, -8 * (i + 1)) for i, (ps, _) in enumerate(regs)]
    pops = [(pp, B_SP, -8 * (len(regs) - i)) for i, (_, pp) in enumerate(reversed(regs))]
    return pushes, pops
