"""The config family in one scale s (scaling.py): s = 1 is the real machine untouched, the rule's
values at other s, its errors, and a small-s smoke run of the family as streamed sweep points."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from migrc_bench.cli.main import main
from migrc_bench.config import CONFIG_DIR, load_config
from migrc_bench.errors import ConfigError
from migrc_bench.model.presets import TLB_PRESETS
from migrc_bench.results import read_runs
from migrc_bench.scaling import data_tlb, parse_scale, scale_generate
from migrc_bench.scaling_study import markdown, plot, table_rows
from migrc_bench.sweep import expand, load_grid, run_sweep

SEED = "xsbench-seed"


def member(scale: str, *sets: str):
    return load_config(SEED, [f"scale={scale}", *sets])


def test_s1_scales_nothing():
    plain, one = load_config(SEED), member("1")
    assert one.raw == plain.raw and one.sha256 == plain.sha256
    assert plain.replay.time_scale == 1.0 and plain.replay.space_scale == 1.0
    assert plain.tiering.scan_size_mb == 256 and plain.memory.min_free_kbytes == 0
    assert plain.memory.watermark_scale_factor == 10
    assert plain.memory.dram == 1 << 30 and plain.memory.cxl == 8 << 30
    assert all(getattr(plain.tlb, f"{lv}_entries") == 0 for lv in ("itlb", "dtlb", "stlb"))
    assert " -g " not in plain.trace.generate  # XSBench large's own grid


def test_member_at_one_hundredth():
    cfg = member("1/100")
    assert cfg.replay.time_scale == pytest.approx(0.01) and cfg.replay.space_scale == pytest.approx(0.01)
    assert "-g 113" in cfg.trace.generate and "-p 22500" in cfg.trace.generate
    assert "-p 2250000" not in cfg.trace.generate
    assert cfg.tiering.scan_size_mb == pytest.approx(2.56)
    assert cfg.memory.dram == round(0.01 * (1 << 30)) and cfg.memory.cxl == round(0.01 * (8 << 30))
    # the kernel's formula on the real 9 GiB (12288 KB), x 1/100
    assert cfg.memory.min_free_kbytes == 123
    assert cfg.memory.watermark_scale_factor == 10
    assert (cfg.tlb.dtlb_entries, cfg.tlb.dtlb_ways) == (4, 4)
    assert (cfg.tlb.stlb_entries, cfg.tlb.stlb_ways) == (16, 8)
    assert cfg.tlb.itlb_entries == 0  # code is not scaled
    assert cfg.replay.interval == pytest.approx(10e6)
    assert "scale" not in dict(cfg.raw)  # the effective config is the member written out


@pytest.mark.parametrize("s", ["1/1000", "1/100", "1/30", "1/10", "1/7", "1/3", "1/2", "0.9", "1"])
@pytest.mark.parametrize("preset", sorted(TLB_PRESETS))
def test_data_tlbs_follow_s(s, preset):
    geo = TLB_PRESETS[preset]
    x = float(parse_scale(s))
    for entries, ways in ((geo.dtlb_entries, geo.dtlb_ways), (geo.stlb_entries, geo.stlb_ways)):
        e, w = data_tlb(entries, ways, parse_scale(s))
        sets = e // w
        assert e % w == 0 and sets & (sets - 1) == 0 and 1 <= w <= ways
        target = max(ways, entries * x)
        assert abs(e - target) <= 0.25 * target, (s, entries, ways, e, w)
    assert data_tlb(geo.stlb_entries, geo.stlb_ways, Fraction(1)) == (geo.stlb_entries, geo.stlb_ways)


def test_generator_flags_in_any_form():
    s = Fraction(1, 10)
    assert scale_generate("xsbench -s large -t 4 --gridpoints=2000 --particles 50", s) == \
        "xsbench -s large -t 4 --gridpoints=200 --particles 5"
    assert scale_generate("xsbench -m event -l 1000 -t 2", s) == "xsbench -m event -l 100 -t 2 -g 1130"


@pytest.mark.parametrize("sets,needle", [
    (["scale=0"], "expected a scale in (0, 1]"),
    (["scale=2"], "expected a scale in (0, 1]"),
    (["scale=tiny"], "expected a scale in (0, 1]"),
    (["scale=1/10", "trace.generate=gups -n 20 -t 16"], "no scaling rule for the 'gups'"),
    (["scale=1/10", "memory.dram=18%"], "needs the real capacities"),
    (["scale=1/10", "trace.path=a.parquet"], "trace.path"),
    (["scale=1/10", "replay.time_scale=fast"], "'replay.time_scale': expected a number"),
    (["scale=1/10", "tlb.stlb_entries=many"], "'tlb.stlb_entries': expected an integer"),
])
def test_bad_scales(sets, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_config(SEED, sets)


def test_scale_of_a_scaled_config_is_one_line_exit_2(capsys):
    assert main(["config", "show", "--config", "xsbench-cxl16", "--set", "scale=1/10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already scaled (replay.time_scale" in err


def test_config_show_prints_the_member(capsys):
    assert main(["config", "show", "--config", SEED, "--set", "scale=1/10", "--toml"]) == 0
    out = capsys.readouterr().out
    assert "time_scale = 0.1\n" in out and "-p 225000 " in out and "-g 1130" in out
    assert "\nscale =" not in out


GRID = """\
config = "{config}"
engines = ["baseline", "migrc"]
[set]
"machine.ncpu" = 4
"trace.generate" = "xsbench -s large -G unionized -m history -t 4 -p 200000 --seed 1"
[grid]
scale = ["1/2000", "1/1000"]
"""


def test_smoke_the_family_at_small_s(tmp_path):
    """The family's members as streamed sweep points: they run, resume, and are reported."""
    grid_file = tmp_path / "scaling.toml"
    grid_file.write_text(GRID.format(config=CONFIG_DIR / f"{SEED}.toml"))
    grid = load_grid(grid_file)
    points = expand(grid)
    assert len(points) == 4 and len({p.run_id for p in points}) == 4
    assert all(p.trace.startswith("stream:xsbench") and p.stream for p in points)
    out = tmp_path / "out"
    report = run_sweep(grid, out, workers=0, points=points)
    assert report.count("ran") == 4, [p.error for p in report.points]
    runs = read_runs(out)
    assert set(runs["trace"].str.slice(0, 7)) == {"stream:"}
    assert (runs["accesses"] > 100_000).all() and (runs["numa_pte_updates"] > 0).all()
    assert (runs["pgmigrate_success"] > 0).all()
    again = run_sweep(grid, out, workers=0, points=expand(grid))
    assert again.count("skipped") == 4
    rows = table_rows(out, ["1/2000", "1/1000", "1/10"])
    assert "delta" in rows[0] and "delta" in rows[1] and "delta" not in rows[2]
    text = markdown(rows)
    assert "pending" in text and "| nr_tlb_remote_flush |" in text
    plot(rows, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scaling_grid_is_bundled():
    grid = load_grid("scaling")
    assert Path(grid.base.base_dir) and grid.engines[:2] == ["baseline", "migrc"]
    scales = [d["scale"] for axis in grid.axes for d in axis]
    assert scales == ["1/100", "1/30", "1/10", "1/3", "1"]
