"""XSBench's problem definition: sizes, materials and the run parameters it derives from its flags.

Everything here is copied from ANL-CESAR/XSBench (openmp-threading, v20): ``io.c`` (flag defaults,
size presets), ``Materials.c`` (nuclides per material, material composition, concentrations) and
``Simulation.c`` (material probabilities). Keeping the tables in one module makes it easy to
check them against the source line by line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import UserError

XSBENCH_VERSION = 20            # the XSBench release whose algorithm is modelled
STARTING_SEED = 1070            # XSbench_header.h
GRID_SEED = 42                  # GridInit.c: seed of the nuclide grid data
CHUNK = 100                     # OpenMP schedule(dynamic, 100)
DEFAULT_PARTICLES = 500_000     # io.c
DEFAULT_LOOKUPS_PER_PARTICLE = 34
DEFAULT_HASH_BINS = 10_000
DEFAULT_GRIDPOINTS = 11_303
INT_MAX = 2**31 - 1             # XSBench keeps lookups/particles in C ints

SIZES = ("small", "large", "XL", "XXL")
GRIDS = ("unionized", "nuclide", "hash")
MODES = ("history", "event")
GRID_IDS = {"unionized": 0, "nuclide": 1, "hash": 2}      # XSbench_header.h
MODE_IDS = {"history": 1, "event": 2}

# io.c: n_isotopes 68 for small, 355 otherwise; XL/XXL change the default gridpoints only.
N_ISOTOPES = {"small": 68, "large": 355, "XL": 355, "XXL": 355}
SIZE_GRIDPOINTS = {"small": DEFAULT_GRIDPOINTS, "large": DEFAULT_GRIDPOINTS,
                   "XL": 238_847, "XXL": int(238_847 * 2.1)}

# pick_mat(): the CDF exactly as written in Simulation.c.
MATERIAL_CDF = np.array([0.140, 0.192, 0.467, 0.601, 0.755, 0.819, 0.885, 0.940, 0.948, 0.963,
                         0.988, 1.0], dtype=np.float64)

_FUEL_SMALL = [58, 59, 60, 61, 40, 42, 43, 44, 45, 46, 1, 2, 3, 7, 8, 9, 10, 29, 57, 47, 48, 0,
               62, 15, 33, 34, 52, 53, 54, 55, 56, 18, 23, 41]
_REFLECTOR = [24, 41, 4, 5, 19, 20, 21, 22, 35, 36, 37, 38, 39, 25, 49, 50, 51, 11, 12, 13, 14]
_OTHER_MATERIALS = [
    [63, 64, 65, 66, 67],                                              # cladding
    [24, 41, 4, 5],                                                    # cold borated water
    [24, 41, 4, 5],                                                    # hot borated water
    [19, 20, 21, 22, 35, 36, 37, 38, 39, 25, 27, 28, 29, 30, 31, 32, 26, 49, 50, 51, 11, 12, 13,
     14, 6, 16, 17],                                                   # RPV
    _REFLECTOR, _REFLECTOR, _REFLECTOR, _REFLECTOR, _REFLECTOR,        # reflectors, plate, nozzles
    [24, 41, 4, 5, 63, 64, 65, 66, 67],                                # top of FA's
    [24, 41, 4, 5, 63, 64, 65, 66, 67],                                # bottom FA's
]


def material_lists(n_isotopes: int) -> list[list[int]]:
    """Nuclide ids of the 12 materials (load_mats): H-M large adds nuclides 68.. to the fuel."""
    fuel = list(_FUEL_SMALL) if n_isotopes == 68 else _FUEL_SMALL + list(range(68, 68 + 321 - 34))
    return [fuel] + [list(m) for m in _OTHER_MATERIALS]


@dataclass(frozen=True)
class XSBenchParams:
    """A fully resolved XSBench run: what the generator needs, after XSBench's defaulting rules.

    ``lookups`` keeps XSBench's meaning (history: per particle, event: total); ``particles`` is 0
    in event mode, as XSBench sets it; ``total_lookups`` and ``iterations`` (the OpenMP loop trip
    count) are derived.
    """

    size: str
    grid: str
    mode: str
    lookups: int
    particles: int
    threads: int
    gridpoints: int
    hash_bins: int
    seed: int

    @property
    def n_isotopes(self) -> int:
        return N_ISOTOPES[self.size]

    @property
    def n_points(self) -> int:
        """P = n_isotopes * n_gridpoints: length of the nuclide grid and of the unionized grid."""
        return self.n_isotopes * self.gridpoints

    @property
    def iterations(self) -> int:
        """Trip count of the parallel loop: particles (history) or lookups (event)."""
        return self.particles if self.mode == "history" else self.lookups

    @property
    def lookups_per_iteration(self) -> int:
        return self.lookups if self.mode == "history" else 1

    @property
    def total_lookups(self) -> int:
        return self.iterations * self.lookups_per_iteration

    @property
    def work_units(self) -> int:
        """Units of work (``trace.generators``): lookups."""
        return self.total_lookups

    work_unit = "lookup"

    @property
    def chunks(self) -> int:
        return -(-self.iterations // CHUNK)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(generator="xsbench", xsbench_version=XSBENCH_VERSION, n_isotopes=self.n_isotopes,
                 total_lookups=self.total_lookups, chunk=CHUNK)
        return d


def _canonical(value: str, choices: tuple[str, ...], what: str) -> str:
    for c in choices:
        if value.lower() == c.lower():
            return c
    raise UserError(f"bad {what} {value!r}: choose one of {', '.join(choices)}")


def _positive(value: int | None, what: str, minimum: int = 1, maximum: int = INT_MAX) -> None:
    if value is not None and not (minimum <= int(value) <= maximum):
        raise UserError(f"{what} must be between {minimum} and {maximum:,}, got {value}")


def resolve_params(size: str = "large", grid: str = "unionized", mode: str = "history",
                   lookups: int | None = None, particles: int | None = None, threads: int = 1,
                   gridpoints: int | None = None, hash_bins: int = DEFAULT_HASH_BINS,
                   seed: int = STARTING_SEED) -> XSBenchParams:
    """Apply XSBench's defaults and checks (io.c read_CLI) and return the resolved run.

    Differences from io.c, on purpose: event mode without ``-l`` runs 34 x particles lookups
    whatever the flag order (XSBench's result depends on whether ``-p`` comes before ``-m``);
    gridpoints must be >= 2 (XSBench reads point i+1 and would overrun with 1); threads has no
    machine-dependent default (1), so that a trace does not depend on the host.
    """
    size = _canonical(size, SIZES, "size (-s)")
    grid = _canonical(grid, GRIDS, "grid type (-G)")
    mode = _canonical(mode, MODES, "simulation method (-m)")
    _positive(lookups, "lookups (-l)")
    _positive(particles, "particles (-p)")
    _positive(threads, "threads (-t)", maximum=65_535)
    _positive(gridpoints, "gridpoints (-g)", minimum=2)
    _positive(hash_bins, "hash bins (-h)")
    if not 0 <= int(seed) < 2**63:
        raise UserError(f"seed must be between 0 and 2**63-1, got {seed}")
    n_particles = DEFAULT_PARTICLES if particles is None else int(particles)
    if lookups is None:
        lookups = DEFAULT_LOOKUPS_PER_PARTICLE
        if mode == "event":
            lookups *= n_particles
    if mode == "event" and lookups > INT_MAX:
        raise UserError(f"event mode runs at most {INT_MAX:,} lookups (a C int in XSBench); "
                        f"give -l")
    return XSBenchParams(size=size, grid=grid, mode=mode, lookups=int(lookups),
                         particles=n_particles if mode == "history" else 0, threads=int(threads),
                         gridpoints=int(gridpoints or SIZE_GRIDPOINTS[size]),
                         hash_bins=int(hash_bins), seed=int(seed))


def click_params() -> list:
    """XSBench's flags as click parameters: the one flag table for the CLI and generate_from_args.

    Returns fresh objects on each call (click parameters belong to one command). ``-h`` is the
    hash-bin count as in XSBench, so commands using these must keep help on ``--help`` only.
    """
    import click

    count = click.IntRange(1, INT_MAX)
    return [
        click.Option(["-s", "--size"], type=click.Choice(SIZES, case_sensitive=False),
                     default="large", show_default=True, help="H-M benchmark size."),
        click.Option(["-G", "--grid"], type=click.Choice(GRIDS, case_sensitive=False),
                     default="unionized", show_default=True, help="Grid search type."),
        click.Option(["-m", "--mode"], type=click.Choice(MODES, case_sensitive=False),
                     default="history", show_default=True, help="Simulation method."),
        click.Option(["-l", "--lookups"], type=count, default=None,
                     help="History: lookups per particle (34). Event: total lookups "
                          "(34 x particles)."),
        click.Option(["-p", "--particles"], type=count, default=None,
                     help=f"Particle histories (history mode) [default: {DEFAULT_PARTICLES:,}]."),
        click.Option(["-t", "--threads"], type=click.IntRange(1, 65_535), default=1,
                     show_default=True, help="OpenMP threads (chunk c of 100 iterations runs on "
                                             "thread c mod THREADS)."),
        click.Option(["-g", "--gridpoints"], type=click.IntRange(2, INT_MAX), default=None,
                     help="Gridpoints per nuclide (overrides the -s default)."),
        click.Option(["-h", "--hash-bins", "hash_bins"], type=count, default=DEFAULT_HASH_BINS,
                     show_default=True, help="Hash bins (with -G hash)."),
        click.Option(["--seed"], type=click.IntRange(0, 2**63 - 1), default=STARTING_SEED,
                     show_default=True, help="XSBench's STARTING_SEED (lookup sampling and "
                                             "concentrations); the default reproduces XSBench."),
    ]
