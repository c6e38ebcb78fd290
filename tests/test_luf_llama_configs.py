"""configs/luf-llama.toml and luf-llama-1file.toml: the LUF v10/v12 machine, scaled by 1/1000
(docs/reproduction.md). They cannot run yet (several processes): they parse, name a llama
trace of the published shape that trace.generate accepts, and `run` refuses them in one line.
"""

from __future__ import annotations

import pytest

from migrc_bench.cli.main import main
from migrc_bench.config import load_config
from migrc_bench.trace import generators
from migrc_bench.trace.sizes import MAX_RECORDS

S = 1 / 1000


@pytest.mark.parametrize("name, weights", [("luf-llama", "per-process"),
                                           ("luf-llama-1file", "shared")])
def test_config_is_the_scaled_luf_machine(name, weights) -> None:
    cfg = load_config(name)
    spec, p = generators.from_args(cfg.trace.generate)
    assert spec.name == "llama" and (p.processes, p.threads, p.weights) == (3, 15, weights)
    assert p.layers == 80 and p.hidden_dim * 2 == 7 * p.dim and p.heads // p.kv_heads == 8
    assert abs(p.file_bytes - 70e9 * S) / (70e9 * S) < 0.02      # a "70G" model x 1/1000
    assert p.steps == 24 and not p.shared_classifier
    assert spec.size_estimate(p).records < MAX_RECORDS           # trace.generate makes it
    assert cfg.machine.ncpu == 64 >= p.total_threads and cfg.machine.preset == "sapphire-rapids"
    assert cfg.replay.time_scale == cfg.replay.space_scale == S
    assert cfg.cost.preset == "bare-metal" and cfg.tiering.scan_size_mb == pytest.approx(256 * S)
    assert main(["config", "show", "--config", name, "--format", "json"]) == 0


def test_per_process_models_exceed_memory_and_the_shared_one_fits() -> None:
    """As published: 3 x 70 GB against 42 + 98 GB; the issue's shared model fits."""
    for name, fits in (("luf-llama", False), ("luf-llama-1file", True)):
        cfg = load_config(name)
        _, p = generators.from_args(cfg.trace.generate)
        files = 1 if p.weights == "shared" else p.processes
        assert (files * p.file_bytes < 42e6 + 98e6) is fits


@pytest.mark.parametrize("name", ["luf-llama", "luf-llama-1file"])
def test_run_refuses_several_processes_in_one_line(tmp_path, capsys, name) -> None:
    """The same trace shape cut short (2 layers, 1 token: the full one takes a minute):
    `run` stops before any work with today's message, exit 2, and writes no results."""
    cfg = load_config(name)
    short = cfg.trace.generate.replace("--layers 80", "--layers 2").replace("-n 24", "-n 1")
    out = tmp_path / "results"
    argv = ["run", "--config", name, "--set", f"trace.generate={short}", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("several processes (3 pids): not modelled yet — issue 17")
    assert all(line.startswith("generating ") for line in err[:-1]) and len(err) <= 2
    assert not out.exists() or not any(out.iterdir())

