"""Where XSBench's code, arrays and stacks live in the synthetic address space.

The replay model sees pages, so the layout has to get three things right: the real size of every
array (a page count), which arrays share pages, and how few pages the code and stacks occupy.

* Heap: one region, arrays in XSBench's malloc order (GridInit.c, then Materials.c), placed by
  ``gencore.Heap`` as glibc places them. In a real process
  the big arrays are separate mmap()s placed top-down (adjacent, so the kernel merges them into one
  VMA) and the small ones come from the brk heap; keeping them in one region in call order changes
  no page's identity or sharing, which is all the model uses.
* Code: XSBench's text in link order (Main.c, io.c, Simulation.c, ...) with realistic function
  sizes; every instruction that accesses data is a *site* at a fixed address inside its function.
  The lookup path touches two pages of text, the whole binary is six.
* Stacks: one small region per OpenMP thread (main thread's stack, then glibc thread stacks 8 MiB
  plus a guard page apart). Only locals whose address escapes to a callee live in memory: the LCG
  seed, macro_xs_vector[5] and xs_vector[5].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gencore import (CHUNK_HEADER, CODE_BASE, HEAP_BASE, OP_LOAD,  # noqa: F401 (re-exported)
                      OP_MODIFY, OP_STORE, ArraySpan, CodeMap, Heap, Site, stack_regions,
                      stack_tops)
from .native import PAGE_SIZE, Region
from .xsbench_params import XSBenchParams, material_lists

CODE_PAGES = 6

GRID_POINT_BYTES = 48                 # NuclideGridPoint: 6 doubles

# Stack slots, as offsets below the thread's stack top (the frames of the lookup loop,
# calculate_macro_xs and calculate_micro_xs); sizes in bytes.
STACK_SEED = (0x3A8, 8)
STACK_MACRO_XS = (0x3D0, 40)
STACK_XS_VECTOR = (0x450, 40)

# Functions of the text: name -> (offset from CODE_BASE, size in bytes), in link order.
FUNCTIONS = {
    "main": (0x0000, 0x3E0),
    "io.c": (0x0400, 0x2200),
    "run_event_based_simulation": (0x2600, 0x1A0),
    "run_history_based_simulation": (0x27A0, 0x260),
    "calculate_micro_xs": (0x2A00, 0x2C0),
    "calculate_macro_xs": (0x2CC0, 0x220),
    "grid_search": (0x2EE0, 0x60),
    "grid_search_nuclide": (0x2F40, 0x70),
    "pick_mat": (0x2FB0, 0xD0),
    "LCG_random_double": (0x3080, 0x40),
    "fast_forward_LCG": (0x30C0, 0x90),
    "optimization_1": (0x3150, 0x1600),
    "GridInit.c+XSutils.c+Materials.c": (0x4750, 0x1800),
}

# Data-access sites: (id, function, offset in function, instruction bytes, op, data bytes).
# The ids index the tables the numba kernel reads; keep them dense and in this order.
_SITE_TABLE = (
    ("lcg_seed", "LCG_random_double", 0x0C, 4, OP_MODIFY, 8),          # *seed = a * *seed + c
    ("event_verify", "run_event_based_simulation", 0x11C, 5, OP_LOAD, 40),    # max over macro_xs
    ("history_verify", "run_history_based_simulation", 0x15E, 5, OP_LOAD, 40),
    ("macro_zero", "calculate_macro_xs", 0x24, 5, OP_STORE, 40),        # macro_xs_vector[k] = 0
    ("macro_num_nucs", "calculate_macro_xs", 0x61, 4, OP_LOAD, 4),      # num_nucs[mat]
    ("macro_mats", "calculate_macro_xs", 0xA3, 4, OP_LOAD, 4),          # mats[mat*max + j]
    ("macro_concs", "calculate_macro_xs", 0xA9, 6, OP_LOAD, 8),         # concs[mat*max + j]
    ("macro_xs_load", "calculate_macro_xs", 0x10E, 5, OP_LOAD, 40),     # xs_vector[k]
    ("macro_accumulate", "calculate_macro_xs", 0x11A, 5, OP_MODIFY, 40),  # macro_xs_vector[k] +=
    ("grid_search_probe", "grid_search", 0x2C, 5, OP_LOAD, 8),          # A[examinationPoint]
    ("grid_search_nuclide_probe", "grid_search_nuclide", 0x33, 5, OP_LOAD, 8),  # A[ex].energy
    ("micro_index", "calculate_micro_xs", 0x7D, 4, OP_LOAD, 4),         # index_data[idx*n+nuc]
    ("micro_hash_low", "calculate_micro_xs", 0x11A, 4, OP_LOAD, 4),     # u_low
    ("micro_hash_high", "calculate_micro_xs", 0x13B, 5, OP_LOAD, 4),    # u_high - 1
    ("micro_hash_e_low", "calculate_micro_xs", 0x15C, 5, OP_LOAD, 8),   # grid[u_low].energy
    ("micro_hash_e_high", "calculate_micro_xs", 0x161, 6, OP_LOAD, 8),  # grid[u_high].energy
    ("micro_low_point", "calculate_micro_xs", 0x1E6, 5, OP_LOAD, 48),   # *low (6 doubles)
    ("micro_high_point", "calculate_micro_xs", 0x1EB, 5, OP_LOAD, 48),  # *high
    ("micro_xs_store", "calculate_micro_xs", 0x26F, 5, OP_STORE, 40),   # xs_vector[0..4] =
)
SITE_NAMES = tuple(s[0] for s in _SITE_TABLE)
SITE = {name: i for i, name in enumerate(SITE_NAMES)}
CODE = CodeMap(FUNCTIONS, _SITE_TABLE, CODE_BASE)


@dataclass(frozen=True)
class XSBenchLayout:
    arrays: dict[str, ArraySpan]
    sites: tuple[Site, ...]
    stack_tops: tuple[int, ...]
    regions: tuple[Region, ...]

    def site_table(self) -> np.ndarray:
        """int64[sites, 4]: instruction address, instruction size, op, data size per site id."""
        return CODE.site_table()

    def stack_slots(self) -> np.ndarray:
        """int64[threads, 3]: address of seed, macro_xs_vector and xs_vector per thread."""
        tops = np.array(self.stack_tops, np.int64)[:, None]
        return tops - np.array([STACK_SEED[0], STACK_MACRO_XS[0], STACK_XS_VECTOR[0]], np.int64)


def _heap_arrays(p: XSBenchParams) -> tuple[dict[str, ArraySpan], int]:
    """Arrays in malloc order; returns them and the end of the heap."""
    n_iso, max_nucs = p.n_isotopes, max(len(m) for m in material_lists(p.n_isotopes))
    allocs: list[tuple[str, int, int]] = [("nuclide_grid", p.n_points, GRID_POINT_BYTES)]
    if p.grid == "unionized":
        allocs += [("unionized_energy_array", p.n_points, 8),
                   ("index_grid", p.n_points * n_iso, 4)]
    elif p.grid == "hash":
        allocs.append(("index_grid", p.hash_bins * n_iso, 4))
    allocs += [("num_nucs", 12, 4), ("mats", 12 * max_nucs, 4), ("concs", 12 * max_nucs, 8)]
    heap = Heap(HEAP_BASE)
    for name, length, elem in allocs:
        heap.alloc(name, length, elem)
    return heap.arrays, heap.end


def build_layout(p: XSBenchParams) -> XSBenchLayout:
    """The address space of one XSBench run (arrays sized from ``p``)."""
    arrays, heap_end = _heap_arrays(p)
    tops = stack_tops(p.threads)
    regions = [Region(CODE_BASE, CODE_BASE + CODE_PAGES * PAGE_SIZE, "code", False, True, "text"),
               Region(HEAP_BASE, heap_end, "heap", True, False, "heap")]
    regions += stack_regions(tops)
    return XSBenchLayout(arrays=arrays, sites=CODE.sites, stack_tops=tops, regions=tuple(regions))
