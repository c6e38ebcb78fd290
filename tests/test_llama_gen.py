"""``trace gen llama``: shapes, determinism, metadata of processes and file mappings, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from migrc_bench.cli.main import main
from migrc_bench.errors import UserError
from migrc_bench.trace import llama as L
from migrc_bench.trace.generators import get
from migrc_bench.trace.native import TraceReader
from migrc_bench.trace.processes import shared_files

TINY = "--dim 16 --hidden-dim 24 --layers 2 --heads 4 --kv-heads 2 --vocab 40 --seq-len 8 -n 3"


def gen(tmp_path, flags: str, name: str = "t.parquet"):
    spec = get("llama")
    p = spec.parse(flags)
    out = tmp_path / name
    result = spec.generate(out, p)
    return p, result, TraceReader(out)


def test_records_equal_expected_and_are_deterministic(tmp_path) -> None:
    p, result, r = gen(tmp_path, TINY + " -P 2 -t 3 --weights per-process")
    assert result.records == L.expected_records(p) == r.num_rows
    _, _, r2 = gen(tmp_path, TINY + " -P 2 -t 3 --weights per-process", "u.parquet")
    a, b = r.read_all(), r2.read_all()
    for col in ("tid", "op", "addr", "size", "pid"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
    _, _, r3 = gen(tmp_path, TINY + " -P 2 -t 3 --weights per-process --seed 5", "v.parquet")
    assert not np.array_equal(a.addr, r3.read_all().addr)   # other tokens, other rows


def test_weights_are_streamed_once_per_token(tmp_path) -> None:
    """Every token step reads every weight array's float once (16-byte loads), the
    classifier's rows and one embedding row; nothing writes the file mapping."""
    p, _, r = gen(tmp_path, TINY)
    b = r.read_all()
    w = json.loads(r.meta.extra["arrays"])["weights"]
    lo, hi = w["start"], w["start"] + w["length"]
    inside = (b.addr >= lo) & (b.addr < hi) & (b.op != 0)
    assert not ((b.op[inside] == 2) | (b.op[inside] == 3)).any()
    f = p.weight_floats()
    streamed = sum(n for k, n in f.items() if k not in ("token_embedding", "freq_cis"))
    streamed += p.vocab * p.dim if p.shared_classifier else 0   # the classifier is the table
    per_token = int(b.size[inside].astype(np.int64).sum()) / p.steps
    assert per_token == 4 * (streamed + p.dim)      # + the embedding row's memcpy
    # the KV cache: row pos of every layer written at step pos, rows <= pos read
    arrays = json.loads(r.meta.extra["arrays"])
    kc = arrays["key_cache"]
    k_lo, k_hi = kc["start"], kc["start"] + 4 * kc["length"]
    writes = (b.addr >= k_lo) & (b.addr < k_hi) & (b.op == 2)
    rows = (b.addr[writes] - k_lo) // (4 * p.kv_dim) % p.seq_len
    assert set(rows.tolist()) == set(range(p.steps))


def test_processes_threads_and_file_mappings(tmp_path) -> None:
    p, _, r = gen(tmp_path, TINY + " -P 3 -t 2 --weights shared")
    m = r.meta
    assert m.version == 2 and m.threads == 6
    assert [(q.pid, q.tids) for q in m.processes] == [(1, (0, 1)), (2, (2, 3)), (3, (4, 5))]
    b = r.read_all()
    assert np.array_equal(b.pid, b.tid // 2 + 1)
    assert set(np.unique(b.tid).tolist()) == set(range(6))    # workers run matmul rows
    shared = shared_files(m.regions)
    assert sorted({reg.pid for reg in shared["model"]}) == [1, 2, 3]
    assert all(not reg.writable and reg.kind == "file" for reg in shared["model"])
    assert {reg.pid for reg in shared[L.TEXT_FILE]} == {1, 2, 3}
    _, _, r2 = gen(tmp_path, TINY + " -P 3 -t 2 --weights per-process", "pp.parquet")
    files = {reg.file.id: reg.pid for reg in r2.meta.regions
             if reg.file is not None and reg.name == "weights"}
    assert files == {"model-1": 1, "model-2": 2, "model-3": 3}
    assert "model" not in shared_files(r2.meta.regions)
    # the page cache holds one model (shared) or three (per process)
    assert m.footprint_bytes < r2.meta.footprint_bytes


def test_processes_interleave_in_slices(tmp_path) -> None:
    """Records of the processes alternate in slices of about QUANTUM records, so a streaming
    replay never reads one process far ahead of the others."""
    _, _, r = gen(tmp_path, TINY + " -P 2")
    pid = r.read_all().pid
    changes = np.flatnonzero(np.diff(pid.astype(np.int64))) + 1
    runs = np.diff(np.concatenate([[0], changes, [len(pid)]]))
    assert len(runs) > 10 and runs[:-2].max() < 2 * L.QUANTUM + 2 * L._max_item(
        get("llama").parse(TINY))


def test_presets_and_overrides() -> None:
    p = L.resolve_params(model="llama2-70b", steps=2)
    assert (p.dim, p.hidden_dim, p.layers, p.heads, p.kv_heads, p.kv_dim) == (
        8192, 28672, 80, 64, 8, 1024)
    assert not p.shared_classifier and 275e9 < p.file_bytes < 277e9   # 69 G fp32 parameters
    q = L.resolve_params(model="stories15M", layers=2)
    assert q.layers == 2 and q.dim == 288 and q.steps == 256
    assert L.resolve_params(model="stories15M", seq_len=16).steps == 16    # run.c's cap


def _gen_bad(tmp_path, capsys, flags: str):
    """(exit code, stderr, output path) of `trace gen llama` with bad ``flags``."""
    out = tmp_path / "bad.parquet"
    code = main(["trace", "gen", "llama", *flags.split(), "-o", str(out)])
    return code, capsys.readouterr().err, out


@pytest.mark.parametrize("flags, message", [
    ("--heads 5", "must divide --dim"),
    ("--kv-heads 4 --heads 6", "must divide --heads"),
    ("--dim 30 --heads 2 --kv-heads 2", "even head size"),
    ("-n 300", "exceed --seq-len"),
    ("-P 300 -t 300", "processes x threads"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, flags, message) -> None:
    code, err, out = _gen_bad(tmp_path, capsys, flags)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("flags, message", [
    ("--weights both", "'both' is not one of 'shared', 'per-process'"),
    ("--layers 0", "--layers"),
    ("-m llama3", "'llama3' is not one of"),
])
def test_values_click_refuses_are_usage_errors(tmp_path, capsys, flags, message) -> None:
    """As for every generator: click's usage message, its one Error line naming the value."""
    code, err, out = _gen_bad(tmp_path, capsys, flags)
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0]
    assert "Traceback" not in err and not out.exists()


def test_resolve_rejects_what_click_would(tmp_path) -> None:
    with pytest.raises(UserError, match="--weights"):
        L.resolve_params(weights="mixed")


def test_a_size_nobody_meant_is_refused_with_flags_that_fit(tmp_path, capsys) -> None:
    """Every token step reads the whole model: for a big one, fewer layers, not fewer steps."""
    out = tmp_path / "big.parquet"
    assert main(["trace", "gen", "llama", "-m", "stories110M", "-n", "256", "-P", "2",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "give -n 1 --layers" in err and not out.exists()
    layers = int(err.split("--layers ")[1].split()[0])
    est = L.size_estimate(L.resolve_params(model="stories110M", layers=layers, steps=1,
                                           processes=2))
    assert 0.3e8 < est.records < 1.5e8
    # run.c's default of 256 steps: fewer steps will do
    assert L.size_estimate(L.resolve_params()).hint == "for about 10^8 records give -n 6"

