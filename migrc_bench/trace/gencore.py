"""The shared core of the synthetic trace generators (XSBench, GUPS, GAP BFS/PR, kv).

A generator is a small module that knows one program: its arrays, its instruction sites and a
compiled kernel that walks the program's loops and writes their memory accesses. Everything
else lives here, once:

* **Address space.** ``Heap`` places arrays in malloc order with glibc's rules (an allocation of
  at least the 128 KiB mmap threshold starts 16 bytes into a fresh page, as an mmap()ed chunk
  does; small ones are packed 16-byte aligned); ``stack_tops``/``stack_regions`` give the main
  thread's stack and the glibc thread stacks (8 MiB + a guard page apart); ``CodeMap`` turns a
  table of functions and data-access sites into instruction addresses.
* **Records.** ``emit`` writes one data access as two records, the fetch of its instruction
  (op 0) and the access itself (the convention of every generator: one fetch per data access,
  so the code pages a loop uses are seen at the rate of its data accesses).
* **Threads.** OpenMP loops are interleaved one iteration per thread inside rounds
  (``loop_position``): every thread's rows stay in program order and all threads advance
  together, so a streaming replay never reads far ahead. ``schedule(static)`` gives thread t
  its contiguous block as GCC does; ``schedule(dynamic, c)`` gives chunk k to thread k mod T
  (what a dynamic schedule does when threads run at equal speed; deterministic).
* **Streaming.** Kernels fill fixed-size blocks and keep their position in small state arrays;
  ``BlockFiller`` hands full blocks on, ``in_background`` computes the next blocks in a thread
  while the Parquet writer takes the last one (both release the GIL), ``write_trace`` writes
  them atomically with a progress callback; ``BlockSink`` takes them instead of a file, for a
  replay that reads them as they are made (trace/stream.py). Memory is a few blocks plus the
  program's data.
* **Flags.** ``parse_flags`` reads a generator's own flags (click parameters) from a list or
  one shell-quoted string, as ``trace.generate`` holds them.
"""

from __future__ import annotations

import queue
import shlex
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numba as nb
import numpy as np

from ..errors import UserError
from .native import PAGE_SIZE, ROW_GROUP_ROWS, Region, TraceMeta, TraceWriter

# ---- address space ----------------------------------------------------------------------------
MMAP_THRESHOLD = 128 * 1024           # glibc M_MMAP_THRESHOLD default
CHUNK_HEADER = 16                     # malloc chunk header (size + prev_size)
MALLOC_ALIGN = 16
HEAP_BASE = 0x7F00_0000_0000
CODE_BASE = 0x5555_5555_5000          # PIE text
LIB_BASE = 0x7FFF_F780_0000           # shared libraries (libc, libgomp text), below the stacks
MAIN_STACK_TOP = 0x7FFF_FFFF_F000
THREAD_STACK_TOP = 0x7FFF_F700_0000   # first glibc thread stack, below the shared libraries
THREAD_STACK_STRIDE = 8 * 1024 * 1024 + PAGE_SIZE
STACK_REGION_BYTES = 4 * PAGE_SIZE    # the part of each stack a kernel loop can touch

OP_LOAD, OP_STORE, OP_MODIFY = 1, 2, 3


def round_up(x: int, to: int) -> int:
    return -(-x // to) * to


@dataclass(frozen=True)
class ArraySpan:
    """One allocation: first byte of user data, element count and element size."""

    name: str
    start: int
    length: int
    elem_size: int

    @property
    def nbytes(self) -> int:
        return self.length * self.elem_size

    @property
    def end(self) -> int:
        return self.start + self.nbytes

    def to_json(self) -> dict[str, int]:
        return {"start": self.start, "length": self.length, "elem_size": self.elem_size}


class Heap:
    """Arrays placed in malloc order as glibc places them (see the module docstring)."""

    def __init__(self, base: int = HEAP_BASE):
        self.base = base
        self.cursor = base
        self.arrays: dict[str, ArraySpan] = {}

    def alloc(self, name: str, length: int, elem_size: int, fresh_page: bool = False
              ) -> ArraySpan:
        """Place one allocation; ``fresh_page`` starts a small one on a page of its own, as
        the first chunk of a thread's malloc arena (or any mmap()ed chunk) does."""
        nbytes = length * elem_size
        if nbytes >= MMAP_THRESHOLD or fresh_page:
            start = round_up(self.cursor, PAGE_SIZE) + CHUNK_HEADER
            self.cursor = round_up(start + nbytes, PAGE_SIZE)
        else:
            start = round_up(self.cursor + CHUNK_HEADER, MALLOC_ALIGN)
            self.cursor = start + nbytes
        span = ArraySpan(name, start, length, elem_size)
        self.arrays[name] = span
        return span

    @property
    def end(self) -> int:
        return round_up(self.cursor, PAGE_SIZE)

    def region(self, name: str = "heap") -> Region:
        """All arrays as one heap region (writable: they were written when initialised)."""
        return Region(self.base, self.end, "heap", True, False, name)

    def array_regions(self) -> list[Region]:
        """One heap region per array, named after it (pages shared by small arrays merged)."""
        out: list[Region] = []
        for span in self.arrays.values():
            lo = span.start - CHUNK_HEADER if span.nbytes >= MMAP_THRESHOLD else span.start
            lo = lo // PAGE_SIZE * PAGE_SIZE
            hi = round_up(span.end, PAGE_SIZE)
            if out and lo < out[-1].end:           # shares a page with the previous array
                prev = out.pop()
                out.append(Region(prev.start, max(hi, prev.end), "heap", True, False,
                                  f"{prev.name}+{span.name}"))
            else:
                out.append(Region(lo, hi, "heap", True, False, span.name))
        return out

    def to_json(self) -> dict[str, dict[str, int]]:
        return {name: span.to_json() for name, span in self.arrays.items()}


def stack_tops(threads: int) -> tuple[int, ...]:
    """Thread 0 runs on the main stack, the others on glibc thread stacks below the libraries."""
    return (MAIN_STACK_TOP,) + tuple(THREAD_STACK_TOP - (t - 1) * THREAD_STACK_STRIDE
                                     for t in range(1, threads))


def stack_regions(tops: Sequence[int], nbytes: int = STACK_REGION_BYTES) -> list[Region]:
    return [Region(top - nbytes, top, "stack", True, False, f"stack:{t}")
            for t, top in enumerate(tops)]


# ---- code ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Site:
    """An instruction that accesses data: where it is fetched from and what it accesses."""

    name: str
    addr: int
    isize: int
    op: int
    dsize: int


class CodeMap:
    """A text segment: functions (offset, size) in link order and the data-access sites in them.

    ``sites`` rows are (name, function, offset in function, instruction bytes, op, data bytes);
    their order gives the site ids the kernels index ``site_table()`` with.
    """

    def __init__(self, functions: dict[str, tuple[int, int]],
                 sites: Sequence[tuple[str, str, int, int, int, int]], base: int = CODE_BASE,
                 name: str = "text"):
        self.functions = dict(functions)
        self.base = base
        self.name = name
        built = []
        for sname, func, off, isize, op, dsize in sites:
            f_off, f_size = self.functions[func]
            if off + isize > f_size:
                raise ValueError(f"site {sname} lies outside {func}")
            built.append(Site(sname, base + f_off + off, isize, op, dsize))
        self.sites = tuple(built)
        self.ids = {s.name: i for i, s in enumerate(self.sites)}

    @property
    def nbytes(self) -> int:
        return max(off + size for off, size in self.functions.values())

    def site_table(self) -> np.ndarray:
        """int64[sites, 4]: instruction address, instruction size, op, data size per site id."""
        return np.array([(s.addr, s.isize, s.op, s.dsize) for s in self.sites], np.int64)

    def region(self) -> Region:
        return Region(self.base, round_up(self.base + self.nbytes, PAGE_SIZE), "code", False, True,
                      self.name)


def join_site_tables(*maps: CodeMap) -> tuple[np.ndarray, dict[str, int]]:
    """One site table over several code maps (a program's text and its libraries)."""
    table = np.concatenate([m.site_table() for m in maps])
    ids: dict[str, int] = {}
    for m in maps:
        for s in m.sites:
            ids[s.name] = len(ids)
    return table, ids


# ---- records ---------------------------------------------------------------------------------
@nb.njit(inline="always")
def emit(out, pos, rec, tid, sites, site, addr):
    """Write the fetch of ``site``'s instruction and its data access at ``addr``."""
    if rec:
        emit_sized(out, pos, tid, sites, site, addr, sites[site, 3])
    return pos + 2


VEC = 32   # AVX2 vector bytes: glibc's memmove/memset variant on the traced machines


@nb.njit(cache=True, nogil=True, _nrt=False)
def emit_memcpy(out, pos, tid, sites, load_site, store_site, dst, src, n):
    """memcpy(dst, src, n) as glibc's ``__memmove_avx_unaligned_erms`` does it (forward, no
    overlap, below the non-temporal threshold): which vector loads and stores, in order.

    Under 32 bytes two overlapping loads and stores of the largest power of two <= n (one byte
    when n is 1); up to 64, 128 and 256 bytes 2, 4 and 8 vectors from both ends; beyond, the
    first vector and the last four are loaded, the middle is copied four vectors at a time to
    32-byte aligned destinations, then the five saved vectors are stored.
    """
    if n <= 0:
        return pos
    if n < VEC:
        if n == 1:
            pos = emit_sized(out, pos, tid, sites, load_site, src, 1)
            return emit_sized(out, pos, tid, sites, store_site, dst, 1)
        w = 16 if n >= 16 else 8 if n >= 8 else 4 if n >= 4 else 2
        tail = 1 if w == 2 else w
        pos = emit_sized(out, pos, tid, sites, load_site, src, w)
        pos = emit_sized(out, pos, tid, sites, load_site, src + n - tail, tail)
        pos = emit_sized(out, pos, tid, sites, store_site, dst, w)
        return emit_sized(out, pos, tid, sites, store_site, dst + n - tail, tail)
    if n <= 8 * VEC:
        k = 1 if n <= 2 * VEC else 2 if n <= 4 * VEC else 4     # vectors from each end
        for i in range(k):
            pos = emit_sized(out, pos, tid, sites, load_site, src + VEC * i, VEC)
        for i in range(k):
            pos = emit_sized(out, pos, tid, sites, load_site, src + n - VEC * (i + 1), VEC)
        for i in range(k):
            pos = emit_sized(out, pos, tid, sites, store_site, dst + VEC * i, VEC)
        for i in range(k):
            pos = emit_sized(out, pos, tid, sites, store_site, dst + n - VEC * (i + 1), VEC)
        return pos
    pos = emit_sized(out, pos, tid, sites, load_site, src, VEC)
    for i in range(4):
        pos = emit_sized(out, pos, tid, sites, load_site, src + n - VEC * (i + 1), VEC)
    d = (dst | (VEC - 1)) + 1
    s = src + (d - dst)
    end = dst + n - 4 * VEC
    while True:
        for i in range(4):
            pos = emit_sized(out, pos, tid, sites, load_site, s + VEC * i, VEC)
        for i in range(4):
            pos = emit_sized(out, pos, tid, sites, store_site, d + VEC * i, VEC)
        s += 4 * VEC
        d += 4 * VEC
        if d >= end:
            break
    for i in range(4):
        pos = emit_sized(out, pos, tid, sites, store_site, end + VEC * (3 - i), VEC)
    return emit_sized(out, pos, tid, sites, store_site, dst, VEC)


@nb.njit(cache=True, nogil=True, _nrt=False)
def emit_memset(out, pos, tid, sites, store_site, dst, n):
    """memset(dst, c, n) as glibc's ``__memset_avx2_unaligned_erms``: one or two stores below
    a vector, 2 and 4 vectors from both ends up to 64 and 128 bytes; beyond, four vectors at
    each end and the middle four 32-byte aligned vectors at a time."""
    if n <= 0:
        return pos
    if n <= VEC:
        w = 16 if n >= 16 else 8 if n >= 8 else 4 if n >= 4 else 2 if n >= 2 else 1
        pos = emit_sized(out, pos, tid, sites, store_site, dst, w)
        if w < n:
            pos = emit_sized(out, pos, tid, sites, store_site, dst + n - w, w)
        return pos
    if n <= 4 * VEC:
        k = 1 if n <= 2 * VEC else 2
        for i in range(k):
            pos = emit_sized(out, pos, tid, sites, store_site, dst + VEC * i, VEC)
            pos = emit_sized(out, pos, tid, sites, store_site, dst + n - VEC * (i + 1), VEC)
        return pos
    for i in range(4):
        pos = emit_sized(out, pos, tid, sites, store_site, dst + VEC * i, VEC)
    d = ((dst + 4 * VEC) | (VEC - 1)) + 1 - VEC
    while d < dst + n - 4 * VEC:
        for i in range(4):
            pos = emit_sized(out, pos, tid, sites, store_site, d + VEC * i, VEC)
        d += 4 * VEC
    for i in range(4):
        pos = emit_sized(out, pos, tid, sites, store_site, dst + n - VEC * (4 - i), VEC)
    return pos


def memcpy_records(n: int) -> int:
    """Data accesses of ``emit_memcpy`` for n bytes at a 32-byte aligned destination."""
    if n <= 0:
        return 0
    if n < VEC:
        return 2 if n == 1 else 4
    if n <= 8 * VEC:
        return 4 * (1 if n <= 2 * VEC else 2 if n <= 4 * VEC else 4)
    loops = max(1, -(-(n - 4 * VEC - VEC) // (4 * VEC)))
    return 10 + 8 * loops


@nb.njit(inline="always")
def emit_sized(out, pos, tid, sites, site, addr, size):
    """As ``emit`` with the data size given (memcpy/memset pieces, variable-length accesses)."""
    o_tid, o_op, o_addr, o_size = out
    o_tid[pos] = tid
    o_op[pos] = 0
    o_addr[pos] = sites[site, 0]
    o_size[pos] = sites[site, 1]
    o_tid[pos + 1] = tid
    o_op[pos + 1] = sites[site, 2]
    o_addr[pos + 1] = addr
    o_size[pos + 1] = size
    return pos + 2


# ---- threads ---------------------------------------------------------------------------------
STATIC = 0   # chunk argument of loop_position: GCC's schedule(static) without a chunk size


@nb.njit(cache=True, inline="always", _nrt=False)
def loop_length(n, threads, chunk):
    """Positions ``loop_position`` walks for a loop of ``n`` iterations (rounds are padded)."""
    if n <= 0:
        return 0
    if chunk == STATIC:
        return -(-n // threads) * threads
    round_size = chunk * threads
    return -(-n // round_size) * round_size


@nb.njit(cache=True, inline="always", _nrt=False)
def static_block(n, threads, t):
    """(first iteration, count) of thread t under GCC's schedule(static): q+1 iterations from
    t(q+1) when t < n mod T, else q from tq + n mod T (q = n div T)."""
    q = n // threads
    rem = n - q * threads
    if t < rem:
        return t * (q + 1), q + 1
    return t * q + rem, q


@nb.njit(cache=True, inline="always", _nrt=False)
def dynamic_chunk_bounds(it, n, threads, chunk):
    """(first, last): is iteration ``it``'s chunk its thread's first or last one?"""
    k = it // chunk
    n_chunks = -(-n // chunk)
    return k < threads, k + threads >= n_chunks


@nb.njit(cache=True, inline="always", _nrt=False)
def loop_position(seq, n, threads, chunk):
    """(thread, iteration, first, last) at position ``seq`` of an interleaved OpenMP loop.

    ``iteration`` is -1 for padding. ``first``/``last`` say whether the iteration opens or
    closes its chunk (static: the thread's whole block, ``static_block``), where the loop's
    per-chunk code runs.
    """
    if chunk == STATIC:
        t = seq % threads
        i = seq // threads
        lo, length = static_block(n, threads, t)
        if i >= length:
            return t, -1, False, False
        return t, lo + i, i == 0, i == length - 1
    round_size = chunk * threads
    r = seq // round_size
    k = seq - r * round_size
    t = k % threads
    i = k // threads
    it = (r * threads + t) * chunk + i
    if it >= n:
        return t, -1, False, False
    return t, it, i == 0, i == chunk - 1 or it == n - 1


@nb.njit(cache=True, inline="always", _nrt=False)
def loop_step(state, slot, n, threads, chunk):
    """The next position of an interleaved loop whose position is ``state[slot]``:
    (done, thread, iteration, first, last) as ``loop_position``; the position advances unless
    the loop is done (then the caller resets it for its next loop)."""
    seq = state[slot]
    if seq >= loop_length(n, threads, chunk):
        return True, 0, -1, False, False
    state[slot] = seq + 1
    t, it, first, last = loop_position(seq, n, threads, chunk)
    return False, t, it, first, last


def split_evenly(total: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, count) per thread of ``total`` units split as [N t/T, N (t+1)/T) (as the MPI
    version of HPCC splits its stream, and our C programs their OpenMP threads)."""
    bounds = np.array([total * i // threads for i in range(threads + 1)], np.int64)
    return bounds[:-1], np.diff(bounds)


class GenParams:
    """What the parameters of every generator say about themselves (the registry's
    interface): the generator's name and unit of work, and ``to_json`` for
    ``migrc_bench.generator`` (the dataclass fields, the name and ``extra_json()``)."""

    generator = ""
    work_unit = ""

    def extra_json(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        d.update(generator=self.generator, **self.extra_json())
        return d


# ---- streaming -------------------------------------------------------------------------------
Block = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]   # tid, op, addr, size
Progress = Callable[[int, int], None]


def new_block(cap: int) -> Block:
    return (np.empty(cap, np.uint16), np.empty(cap, np.uint8), np.empty(cap, np.uint64),
            np.empty(cap, np.uint8))


class BlockFiller:
    """The block a kernel writes into, for generators whose phases are driven from Python.

    A kernel takes ``(*cols, pos)`` among its arguments and returns the new position, stopping
    early when fewer than its per-iteration maximum records are left (its state arrays say
    where to resume). ``run`` calls it until its state says done, yielding each full block;
    ``flush`` yields what is left. Blocks are fresh arrays each time (TraceWriter keeps
    references to rows it has not written yet).
    """

    def __init__(self, cap: int = ROW_GROUP_ROWS):
        self.cap = cap
        self.cols = new_block(cap)
        self.pos = 0

    def take(self) -> Block:
        out = tuple(c[:self.pos] for c in self.cols)
        self.cols = new_block(self.cap)
        self.pos = 0
        return out  # type: ignore[return-value]

    def run(self, kernel: Callable[..., int], done: Callable[[], bool], *args: Any
            ) -> Iterator[Block]:
        while True:
            before = self.pos
            self.pos = int(kernel(*args, *self.cols, self.pos))
            if done():
                return
            if self.pos == before == 0:
                raise RuntimeError("generator kernel made no progress in an empty block")
            yield self.take()

    def flush(self) -> Iterator[Block]:
        if self.pos:
            yield self.take()


def in_background(blocks: Iterator[Block], depth: int = 2, name: str = "trace-kernel"
                  ) -> Iterator[Block]:
    """Yield ``blocks`` in order while a thread computes the next ones.

    The kernels release the GIL and so does Parquet writing, so generation overlaps writing
    and the total time is about the larger of the two rather than their sum. At most ``depth``
    blocks wait in the queue. An error in the producer is re-raised here; if the consumer stops
    early (error, Ctrl-C), the producer is told to stop and does not block.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for block in blocks:
                while not stop.is_set():
                    try:
                        q.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while (item := q.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


@dataclass(frozen=True)
class GenResult:
    """What a generation produced (the registry's ``generate`` return value)."""

    path: Path
    meta: TraceMeta
    params: Any
    records: int

    def summary(self) -> str:
        p = self.params
        return (f"{self.records:,} records ({p.work_units:,} {p.work_unit}s, {p.threads} "
                f"thread{'s' if p.threads != 1 else ''})")


def generate_trace(out_path: str | Path, params: Any, meta: TraceMeta, blocks: Iterator[Block],
                   units_done: Callable[[], int], progress: Progress | None = None) -> GenResult:
    """``write_trace`` for a generator whose position is ``units_done()`` work units."""
    tick = None if progress is None else (lambda: progress(units_done(), params.work_units))
    rows = write_trace(out_path, meta, blocks, tick)
    return GenResult(Path(out_path), meta, params, rows)


class BlockSink:
    """Where a generator's trace goes when it is replayed as it is made (``trace.keep =
    false``, trace/stream.py) rather than written: passed as the generator's output path, it
    takes the metadata and then each block through a bounded queue (``depth`` blocks), so
    memory stays flat whatever the trace length. The generator runs on the caller's thread
    (its kernels release the GIL); ``close`` makes it stop at its next block.
    """

    def __init__(self, depth: int = 2):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.rows = 0  # rows made so far (queued or taken)

    def __fspath__(self) -> str:  # the generators' results name their output path
        return "<stream>"

    def put(self, item: object) -> bool:
        """Queue one item (metadata, block, end or error); False once the replay stopped."""
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def write(self, meta: TraceMeta, blocks: Iterator[Block],
              progress: Callable[[], None] | None) -> int:
        if not self.put(meta):
            return self.rows
        for block in blocks:
            if len(block[0]) and not self.put(block):
                break
            self.rows += len(block[0])
            if progress is not None:
                progress()
        return self.rows

    def close(self) -> None:
        self.stopped.set()


def write_trace(out_path: str | Path | BlockSink, meta: TraceMeta, blocks: Iterator[Block],
                progress: Callable[[], None] | None = None) -> int:
    """Write ``blocks`` (computed in a background thread) as a native trace, atomically; or
    hand them to a ``BlockSink`` as they are made.

    ``progress()`` is called after each block is handed to the writer. Returns the rows written.
    """
    if isinstance(out_path, BlockSink):
        return out_path.write(meta, blocks, progress)
    with TraceWriter(out_path, meta) as writer:
        for block in in_background(blocks):
            writer.write(*block)
            if progress is not None:
                progress()
    return writer.rows


# ---- flags -----------------------------------------------------------------------------------
def parse_flags(name: str, params: list, argv: Sequence[str] | str) -> dict[str, Any]:
    """A generator's flags (a list or one shell-quoted string, optionally led by ``name``)."""
    import click

    args = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv]
    if args and args[0] == name:
        args = args[1:]
    cmd = click.Command(name, params=params, context_settings={"help_option_names": []})
    try:
        ctx = cmd.make_context(name, args)
    except click.ClickException as exc:
        raise UserError(f"bad {name} generator arguments {' '.join(args)!r}: "
                        f"{exc.format_message()}") from None
    return dict(ctx.params)
