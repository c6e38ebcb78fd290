"""The package as users meet it: --version, bundled configs by name, generated traces in the
cache (named by their arguments), an installed package's numba cache outside site-packages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import migrc_bench
from migrc_bench.config import bundled_files, load_config
from migrc_bench.errors import UserError
from migrc_bench.trace.generated import cache_file, parse_generate

from results_util import cli

SMALL = "xsbench -s small -m event -l 200 -t 2 --seed 1"


def test_version(capsys):
    code, out, _ = cli(["--version"], capsys)
    assert code == 0 and migrc_bench.__version__ in out


def test_config_list_and_bundled_names(capsys):
    code, out, _ = cli(["config", "list", "--format", "json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(bundled_files()) >= {"default", "ci", "xsbench-cxl16", "sweep-ncpu"}
    assert rows["xsbench-cxl16"]["kind"] == "config" and "16 CPUs" in rows["xsbench-cxl16"]["about"]
    assert rows["sweep-ncpu"]["kind"] == "grid" and rows["ci-thresholds"]["kind"] == "thresholds"
    code, out, _ = cli(["config", "list"], capsys)
    assert code == 0 and max(len(x) for x in out.splitlines()) <= 80
    assert len([x for x in out.splitlines() if "│ default " in x]) == 1  # one line each
    for name in ("xsbench-cxl16", "xsbench-cxl16.toml"):
        code, out, _ = cli(["config", "show", "--config", name, "--format", "json"], capsys)
        assert code == 0 and json.loads(out)["machine.ncpu"] == 16
    code, _, err = cli(["config", "show", "--config", "xsbench-cxl99"], capsys)
    assert code == 2 and "xsbench-cxl16" in err and "config list" in err


def test_a_bundled_configs_relative_paths_are_the_current_directorys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config("default", ["trace.path=mine.parquet"])
    assert cfg.resolve_path(cfg.trace.path) == tmp_path / "mine.parquet"
    own = tmp_path / "sub" / "my.toml"
    own.parent.mkdir()
    own.write_text('[trace]\npath = "t.parquet"\n')
    assert load_config(own).resolve_path("t.parquet") == own.parent / "t.parquet"


def test_generated_traces_are_named_by_their_arguments():
    a = cache_file(parse_generate(SMALL))
    assert a == cache_file(parse_generate(SMALL.replace("-l 200", "--lookups 200")))
    assert a != cache_file(parse_generate(SMALL.replace("-l 200", "-l 201")))
    assert a != cache_file(parse_generate(SMALL.replace("--seed 1", "--seed 2")))
    assert a.parent == Path(os.environ["MIGRC_BENCH_CACHE"]) / "traces"


def test_a_config_generates_into_the_cache_once(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MIGRC_BENCH_CACHE", str(cache))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[trace]\ngenerate = "{SMALL}"\n[machine]\nncpu = 2\n')
    code, _, err = cli(["run", "--config", cfg, "--no-save", "--format", "json"], capsys)
    assert code == 0, err
    made = cache_file(parse_generate(SMALL))
    assert made.is_file() and (cache / "CACHEDIR.TAG").is_file() and str(made) in err
    stamp = made.stat().st_mtime_ns
    code, _, err = cli(["run", "--config", cfg, "--no-save", "--format", "json"], capsys)
    assert code == 0 and "generating" not in err and made.stat().st_mtime_ns == stamp
    # a trace the user named, made with other arguments, is refused rather than replayed
    named = tmp_path / "named.parquet"
    named.write_bytes(made.read_bytes())
    cfg.write_text(f'[trace]\npath = "named.parquet"\ngenerate = "{SMALL.replace("-l 200", "-l 300")}"\n'
                   "[machine]\nncpu = 2\n")
    code, _, err = cli(["run", "--config", cfg, "--no-save"], capsys)
    assert code == 2 and "generated with other arguments than trace.generate" in err
    assert list((cache / "traces").iterdir()) == [made]  # nothing else was generated


def test_no_trace_at_all_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('engine = "baseline"\n')
    code, _, err = cli(["run", "--config", cfg, "--no-save"], capsys)
    assert code == 2 and "names no trace" in err


def test_an_installed_package_keeps_numba_code_in_the_cache(monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(migrc_bench, "__file__",
                        "/venv/lib/python3.11/site-packages/migrc_bench/__init__.py")
    migrc_bench._numba_cache_outside_site_packages()
    assert os.environ["NUMBA_CACHE_DIR"] == str(Path(os.environ["MIGRC_BENCH_CACHE"]) / "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/mine")  # the user's choice wins
    migrc_bench._numba_cache_outside_site_packages()
    assert os.environ["NUMBA_CACHE_DIR"] == "/mine"


def test_find_file_prefers_an_existing_path(tmp_path, monkeypatch):
    from migrc_bench.config import find_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "default.toml").write_text("")
    assert find_file("default.toml") == Path("default.toml")
    assert find_file("ci").name == "ci.toml"
    with pytest.raises(UserError, match="grid file not found"):
        find_file("nope", "grid")


def test_config_show_names_where_an_unset_value_comes_from(capsys):
    """An unset key shows what it resolves to: the scheduler's slice from the CPU count, the
    costs from their preset (not a cost preset beside a scheduler key)."""
    code, out, _ = cli(["config", "show", "--set", "machine.ncpu=4", "--format", "csv"], capsys)
    rows = {line.split(",", 1)[0]: line for line in out.splitlines()}
    assert code == 0 and "2.25 ms" in rows["machine.sched_base_slice"]
    assert "preset" not in rows["machine.sched_base_slice"].split(",")[1]
    assert "(preset " in rows["cost.cpi"]
