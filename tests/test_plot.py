"""plot: a PNG with timelines and the Δ% bars is written, is non-trivial; bad input exits 2."""

from __future__ import annotations

import numpy as np
import pytest

from results_util import cli, make_trace, run_into


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    base = tmp_path_factory.mktemp("plot")
    trace = make_trace(base / "t.parquet")
    out = base / "results"
    run_into(out, trace, "baseline")
    run_into(out, trace, "migrc")
    return out


def test_png_is_written_and_not_blank(stored, tmp_path, capsys):
    import matplotlib.image as mpimg

    png = tmp_path / "out" / "compare.png"
    code, _, err = cli(["plot", stored, "-o", png], capsys)
    assert code == 0, err
    assert "7 panels" in err  # 4 timelines, promotions/demotions, held pages, Δ% bars
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    img = mpimg.imread(png)
    assert img.shape[0] > 800 and img.shape[1] > 1000
    gray = img[..., :3].mean(axis=2)
    assert (gray < 0.5).mean() > 0.01  # lines, text and bars, not an empty canvas
    colours = {tuple(np.round(p, 1)) for p in img[::7, ::7, :3].reshape(-1, 3)}
    assert len(colours) > 20  # several engines' colours
    assert [p.name for p in png.parent.iterdir()] == ["compare.png"]  # written atomically


def test_one_engine_and_engine_selection(stored, tmp_path, capsys):
    png = tmp_path / "one.png"
    code, _, err = cli(["plot", stored, "-o", png, "--engines", "baseline", "--title", "t"], capsys)
    assert code == 0 and png.stat().st_size > 20_000
    assert "6 panels" in err  # no held pages without migrc


@pytest.mark.parametrize("args, message", [
    (lambda s, t: [s, "-o", t / "x.txt"], "PNG"),
    (lambda s, t: [t / "missing", "-o", t / "x.png"], "no such results"),
    (lambda s, t: [s, "-o", t / "x.png", "--engines", "luf"], "no run of engine luf"),
])
def test_bad_input(stored, tmp_path, capsys, args, message):
    code, _, err = cli(["plot", *args(stored, tmp_path)], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_results_without_intervals(stored, tmp_path, capsys):
    import shutil

    d = tmp_path / "r"
    shutil.copytree(stored, d)
    (d / "intervals.parquet").unlink()
    code, _, err = cli(["plot", d, "-o", tmp_path / "x.png"], capsys)
    assert code == 2 and "intervals.parquet" in err
