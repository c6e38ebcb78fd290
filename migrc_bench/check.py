"""``check``: counters of a result against a baseline, per-counter rules, asv-style marks.

Rules (pytest-benchmark's ``--benchmark-compare-fail`` idea, per counter):

=================  ===========================================================================
``counter:+N%``    may grow by at most N % of the baseline value (a zero baseline: must stay 0)
``counter:+X``     may grow by at most X (in the counter's unit)
``counter:0``      must not grow at all (same as ``+0``); e.g. ``invariant_violations:0``
``counter:-N%``    may shrink by at most N % (higher-is-better counters); ``-X`` absolute
``counter:~N%``    may move by at most N % either way; ``~X`` absolute; ``~0`` must be equal
=================  ===========================================================================

``counter`` may be a shell glob (``nr_tlb_*``). For each engine and counter the rule used is
the most specific match: an exact name beats a glob, and among equals the last one given
wins (the thresholds file's ``[rules]``, then its ``[engines.NAME]``, then ``--rule``s).

Marks, as asv prints them: ``+`` worse beyond the rule (a regression), ``-`` better by more
than the rule's tolerance, blank within it, ``x`` not comparable (a counter missing on one
side, an engine missing, or a different config or trace).
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .baseline import (BASELINE_FORMAT, BASELINE_VERSION, load_runs, read_baseline,  # noqa: F401
                       write_baseline)
from .catalogue import KNOWN, fmt_value, sort_key
from .config import load_toml_file
from .errors import UserError
from .results import LOCATION_KEYS, StoredRun, latest_per_engine

CHECK_SCHEMA = "migrc-bench/check/1"
THRESHOLDS_VERSION = 1
RULE_HELP = "expected COUNTER:+N%, :+X, :0, :-N%, :-X, :~N% or :~X"

_SPEC = re.compile(r"^(?P<sign>[+\-~±]?)\s*(?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*(?P<pct>%?)$")
_NAME = re.compile(r"^[A-Za-z0-9_*?\[\]!\-.]+$")


# ---- rules ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One threshold: which way is a regression, and by how much a change is tolerated."""

    pattern: str  # counter name or glob
    worse: str  # "increase", "decrease" or "change"
    limit: float  # tolerated change: percent of the baseline value (relative) or absolute
    relative: bool
    spec: str  # as written after the colon, normalised ("+5%", "0", "~0")
    origin: str  # where it came from: "--rule" or the thresholds file

    @property
    def exact(self) -> bool:
        return not any(ch in self.pattern for ch in "*?[")

    def matches(self, counter: str) -> bool:
        return fnmatch.fnmatchcase(counter, self.pattern)

    def allowed(self, base: float) -> float:
        return self.limit * abs(base) / 100.0 if self.relative else self.limit

    def __str__(self) -> str:
        return f"{self.pattern}:{self.spec}"


def parse_spec(counter: str, spec: Any, origin: str) -> Rule:
    """``+5%``, ``+3``, ``0``, ``-2%``, ``~0`` (for ``counter``); UserError when malformed."""
    where = f"rule {counter}:{spec} ({origin})"
    if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
        raise UserError(f"{where}: {RULE_HELP}")
    if isinstance(spec, (int, float)):
        if spec != 0:
            raise UserError(f"{where}: a bare number other than 0 is ambiguous; write "
                            f"\"+{spec}\" (may grow by {spec}) or \"+{spec}%\"")
        spec = "0"
    if not counter or not _NAME.match(counter):
        raise UserError(f"{where}: bad counter name {counter!r}; {RULE_HELP}")
    m = _SPEC.match(spec.strip())
    if not m:
        raise UserError(f"{where}: {RULE_HELP}")
    sign, num, pct = m.group("sign"), float(m.group("num")), bool(m.group("pct"))
    if not math.isfinite(num):
        raise UserError(f"{where}: {RULE_HELP}")
    if not sign:
        if num != 0:
            raise UserError(f"{where}: give a sign: +{m.group('num')}{'%' if pct else ''} (may "
                            f"grow), -... (may shrink) or ~... (either way)")
        sign = "+"
    worse = {"+": "increase", "-": "decrease", "~": "change", "±": "change"}[sign]
    sign = "~" if sign == "±" else sign
    text = "0" if (num == 0 and sign == "+") else f"{sign}{m.group('num')}{'%' if pct else ''}"
    return Rule(counter, worse, num, pct, text, origin)


def parse_rule(text: str, origin: str = "--rule") -> Rule:
    """``counter:spec`` as given to ``--rule``."""
    if ":" not in text:
        raise UserError(f"rule {text!r} ({origin}): {RULE_HELP}")
    counter, spec = text.rsplit(":", 1)
    return parse_spec(counter.strip(), spec.strip(), origin)


@dataclass
class RuleSet:
    """Rules for every engine, plus per-engine additions; the most specific match wins."""

    common: list[Rule] = field(default_factory=list)
    per_engine: dict[str, list[Rule]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.common or any(self.per_engine.values()))

    def extend(self, other: "RuleSet") -> None:
        self.common.extend(other.common)
        for e, rules in other.per_engine.items():
            self.per_engine.setdefault(e, []).extend(rules)

    def all_rules(self) -> list[Rule]:
        return self.common + [r for rules in self.per_engine.values() for r in rules]

    def rule_for(self, engine: str, counter: str) -> Rule | None:
        candidates = self.common + self.per_engine.get(engine, [])
        best: tuple[tuple[bool, int], Rule] | None = None
        for i, r in enumerate(candidates):
            if r.matches(counter):
                key = (r.exact, i)
                if best is None or key > best[0]:
                    best = (key, r)
        return best[1] if best else None


def load_thresholds(path: str | Path) -> RuleSet:
    """A thresholds TOML file (docs/results.md): ``[rules]`` and ``[engines.NAME]`` tables."""
    p = Path(path)
    doc = load_toml_file(p, "thresholds")
    unknown = set(doc) - {"version", "rules", "engines"}
    if unknown:
        raise UserError(f"{p}: unknown key(s) {', '.join(sorted(unknown))} (expected version, "
                        f"[rules] and [engines.NAME])")
    version = doc.get("version", THRESHOLDS_VERSION)
    if not isinstance(version, int) or version > THRESHOLDS_VERSION:
        raise UserError(f"{p}: thresholds version {version!r} is not supported (this migrc-bench "
                        f"reads version {THRESHOLDS_VERSION})")
    rs = RuleSet()
    rules = doc.get("rules", {})
    if not isinstance(rules, dict):
        raise UserError(f"{p}: [rules] must be a table of counter = \"+N%\"")
    rs.common = _rules_table(rules, f"{p} [rules]")
    engines = doc.get("engines", {})
    if not isinstance(engines, dict):
        raise UserError(f"{p}: [engines] must hold one table per engine")
    for engine, table in engines.items():
        if not isinstance(table, dict):
            raise UserError(f"{p}: [engines.{engine}] must be a table of counter = \"+N%\"")
        rs.per_engine[engine] = _rules_table(table, f"{p} [engines.{engine}]")
    return rs


def _rules_table(table: dict[str, Any], origin: str) -> list[Rule]:
    out = []
    for counter, spec in table.items():
        if isinstance(spec, dict):
            raise UserError(f"{origin}: {counter} is a table; rules are counter = \"+N%\"")
        out.append(parse_spec(counter, spec, origin))
    return out


def validate_rules(rules: RuleSet, runs: list[StoredRun]) -> None:
    """A rule naming no known or stored counter, or rules for an engine that is neither known
    nor in the runs, is a typo: exit 2, not a silent pass."""
    from .config import ENGINES

    engines = set(ENGINES) | {r.engine for r in runs}
    for engine, table in rules.per_engine.items():
        if engine not in engines and table:
            raise UserError(f"{table[0].origin}: no engine named {engine!r} (engines: "
                            f"{', '.join(sorted(engines))})")
    present = set(KNOWN)
    for r in runs:
        present.update(r.counters)
    for rule in rules.all_rules():
        if not any(rule.matches(c) for c in present):
            close = [c for c in sorted(present) if c.startswith(rule.pattern[:6])][:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"rule {rule} ({rule.origin}): no counter "
                            f"{'matches' if not rule.exact else 'is named'} {rule.pattern!r}{hint}")


# ---- evaluation -----------------------------------------------------------------------------
@dataclass
class Finding:
    engine: str
    counter: str
    rule: Rule
    baseline: float | int | None
    result: float | int | None
    mark: str  # "+", "-", " ", "x"
    reason: str = ""

    @property
    def delta(self) -> float | int | None:
        if self.baseline is None or self.result is None:
            return None
        return self.result - self.baseline

    @property
    def delta_pct(self) -> float | None:
        d = self.delta
        if d is None:
            return None
        if self.baseline == 0:
            return 0.0 if d == 0 else None
        return 100.0 * d / abs(self.baseline)

    @property
    def verdict(self) -> str:
        return {"+": "regression", "-": "improvement", " ": "ok", "x": "not comparable"}[self.mark]

    def describe(self) -> str:
        pct = self.delta_pct
        change = f"{_signed_pct(pct)}" if pct is not None else f"{_signed(self.delta)}"
        return (f"{self.counter} [{self.engine}]: {fmt_value(self.baseline)} -> "
                f"{fmt_value(self.result)} ({change}, rule {self.rule.spec})")


@dataclass
class Pair:
    """The baseline run and the result run of one engine, and whether they are comparable."""

    engine: str
    baseline: StoredRun | None
    result: StoredRun | None
    reason: str = ""  # why not comparable
    note: str = ""  # comparable, but worth saying (keys added to the config schema)

    @property
    def comparable(self) -> bool:
        return not self.reason


@dataclass
class CheckReport:
    baseline_source: str
    result_source: str
    pairs: list[Pair]
    findings: list[Finding]

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.mark == "+"]

    @property
    def improvements(self) -> list[Finding]:
        return [f for f in self.findings if f.mark == "-"]

    @property
    def not_comparable(self) -> list[Finding]:
        return [f for f in self.findings if f.mark == "x"]

    def status(self, strict: bool = False) -> str:
        if self.regressions or strict and self.not_comparable:
            return "fail"
        return "pass"

    def exit_code(self, strict: bool = False) -> int:
        return 1 if self.status(strict) == "fail" else 0


def judge(rule: Rule, base: float | int, value: float | int) -> str:
    """The mark for one comparable counter: '+', '-' or ' '."""
    d = value - base
    allowed = rule.allowed(base)
    eps = 1e-12 * max(abs(base), abs(value))  # float sums in a different order
    if rule.worse == "increase":
        return "+" if d > allowed + eps else "-" if -d > allowed + eps else " "
    if rule.worse == "decrease":
        return "+" if -d > allowed + eps else "-" if d > allowed + eps else " "
    return "+" if abs(d) > allowed + eps else " "


def pair_runs(baseline: list[StoredRun], result: list[StoredRun],
              engines: list[str] | None = None) -> list[Pair]:
    """Per engine, the last run on each side; why a pair cannot be compared, if it cannot."""
    b = {r.engine: r for r in latest_per_engine(baseline, engines)}
    r = {x.engine: x for x in latest_per_engine(result, engines)}
    order = list(b) + [e for e in r if e not in b]
    if engines:
        order = [e for e in engines]
    pairs = []
    for e in order:
        br, rr = b.get(e), r.get(e)
        reason = ""
        if br is None and rr is None:
            raise UserError(f"--engines: no run of engine {e} in the baseline or the result "
                            f"(they have: {', '.join(sorted(set(b) | set(r)))})")
        if br is None:
            reason = f"engine {e} is not in the baseline"
        elif rr is None:
            reason = f"engine {e} is not in the result"
        elif br.trace_sha256 and rr.trace_sha256 and br.trace_sha256 != rr.trace_sha256:
            reason = "a different trace (sha256 differs)"
        note = ""
        if not reason and br.config_sha256 and rr.config_sha256 \
                and br.config_sha256 != rr.config_sha256:
            diff, new_keys = _config_change(br, rr)
            if diff or not (br.config_toml and rr.config_toml):
                reason = ("a different config" + (f": {', '.join(diff[:5])}" + (", ..." if len(diff) > 5 else "")
                                                  if diff else " (config sha256 differs)"))
            elif new_keys:
                note = f"config keys new on one side, at their defaults: {', '.join(new_keys)}"
        if not reason and br.engine_sha256 and rr.engine_sha256 and br.engine_sha256 != rr.engine_sha256:
            # compared (a changed engine is what a check measures), but never silently
            note = "; ".join(filter(None, [note, f"the engine's source file changed (sha256 "
                                                 f"{br.engine_sha256[:12]} -> {rr.engine_sha256[:12]})"]))
        pairs.append(Pair(e, br, rr, reason, note))
    return pairs


def _config_change(a: StoredRun, b: StoredRun) -> tuple[list[str], list[str]]:
    """(keys whose values differ, keys present on one side only at today's default).

    Where the trace file was (``trace.path``) is not compared: the trace itself is, by sha256.
    A key the config schema gained since the baseline was written is on one side only; at its
    default value it changes nothing the baseline did not have, so it does not make the runs
    incomparable (a default that changes behaviour shows in the counters, which the rules check).
    """
    from .config import SCHEMA_BY_PATH

    ca, cb = a.config_values(), b.config_values()
    diff, added = [], []
    for key in sorted(set(ca) | set(cb)):
        if key in LOCATION_KEYS:
            continue
        if key in ca and key in cb:
            if ca[key] != cb[key]:
                diff.append(key)
            continue
        value = ca.get(key, cb.get(key))
        schema = SCHEMA_BY_PATH.get(key)
        if schema is not None and value == schema.default:
            added.append(key)
        else:
            diff.append(key)
    return diff, added


def evaluate(baseline: list[StoredRun], result: list[StoredRun], rules: RuleSet,
             engines: list[str] | None = None, baseline_source: str = "",
             result_source: str = "") -> CheckReport:
    validate_rules(rules, baseline + result)
    pairs = pair_runs(baseline, result, engines)
    findings = []
    for pair in pairs:
        names: set[str] = set(KNOWN)
        for run in (pair.baseline, pair.result):
            if run is not None:
                names.update(run.counters)
        ordered = sorted(names, key=sort_key)
        for counter in ordered:
            rule = rules.rule_for(pair.engine, counter)
            if rule is None:
                continue
            bv = pair.baseline.counters.get(counter) if pair.baseline else None
            rv = pair.result.counters.get(counter) if pair.result else None
            if not pair.comparable:
                if bv is None and rv is None and not rule.exact:
                    continue
                findings.append(Finding(pair.engine, counter, rule, bv, rv, "x", pair.reason))
                continue
            if bv is None and rv is None:
                if rule.exact:
                    findings.append(Finding(pair.engine, counter, rule, None, None, "x",
                                            "missing on both sides"))
                continue
            if bv is None or rv is None:
                findings.append(Finding(pair.engine, counter, rule, bv, rv, "x",
                                        f"missing in the {'baseline' if bv is None else 'result'}"))
                continue
            findings.append(Finding(pair.engine, counter, rule, bv, rv, judge(rule, bv, rv)))
    return CheckReport(baseline_source, result_source, pairs, findings)


# ---- rendering ------------------------------------------------------------------------------
def _signed(v: float | int | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:+,}"
    return f"{v:+.4g}"


def _signed_pct(p: float | None) -> str:
    return "-" if p is None else f"{p:+.2f}%"


def _change(f: Finding) -> str:
    if f.delta is None:
        return "-"
    if f.delta_pct is None:
        return f"{_signed(f.delta)} (new)"
    return _signed_pct(f.delta_pct)


def summary_line(report: CheckReport, strict: bool = False) -> str:
    n = len(report.findings)
    parts = [f"{len(report.regressions)} regression{'s' if len(report.regressions) != 1 else ''}",
             f"{len(report.improvements)} improved",
             f"{len(report.not_comparable)} not comparable"]
    status = "FAIL" if report.status(strict) == "fail" else "PASS"
    return f"{status}: {n} counter{'s' if n != 1 else ''} checked; " + ", ".join(parts)


def render_text(report: CheckReport, strict: bool = False) -> str:
    """asv-compare-like lines: mark, baseline, result, change, rule, counter [engine]."""
    lines = [f"check {report.result_source} against {report.baseline_source}"]
    for p in report.pairs:
        b = p.baseline.run_id if p.baseline else "-"
        r = p.result.run_id if p.result else "-"
        state = ("comparable" + (f"; {p.note}" if p.note else "")) if p.comparable \
            else f"NOT comparable: {p.reason}"
        lines.append(f"  {p.engine}: baseline run {b}, result run {r} ({state})")
    rows = [("", "baseline", "result", "change", "rule", "counter")]
    for f in report.findings:
        name = f"{f.counter} [{f.engine}]" + (f"  ({f.reason})" if f.mark == "x" and f.reason
                                              and "missing" in f.reason else "")
        rows.append((f.mark, fmt_value(f.baseline), fmt_value(f.result), _change(f), f.rule.spec, name))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines.append("")
    for r in rows:
        lines.append(f"{r[0]:<1}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}  "
                     f"{r[4]:<{widths[4]}}  {r[5]}".rstrip())
    lines.append("")
    for f in report.regressions:
        lines.append(f"REGRESSION {f.describe()}")
    lines.append(summary_line(report, strict))
    return "\n".join(lines) + "\n"


def render_markdown(report: CheckReport, strict: bool = False) -> str:
    """A CI job summary: status heading, runs, one table row per checked counter."""
    status = report.status(strict)
    head = "passed" if status == "pass" else "FAILED"
    out = [f"### migrc-bench check {head}", "",
           f"`{report.result_source}` against baseline `{report.baseline_source}`: "
           + summary_line(report, strict).split(": ", 1)[1] + ".", ""]
    for f in report.regressions:
        out.append(f"- **regression** {f.describe()}")
    for p in report.pairs:
        if not p.comparable:
            out.append(f"- `{p.engine}` not comparable: {p.reason}")
        elif p.note:
            out.append(f"- `{p.engine}`: {p.note}")
    if report.regressions or any(not p.comparable or p.note for p in report.pairs):
        out.append("")
    out += ["| | engine | counter | baseline | result | change | rule |",
            "|:-:|---|---|--:|--:|--:|---|"]
    for f in report.findings:
        mark = {"+": "**+**", "-": "-", " ": "", "x": "x"}[f.mark]
        out.append(f"| {mark} | {f.engine} | `{f.counter}` | {fmt_value(f.baseline)} | "
                   f"{fmt_value(f.result)} | {_change(f)} | `{f.rule.spec}` |")
    out.append("")
    out.append("Marks: **+** worse beyond the rule, - better beyond it, x not comparable.")
    return "\n".join(out) + "\n"


def to_json(report: CheckReport, strict: bool = False) -> dict[str, Any]:
    return {
        "schema": CHECK_SCHEMA,
        "status": report.status(strict),
        "strict": strict,
        "baseline": report.baseline_source,
        "result": report.result_source,
        "summary": {"checked": len(report.findings), "regressions": len(report.regressions),
                    "improvements": len(report.improvements),
                    "not_comparable": len(report.not_comparable)},
        "pairs": [{"engine": p.engine, "comparable": p.comparable, "reason": p.reason or None,
                   "note": p.note or None,
                   "baseline_run_id": p.baseline.run_id if p.baseline else None,
                   "result_run_id": p.result.run_id if p.result else None,
                   "baseline_engine_sha256": p.baseline.engine_sha256 or None if p.baseline else None,
                   "result_engine_sha256": p.result.engine_sha256 or None if p.result else None}
                  for p in report.pairs],
        "findings": [{"engine": f.engine, "counter": f.counter, "mark": f.mark,
                      "verdict": f.verdict, "rule": str(f.rule), "rule_origin": f.rule.origin,
                      "baseline": f.baseline, "result": f.result, "delta": f.delta,
                      "delta_pct": f.delta_pct, "reason": f.reason or None}
                     for f in report.findings],
    }


def flat_findings(report: CheckReport) -> list[dict[str, Any]]:
    return [{"mark": f.mark.strip() or "", "engine": f.engine, "counter": f.counter,
             "baseline": f.baseline, "result": f.result, "delta": f.delta,
             "delta_pct": f.delta_pct, "rule": f.rule.spec, "verdict": f.verdict,
             "reason": f.reason} for f in report.findings]
