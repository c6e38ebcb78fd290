"""Engines from outside the package: a file PATH.py:CLASS or an installed entry point.

They run like the built-ins, record their name, file and hash, get new run ids when the file
changes, and every way they can be broken is one line naming the file and line, exit status 2,
and nothing written to the results directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from migrc_bench.results import make_run_id, read_runs
from results_util import SETS, cli, make_trace, sets_args

# An engine that behaves exactly as the v6.7 baseline and counts its batched flushes.
TWIN = '''
from migrc_bench.engines import Engine


class Twin(Engine):
    name = "twin"

    def attach(self, replay):
        super().attach(replay)
        self.batches = 0

    def flush_unmapped(self, initiator, batch):
        self.batches += 1
        super().flush_unmapped(initiator, batch)

    def run_figures(self):
        return {"twin_batches": self.batches}
'''


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    return make_trace(tmp_path_factory.mktemp("ue") / "t.parquet", n=8000)


def write_engine(dirpath: Path, text: str, name: str = "twin.py") -> Path:
    path = dirpath / name
    path.write_text(textwrap.dedent(text))
    return path


def deterministic(counters: dict) -> dict:
    return {k: v for k, v in counters.items() if k not in ("wall_s", "accesses_per_s")}


def test_an_engine_from_a_file_runs_and_is_identified(tmp_path, trace, capsys):
    eng = write_engine(tmp_path, TWIN)
    out = tmp_path / "res"
    code, _, err = cli(["run", trace, "--engine", f"{eng}:Twin", "--out", out, "--quiet",
                        *sets_args()], capsys)
    assert code == 0, err
    code, _, err = cli(["run", trace, "--engine", "baseline", "--out", out, "--quiet", *sets_args()],
                       capsys)
    assert code == 0, err
    runs = read_runs(out).set_index("engine")
    twin, base = runs.loc["twin"], runs.loc["baseline"]
    assert twin["engine_file"] == str(eng.resolve())
    assert twin["engine_sha256"] == hashlib.sha256(eng.read_bytes()).hexdigest()
    assert twin["twin_batches"] > 0  # its own figure, as a column
    # built-ins: the module file (package-relative) and its hash, and the run id of old
    assert base["engine_file"] == "migrc_bench/engines/baseline.py"
    assert base["run_id"] == make_run_id(base["trace_sha256"], base["config_sha256"], "baseline")
    assert twin["run_id"] == make_run_id(twin["trace_sha256"], twin["config_sha256"],
                                         f"twin@{twin['engine_sha256']}")
    # the twin is the baseline: every model counter equal
    for name in ("nr_tlb_remote_flush", "nr_tlb_remote_flush_received", "itlb_misses",
                 "pgmigrate_success", "runtime_s", "pgdemote_kswapd"):
        assert twin[name] == base[name], name
    assert base["pgmigrate_success"] > 0


def test_an_edited_engine_file_is_a_new_run(tmp_path, trace, capsys):
    eng = write_engine(tmp_path, TWIN)
    out = tmp_path / "res"
    argv = ["run", trace, "--engine", f"{eng}:Twin", "--out", out, "--quiet", *sets_args()]
    assert cli(argv, capsys)[0] == 0
    assert cli(argv, capsys)[0] == 0   # the same file again: its row is replaced
    assert len(read_runs(out)) == 1
    eng.write_text(eng.read_text() + "\n# tuned\n")
    assert cli(argv, capsys)[0] == 0   # an edited file: a new run beside the old one
    runs = read_runs(out)
    assert len(runs) == 2 and runs["run_id"].nunique() == 2 and runs["engine_sha256"].nunique() == 2
    # the two versions side by side (compare A B): the columns say which file each ran
    old = tmp_path / "old"
    assert cli(argv[:5] + [old] + argv[6:], capsys)[0] == 0
    eng.write_text(TWIN)
    assert cli(argv[:5] + [tmp_path / "new"] + argv[6:], capsys)[0] == 0
    code, stdout, _ = cli(["compare", old, tmp_path / "new", "--format", "json"], capsys)
    doc = json.loads(stdout)
    assert code == 0 and [c["id"] for c in doc["columns"]] == ["twin@old", "twin@new"]
    assert any("engine twin from another source than in twin@old" in n for n in doc["notes"])


def test_relative_paths_cwd_on_the_command_line_config_dir_in_a_config(tmp_path, trace, capsys,
                                                                        monkeypatch):
    (tmp_path / "engines").mkdir()
    write_engine(tmp_path / "engines", TWIN)
    (tmp_path / "cfg").mkdir()
    cfg = tmp_path / "cfg" / "my.toml"
    cfg.write_text('engine = "../engines/twin.py:Twin"\n')
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(["run", trace, "--config", cfg, "--no-save", "--format", "json",
                          *sets_args(config=None)], capsys)
    assert code == 0, err
    assert json.loads(out)["engine"] == "twin"
    code, out, err = cli(["run", trace, "--config", cfg, "--engine", "engines/twin.py:Twin",
                          "--no-save", "--format", "json", *sets_args(config=None)], capsys)
    assert code == 0, err
    assert json.loads(out)["engine_file"] == str((tmp_path / "engines" / "twin.py").resolve())


def test_compare_replays_an_outside_engine_in_worker_processes(tmp_path, trace, capsys):
    eng = write_engine(tmp_path, TWIN)
    code, stdout, err = cli(["compare", trace, "--engines", f"baseline,{eng}:Twin", "--workers", "2",
                             "--format", "json", "--quiet", *sets_args()], capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    assert [c["id"] for c in doc["columns"]] == ["baseline", "twin"]
    twin = doc["columns"][1]
    assert twin["engine_file"] == str(eng.resolve()) and len(twin["engine_sha256"]) == 64
    changed = [r["counter"] for r in doc["rows"]
               if r["verdict"]["twin"] not in ("same",) and r["counter"] not in
               ("wall_s", "accesses_per_s", "twin_batches")]
    assert changed == []


BROKEN = [
    ("syntax", "from migrc_bench.engines import Engine\nclass Bad(Engine)\n    pass\n",
     "bad.py:2: syntax error"),
    ("import", "from migrc_bench.engines import Engine\nimport no_such_module_q\n",
     "bad.py:2: ModuleNotFoundError: No module named 'no_such_module_q'"),
    ("raises at import", "from migrc_bench.engines import Engine\nX = {}['k']\n",
     "bad.py:2: KeyError"),
    ("missing class", "from migrc_bench.engines import Engine\nclass Other(Engine):\n    pass\n",
     "bad.py: no class 'Bad' in the engine file (it defines: Other)"),
    ("not an engine", "class Bad:\n    name = 'bad'\n",
     "bad.py:1: class Bad is not a subclass of migrc_bench.engines.Engine"),
    ("wrong arguments", "from migrc_bench.engines import Engine\nclass Bad(Engine):\n"
     "    def release_source(self, u):\n        pass\n",
     "bad.py:3: Bad.release_source(self, u) does not take the hook's arguments "
     "Engine.release_source(self, initiator, u, reason)"),
    ("misspelt hook", "from migrc_bench.engines import Engine\nclass Bad(Engine):\n"
     "    def on_watermark_fial(self, cpu, node):\n        return False\n",
     "bad.py:3: Bad.on_watermark_fial is not an engine hook: did you mean on_watermark_fail?"),
    ("a built-in's name", "from migrc_bench.engines import Engine\nclass Bad(Engine):\n"
     "    name = 'migrc'\n", "bad.py:2: Bad.name is 'migrc', a built-in engine's name"),
    ("raises in a hook", "from migrc_bench.engines import Engine\nclass Bad(Engine):\n"
     "    def folio_unmapped(self, initiator, u, reason):\n        self.missing_attribute += 1\n",
     "bad.py:4: AttributeError: 'Bad' object has no attribute 'missing_attribute' "
     "(in folio_unmapped)"),
    ("raises in __init__", "from migrc_bench.engines import Engine\nclass Bad(Engine):\n"
     "    def __init__(self, cfg):\n        raise ValueError('no')\n",
     "bad.py:4: ValueError: no (in __init__)"),
]


@pytest.mark.parametrize("case, text, message", BROKEN, ids=[b[0] for b in BROKEN])
@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_broken_engine_is_one_line_exit_2_and_nothing_written(tmp_path, trace, capsys,
                                                                 monkeypatch, case, text,
                                                                 message, command):
    write_engine(tmp_path, text, "bad.py")
    out = tmp_path / "res"
    assert cli(["run", trace, "--out", out, "--quiet", *sets_args()], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.chdir(tmp_path)
    if command == "run":
        argv = ["run", trace, "--engine", "bad.py:Bad", "--out", out]
    else:
        argv = ["compare", trace, "--engines", "baseline,bad.py:Bad", "--out", out, "--workers", "1"]
    code, stdout, err = cli(argv + ["--quiet", *sets_args()], capsys)
    assert code == 2 and not stdout
    assert message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_bad_engine_values_in_a_config(tmp_path, capsys):
    for value, message in (("nosuch", "expected one of 'nobatch', 'baseline'"),
                           ("x.py", "a file engine also names its class: PATH.py:CLASS"),
                           ("x.py:1x", "the class after ':' must be a Python name")):
        code, _, err = cli(["config", "show", "--set", f"engine={value}"], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert "config key 'engine'" in err


def test_an_installed_engine_by_its_entry_point(tmp_path, trace, capsys, monkeypatch):
    """A package that declares [project.entry-points."migrc_bench.engines"] twin-ep = ..."""
    from migrc_bench.engines import loader

    site = tmp_path / "site"
    site.mkdir()
    (site / "twin_pkg.py").write_text(textwrap.dedent(TWIN))
    dist = site / "twin_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: twin-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[migrc_bench.engines]\ntwin-ep = twin_pkg:Twin\n")
    monkeypatch.syspath_prepend(str(site))
    loader.installed.cache_clear()
    try:
        code, out, err = cli(["run", trace, "--engine", "twin-ep", "--no-save", "--format", "json",
                              *sets_args()], capsys)
        assert code == 0, err
        doc = json.loads(out)
        assert doc["engine"] == "twin-ep"
        assert Path(doc["engine_file"]) == (site / "twin_pkg.py").resolve()
        code, _, err = cli(["config", "show", "--set", "engine=nosuch"], capsys)
        assert "'twin-ep'" in err  # the installed engines are listed among the forms
    finally:
        sys.modules.pop("twin_pkg", None)
        monkeypatch.undo()
        loader.installed.cache_clear()


def test_a_sweep_reruns_only_the_points_of_an_edited_engine(tmp_path, trace):
    from migrc_bench.sweep import load_grid, run_sweep

    write_engine(tmp_path, TWIN)
    grid = tmp_path / "grid.toml"
    sets = "\n".join(f'"{k}" = {v}' for k, v in (s.split("=", 1) for s in SETS)
                     if not k.startswith("trace."))
    grid.write_text(f'traces = ["{trace}"]\nengines = ["baseline", "twin.py:Twin"]\n[set]\n{sets}\n')
    out = tmp_path / "res"
    report = run_sweep(load_grid(grid), out, workers=0)
    assert report.count("ran") == 2
    assert sorted(read_runs(out)["engine"]) == ["baseline", "twin"]
    report = run_sweep(load_grid(grid), out, workers=0)
    assert report.count("skipped") == 2
    (tmp_path / "twin.py").write_text((tmp_path / "twin.py").read_text() + "# v2\n")
    report = run_sweep(load_grid(grid), out, workers=0)
    assert {p.engine: p.status for p in report.points} == {"baseline": "skipped", "twin": "ran"}


def test_check_notes_a_changed_engine_file(tmp_path, trace, capsys):
    eng = write_engine(tmp_path, TWIN)
    out = tmp_path / "res"
    argv = ["run", trace, "--engine", f"{eng}:Twin", "--out", out, "--quiet", *sets_args()]
    assert cli(argv, capsys)[0] == 0
    base = tmp_path / "base.json"
    assert cli(["check", out, "--write-baseline", base], capsys)[0] == 0
    assert json.loads(base.read_text())["runs"][0]["engine_sha256"]
    eng.write_text(eng.read_text() + "# v2\n")
    assert cli(argv, capsys)[0] == 0
    code, stdout, _ = cli(["check", out, "--baseline", base, "--rule", "nr_tlb_remote_flush:+5%",
                           "--format", "json"], capsys)
    assert code == 0
    pair = json.loads(stdout)["pairs"][0]
    assert pair["comparable"] and "source file changed" in pair["note"]
    assert pair["baseline_engine_sha256"] != pair["result_engine_sha256"]


def test_old_results_without_the_engine_columns_still_read(tmp_path, trace, capsys):
    out = tmp_path / "res"
    assert cli(["run", trace, "--out", out, "--quiet", *sets_args()], capsys)[0] == 0
    runs = pd.read_parquet(out / "runs.parquet").drop(columns=["engine_file", "engine_sha256"])
    runs.to_parquet(out / "runs.parquet")
    code, stdout, err = cli(["compare", out, "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["columns"][0]["engine_sha256"] == ""
    assert os.path.exists(out / "runs.parquet")
