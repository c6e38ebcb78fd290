"""A real Valgrind lackey trace of a tiny C program converts with exactly the records that
``grep -c`` counts for each line kind."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from migrc_bench.cli.main import main
from migrc_bench.trace.native import TraceReader

PROG = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    static char table[1 << 15];
    char *heap = malloc(20000);
    long sum = 0;
    memset(heap, 1, 20000);
    for (int i = 0; i < (int)sizeof table; i += 64) {
        table[i] += (char)i;          /* modify */
        sum += table[i] + heap[i % 20000];
    }
    printf("%ld\n", sum);
    free(heap);
    return 0;
}
"""

KINDS = {"ifetch": "^I ", "load": "^ L ", "store": "^ S ", "modify": "^ M "}


@pytest.fixture(scope="module")
def lackey_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in ("gcc", "valgrind") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (apt-get install {' '.join(missing)})")
    d = tmp_path_factory.mktemp("lackey")
    (d / "prog.c").write_text(PROG)
    subprocess.run(["gcc", "-O1", "-o", "prog", "prog.c"], cwd=d, check=True)
    subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", "--log-file=prog.log", "./prog"],
                   cwd=d, check=True, capture_output=True, timeout=120)
    return d / "prog.log"


def grep_count(pattern: str, path: Path) -> int:
    out = subprocess.run(["grep", "-c", pattern, str(path)], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def extra_pieces(path: Path) -> dict[int, int]:
    """Records added by splitting accesses over 255 bytes (lackey's xsave/fxsave): usually none."""
    extra = {0: 0, 1: 0, 2: 0, 3: 0}
    kinds = {"I": 0, "L": 1, "S": 2, "M": 3}
    for line in path.read_text().splitlines():
        if line[:1] in ("I", " ") and "," in line:
            size = int(line.rsplit(",", 1)[1])
            if size > 255:
                extra[kinds[line.strip()[0]]] += -(-size // 255) - 1
    return extra


@pytest.mark.parametrize("compress", [False, True])
def test_lackey_counts_match_grep(lackey_log: Path, tmp_path: Path, compress: bool,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = lackey_log
    if compress:
        src = tmp_path / "prog.log.gz"
        src.write_bytes(gzip.compress(lackey_log.read_bytes(), compresslevel=1))
    out = tmp_path / "prog.parquet"
    assert main(["trace", "convert", str(src), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "converted" in err and "(lackey, 1 thread)" in err

    reader = TraceReader(out)
    assert reader.meta.source == "lackey" and reader.meta.threads == 1
    counts = np.zeros(4, np.int64)
    for batch in reader.iter_batches():
        counts += np.bincount(batch.op, minlength=4)
    extra = extra_pieces(lackey_log)
    expected = [grep_count(p, lackey_log) + extra[op] for op, p in enumerate(KINDS.values())]
    assert expected[0] > 10_000 and expected[1] > 0 and expected[2] > 0 and expected[3] > 0
    assert counts.tolist() == expected
