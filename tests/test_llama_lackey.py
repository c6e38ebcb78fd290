"""The llama generator against llama2.c's run.c under valgrind lackey (slow; make test-slow).

run.c built from ../shared/third_party/llama2.c with gcc -O3, a random-weight checkpoint of
migrc_bench.llama_check.DIMS, 6 greedy token steps, cut to the token steps; the generator at
the same dimensions (one process, one thread): records per token by region (weights, KV
cache, run state, stack, other), pages, read-only share and dTLB walks per token within ±30 %.
"""

from __future__ import annotations

import pytest

from migrc_bench import llama_check as C
from migrc_bench import validation as V

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    missing = V.missing_tools()
    if missing:
        pytest.skip(f"needs {' and '.join(missing)}")
    try:
        C.llama2c_source()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return C.CHECK.run(tmp_path_factory.mktemp("llama"))


def test_records_per_token_by_region_match_run_c(check) -> None:
    real, gen, figures = check
    table = "\n".join(f"{f.figure:32} real {f.real:12.6g} generated {f.generated:12.6g} "
                      f"{'' if f.deviation_pct is None else f'{f.deviation_pct:+7.1f} %'}"
                      f"{'' if f.checked else '   (not checked)'}" for f in figures)
    assert not [f for f in figures if not f.ok], f"outside ±30 %:\n{table}"
    checked = {f.figure for f in figures if f.checked}
    for region in C.REGIONS:
        assert f"records/token {region}" in checked
        assert real.records[region] > 0 and gen.records[region] > 0, region
    # the weights are streamed: every token reads about the whole file
    d = C.DIMS
    macs = d["layers"] * (2 * d["dim"] ** 2 + 2 * d["dim"] * d["dim"] * d["kv_heads"] // d["heads"]
                          + 3 * d["dim"] * d["hidden_dim"]) + d["vocab"] * d["dim"]
    assert real.per_unit(real.records["weights"]) >= macs / 4


def test_real_weights_pages_are_read_only(check) -> None:
    real, gen, _ = check
    assert real.pages["weights"] > 1536          # beyond the skylake-sp STLB's reach
    assert gen.read_only_pages >= gen.pages["weights"]
