"""The native trace format (model.md §2): Parquet, streamed in record batches, written atomically.

Version 1 is one process; version 2 (``processes.py``) adds a ``pid`` column, declared
processes and regions per pid with shared file mappings. A trace without processes is
written as version 1, byte for byte as before."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..errors import TraceError
from .processes import (FileMapping, Process, check_pids, check_processes, check_regions,
                        distinct_pages, parse_file, parse_processes, pid_table)
from .records import ADDR_LIMIT, OP_NAMES, check_records  # noqa: F401 (OP_NAMES)

TRACE_VERSION = 1  # a trace of one process without a pid column
TRACE_VERSIONS = (1, 2)  # 2: several processes (processes.py)
ROW_GROUP_ROWS = 1 << 20
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT

OP_IFETCH, OP_LOAD, OP_STORE, OP_MODIFY = 0, 1, 2, 3

SCHEMA = pa.schema([
    pa.field("tid", pa.uint16(), nullable=False),
    pa.field("op", pa.uint8(), nullable=False),
    pa.field("addr", pa.uint64(), nullable=False),
    pa.field("size", pa.uint8(), nullable=False),
])
COLUMNS = tuple(SCHEMA.names)
DTYPES = {"tid": np.uint16, "op": np.uint8, "addr": np.uint64, "size": np.uint8}
PID_FIELD = pa.field("pid", pa.uint32(), nullable=False)  # version 2, after the v1 columns
SCHEMA_V2 = SCHEMA.append(PID_FIELD)

META_PREFIX = "migrc_bench."


@dataclass(frozen=True)
class Region:
    start: int
    end: int
    kind: str  # code | heap | stack | file | anon
    writable: bool
    exec: bool
    name: str = ""
    pid: int | None = None  # version 2: the process that maps it
    file: FileMapping | None = None  # version 2: the file it maps (shared page-cache pages)
    hugepage: bool = False  # madvise(MADV_HUGEPAGE) on it (VM_HUGEPAGE): THP under thp=madvise

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"start": self.start, "end": self.end, "kind": self.kind,
                             "writable": self.writable, "exec": self.exec}
        if self.name:
            d["name"] = self.name
        if self.pid is not None:
            d["pid"] = self.pid
        if self.file is not None:
            d["file"] = self.file.to_json()
        if self.hugepage:
            d["hugepage"] = True
        return d

    @property
    def pages(self) -> int:
        return (self.end - 1 >> PAGE_SHIFT) - (self.start >> PAGE_SHIFT) + 1 if self.end > self.start else 0


@dataclass(frozen=True)
class TraceMeta:
    source: str
    threads: int
    regions: tuple[Region, ...] = ()
    generator: dict[str, Any] | None = None
    extra: dict[str, str] = field(default_factory=dict)
    processes: tuple[Process, ...] = ()  # version 2 only; () = one process, no pid column

    @property
    def version(self) -> int:
        return 2 if self.processes else 1

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self.processes)

    def to_kv(self) -> dict[bytes, bytes]:
        kv = {
            "trace_version": str(self.version),
            "source": self.source,
            "threads": str(self.threads),
        }
        if self.processes:
            kv["processes"] = json.dumps([p.to_json() for p in self.processes])
        if self.regions:
            kv["regions"] = json.dumps([r.to_json() for r in self.regions])
        if self.generator is not None:
            kv["generator"] = json.dumps(self.generator, sort_keys=True)
        kv.update(self.extra)
        return {(META_PREFIX + k).encode(): v.encode() for k, v in kv.items()}

    @property
    def footprint_bytes(self) -> int:
        """Bytes of data regions (what capacities given as "18%" are a share of); 0 if unknown.
        A file mapped by several regions counts once."""
        return distinct_pages(r for r in self.regions if r.kind != "code") * PAGE_SIZE


def _meta_from_kv(path: Path, kv: dict[bytes, bytes] | None) -> TraceMeta | None:
    """The trace's metadata; None when it has none (a Parquet file written by someone else)."""
    kv = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (kv or {}).items()}
    get = lambda k: kv.get(META_PREFIX + k)  # noqa: E731
    version = get("trace_version")
    if version is None:
        return None
    if version not in tuple(map(str, TRACE_VERSIONS)):
        raise TraceError(path, f"trace version {version} is not supported (this tool reads "
                               f"versions {', '.join(map(str, TRACE_VERSIONS))})")
    v2 = version == "2"
    try:
        threads = int(get("threads") or "0")
        raw = json.loads(get("regions") or "[]")
        regions = tuple(Region(int(r["start"]), int(r["end"]), str(r["kind"]), bool(r["writable"]),
                               bool(r["exec"]), str(r.get("name", "")),
                               *(_v2_region_keys(path, i, r) if v2 else (None, None)),
                               hugepage=bool(r.get("hugepage", False)))
                        for i, r in enumerate(raw))
        generator = json.loads(get("generator")) if get("generator") else None
    except (ValueError, KeyError, TypeError) as exc:
        raise TraceError(path, f"bad migrc_bench metadata: {exc}") from None
    processes: tuple[Process, ...] = ()
    if v2:
        processes = parse_processes(path, get("processes"))
        check_processes(path, processes, threads)
        check_regions(path, regions, processes)
    known = {"trace_version", "source", "threads", "regions", "generator"} | (
        {"processes"} if v2 else set())
    extra = {k[len(META_PREFIX):]: v for k, v in kv.items()
             if k.startswith(META_PREFIX) and k[len(META_PREFIX):] not in known}
    return TraceMeta(source=get("source") or "unknown", threads=threads, regions=regions,
                     generator=generator, extra=extra, processes=processes)


def _v2_region_keys(path: Path, i: int, r: dict[str, Any]) -> tuple[int | None, FileMapping | None]:
    pid = r.get("pid")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
        raise TraceError(path, f"metadata migrc_bench.regions[{i}]: pid {pid!r} is not an integer")
    return pid, (parse_file(path, i, r["file"]) if "file" in r else None)


@dataclass
class Batch:
    """A slice of a trace as numpy arrays (one array per column)."""

    tid: np.ndarray
    op: np.ndarray
    addr: np.ndarray
    size: np.ndarray
    pid: np.ndarray | None = None  # version 2 traces only

    def cut(self, lo: int, hi: int | None = None) -> "Batch":
        """Rows lo..hi, every column (the pid too)."""
        return Batch(self.tid[lo:hi], self.op[lo:hi], self.addr[lo:hi], self.size[lo:hi],
                     None if self.pid is None else self.pid[lo:hi])

    def __len__(self) -> int:
        return len(self.tid)


def _as_numpy(col: pa.Array) -> np.ndarray:
    """A null-free integer column as a read-only numpy view of its buffer, as ``to_numpy``
    gives it, without pyarrow's ``to_numpy`` importing pandas (~0.4 s, on the reader thread
    before the first quantum)."""
    if pa.types.is_integer(col.type) and col.null_count == 0:
        dtype = np.dtype(col.type.to_pandas_dtype())
        out = np.frombuffer(col.buffers()[1], dtype, count=len(col),
                            offset=col.offset * dtype.itemsize)
        out.flags.writeable = False
        return out
    return col.to_numpy(zero_copy_only=False)


class TraceReader:
    """Streams a native trace. Memory use is one row group, whatever the trace length."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise TraceError(self.path, "no such file")
        if self.path.is_dir():
            raise TraceError(self.path, "is a directory, not a trace file")
        try:
            self._pf = pq.ParquetFile(self.path)
            schema = self._pf.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise TraceError(self.path, f"not a readable Parquet file ({exc})") from None
        meta = _meta_from_kv(self.path, schema.metadata)
        names = tuple(schema.names)
        if names[:4] != COLUMNS:
            if meta is None:
                raise TraceError(self.path, f"not a migrc-bench trace (no migrc_bench metadata, "
                                            f"and columns {list(names)[:6]} rather than "
                                            f"{', '.join(COLUMNS)})")
            raise TraceError(self.path, f"columns are {list(names)}, expected {list(COLUMNS)}")
        if meta is not None and meta.version == 2 and "pid" not in names:
            raise TraceError(self.path, "trace version 2 has no pid column")
        self.columns = COLUMNS + (("pid",) if meta is not None and meta.version == 2 else ())
        for f in (SCHEMA_V2 if len(self.columns) > len(COLUMNS) else SCHEMA):
            if schema.field(f.name).type != f.type:
                raise TraceError(self.path, f"column {f.name} is {schema.field(f.name).type}, "
                                            f"expected {f.type}")
        self.num_rows = self._pf.metadata.num_rows
        stats = self._column_ranges()
        if meta is None:
            # Someone else's Parquet with our columns: one address space, threads 0..max tid.
            top = stats["tid"][1] if stats is not None else (
                int(self.thread_ids().max()) if self.num_rows else 0)
            meta = TraceMeta(source="parquet", threads=int(top) + 1 if self.num_rows else 1)
        self.meta = meta
        self._pids = pid_table(meta.processes) if meta.processes else None
        # Row-group statistics settle the record checks for the whole file at once; without
        # them (a writer that left them out) every batch is checked as it is read. The pid
        # column is settled by them only for one process (every pid equal to its pid).
        self._check_batches = stats is None
        self._check_pids = self._pids is not None and (
            stats is None or len(meta.processes) > 1
            or stats.get("pid", (meta.pids[0],) * 2) != (meta.pids[0],) * 2)
        if stats is not None and self._out_of_range(stats):
            for batch in self.iter_batches(checked=True):  # finds and names the first bad row
                pass

    def group_starts(self) -> np.ndarray:
        """The first row of each row group, and the number of rows after the last."""
        md = self._pf.metadata
        return np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])

    def _column_ranges(self) -> dict[str, tuple[int, int]] | None:
        """(min, max) of each column over the file from the row-group statistics; None when
        a row group lacks them."""
        md = self._pf.metadata
        out: dict[str, list[int]] = {}
        try:
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                if rg.num_rows == 0:
                    continue
                for j, name in enumerate(self.columns):
                    st = rg.column(j).statistics
                    if st is None or not st.has_min_max:
                        return None
                    lo, hi = int(st.min), int(st.max)
                    cur = out.setdefault(name, [lo, hi])
                    cur[0], cur[1] = min(cur[0], lo), max(cur[1], hi)
        except (pa.ArrowException, OSError, TypeError, ValueError):
            return None
        return {k: (v[0], v[1]) for k, v in out.items()}

    def _out_of_range(self, r: dict[str, tuple[int, int]]) -> bool:
        if not r:
            return False
        return (r["op"][1] > OP_MODIFY or r["addr"][1] >= ADDR_LIMIT or r["size"][0] < 1
                or r["tid"][1] >= max(1, self.meta.threads))

    def iter_batches(self, batch_rows: int = ROW_GROUP_ROWS, checked: bool = False,
                     first_group: int = 0) -> Iterator[Batch]:
        """Stream the trace (from row group ``first_group`` on: earlier ones are not read);
        nulls and records ``records.check_records`` refuses are a TraceError naming the row,
        never numbers passed on."""
        rows = int(self.group_starts()[first_group]) if first_group else 0
        check = checked or self._check_batches
        threads = max(1, self.meta.threads)
        for rb in self._iter_record_batches(batch_rows, list(self.columns), first_group):
            for i, name in enumerate(self.columns):
                nulls = rb.column(i).null_count
                if nulls:
                    raise TraceError(self.path, f"column {name} has {nulls} null values "
                                                f"in rows {rows}..{rows + rb.num_rows - 1}")
            batch = Batch(*(_as_numpy(rb.column(i)) for i in range(len(self.columns))))
            if check:
                check_records(self.path, batch, threads, rows)
            if self._check_pids or (check and self._pids is not None):
                check_pids(self.path, batch.tid, batch.pid, self._pids, rows)
            rows += len(batch)
            yield batch

    def _iter_record_batches(self, batch_rows: int, columns: list[str], first_group: int = 0
                             ) -> Iterator[pa.RecordBatch]:
        # One row group at a time rather than ParquetFile.iter_batches, whose memory grows
        # with the file in pyarrow 26 (apache/arrow#39808-like accumulation: 410 MB RSS after
        # 60 M rows versus 210 MB this way, and slower).
        try:
            for i in range(first_group, self._pf.num_row_groups):
                # one thread: decoding on pyarrow's threads while the replay waited for the
                # reader thread was 6-8 % faster on the headline benchmark, but its worker
                # threads' allocations raised a 10^9-access run's peak RSS by up to 45 MiB
                table = self._pf.read_row_group(i, columns=columns, use_threads=False)
                yield from table.to_batches(max_chunksize=batch_rows)
                del table
        except (pa.ArrowException, OSError) as exc:
            raise TraceError(self.path, f"truncated or corrupt Parquet data ({exc})") from None

    def thread_ids(self) -> np.ndarray:
        """Sorted distinct thread ids present in the trace (streams the tid column only)."""
        seen = np.zeros(1 << 16, bool)
        for rb in self._iter_record_batches(ROW_GROUP_ROWS, ["tid"]):
            col = rb.column(0)
            if col.null_count:
                raise TraceError(self.path, f"column tid has {col.null_count} null values")
            seen[_as_numpy(col)] = True
        return np.flatnonzero(seen).astype(np.uint16)

    def read_all(self) -> Batch:
        """Whole trace in memory: for tests and small traces only."""
        parts = list(self.iter_batches())
        cols = self.columns
        if not parts:
            return Batch(*(np.empty(0, DTYPES.get(c, np.uint32)) for c in cols))
        return Batch(*(np.concatenate([getattr(b, c) for b in parts]) for c in cols))


def open_trace(path: str | Path) -> TraceReader:
    return TraceReader(path)


def as_reader(trace: Any) -> Any:
    """A batch source for the replay and the pre-pass: a ``TraceReader`` or anything with its
    protocol (``path``, ``meta``, ``num_rows``, ``iter_batches``: trace/stream.py), else a
    path to open."""
    return trace if hasattr(trace, "iter_batches") else TraceReader(trace)


class TraceWriter:
    """Writes a native trace to a temp file; the target appears only on a clean close.

    Use as a context manager: an exception (or Ctrl-C) inside the block removes the temp file
    and leaves any existing file at the target untouched.
    """

    def __init__(self, path: str | Path, meta: TraceMeta):
        self.path = Path(path)
        self.meta = meta
        self.rows = 0
        self._pending: list[Batch] = []
        self._pending_rows = 0
        self._ctx = atomic_path(self.path)
        self._tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self._schema = SCHEMA_V2 if meta.processes else SCHEMA
        self._columns = tuple(self._schema.names)
        self._only_pid = meta.processes[0].pid if len(meta.processes) == 1 else None

    def __enter__(self) -> "TraceWriter":
        self._tmp = self._ctx.__enter__()
        try:
            schema = self._schema.with_metadata(self.meta.to_kv())
            # lz4 decodes ~2.5x faster than zstd; plain (not dictionary) encoding reads 20 %
            # faster and writes 2x faster, for a file 5 % larger (replay and generator speed)
            self._writer = pq.ParquetWriter(self._tmp, schema, compression="lz4",
                                            use_dictionary=False)
        except BaseException as err:  # __exit__ will not run: drop the temp file here
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def write(self, tid: np.ndarray, op: np.ndarray, addr: np.ndarray, size: np.ndarray,
              pid: np.ndarray | None = None) -> None:
        """Append records. ``pid``: version 2 only, and optional for one process."""
        n = len(tid)
        if not (len(op) == len(addr) == len(size) == n) or (pid is not None and len(pid) != n):
            raise ValueError("columns of one batch must have the same length")
        if pid is not None and not self.meta.processes:
            raise ValueError("a pid column needs the metadata's processes (trace version 2)")
        if pid is None and self.meta.processes:
            if self._only_pid is None:
                raise ValueError("a trace of several processes needs its pid column")
            pid = np.full(n, self._only_pid, np.uint32)
        if n == 0:
            return
        self._pending.append(Batch(np.asarray(tid, np.uint16), np.asarray(op, np.uint8),
                                   np.asarray(addr, np.uint64), np.asarray(size, np.uint8),
                                   None if pid is None else np.asarray(pid, np.uint32)))
        self._pending_rows += n
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, rows: int) -> None:
        columns = self._columns
        if len(self._pending) == 1:
            cols = {c: getattr(self._pending[0], c) for c in columns}
        else:
            cols = {c: np.concatenate([getattr(b, c) for b in self._pending]) for c in columns}
        head = {c: np.ascontiguousarray(v[:rows]) for c, v in cols.items()}
        tail = {c: v[rows:] for c, v in cols.items()}
        # from_buffers: zero-copy, and no pandas import that pa.array() would pay for
        arrays = [pa.Array.from_buffers(f.type, len(head[f.name]), [None, pa.py_buffer(head[f.name])])
                  for f in self._schema]
        table = pa.Table.from_arrays(arrays, schema=self._schema)
        assert self._writer is not None
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += len(head["tid"])
        self._pending = [Batch(*(tail[c] for c in columns))] if len(tail["tid"]) else []
        self._pending_rows = len(tail["tid"])

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._writer is not None
        try:
            try:
                if exc_type is None and self._pending_rows:
                    self._flush(self._pending_rows)
            finally:
                self._writer.close()
        except BaseException as err:  # finishing failed (disk full, ...): no temp file left
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        return self._ctx.__exit__(exc_type, exc, tb)


def write_trace(path: str | Path, meta: TraceMeta, tid, op, addr, size, pid=None) -> Path:
    """Write a whole in-memory trace at once (tests, small converters)."""
    with TraceWriter(path, meta) as w:
        w.write(tid, op, addr, size, pid)
    return Path(path)
