"""Configuration: one declarative schema, TOML files, ``--set`` overrides, typed frozen objects.

Every knob of the model lives in ``SCHEMA`` with its type, range, default and a one-line reason,
so validation errors can name the key, what was expected and what was given, and so
``config show`` can print the effective value of everything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import units
from .errors import ConfigError

# The bundled configs: in a checkout migrc_bench/configs is a symlink to the top-level
# configs/, in an installed package the directory the build copied them into.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.toml"


@dataclass(frozen=True)
class Key:
    """One config knob: how to parse it, what range is valid, and why it has its default."""

    path: str
    kind: str  # int | float | bool | str | choice | engine | size | size_or_fraction | time | freq | bandwidth
    default: Any
    doc: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        return self.path.split(".")[0] if "." in self.path else ""

    @property
    def name(self) -> str:
        return self.path.split(".")[-1]

    def expected(self) -> str:
        text = {
            "int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
            "choice": "one of " + ", ".join(repr(c) for c in self.choices),
            "size": 'a size such as 4096 or "1GiB"',
            "size_or_fraction": 'a size such as "1GiB" or a share of the trace footprint such as "18%"',
            "time": 'a duration such as "250ns", "10us" or "1000ms"',
            "freq": 'a frequency such as "2.1GHz"',
            "bandwidth": 'a bandwidth such as "10GB/s"',
            "engine": "",
        }[self.kind]
        if self.kind == "engine":
            from .engine_spec import describe_forms

            text = describe_forms(self.choices)
        if self.lo is not None or self.hi is not None:
            lo = "-inf" if self.lo is None else _fmt_num(self.lo)
            hi = "inf" if self.hi is None else _fmt_num(self.hi)
            text += f" in [{lo}, {hi}]"
        return text


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


ENGINES = ("nobatch", "baseline", "migrc", "luf", "migrc-unsafe")
TLB_PRESETS = ("skylake-sp", "sapphire-rapids", "zen4")
FLUSH_MECHANISMS = ("ipi", "invlpgb", "rar")
COST_PRESETS = ("bare-metal", "kvm-guest")

# Cost keys default to None: the value then comes from the cost preset (see model/costs.py).
SCHEMA: tuple[Key, ...] = (
    Key("engine", "engine", "baseline", "migration engine: a built-in name, an installed engine or a "
        "file engine PATH.py:CLASS, relative to the config file (docs/engines.md)", choices=ENGINES),
    # trace
    Key("trace.path", "str", "",
        "trace to replay when none is named; relative to the config file (a bundled config's: "
        "to the current directory); empty: trace.generate's trace in the cache"),
    Key("trace.generate", "str", "",
        "generator arguments (as for 'trace gen') that make the trace: kept in the cache, or "
        "written to trace.path when that is set and missing"),
    Key("trace.keep", "bool", True, "keep trace.generate's trace as a file (the cache's or "
        "trace.path); false: replay it as it is generated, no file (docs/traces.md)"),
    # machine
    Key("machine.ncpu", "int", 16, "CPUs on node 0 (the seed: 16-vCPU KVM guest)", 1, 1024),
    Key("machine.preset", "choice", "skylake-sp", "TLB geometry preset (and the flush mechanism "
        "it implies: zen4 INVLPGB, the Intel presets IPIs)", choices=TLB_PRESETS),
    Key("machine.flush", "choice", None, "remote TLB flush mechanism: ipi (flush IPIs, v6.7), "
        "invlpgb (AMD broadcast invalidation with global ASIDs, v6.15) or rar (Intel Remote "
        "Action Request, RFC v4); default: the one machine.preset implies (docs/modelling.md)",
        choices=FLUSH_MECHANISMS),
    Key("machine.cpu_freq", "freq", "2.1GHz", "core clock; converts cycle costs to ns", 1e8, 1e10),
    Key("machine.kswapd_cpu", "int", -1, "node-0 CPU kswapd runs on; -1: the CPU that woke it "
        "(wake-affine placement when every CPU is busy)", -1, 1023),
    Key("machine.sched_base_slice", "time", None, "EEVDF sysctl_sched_base_slice that kswapd and "
        "the thread sharing its CPU alternate by (default: 0.75 ms x (1 + ilog2(min(ncpu, 8))))"),
    Key("machine.context_switch_cost", "time", "1.1us", "CPU time of a context switch between "
        "tasks (more threads than CPUs), TLB flush apart: measured by benchmarks/programs/"
        "ctxsw.c (lmbench lat_ctx's method: two processes pinned to one CPU pass a byte through "
        "pipes, pipe cost subtracted, CPU time) on the development KVM guest: 1.03-1.23 us; "
        "the kernel source gives no figure"),
    Key("machine.hz", "int", 250, "CONFIG_HZ: scheduler ticks per second on a busy CPU (kernel/"
        "Kconfig.hz's default, HZ_250); a kernel period, so 1/hz is scaled by replay.time_scale; "
        "only engines with an on_tick hook see the tick (docs/engines.md)", 10, 100_000),
    # tlb
    Key("tlb.itlb_entries", "int", 0, "L1 iTLB 4K entries (0: from preset)", 0, 1 << 20),
    Key("tlb.itlb_ways", "int", 0, "L1 iTLB ways (0: from preset)", 0, 1 << 20),
    Key("tlb.dtlb_entries", "int", 0, "L1 dTLB 4K entries (0: from preset)", 0, 1 << 20),
    Key("tlb.dtlb_ways", "int", 0, "L1 dTLB ways (0: from preset)", 0, 1 << 20),
    Key("tlb.stlb_entries", "int", 0, "unified STLB entries (0: from preset)", 0, 1 << 24),
    Key("tlb.stlb_ways", "int", 0, "STLB ways (0: from preset)", 0, 1 << 20),
    Key("tlb.itlb2m_entries", "int", 0, "L1 iTLB 2M entries (0: from preset; used with memory.thp)",
        0, 1 << 20),
    Key("tlb.itlb2m_ways", "int", 0, "L1 iTLB 2M ways (0: from preset)", 0, 1 << 20),
    Key("tlb.dtlb2m_entries", "int", 0, "L1 dTLB 2M/4M entries (0: from preset; used with memory.thp)",
        0, 1 << 20),
    Key("tlb.dtlb2m_ways", "int", 0, "L1 dTLB 2M/4M ways (0: from preset)", 0, 1 << 20),
    Key("tlb.single_page_flush_ceiling", "int", 33,
        "x86 tlb_single_page_flush_ceiling: ranges above this many pages get a full flush", 0, 1 << 20),
    Key("tlb.invlpgb_count_max", "int", 8, "pages one ranged INVLPGB may cover (cpuid "
        "0x80000008 EDX[15:0] + 1; no published value for real parts: an assumption)", 1, 1 << 16),
    Key("tlb.pti", "bool", True, "page-table isolation: kernel text is not global, so full flushes drop it"),
    Key("tlb.itlb_flush_events_per_flush", "int", 2,
        "itlb.itlb_flush events per full flush (PTI's user + kernel PCIDs, K§1.6)", 1, 8),
    Key("tlb.kernel_text_pages", "int", 12,
        "kernel text pages fetched on each kernel entry (fault, IPI, kswapd, scan)", 0, 4096),
    Key("tlb.kernel_text_pool", "int", 512,
        "kernel text working set the entries rotate through (0: just kernel_text_pages); larger "
        "than the iTLB, so kernel entries walk even without flushes", 0, 1 << 20),
    # memory
    Key("memory.dram", "size_or_fraction", "18%", "node 0 (DRAM) capacity: bytes or share of footprint"),
    Key("memory.cxl", "size_or_fraction", "8GiB", "node 1 (CPU-less lower tier) capacity"),
    Key("memory.placement", "choice", "first-touch",
        "initial placement of a trace that starts mid-run: first-touch order (DRAM to its low "
        "watermark, then CXL), interleave, or hot (most-accessed pages in DRAM)",
        choices=("first-touch", "interleave", "hot")),
    Key("memory.initial_pte", "choice", "writable-dirty",
        "PTE state of pages present at the start: just initialised (writable-dirty), or the "
        "steady state of a long tiering run (steady-state: DRAM pages promoted, so read-only and "
        "clean; CXL pages demoted with a writable entry, so writable and clean)",
        choices=("writable-dirty", "writable-clean", "readonly-clean", "steady-state")),
    Key("memory.thp", "choice", "never",
        "/sys/kernel/mm/transparent_hugepage/enabled for anonymous memory: which 2 MiB-aligned "
        "ranges inside a trace region are PMD-mapped (always: every anonymous region; madvise: "
        "regions the trace marks \"hugepage\" (MADV_HUGEPAGE); never: none)",
        choices=("never", "always", "madvise")),
    Key("memory.min_free_kbytes", "int", 0, "vm.min_free_kbytes (0: kernel formula sqrt(16*lowmem_KB))",
        0, 1 << 40),
    Key("memory.watermark_scale_factor", "int", 10, "vm.watermark_scale_factor", 1, 3000),
    # tiering
    Key("tiering.enabled", "bool", True, "NUMA balancing promotion and kswapd demotion on/off"),
    Key("tiering.numa_balancing", "int", 2, "kernel.numa_balancing mode (2 = memory tiering)", 0, 3),
    Key("tiering.demotion_enabled", "bool", True, "/sys/kernel/mm/numa/demotion_enabled"),
    Key("tiering.scan_delay", "time", "1000ms", "numa_balancing_scan_delay_ms"),
    Key("tiering.scan_period_min", "time", "1000ms", "numa_balancing_scan_period_min_ms"),
    Key("tiering.scan_period_max", "time", "60000ms", "numa_balancing_scan_period_max_ms"),
    Key("tiering.scan_size_mb", "float", 256, "numa_balancing_scan_size_mb (fractions allowed for "
        "configs scaled down in space)", 0.004, 1 << 20),
    Key("tiering.hot_threshold", "time", "1000ms", "numa_balancing_hot_threshold_ms"),
    Key("tiering.promote_rate_limit_MBps", "int", 65536,
        "numa_balancing_promote_rate_limit_MBps", 1, 1 << 40),
    Key("tiering.migration_entry_ad", "bool", False,
        "migration entries carry young/dirty (swap_migration_ad_supported)"),
    Key("tiering.reclaim_chunk", "int", 32, "SWAP_CLUSTER_MAX: folios per demotion migrate call", 1, 4096),
    Key("tiering.migrate_batch", "int", 512, "NR_MAX_BATCHED_MIGRATION (HPAGE_PMD_NR)", 1, 1 << 20),
    # replay
    Key("replay.threads", "int", 0, "replay a single-thread trace as N threads (0: as recorded)", 0, 1024),
    Key("replay.quantum", "time", "10us", "max skew between CPU clocks; kernel work runs at boundaries",
        1.0, 1e12),
    Key("replay.time_scale", "float", 1.0,
        "multiplies every kernel period, threshold and rate (model.md §1 scaling)", 1e-9, 1e6),
    Key("replay.space_scale", "float", 1.0,
        "the share of the real machine's sizes the config's sizes stand for (model.md §1 "
        "scaling): where the kernel compares a size with an absolute amount (MAX_SCAN_WINDOW, "
        "pgdat_free_space_enough's 1 GiB, inactive_is_low's GiB, kswapd's lru_size >> "
        "priority) it sees size / space_scale", 1e-9, 1e6),
    Key("replay.interval", "time", "100ms", "modelled time per row of intervals.parquet", 1e3, 1e15),
    Key("replay.seed", "int", 1, "seed for every random choice of the replay", 0, 2**63 - 1),
    Key("replay.max_accesses", "int", 0, "stop after this many accesses (0: whole trace)", 0, 2**62),
    Key("replay.warmup", "int", 0, "accesses of each thread replayed before counting starts, to "
        "warm TLBs and the LRU (counters, times and runtime exclude them; 0: count all)", 0, 2**62),
    Key("replay.reader_thread", "bool", True, "read, decompress and map the trace on a second "
        "thread, overlapped with the replay (results are identical either way)"),
    # cost model (None: from cost.preset)
    Key("cost.preset", "choice", "kvm-guest", "cost preset (the seed ran in QEMU/KVM)",
        choices=COST_PRESETS),
    Key("cost.cpi", "float", None, "cycles per instruction outside memory stalls", 0.0, 100.0),
    Key("cost.stlb_hit_cycles", "float", None, "extra cycles for an L1 miss that hits the STLB", 0.0, 1e4),
    Key("cost.walk_ns", "float", None, "page-walk latency on bare metal (ns)", 0.0, 1e6),
    Key("cost.nested_walk_factor", "float", None, "2D (EPT) walk cost multiplier in a guest", 1.0, 100.0),
    Key("cost.cache_miss_rate", "float", None, "share of data accesses that go to memory", 0.0, 1.0),
    Key("cost.dram_latency", "time", None, "node-0 load latency"),
    Key("cost.cxl_latency", "time", None, "node-1 load latency"),
    Key("cost.ipi_send", "time", None, "initiator cost per IPI target (ICR write)"),
    Key("cost.ipi_wait", "time", None, "initiator wait for the slowest flush acknowledgement"),
    Key("cost.ipi_receive", "time", None, "receiver cost of taking the flush IPI"),
    Key("cost.vmexit", "time", None, "the sender's VM exit per flush call in a guest (PV send-IPI hypercall)"),
    Key("cost.invlpgb", "time", None, "initiator cost of issuing one INVLPGB (asynchronous; "
        "no published latency: an assumption)"),
    Key("cost.tlbsync", "time", None, "initiator wait in TLBSYNC for its INVLPGBs to complete on "
        "every CPU (no published latency: an assumption)"),
    Key("cost.rar_request", "time", None, "initiator cost of one RAR request: payload slot, "
        "action vector (the APIC send is cost.ipi_send per target; no published figure: an "
        "assumption)"),
    Key("cost.rar_wait", "time", None, "initiator wait until every RAR target reports "
        "RAR_SUCCESS (no published figure: an assumption)"),
    Key("cost.flush_full", "time", None, "full local TLB flush"),
    Key("cost.flush_one", "time", None, "one INVLPG"),
    Key("cost.fault", "time", None, "page-fault entry/exit and handling"),
    Key("cost.major_fault", "time", None, "a page-cache miss on fault: reading one 4 KiB file "
        "page back from storage (filemap_fault), on top of cost.fault"),
    Key("cost.migrate_page", "time", None, "per migrated page: rmap walk, unmap, remap, bookkeeping"),
    Key("cost.pte_update", "time", None, "per present PTE the NUMA scanner's change_pte_range "
        "examines (the scan's duration: mm->tlb_flush_pending is set meanwhile)"),
    Key("cost.lru_scan", "time", None, "per folio reclaim isolates and checks with "
        "folio_referenced (inactive and active lists alike)"),
    Key("cost.copy_bandwidth_dram", "bandwidth", None, "page-copy bandwidth into node 0"),
    Key("cost.copy_bandwidth_cxl", "bandwidth", None, "page-copy bandwidth into node 1"),
)

SCHEMA_BY_PATH = {k.path: k for k in SCHEMA}
SECTIONS = tuple(dict.fromkeys(k.section for k in SCHEMA if k.section))


def _parse_value(key: Key, value: Any) -> Any:
    """Return the typed value, or raise ConfigError naming key, expectation and value."""
    if value is None and key.default is None:
        return None

    def bad(extra: str = "") -> ConfigError:
        msg = f"config key '{key.path}': expected {key.expected()}, got {value!r}"
        return ConfigError(msg + (f" ({extra})" if extra else ""))

    try:
        if key.kind == "bool":
            if not isinstance(value, bool):
                raise bad()
            return value
        if key.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise bad()
            out: Any = value
        elif key.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad()
            out = float(value)
            if not math.isfinite(out):
                raise bad()
        elif key.kind == "str":
            if not isinstance(value, str):
                raise bad()
            return value
        elif key.kind == "choice":
            if value not in key.choices:
                raise bad()
            return value
        elif key.kind == "engine":
            from .engine_spec import spec_problem

            problem = spec_problem(value, key.choices)
            if problem:
                raise bad("" if problem == "unknown" else problem)
            return value
        elif key.kind == "size":
            out = units.parse_size(value)
        elif key.kind == "size_or_fraction":
            out = units.parse_size_or_fraction(value)
            if isinstance(out, float) and not (0.0 < out <= 100.0):
                raise bad("a share must be above 0% and at most 10000%")
            if isinstance(out, int) and out <= 0:
                raise bad("must be positive")
            return out
        elif key.kind == "time":
            out = units.parse_time_ns(value)
        elif key.kind == "freq":
            out = units.parse_freq_hz(value)
        elif key.kind == "bandwidth":
            out = units.parse_bandwidth(value)
            if out <= 0:
                raise bad("must be positive")
        else:  # pragma: no cover - schema error
            raise AssertionError(key.kind)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if key.lo is not None and out < key.lo or key.hi is not None and out > key.hi:
        raise bad("out of range")
    if key.kind == "time" and out < 0:
        raise bad("must not be negative")
    return out


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            if path in SCHEMA_BY_PATH:
                raise ConfigError(f"config key '{path}': expected a value, got a table")
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _section_class(section: str) -> type:
    fields = [(k.name, Any) for k in SCHEMA if k.section == section]
    return dataclasses.make_dataclass(section.capitalize() + "Config", fields, frozen=True)


_SECTION_CLASSES = {s: _section_class(s) for s in SECTIONS}


@dataclass(frozen=True)
class Config:
    """The effective configuration: typed sections, the raw values, and where it came from."""

    engine: str
    trace: Any
    machine: Any
    tlb: Any
    memory: Any
    tiering: Any
    replay: Any
    cost: Any
    raw: tuple[tuple[str, Any], ...]  # (path, value as written) for every key, sorted
    base_dir: Path  # relative paths in the config resolve here

    def get(self, path: str) -> Any:
        if "." not in path:
            return getattr(self, path)
        section, name = path.split(".", 1)
        return getattr(getattr(self, section), name)

    def to_toml(self) -> str:
        """The effective config as TOML: a run's record of exactly what it used."""
        return dump_toml(dict(self.raw))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_toml().encode()).hexdigest()

    def resolve_path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    def with_overrides(self, overrides: dict[str, Any]) -> "Config":
        values = dict(self.raw)
        values.update(overrides)
        return build_config(values, self.base_dir)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dump_toml(flat: dict[str, Any]) -> str:
    """Write a flat {section.key: value} mapping as TOML (values are scalars or lists)."""
    top = [(p, v) for p, v in flat.items() if "." not in p and v is not None]
    lines = [f"{p} = {_toml_value(v)}" for p, v in top]
    sections: dict[str, list[str]] = {}
    for path, value in flat.items():
        if "." in path and value is not None:
            section, name = path.split(".", 1)
            sections.setdefault(section, []).append(f"{name} = {_toml_value(value)}")
    for section, body in sections.items():
        lines.append("")
        lines.append(f"[{section}]")
        lines.extend(body)
    return "\n".join(lines) + "\n"


def build_config(values: dict[str, Any], base_dir: Path) -> Config:
    """Validate a flat mapping of written values (unknown keys rejected) into a Config.

    A ``scale`` key makes the values the real machine's, scaled by the config family's rule
    first (scaling.py)."""
    from .scaling import apply_scale

    values = apply_scale(values, lambda vals, path: _parse_value(
        SCHEMA_BY_PATH[path], vals.get(path, SCHEMA_BY_PATH[path].default)))
    for path in values:
        if path not in SCHEMA_BY_PATH:
            close = [k.path for k in SCHEMA if k.name == path.split(".")[-1]]
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{path}'{hint}")
    raw: dict[str, Any] = {}
    typed: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    engine = None
    for key in SCHEMA:
        written = values.get(key.path, key.default)
        parsed = _parse_value(key, written)
        raw[key.path] = written
        if key.section:
            typed[key.section][key.name] = parsed
        else:
            engine = parsed
    sections = {s: _SECTION_CLASSES[s](**typed[s]) for s in SECTIONS}
    return Config(engine=engine, raw=tuple(sorted(raw.items(), key=lambda kv: _order(kv[0]))),
                  base_dir=base_dir, **sections)


_ORDER = {k.path: i for i, k in enumerate(SCHEMA)}


def _order(path: str) -> int:
    return _ORDER[path]


def parse_set(assignment: str) -> tuple[str, Any]:
    """``section.key=value`` → (path, value); the value is read as TOML, else as a bare string."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects section.key=value, got {assignment!r}")
    path, text = assignment.split("=", 1)
    path, text = path.strip(), text.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return path, value


def load_toml_file(path: str | Path, kind: str, missing: str | None = None) -> dict[str, Any]:
    """Parse a TOML input file (a config, grid or thresholds file); every failure is a
    one-line ConfigError naming the file. ``missing`` replaces "<kind> file not found"."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {missing or f'{kind} file not found'}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {kind} file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def read_toml(path: Path) -> dict[str, Any]:
    return _flatten(load_toml_file(path, "config"))


def bundled_files() -> dict[str, Path]:
    """Name (file name without .toml) -> path of every file shipped in the package's configs."""
    try:
        return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.toml"))}
    except OSError:
        return {}


def is_bundled(path: str | Path) -> bool:
    try:
        return Path(path).resolve().parent == CONFIG_DIR.resolve()
    except OSError:
        return False


def find_file(value: str | Path, kind: str = "config") -> Path:
    """A file path as given, or the name of a bundled file (``xsbench-cxl16``, ``ci.toml``).

    A path that exists wins over a bundled name; anything else is a one-line ConfigError that
    lists the bundled names.
    """
    p = Path(value).expanduser()
    if p.exists() or p.parent != Path("."):
        return p
    bundled = bundled_files()
    name = p.name[:-5] if p.name.endswith(".toml") else p.name
    if name in bundled:
        return bundled[name]
    names = ", ".join(bundled) or "none"
    raise ConfigError(f"{value}: {kind} file not found (nor a bundled one: {names}; "
                      f"see 'migrc-bench config list')")


def config_dir(path: str | Path | None = None) -> Path:
    """The directory a config's relative paths resolve in: FILE's; for a bundled config (the
    default, or one named by name), which may sit in a read-only site-packages, the current
    directory."""
    cfg_path = find_file(path) if path is not None else DEFAULT_CONFIG
    return Path.cwd() if is_bundled(cfg_path) else cfg_path.resolve().parent


def load_config(path: str | Path | None = None, sets: tuple[str, ...] | list[str] = (),
                extra: dict[str, Any] | None = None) -> Config:
    """The bundled default (or FILE, or a bundled config's name), then ``extra`` overrides,
    then each ``--set`` in order.

    Relative paths in a config resolve against its directory; in a bundled config (which may
    sit in a read-only site-packages) against the current directory.
    """
    cfg_path = find_file(path) if path is not None else DEFAULT_CONFIG
    values = read_toml(cfg_path)
    if extra:
        values.update(extra)
    for item in sets:
        key, value = parse_set(item)
        values[key] = value
    return build_config(values, config_dir(cfg_path))


def resolve_capacity(value: int | float, footprint_bytes: int, page_size: int = 4096) -> int:
    """Pages for a capacity given in bytes or as a share of the footprint."""
    nbytes = value * footprint_bytes if isinstance(value, float) else value
    return max(1, int(nbytes) // page_size)


