"""Each generator against its real program (slow: valgrind lackey; ``make test-slow``).

The real programs: GAP's bfs and pr built from ../shared/third_party/gapbs, and the GUPS and kv
programs of benchmarks/programs/, traced at a small scale with lackey, cut to the kernel and
measured as the generator's trace at the same parameters (migrc_bench/validation.py): records
per unit of work by region, distinct pages, the read-only share and dTLB walks per unit of
work on the skylake-sp TLBs must be within ±30 % (docs/workloads.md has the tables).
"""

from __future__ import annotations

import pytest

from migrc_bench import validation as V

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    missing = V.missing_tools()
    if missing:
        pytest.skip(f"needs {' and '.join(missing)}")


@pytest.mark.parametrize("name", list(V.CHECKS))
def test_generator_matches_real_program(name: str, tmp_path_factory) -> None:
    if name.startswith("gapbs"):
        try:
            V.gapbs_source()
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
    real, gen, figures = V.CHECKS[name].run(tmp_path_factory.mktemp(name))
    bad = [f for f in figures if not f.ok]
    table = "\n".join(f"{f.figure:32} real {f.real:12.6g} generated {f.generated:12.6g} "
                      f"{'' if f.deviation_pct is None else f'{f.deviation_pct:+7.1f} %'}"
                      f"{'' if f.checked else '   (not checked)'}" for f in figures)
    assert not bad, f"{name}: outside ±30 %:\n{table}"
    # the comparison is not vacuous: the big regions are checked
    assert sum(f.checked for f in figures) >= 5
    assert real.records["code"] > 0 and gen.records["code"] > 0
