"""``migrc-bench check RESULT --baseline FILE``: gate CI on counter regressions."""

from __future__ import annotations

import json
import sys

import click

from .. import check as K
from ..config import CONFIG_DIR, find_file
from ..errors import UserError
from ..results import latest_per_engine
from .options import format_option, quiet_option
from .output import emit_rows

DEFAULT_THRESHOLDS = CONFIG_DIR / "ci-thresholds.toml"

EPILOG = """\b
Examples:
  migrc-bench check results/ --baseline benchmarks/ci-baseline.json
  migrc-bench check results/ --baseline old-results/ --rule nr_tlb_remote_flush:+5% \\
      --rule runtime_s:+2% --rule invariant_violations:0
  migrc-bench check results/ --baseline base.json --format markdown >> "$GITHUB_STEP_SUMMARY"
  migrc-bench check results/ --write-baseline benchmarks/ci-baseline.json

\b
Rules: COUNTER:+N% (may grow by N% of the baseline), :+X (by X), :0 (must not grow),
:-N% / :-X (may shrink by that much: higher-is-better counters), :~N% / :~X (either way).
COUNTER may be a glob. Without --rule or --thresholds the bundled configs/ci-thresholds.toml
is used. Marks: + worse beyond the rule, - better beyond it, x not comparable.
Exit status: 0 no regression, 1 a regression (or, with --strict, anything not comparable),
2 bad input, or nothing compared (every engine missing on one side, or no rule's counter
in the runs). Formats of the thresholds and baseline files: docs/results.md.
"""


@click.command("check", epilog=EPILOG, short_help="Gate CI: counters against a baseline, exit 1 on a regression.")
@click.argument("result", type=click.Path())
@click.option("--baseline", "baseline", default=None, type=click.Path(),
              help="Results directory, runs.parquet or a file written by --write-baseline.")
@click.option("--thresholds", "thresholds", default=None, type=click.Path(),
              help="TOML file of rules ([rules] and [engines.NAME] tables).")
@click.option("--rule", "rules", multiple=True, metavar="COUNTER:SPEC",
              help="A rule such as nr_tlb_remote_flush:+5%; repeatable; after the file's rules.")
@click.option("--engines", default=None, metavar="A,B,...",
              help="Only these engines (default: every engine on either side).")
@click.option("--strict", is_flag=True,
              help="Exit 1 also when something is not comparable (engine missing, config or "
                   "trace differs, counter missing).")
@click.option("--write-baseline", "write_baseline", default=None, type=click.Path(dir_okay=False),
              help="Also record RESULT's runs (last per engine) as a baseline file here.")
@format_option()
@quiet_option
def command(result, baseline, thresholds, rules, engines, strict, write_baseline, fmt,
            quiet) -> None:
    """Check RESULT's counters against a baseline, per-counter rules; exit 1 on a regression."""
    if baseline is None and write_baseline is None:
        raise UserError("check needs --baseline FILE (to check) and/or --write-baseline FILE")
    engine_list = [e.strip() for e in engines.split(",") if e.strip()] if engines else None
    result_runs = K.load_runs(result)
    if not result_runs:
        raise UserError(f"{result}: holds no runs")
    code = 0
    if baseline is not None:
        ruleset = K.RuleSet()
        if thresholds is not None or not rules:
            ruleset.extend(K.load_thresholds(find_file(thresholds, "thresholds")
                                             if thresholds else DEFAULT_THRESHOLDS))
        ruleset.common.extend(K.parse_rule(r) for r in rules)
        base_runs = K.load_runs(baseline)
        if not base_runs:
            raise UserError(f"{baseline}: holds no runs")
        report = K.evaluate(base_runs, result_runs, ruleset, engine_list,
                            baseline_source=str(baseline), result_source=str(result))
        if not any(f.mark != "x" for f in report.findings):
            why = "; ".join(f"{p.engine}: {p.reason}" for p in report.pairs if not p.comparable)
            raise UserError(f"check {result} against {baseline}: no counter could be compared ("
                            f"{why or 'no rule names a counter these runs have'}); a gate "
                            f"that compares nothing cannot pass"
                            + ("; if the change is intended, record a new baseline with check "
                               f"{result} --write-baseline FILE" if "different" in why else ""))
        code = report.exit_code(strict)
        if not quiet or fmt != "table":
            _emit(report, fmt, strict)
        if code:
            for f in report.regressions:
                click.echo(f"migrc-bench: regression: {f.describe()}", err=True)
            if strict and not report.regressions:
                click.echo(f"migrc-bench: check failed (--strict): "
                           f"{len(report.not_comparable)} counter(s) not comparable"
                           + "".join(f"; {p.engine}: {p.reason}" for p in report.pairs
                                     if not p.comparable)
                           + f"; if that is intended, record a new baseline with "
                             f"check {result} --write-baseline FILE", err=True)
    if write_baseline is not None:
        picked = latest_per_engine(result_runs, engine_list)
        K.write_baseline(write_baseline, picked, str(result))
        if not quiet:
            click.echo(f"baseline: wrote {write_baseline} ({', '.join(r.engine for r in picked)})",
                       err=True)
    sys.stdout.flush()
    if code:
        raise click.exceptions.Exit(code)


def _emit(report: K.CheckReport, fmt: str, strict: bool) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(K.to_json(report, strict), indent=2, allow_nan=False) + "\n")
    elif fmt == "csv":
        emit_rows(K.flat_findings(report), "csv",
                  columns=("mark", "engine", "counter", "baseline", "result", "delta", "delta_pct",
                           "rule", "verdict", "reason"))
    elif fmt == "markdown":
        sys.stdout.write(K.render_markdown(report, strict))
    else:
        sys.stdout.write(K.render_text(report, strict))
