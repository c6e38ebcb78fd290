"""cache.file_sha256: the digest is remembered per file while the file is unchanged, and a
changed file is hashed again (a stale digest would reuse a stale pre-pass or mislabel results)."""

from __future__ import annotations

import hashlib
import os

from migrc_bench import cache


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_digest_is_remembered_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRC_BENCH_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "t.bin"
    f.write_bytes(b"abc" * 1000)
    assert cache.file_sha256(f) == _sha(b"abc" * 1000)
    records = list(cache.cache_path("hashes").iterdir())
    assert len(records) == 1
    calls = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda *a: calls.append(a) or real(*a))
    assert cache.file_sha256(f) == _sha(b"abc" * 1000)
    assert calls == []  # the record answered


def test_a_rewritten_file_is_hashed_again(tmp_path):
    f = tmp_path / "t.bin"
    f.write_bytes(b"one")
    st = os.stat(f)
    assert cache.file_sha256(f) == _sha(b"one")
    f.write_bytes(b"two")  # same size; its mtime set back: only ctime tells
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.file_sha256(f) == _sha(b"two")


def test_a_corrupt_record_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRC_BENCH_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "t.bin"
    f.write_bytes(b"data")
    cache.file_sha256(f)
    for r in cache.cache_path("hashes").iterdir():
        r.write_text("garbage")
    assert cache.file_sha256(f) == _sha(b"data")
