"""One family of configs in one scale parameter s: a config written at s = 1 (the real machine)
and the one rule that derives its member at any s in (0, 1] (docs/reproduction.md, "Scaling
study").

A config opts in with a top-level ``scale = "1/10"`` (or ``--set scale=1/10``); every other
value it holds, and every ``--set``, is read as the real machine's and scaled here, before
the config is validated. The effective config keeps no ``scale`` key: it is the scaled
machine written out in full (``config show`` prints it), so a run records exactly what it
replayed and a sweep point rebuilds it like any other config.

The rule keeps the ratios that drive tiering (docs/reproduction.md, "Scaling, and why it is
needed") and scales everything that is a size or a period by s:

* ``replay.time_scale`` and ``replay.space_scale`` = s: every kernel period, threshold and
  rate x s; the kernel's absolute amounts see the sizes / s;
* the footprint and the run's length: the generator's own flags (XSBench: ``-g`` gridpoints,
  and ``-p`` particles, or ``-l`` lookups in event mode, x s, so a run covers the same number
  of scanner passes at every s);
* capacities given as sizes (``memory.dram``, ``memory.cxl``) x s; shares of the footprint
  already follow it;
* ``tiering.scan_size_mb`` x s, ``replay.interval`` x s (the same rows per run);
* watermarks: ``memory.min_free_kbytes`` x s, where 0 (the kernel's formula) is first
  evaluated on the real machine's capacities; ``watermark_scale_factor`` is a share of each
  node's pages, so it already follows s;
* the data TLBs (dTLB and STLB): entries x s (``data_tlb``); code and its TLB are not part of
  the footprint and are not scaled, nor are the costs.

At s = 1 the rule returns the values unchanged.
"""

from __future__ import annotations

import shlex
from fractions import Fraction
from typing import Any, Callable

from .errors import ConfigError

SCALE_KEY = "scale"
# the knobs the rule writes itself: a config at s = 1 must leave them at their unscaled value
_REAL = {"replay.time_scale": 1.0, "replay.space_scale": 1.0}
_SIZE_KEYS = ("memory.dram", "memory.cxl")
_TLB_LEVELS = ("dtlb", "stlb")
# XSBench flags (trace/xsbench_params.click_params) the rule rewrites
_XS_FLAGS = {"gridpoints": ("-g", "--gridpoints"), "particles": ("-p", "--particles"),
             "lookups": ("-l", "--lookups")}


def parse_scale(value: Any) -> Fraction:
    """``"1/10"``, ``0.1`` or ``1`` → a Fraction in (0, 1]; anything else a one-line error."""
    bad = ConfigError(f"config key '{SCALE_KEY}': expected a scale in (0, 1] such as \"1/10\", "
                      f"0.1 or 1, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad
    try:
        s = Fraction(value.strip()) if isinstance(value, str) else Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise bad from None
    if isinstance(value, float):
        s = s.limit_denominator(1_000_000)
    if not 0 < s <= 1:
        raise bad
    return s


def scale_label(s: Fraction) -> str:
    return "1" if s == 1 else f"{s.numerator}/{s.denominator}"


def apply_scale(values: dict[str, Any], parse: Callable[[dict[str, Any], str], Any]
                ) -> dict[str, Any]:
    """The written values of a config with a ``scale`` key → the scaled member's values
    (without ``scale``). Values are as written (strings such as "1GiB" included);
    ``parse(values, key)`` is the config's typed value of a key (its default if unwritten)."""
    if SCALE_KEY not in values:
        return values
    out = dict(values)
    s = parse_scale(out.pop(SCALE_KEY))
    for key, real in _REAL.items():
        if key in out and parse(out, key) != real:
            raise ConfigError(f"config key '{SCALE_KEY}': the config is already scaled ({key} = "
                              f"{out[key]!r}); 'scale' applies to a config written at s = 1, "
                              f"such as the bundled xsbench-seed")
    if s == 1:
        return out
    return _scaled(out, s, lambda key: parse(out, key))


def _scaled(values: dict[str, Any], s: Fraction, parsed: Callable[[str], Any]) -> dict[str, Any]:
    x = float(s)
    out = dict(values)
    out["replay.time_scale"] = x
    out["replay.space_scale"] = x
    gen = values.get("trace.generate", "")
    if not gen:
        raise ConfigError(f"config key '{SCALE_KEY}': the footprint follows s through the trace "
                          f"generator's flags, but trace.generate is empty")
    if values.get("trace.path"):
        raise ConfigError(f"config key '{SCALE_KEY}': trace.path {values['trace.path']!r} holds one "
                          f"footprint; leave it empty so that each member's trace is its own")
    out["trace.generate"] = scale_generate(gen, s)
    real_pages: int | None = 0
    for key in _SIZE_KEYS:
        v = parsed(key)
        if isinstance(v, int):  # a size; a share (float) follows the footprint already
            out[key] = max(4096, round(v * x))
            real_pages = None if real_pages is None else real_pages + v // 4096
        else:
            real_pages = None
    mfk = parsed("memory.min_free_kbytes")
    if mfk == 0:
        if real_pages is None:
            raise ConfigError(f"config key '{SCALE_KEY}': memory.min_free_kbytes = 0 (the "
                              f"kernel's formula) needs the real capacities: give memory.dram "
                              f"and memory.cxl as sizes, or min_free_kbytes itself")
        from .model.memory import min_free_kbytes

        mfk = min_free_kbytes(real_pages)
    out["memory.min_free_kbytes"] = max(1, round(mfk * x))
    out["tiering.scan_size_mb"] = float(parsed("tiering.scan_size_mb")) * x
    out["replay.interval"] = f"{parsed('replay.interval') * x / 1e6:.6g}ms"
    out.update(scaled_tlbs(parsed, s))
    return out


def scaled_tlbs(parsed: Callable[[str], Any], s: Fraction) -> dict[str, int]:
    """The data TLBs' tlb.* keys at s (the preset's geometry where the config gives 0)."""
    from .model.presets import TLB_PRESETS

    preset = TLB_PRESETS[parsed("machine.preset")]
    out: dict[str, int] = {}
    for level in _TLB_LEVELS:
        entries = parsed(f"tlb.{level}_entries") or getattr(preset, f"{level}_entries")
        ways = parsed(f"tlb.{level}_ways") or getattr(preset, f"{level}_ways")
        out[f"tlb.{level}_entries"], out[f"tlb.{level}_ways"] = data_tlb(entries, ways, s)
    return out


def data_tlb(entries: int, ways: int, s: Fraction | float) -> tuple[int, int]:
    """(entries, ways) of a TLB level of ``entries`` x ``ways`` at s: the geometry closest to
    entries x s (at least one set of the real ways) with a power-of-two number of sets (the
    model indexes sets by the low bits) and at most the real ways; on a tie, more ways."""
    target = max(float(ways), entries * float(s))
    best: tuple[float, int, int, int] | None = None
    sets = 1
    while sets <= max(1, entries):
        for w in range(1, ways + 1):
            key = (abs(sets * w - target), -w, sets, w)
            if best is None or key < best:
                best = key
        sets *= 2
    assert best is not None
    return best[2] * best[3], best[3]


def scale_generate(text: str, s: Fraction) -> str:
    """``trace.generate`` at s: the generator's footprint and length flags x s."""
    from .trace.generators import from_args

    spec, params = from_args(text)
    if spec.name != "xsbench":
        raise ConfigError(f"config key '{SCALE_KEY}': no scaling rule for the {spec.name!r} "
                          f"generator's footprint (only xsbench: -g and -p)")
    new = {"gridpoints": max(2, round(params.gridpoints * s))}
    if params.mode == "history":
        new["particles"] = max(1, round(params.particles * s))
    else:
        new["lookups"] = max(1, round(params.lookups * s))
    args = shlex.split(text)
    flag_of = {flag: name for name in new for flag in _XS_FLAGS[name]}
    kept: list[str] = []
    i = 0
    while i < len(args):  # each flag's value replaced where it stands, the rest as written
        flag, eq, _ = args[i].partition("=")
        name = flag_of.get(flag)
        if name is None:
            kept.append(args[i])
        elif name in new:
            kept += [flag, str(new.pop(name))] if not eq else [f"{flag}={new.pop(name)}"]
        if name is not None and not eq:
            i += 1  # its value
        i += 1
    for name, value in new.items():
        kept += [_XS_FLAGS[name][0], str(value)]
    return shlex.join(kept)
