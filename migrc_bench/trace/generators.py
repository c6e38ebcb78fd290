"""The registry of synthetic trace generators: one entry per program, loaded when first used.

Every generator module offers the same small interface, so the CLI (``trace gen NAME``), the
config's ``trace.generate`` and the workload suite treat them alike:

* ``click_params()`` — the program's own flags (fresh click parameters on each call);
* ``resolve_params(**flags)`` — checked, defaulted parameters with ``threads``, ``work_units``,
  ``work_unit`` (what one unit of work is, e.g. "update") and ``to_json()`` (recorded in the
  trace as ``migrc_bench.generator``, with ``"generator": NAME``);
* ``generate(out, params, progress=None)`` — writes the trace; returns an object with
  ``records``, ``meta`` and ``summary()``; ``progress(done, total)`` counts work units;
* ``expected_records(params)`` — records of a run, before it starts;
* ``size_estimate(params)`` — a :class:`~.sizes.SizeEstimate` (what the run is, its records and
  the flags that make it shorter): ``trace gen`` and ``trace.generate`` refuse a run beyond
  what anyone means before writing anything (``trace.sizes``);
* optionally ``cache_label(params)`` — the readable start of its cached trace's file name
  (default: ``NAME-tTHREADS``).

Modules are imported lazily: each one compiles numba kernels on first use.
"""

from __future__ import annotations

import importlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from .gencore import parse_flags


@dataclass(frozen=True)
class GeneratorSpec:
    """A registered generator: its name, the module that implements it and its help texts."""

    name: str
    module: str
    summary: str
    epilog: str = ""
    title: str = ""     # the program's name in one-line summaries (config list)

    def load(self) -> ModuleType:
        return importlib.import_module(self.module, __package__)

    def click_params(self) -> list:
        return self.load().click_params()

    def resolve(self, **flags: Any) -> Any:
        return self.load().resolve_params(**flags)

    def parse(self, argv: Sequence[str] | str) -> Any:
        """Parameters from the program's flags (a list or one shell-quoted string)."""
        return self.resolve(**parse_flags(self.name, self.click_params(), argv))

    def generate(self, out: str | Path, params: Any,
                 progress: Callable[[int, int], None] | None = None) -> Any:
        return self.load().generate(out, params, progress=progress)

    def expected_records(self, params: Any) -> float:
        return float(self.load().expected_records(params))

    def size_estimate(self, params: Any) -> Any:
        return self.load().size_estimate(params)

    def cache_label(self, params: Any) -> str:
        label = getattr(self.load(), "cache_label", None)
        return label(params) if label else f"{self.name}-t{params.threads}"


REGISTRY: dict[str, GeneratorSpec] = {}


def register(spec: GeneratorSpec) -> GeneratorSpec:
    REGISTRY[spec.name] = spec
    return spec


register(GeneratorSpec(
    "xsbench", ".xsbench", "XSBench's cross-section lookups (docs/xsbench.md).",
    title="XSBench"))
register(GeneratorSpec(
    "gups", ".gups", "HPCC RandomAccess (GUPS): XOR updates at random over a table of 2^n words.",
    epilog="""\b
Examples:
  migrc-bench trace gen gups -n 20 -u 4000000 -t 4 -o gups.parquet
  migrc-bench trace gen gups -n 23 -t 16 -o gups-cxl16.parquet
""", title="GUPS"))
register(GeneratorSpec(
    "kv", ".kv", "A memcached-like key-value store under YCSB zipfian gets and a few puts.",
    epilog="""\b
Examples:
  migrc-bench trace gen kv -k 100000 -n 1000000 -t 4 -o kv.parquet
  migrc-bench trace gen kv -k 50000 -v 1000 -z 0.99 -w 0.05 -n 2000000 -t 16 -o kv-cxl16.parquet
""", title="kv"))
register(GeneratorSpec(
    "gapbs-bfs", ".gapbs_bfs", "GAP's direction-optimising BFS on its Kronecker graph (-g SCALE).",
    epilog="""\b
Examples:
  migrc-bench trace gen gapbs-bfs -g 16 -n 4 -t 4 -o bfs.parquet
  migrc-bench trace gen gapbs-bfs -g 19 -k 16 -n 3 -t 16 -o bfs-cxl16.parquet

\b
GAP's -t is not a BFS flag; -t is the thread count here, as for every generator.
""", title="GAP BFS"))
register(GeneratorSpec(
    "gapbs-pr", ".gapbs_pr", "GAP's PageRank (pull, Gauss-Seidel) on its Kronecker graph.",
    epilog="""\b
Examples:
  migrc-bench trace gen gapbs-pr -g 16 -n 1 -i 5 -t 4 -o pr.parquet
  migrc-bench trace gen gapbs-pr -g 18 -i 10 -n 1 -t 16 -o pr-cxl16.parquet

\b
GAP's own -t (tolerance) is --tolerance here: -t is the thread count in every generator.
""", title="GAP PR"))
register(GeneratorSpec(
    "llama", ".llama", "LLM inference as llama2.c's run.c: P processes x T threads streaming "
    "mmapped weights.",
    epilog="""\b
Examples:
  migrc-bench trace gen llama -m stories15M -n 8 -t 4 -o llama.parquet
  migrc-bench trace gen llama --dim 64 --hidden-dim 176 --layers 2 --heads 4 --kv-heads 2 --vocab 512 --seq-len 32 -n 8 -P 3 -t 2 --weights per-process -o three.parquet

\b
Each process maps its model file read-only and streams every layer's weights once per token
step; --weights shared maps one file in every process (one page-cache copy), per-process one
file each (the LUF v10/v12 llama.cpp runs: three different models). The trace is version 2
(one pid per process; docs/traces.md). Defaults are stories15M's dimensions and run.c's 256
steps (about 4e9 records: give -n). Before writing, the size is estimated from the flags:
above 2e9 records the command stops (exit 2) with the flags that make it about 10^8.
""", title="llama"))


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str) -> GeneratorSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown trace generator {name!r} (known: {', '.join(REGISTRY)})"
                          ) from None


def from_args(argv: Sequence[str] | str, where: str = "trace.generate"
              ) -> tuple[GeneratorSpec, Any]:
    """(generator, parameters) from ``"NAME FLAGS..."`` as ``trace.generate`` holds it."""
    args = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv]
    if not args or args[0] not in REGISTRY:
        got = args[0] if args else ""
        raise ConfigError(f"config key '{where}': expected generator arguments starting with "
                          f"one of {', '.join(REGISTRY)}, got {got!r}")
    spec = REGISTRY[args[0]]
    return spec, spec.parse(args[1:])


def generate_from_args(argv: Sequence[str] | str, out: str | Path,
                       progress: Callable[[int, int], None] | None = None) -> Any:
    spec, params = from_args(argv)
    return spec.generate(out, params, progress)
