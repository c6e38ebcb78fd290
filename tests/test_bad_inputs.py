"""Every bad input gives exit status 2 and one line on stderr naming the file; no traceback,
no output file left behind, an existing output file untouched.

The corpus is tests/corpus/bad/, made by tests/corpus/make_bad.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrc_bench.cli.main import main

BAD = Path(__file__).resolve().parent / "corpus" / "bad"

# file name -> (words the message must contain, line number, line text) for ``trace convert``.
CASES: dict[str, tuple[str, int | None, str | None]] = {
    "lackey_unknown_kind.log": ("malformed lackey line", 17, " X 0400,8"),
    "lackey_bad_hex.log": ("malformed lackey line (bad hex address)", 9, " L 04zz00,8"),
    "lackey_missing_size.log": ("malformed lackey line (missing size)", 8, " S 0ffe0010"),
    "lackey_size_zero.log": ("size out of range", 12, "I  00400000,0"),
    "lackey_addr_too_long.log": ("longer than 16 hex digits", 10, " L 00000000000000001,8"),
    "lackey_trailing_text.log": ("unexpected text after the size", 11, " L 04a2c010,8 extra"),
    "lackey_bad_line.log.gz": ("malformed lackey line", 1234, " L 04a2c010;8"),
    "lackey_no_records.log": ("no records", None, None),
    "blank_lines.txt": ("no records", None, None),
    "empty.log": ("empty file", None, None),
    "pinatrace_bad_kind.out": ("malformed pinatrace line", 4, "0x4005dc: X 0x601050"),
    "pinatrace_missing_addr.out": ("malformed pinatrace line", 7, "0x4005dc: R"),
    "pinatrace_no_records.out": ("no records", None, None),
    "truncated.champsim": ("truncated ChampSim record at byte offset 192", None, None),
    "truncated.champsimtrace.xz": ("truncated ChampSim record at byte offset 128", None, None),
    "corrupt.log.gz": ("corrupt gzip data", None, None),
    "truncated.log.gz": ("truncated gzip data", None, None),
    "truncated.log.xz": ("truncated xz data", None, None),
    "truncated.log.zst": ("truncated zstd data", None, None),
    "not_gzip.log.gz": ("content is not gzip data", None, None),
    "compressed_trace.parquet.gz": ("decompress it first", None, None),
    "garbage.bin": ("unknown trace format", None, None),
    "unknown.txt": ("unknown trace format", None, None),
    "truncated.parquet": ("not a readable Parquet file", None, None),
    "corrupt_pages.parquet": ("corrupt Parquet data", None, None),
    "foreign.parquet": ("not a migrc-bench trace", None, None),
    "version3.parquet": ("trace version 3 is not supported", None, None),
    "v2_no_processes.parquet": ("metadata migrc_bench.processes is missing", None, None),
    "v2_no_pid_column.parquet": ("trace version 2 has no pid column", None, None),
    "v2_pid_zero.parquet": ("migrc_bench.processes[0]: pid 0 is not a process id", None, None),
    "v2_tid_in_two_processes.parquet": ("processes[1]: thread 1 also belongs to pid 1", None, None),
    "v2_undeclared_pid.parquet": ("row 3: pid 9 is not one of the trace's processes (1, 2)",
                                  None, None),
    "v2_pid_of_other_thread.parquet": ("row 2: thread 0 belongs to pid 1, but the record says "
                                       "pid 2", None, None),
    "v2_region_unknown_pid.parquet": ("migrc_bench.regions[1]: pid 7 is not one of the trace's "
                                      "processes", None, None),
    "v2_regions_overlap.parquet": ("regions[1]: 0x480000-0x600000 overlaps [0] 0x400000-0x500000 "
                                   "in pid 1", None, None),
    "v2_bad_file_offset.parquet": ("regions[0]: file offset 100 is not a non-negative multiple "
                                   "of 4096", None, None),
    "empty.parquet": ("empty file", None, None),
    "fake.parquet": ("not a readable Parquet file", None, None),
    "wrong_types.parquet": ("column addr is int64, expected uint64", None, None),
    "missing_column.parquet": ("expected ['tid', 'op', 'addr', 'size']", None, None),
    "nulls.parquet": ("column addr has 1 null values", None, None),
    "bad_op.parquet": ("op 7 is not one of 0..3", None, None),
    "bad_metadata.parquet": ("bad migrc_bench metadata", None, None),
}

# What ``trace info`` says where it differs from convert (it reads the same way).
INFO_DIFFERS = {
    "lackey_no_records.log", "pinatrace_no_records.out",  # info of an empty trace is not an error
}


def test_corpus_is_complete() -> None:
    on_disk = {p.name for p in BAD.iterdir()}
    assert on_disk == set(CASES), "run tests/corpus/make_bad.py and update CASES"
    assert all(p.stat().st_size < 16 << 10 for p in BAD.iterdir())


def run_cli(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, path: Path, words: str, line: int | None,
                          text: str | None) -> None:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    msg = lines[0]
    assert msg.startswith("migrc-bench: error: "), msg
    assert str(path) in msg, msg
    assert words in msg, msg
    if line is not None:
        assert f"{path}:{line}: " in msg, msg
    if text is not None:
        assert repr(text) in msg, msg


def dir_listing(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_convert_bad_input(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words, line, text = CASES[name]
    src = BAD / name
    fresh = tmp_path / "fresh" / "out.parquet"
    code, out, err = run_cli(capsys, ["trace", "convert", str(src), "-o", str(fresh)])
    assert code == 2
    assert out == ""
    assert_one_line_error(err, src, words, line, text)
    assert not fresh.exists()
    assert not fresh.parent.exists() or dir_listing(fresh.parent) == set()

    existing = tmp_path / "existing.parquet"
    existing.write_bytes(b"previous contents")
    code, out, err = run_cli(capsys, ["trace", "convert", str(src), "-o", str(existing)])
    assert code == 2
    assert_one_line_error(err, src, words, line, text)
    assert existing.read_bytes() == b"previous contents"
    assert dir_listing(tmp_path) - {"fresh"} == {"existing.parquet"}


@pytest.mark.parametrize("name", sorted(set(CASES) - INFO_DIFFERS))
def test_info_bad_input(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    words, line, text = CASES[name]
    src = BAD / name
    code, out, err = run_cli(capsys, ["trace", "info", str(src), "--format", "json"])
    assert code == 2
    assert out == ""
    assert_one_line_error(err, src, words, line, text)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "no-such.log"
    out_path = tmp_path / "out.parquet"
    for args in (["trace", "convert", str(src), "-o", str(out_path)], ["trace", "info", str(src)]):
        code, _, err = run_cli(capsys, args)
        assert code == 2
        assert_one_line_error(err, src, "no such file", None, None)
    assert dir_listing(tmp_path) == set()


def test_directory_as_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a-directory"
    src.mkdir()
    for args in (["trace", "convert", str(src), "-o", str(tmp_path / "o.parquet")],
                 ["trace", "info", str(src)],
                 ["trace", "convert", str(src), "--format", "lackey", "-o", str(tmp_path / "o.parquet")],
                 ["trace", "info", str(src), "--input-format", "native"]):
        code, _, err = run_cli(capsys, args)
        assert code == 2
        assert_one_line_error(err, src, "is a directory", None, None)
    assert dir_listing(tmp_path) == {"a-directory"}


def test_directory_as_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "ok.log"
    src.write_text("I  0400000,3\n L 0600000,8\n")
    code, _, err = run_cli(capsys, ["trace", "convert", str(src), "-o", str(tmp_path)])
    assert code == 2
    assert_one_line_error(err, tmp_path, "is a directory", None, None)
    assert dir_listing(tmp_path) == {"ok.log"}


def test_forced_wrong_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format overrides detection; a mismatch is a malformed line or record, still one line."""
    src = BAD / "garbage.bin"
    out_path = tmp_path / "o.parquet"
    code, _, err = run_cli(capsys, ["trace", "convert", str(src), "--format", "lackey", "-o", str(out_path)])
    assert code == 2
    assert_one_line_error(err, src, "malformed lackey line", 1, None)
    lackey = BAD / "lackey_unknown_kind.log"
    code, _, err = run_cli(capsys, ["trace", "convert", str(lackey), "--format", "champsim", "-o", str(out_path)])
    assert code == 2  # text read as ChampSim records: its "addresses" are far beyond 2^57
    assert_one_line_error(err, lackey, "row 0: address 0x3d3d323432343d3d is not below 2^57",
                          None, None)
    code, _, err = run_cli(capsys, ["trace", "convert", str(lackey), "--format", "native", "-o", str(out_path)])
    assert code == 2
    assert_one_line_error(err, lackey, "not a readable Parquet file", None, None)
    assert dir_listing(tmp_path) == set()
