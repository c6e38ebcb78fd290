"""Traces made from generator arguments (a config's ``trace.generate``), kept in the cache.

A generated trace is named by its resolved arguments (a sha256 of the parameter record the
trace itself carries as ``migrc_bench.generator``), so two sets of arguments never share a
file and a cached trace can never be stale; ``-p 400`` and ``--particles 400`` name the same
file. Only a trace the user named (``trace.path``) can have been made with other arguments:
that is a one-line error, never a silent replay of the wrong trace.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .. import interrupts
from ..cache import cache_path, make_cache_dir
from ..errors import UserError
from .generators import GeneratorSpec, from_args, get
from .sizes import check_size


def parse_generate(text: str) -> Any:
    """The parameters of ``trace.generate`` (a registered generator's name, then its flags)."""
    return from_args(text)[1]


def record(p: Any) -> dict:
    """The generator record as stored in the trace (JSON round-tripped, as read back)."""
    return json.loads(json.dumps(p.to_json(), sort_keys=True))


def spec_of(p: Any) -> GeneratorSpec:
    return get(record(p)["generator"])


def cache_file(p: Any) -> Path:
    """Where the cache keeps the trace of ``p``: readable prefix, then the arguments' key."""
    key = hashlib.sha256(json.dumps(record(p), sort_keys=True).encode()).hexdigest()[:16]
    return cache_path("traces", f"{spec_of(p).cache_label(p)}-{key}.parquet")


def check_made_with(path: Path, p: Any, text: str) -> None:
    """A trace at ``path`` must be what ``text`` makes, not an older trace of other arguments
    (or of another generator)."""
    from .native import TraceReader

    want = record(p)
    have = TraceReader(path).meta.generator
    if not have or not have.get("generator"):
        return  # converted or hand-made: nothing to compare
    differ = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if differ:
        detail = ", ".join(f"{k} {have.get(k)!r} vs {want.get(k)!r}" for k in differ[:3])
        raise UserError(f"{path}: generated with other arguments than trace.generate {text!r} "
                        f"({detail}); delete it to regenerate it, or leave trace.path empty to "
                        f"keep the generated trace in the cache")


def ensure(text: str, path: Path | None = None, quiet: bool = False) -> Path:
    """The trace ``text`` makes: at ``path`` when given, else in the cache; generated first
    when missing (after the size check: a config cannot ask for terabytes either)."""
    spec, p = from_args(text)
    target = path if path is not None else cache_file(p)
    if target.exists():
        check_made_with(target, p, text)
        return target
    check_size(spec.size_estimate(p), target, force=False,
               override=f"'migrc-bench trace gen {text} --force -o FILE', then trace.path = FILE,")
    if path is None:
        make_cache_dir("traces")
    interrupts.keep(f"{target}: not generated (nothing written)")
    if not quiet:
        import click

        click.echo(f"generating {target} ({text}) ...", err=True)
    spec.generate(target, p)
    return target
