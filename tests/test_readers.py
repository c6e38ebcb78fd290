"""Readers of foreign trace formats: exact records, compression, chunk boundaries, detection."""

from __future__ import annotations

import gzip
import lzma
import struct
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from migrc_bench.errors import TraceError
from migrc_bench.trace.native import Batch, TraceMeta, TraceReader, write_trace
from migrc_bench.trace.readers import (
    DATA_SIZE,
    IFETCH_SIZE,
    ChampSimReader,
    LackeyReader,
    NativeSource,
    PinatraceReader,
    ReaderProtocol,
    detect_format,
    open_reader,
)

I, L, S, M = 0, 1, 2, 3


def records(reader: ReaderProtocol) -> list[tuple[int, int, int, int]]:
    """All records as (tid, op, addr, size) tuples."""
    out: list[tuple[int, int, int, int]] = []
    for b in reader.iter_batches():
        assert b.tid.dtype == np.uint16 and b.op.dtype == np.uint8
        assert b.addr.dtype == np.uint64 and b.size.dtype == np.uint8
        out += zip(b.tid.tolist(), b.op.tolist(), b.addr.tolist(), b.size.tolist())
    return out


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- lackey

LACKEY = b"""==123== Lackey, an example Valgrind tool
==123== Command: ./prog

I  04016a0,3
 S 1ffefffa98,8
I  04016A3,5
 L 04a2c010,8
--123-- a verbose Valgrind note
 M 04a2c018,4
\t
I  7ffffffff000,1
 S 0000000000000000,16
==123== 
"""
LACKEY_RECORDS = [
    (0, I, 0x04016A0, 3), (0, S, 0x1FFEFFFA98, 8), (0, I, 0x04016A3, 5), (0, L, 0x04A2C010, 8),
    (0, M, 0x04A2C018, 4), (0, I, 0x7FFFFFFFF000, 1), (0, S, 0, 16),
]


def test_lackey_exact_records(tmp_path: Path) -> None:
    r = LackeyReader(write(tmp_path / "t.log", LACKEY))
    assert isinstance(r, ReaderProtocol)
    assert records(r) == LACKEY_RECORDS
    assert r.stats.lines == LACKEY.count(b"\n")
    assert r.stats.records == len(LACKEY_RECORDS)
    assert r.stats.skipped == 6
    assert r.base_meta().source == "lackey" and r.base_meta().threads == 1


def test_lackey_crlf_and_no_final_newline(tmp_path: Path) -> None:
    data = b"I  0400000,3\r\n L 0600000,8\r\n S 0600008,2"
    assert records(LackeyReader(write(tmp_path / "t.log", data))) == [
        (0, I, 0x400000, 3), (0, L, 0x600000, 8), (0, S, 0x600008, 2)]


def test_lackey_large_access_is_split(tmp_path: Path) -> None:
    """Sizes above 255 (xsave: 512) do not fit uint8; the pieces still cover every byte."""
    recs = records(LackeyReader(write(tmp_path / "t.log", b" S 1000,512\n L 2000,255\n")))
    assert recs == [(0, S, 0x1000, 255), (0, S, 0x1000 + 255, 255), (0, S, 0x1000 + 510, 2),
                    (0, L, 0x2000, 255)]


@pytest.mark.parametrize("line,reason", [
    (" X 0400,8", "unknown record kind"),
    ("I 0400,8", "unknown record kind"),
    ("I  0400", "missing size"),
    ("I  0400,", "missing size"),
    (" L ,8", "bad hex address"),
    (" L 0x400,8", "bad hex address"),
    (" L 04g0,8", "bad hex address"),
    (" L 04000,8x", "unexpected text after the size"),
    (" L 04000,-8", "bad size"),
    (" L 04000,0", "size out of range"),
    (" L 04000,4097", "size out of range"),
    (" L 04000,99999999", "size out of range"),
    (" L 1" + "0" * 16 + ",8", "longer than 16 hex digits"),
    ("==12 no closing", "unknown record kind"),
])
def test_lackey_malformed(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path / "t.log", f"I  0400,1\n L 0500,8\n{line}\nI  0404,1\n".encode())
    with pytest.raises(TraceError) as ei:
        records(LackeyReader(path))
    assert ei.value.line == 3
    assert ei.value.text == line
    assert reason in str(ei.value)
    assert str(ei.value).startswith(f"{path}:3: malformed lackey line")


def lackey_text(recs: list[tuple[int, int, int]]) -> bytes:
    prefix = {I: "I  ", L: " L ", S: " S ", M: " M "}
    return "".join(f"{prefix[op]}{a:08x},{s}\n" for op, a, s in recs).encode()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**64 - 1), st.integers(1, 255)),
                max_size=60),
       st.integers(1, 97))
def test_lackey_roundtrip_any_chunking(tmp_path_factory: pytest.TempPathFactory,
                                       recs: list[tuple[int, int, int]], chunk: int) -> None:
    path = tmp_path_factory.mktemp("h") / "t.log"
    path.write_bytes(lackey_text(recs))
    assert records(LackeyReader(path, chunk_bytes=chunk)) == [(0, *r) for r in recs]


def test_lackey_chunk_boundaries(tmp_path: Path) -> None:
    """Every chunk size from 1 byte up: lines cut anywhere give the same records and the same
    line number for an error."""
    path = write(tmp_path / "t.log", LACKEY)
    for chunk in range(1, len(LACKEY) + 2):
        assert records(LackeyReader(path, chunk_bytes=chunk)) == LACKEY_RECORDS, chunk
    bad = write(tmp_path / "bad.log", LACKEY + b"I  0400,1\n L 05z0,8\n")
    for chunk in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 4096):
        with pytest.raises(TraceError) as ei:
            records(LackeyReader(bad, chunk_bytes=chunk))
        assert ei.value.line == LACKEY.count(b"\n") + 2, chunk
        assert ei.value.text == " L 05z0,8"


def test_lackey_output_full_resumes(tmp_path: Path) -> None:
    """Many split records in a short chunk overflow the first output buffer; parsing resumes."""
    data = b"".join(f" S {0x10000 * i:x},4096\n".encode() for i in range(50))
    recs = records(LackeyReader(write(tmp_path / "t.log", data)))
    assert len(recs) == 50 * 17
    assert sum(r[3] for r in recs) == 50 * 4096


# ---------------------------------------------------------------- pinatrace

PINATRACE = b"""0x4005d0: W 0x7ffd8a3c1e48
0x4005d0: R 0x7ffd8a3c1e40
0x4005d4: R 0x601040

0x4005d0: R 0x601048
#eof
"""


def test_pinatrace_exact_records(tmp_path: Path) -> None:
    r = PinatraceReader(write(tmp_path / "pinatrace.out", PINATRACE))
    assert records(r) == [
        (0, I, 0x4005D0, IFETCH_SIZE), (0, S, 0x7FFD8A3C1E48, DATA_SIZE),
        (0, L, 0x7FFD8A3C1E40, DATA_SIZE),
        (0, I, 0x4005D4, IFETCH_SIZE), (0, L, 0x601040, DATA_SIZE),
        (0, I, 0x4005D0, IFETCH_SIZE), (0, L, 0x601048, DATA_SIZE),
    ]
    assert r.stats.lines == 6 and r.stats.skipped == 2
    assert r.stats.notes == []


def test_pinatrace_without_eof_is_noted(tmp_path: Path) -> None:
    r = PinatraceReader(write(tmp_path / "p.out", PINATRACE.replace(b"#eof\n", b"")))
    assert len(records(r)) == 7
    assert r.stats.notes and "#eof" in r.stats.notes[0]


def test_pinatrace_chunk_boundaries(tmp_path: Path) -> None:
    path = write(tmp_path / "p.out", PINATRACE)
    want = records(PinatraceReader(path))
    for chunk in range(1, len(PINATRACE) + 2):
        assert records(PinatraceReader(path, chunk_bytes=chunk)) == want, chunk


@pytest.mark.parametrize("line", ["4005d0: R 0x10", "0x4005d0 R 0x10", "0x4005d0: r 0x10",
                                  "0x4005d0: R 10", "0x4005d0: R 0x", "0x: R 0x10",
                                  "0x4005d0: R 0x10 extra", "(nil): R 0x10"])
def test_pinatrace_malformed(tmp_path: Path, line: str) -> None:
    path = write(tmp_path / "p.out", f"0x1: R 0x2\n{line}\n#eof\n".encode())
    with pytest.raises(TraceError) as ei:
        records(PinatraceReader(path))
    assert ei.value.line == 2 and ei.value.text == line
    assert "malformed pinatrace line" in str(ei.value)


# ---------------------------------------------------------------- ChampSim

def champsim(ip: int, src: tuple[int, ...] = (), dst: tuple[int, ...] = (), branch: int = 0) -> bytes:
    src4 = list(src) + [0] * (4 - len(src))
    dst2 = list(dst) + [0] * (2 - len(dst))
    return struct.pack("<QBB2B4B2Q4Q", ip, branch, branch, 1, 0, 2, 3, 0, 0, *dst2, *src4)


CHAMPSIM = (champsim(0x401000)
            + champsim(0x401004, src=(0x7000, 0x7008))
            + champsim(0x401008, dst=(0x9000,))
            + champsim(0x40100C, src=(0x8000, 0x8008), dst=(0x8008,), branch=1)
            + champsim(0x401010, src=(0, 0xA000), dst=(0, 0xB000)))
CHAMPSIM_RECORDS = [
    (0, I, 0x401000, IFETCH_SIZE),
    (0, I, 0x401004, IFETCH_SIZE), (0, L, 0x7000, 8), (0, L, 0x7008, 8),
    (0, I, 0x401008, IFETCH_SIZE), (0, S, 0x9000, 8),
    (0, I, 0x40100C, IFETCH_SIZE), (0, L, 0x8000, 8), (0, M, 0x8008, 8),
    (0, I, 0x401010, IFETCH_SIZE), (0, L, 0xA000, 8), (0, S, 0xB000, 8),
]


def test_champsim_exact_records(tmp_path: Path) -> None:
    r = ChampSimReader(write(tmp_path / "t.champsim", CHAMPSIM))
    assert records(r) == CHAMPSIM_RECORDS
    assert r.stats.lines == 5


@pytest.mark.parametrize("chunk", [1, 64, 128, 192, 320, 1 << 20])
def test_champsim_chunks(tmp_path: Path, chunk: int) -> None:
    path = write(tmp_path / "t.champsimtrace.xz", lzma.compress(CHAMPSIM))
    assert records(ChampSimReader(path, chunk_bytes=chunk)) == CHAMPSIM_RECORDS


def test_champsim_truncated_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "t.champsim", CHAMPSIM[:-3])
    with pytest.raises(TraceError, match="byte offset 256: 61 of 64 bytes"):
        records(ChampSimReader(path))


# ---------------------------------------------------------------- compression

def zstd_frames(data: bytes) -> bytes:
    """Two concatenated frames, as pzstd or ``cat a.zst b.zst`` make."""
    c = zstandard.ZstdCompressor()
    half = len(data) // 2
    return c.compress(data[:half]) + c.compress(data[half:])


COMPRESSORS = {
    "gz": lambda d: gzip.compress(d, mtime=0),
    "gz2": lambda d: gzip.compress(d[:40], mtime=0) + gzip.compress(d[40:], mtime=0),
    "xz": lzma.compress,
    "zst": lambda d: zstandard.ZstdCompressor().compress(d),
    "zst2": zstd_frames,
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_roundtrip(tmp_path: Path, kind: str) -> None:
    ext = "." + kind.rstrip("2")
    comp = COMPRESSORS[kind]
    lk = write(tmp_path / f"t.log{ext}", comp(LACKEY))
    assert records(open_reader(lk)) == LACKEY_RECORDS
    assert records(LackeyReader(lk, chunk_bytes=7)) == LACKEY_RECORDS
    pin = write(tmp_path / f"p.out{ext}", comp(PINATRACE))
    assert records(open_reader(pin)) == records(PinatraceReader(write(tmp_path / "p", PINATRACE)))
    cs = write(tmp_path / f"t.champsim{ext}", comp(CHAMPSIM))
    assert records(open_reader(cs)) == CHAMPSIM_RECORDS


def test_compression_detected_by_magic_not_name(tmp_path: Path) -> None:
    path = write(tmp_path / "lackey-output", gzip.compress(LACKEY))
    assert detect_format(path) == "lackey"
    assert records(open_reader(path)) == LACKEY_RECORDS


def test_compressed_stream_is_bounded(tmp_path: Path) -> None:
    """A highly compressible input is not decompressed whole: chunks stay near the chunk size."""
    from migrc_bench.trace.readers.streams import iter_bytes

    data = b"I  0400000,3\n" * 400_000  # 5.2 MB, compresses to a few KB
    for ext, comp in (("gz", COMPRESSORS["gz"]), ("xz", lzma.compress), ("zst", COMPRESSORS["zst"])):
        path = write(tmp_path / f"t.{ext}", comp(data))
        sizes = [len(c) for c in iter_bytes(path, 1 << 16)]
        assert sum(sizes) == len(data)
        assert max(sizes) <= 1 << 16


# ---------------------------------------------------------------- detection

def native_trace(path: Path) -> Path:
    return write_trace(path, TraceMeta(source="test", threads=2),
                       np.array([0, 1, 1], np.uint16), np.array([0, 1, 2], np.uint8),
                       np.array([0x1000, 0x2000, 0x3000], np.uint64), np.array([4, 8, 8], np.uint8))


def test_detect_formats(tmp_path: Path) -> None:
    assert detect_format(write(tmp_path / "a.txt", LACKEY)) == "lackey"
    assert detect_format(write(tmp_path / "b.txt", PINATRACE)) == "pinatrace"
    assert detect_format(write(tmp_path / "c.bin", CHAMPSIM)) == "champsim"
    assert detect_format(native_trace(tmp_path / "d.parquet")) == "native"
    assert detect_format(write(tmp_path / "e.txt", b"#eof\n")) == "pinatrace"
    # a Valgrind log whose first record is bad is still lackey: the reader names the line
    assert detect_format(write(tmp_path / "f.txt", b"==1== hi\n X 0400,8\n")) == "lackey"
    # a ChampSim file whose first record looks odd is still taken by its name
    odd = struct.pack("<QBB2B4B2Q4Q", 0, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert detect_format(write(tmp_path / "g.champsimtrace", odd)) == "champsim"


@pytest.mark.parametrize("data,words", [
    (b"", "empty file"),
    (b"\n \n", "no records"),
    (b"hello\n", "unknown trace format"),
    (bytes(range(256)) * 4, "unknown trace format"),
])
def test_detect_failures(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(TraceError, match=words):
        detect_format(write(tmp_path / "x", data))


def test_open_reader_types(tmp_path: Path) -> None:
    assert isinstance(open_reader(write(tmp_path / "a", LACKEY)), LackeyReader)
    assert isinstance(open_reader(write(tmp_path / "b", LACKEY), "pinatrace"), PinatraceReader)
    with pytest.raises(TraceError, match="unknown format"):
        open_reader(tmp_path / "a", "drmemtrace")


# ---------------------------------------------------------------- native

def test_native_source(tmp_path: Path) -> None:
    src = NativeSource(native_trace(tmp_path / "t.parquet"))
    assert src.base_meta().threads == 2 and src.base_meta().source == "test"
    assert records(src) == [(0, I, 0x1000, 4), (1, L, 0x2000, 8), (1, S, 0x3000, 8)]


def test_native_thread_ids(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "t.parquet", TraceMeta(source="x", threads=10),
                       np.array([3, 9, 3], np.uint16), np.zeros(3, np.uint8),
                       np.zeros(3, np.uint64), np.ones(3, np.uint8))
    assert TraceReader(path).thread_ids().tolist() == [3, 9]


def test_batches_are_independent(tmp_path: Path) -> None:
    """Batches must stay valid after the next one is read (a writer may hold several)."""
    data = b"".join(f"I  {i:08x},1\n".encode() for i in range(3000))
    batches: list[Batch] = list(LackeyReader(write(tmp_path / "t.log", data), chunk_bytes=1000).iter_batches())
    assert len(batches) > 5
    addr = np.concatenate([b.addr for b in batches])
    assert addr.tolist() == list(range(3000))
