"""Each generator against its real program (slow: valgrind lackey; ``make test-slow``).

The real programs: GAP's bfs and pr built from ../shared/third_party/gapbs, and the GUPS and kv
programs of benchmarks/programs/, traced at a small scale with lackey, cut to the kernel and
measured as the generator's trace at the same parameters (migrc_bench/validation.py): records
per unit of work by region, distinct pages, the read-only share and dTLB walks per unit of
work on the skylake-sp TLBs must be within ±30 % (docs/workloads.md has the tables).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from migrc_bench import validation as V
from migrc_bench.trace.gapbs_graph import kronecker
from migrc_bench.trace.native import TraceReader

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    """Run each check once per session: name -> (work dir, real, generated, figures)."""
    missing = V.missing_tools()
    if missing:
        pytest.skip(f"needs {' and '.join(missing)}")
    done: dict = {}

    def get(name: str):
        if name not in done:
            if name.startswith("gapbs"):
                try:
                    V.gapbs_source()
                except FileNotFoundError as exc:
                    pytest.skip(str(exc))
            work = tmp_path_factory.mktemp(name)
            done[name] = (work, *V.CHECKS[name].run(work))
        return done[name]

    return get


@pytest.mark.parametrize("name", list(V.CHECKS))
def test_generator_matches_real_program(name: str, checks) -> None:
    _, real, gen, figures = checks(name)
    bad = [f for f in figures if not f.ok]
    table = "\n".join(f"{f.figure:32} real {f.real:12.6g} generated {f.generated:12.6g} "
                      f"{'' if f.deviation_pct is None else f'{f.deviation_pct:+7.1f} %'}"
                      f"{'' if f.checked else '   (not checked)'}" for f in figures)
    assert not bad, f"{name}: outside ±30 %:\n{table}"
    # the comparison is not vacuous: the big regions are checked
    assert sum(f.checked for f in figures) >= 5
    assert real.records["code"] > 0 and gen.records["code"] > 0


def test_gups_addresses_are_the_c_programs(checks) -> None:
    """Beyond the statistics: the generated table addresses are the real program's, in order."""
    work, _, _, _ = checks("gups")
    lay = V.RealLayout.from_malloc_log(work / "gups.allocs",
                                       lambda size, k: "table" if size == 8 << 20 else None)
    start = next(a for a, _, n in lay.allocs if n == "table")
    r = TraceReader(work / "gups-real.parquet").read_all()
    got = r.addr[(r.op == 3) & (r.addr >= start) & (r.addr < start + (8 << 20))] - start
    g = TraceReader(work / "gups-generated.parquet")
    gstart = json.loads(g.meta.extra["arrays"])["table"]["start"]
    b = g.read_all()
    assert len(got) == 500_000 and np.array_equal(got, b.addr[b.op == 3] - gstart)


def test_kronecker_csr_is_gaps_converter_output(tmp_path) -> None:
    """The generator's graph against gapbs's own: ``converter -g G -e`` lists every edge."""
    if V.missing_tools():
        pytest.skip("needs g++")
    try:
        src = V.gapbs_source()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    work = tmp_path / "gapbs"
    shutil.copytree(src, work)
    subprocess.run(["g++", *V.GAP_FLAGS, "src/converter.cc", "-o", "converter"], cwd=work,
                   check=True)
    for scale in (12, 17):       # 17: std::shuffle's one-draw-per-swap branch
        subprocess.run(["./converter", "-g", str(scale), "-e", f"g{scale}.el"], cwd=work,
                       check=True, capture_output=True)
        el = np.loadtxt(work / f"g{scale}.el", dtype=np.int64)
        g = kronecker(scale)
        u = np.repeat(np.arange(g.num_nodes), np.diff(g.offsets))
        assert np.array_equal(el[:, 0], u) and np.array_equal(el[:, 1], g.neighs)
