"""``migrc-bench trace gen|convert|info``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .. import interrupts
from ..trace.convert import convert as convert_trace
from ..trace.convert import merge as merge_traces
from ..trace.layout import AS_CHOICES
from ..trace.info import TraceInfo, trace_info
from ..trace.merge import parse_address
from ..trace.native import OP_NAMES
from ..trace.readers import FORMATS
from .options import format_option, quiet_option
from .output import emit_rows
from .trace_gen import gen


EPILOG = """\b
Examples:
  migrc-bench trace gen xsbench -s small -m event -l 20000 -t 4 -o small.parquet
  valgrind --tool=lackey --trace-mem=yes --log-file=app.log ./app
  migrc-bench trace convert app.log -o app.parquet
  migrc-bench trace info app.parquet
  migrc-bench trace merge a.parquet b.parquet -o ab.parquet   # two processes
"""

MERGE_EPILOG = """\b
Examples:
  migrc-bench trace gen gups -n 16 -o a.parquet
  migrc-bench trace gen gups -n 16 --seed 5 -o b.parquet
  migrc-bench trace merge a.parquet b.parquet -o ab.parquet              # two processes
  migrc-bench trace merge a.parquet b.parquet --shared table -o ab.parquet   # one shared file
  migrc-bench trace merge a.parquet b.parquet --shared 0x7f0000000000-0x7f0100000000 -o ab.parquet
  migrc-bench trace info ab.parquet

\b
Each input becomes a process (pids 1, 2, ... in the order given; an input that already has
several processes keeps them apart), or with --as threads the threads of one process.
Thread ids are renumbered to be unique over the output; rows are interleaved by record
count, as `trace convert a b` does. Regions go with their process. --shared REGION (a region
name from `trace info`, or 0xSTART-0xEND for every region inside the range; repeatable)
makes the selected regions mappings of one file named REGION: the same page-cache pages
in every process. The output is trace version 2, written atomically.
"""

CONVERT_EPILOG = """\b
Examples:
  migrc-bench trace convert app.log -o app.parquet            # valgrind lackey
  migrc-bench trace convert pinatrace.out.xz -o app.parquet   # Intel Pin pinatrace
  migrc-bench trace convert 600.perlbench.champsimtrace.xz --format champsim -o perl.parquet
  migrc-bench trace convert mine.parquet -o app.parquet       # own Parquet (tid, op, addr, size)
  migrc-bench trace convert t0.log t1.log -o app.parquet      # one thread per input
  migrc-bench trace convert app.log --start-at 0x404680 -o lookup.parquet

\b
The input's format is detected from its content (--format to say it). Every record is
checked: op 0..3, size 1..255, address below 2^57; thread ids are renumbered 0..N-1
(several inputs: input k is thread k).
The output is written atomically: an error or an interrupt leaves no file, and an existing
one untouched.
"""

INFO_EPILOG = """\b
Examples:
  migrc-bench trace info app.parquet
  migrc-bench trace info app.log --format json      # a lackey log, parsed on the fly
  migrc-bench trace info app.parquet --format markdown
"""


@click.group("trace", epilog=EPILOG)
def command() -> None:
    """Generate, convert and inspect traces."""


command.add_command(gen)


@command.command("convert", epilog=CONVERT_EPILOG,
                 short_help="Convert lackey/pinatrace/ChampSim to native.")
@click.argument("srcs", metavar="IN...", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=str),
              help="Native trace to write (Parquet); replaced atomically.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Input format (default: detected from the content).")
@click.option("--start-at", "start_at", default=None, metavar="ADDR",
              help="Drop the records before the first instruction fetch at ADDR (hex, e.g. from "
                   "nm of a binary linked with -no-pie), in each input.")
@quiet_option
def convert(srcs: tuple[str, ...], out: str, fmt: str | None, start_at: str | None,
            quiet: bool) -> None:
    """Convert a lackey, pinatrace or ChampSim trace (optionally .gz/.xz/.zst) to a native trace.

    Several single-thread inputs become one trace with one thread per input, in the order
    given, interleaved by record count.
    """
    interrupts.keep_target(out)
    result = convert_trace(list(srcs), out, fmt,
                           start_at=None if start_at is None else parse_address(start_at))
    if not quiet:
        for note in result.notes:
            click.echo(f"migrc-bench: note: {note}", err=True)
        click.echo(f"migrc-bench: {result.summary()}", err=True)


@command.command("merge", epilog=MERGE_EPILOG,
                 short_help="Merge traces as processes (or threads) of one trace.")
@click.argument("srcs", metavar="IN...", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=str),
              help="Native trace to write (Parquet, version 2); replaced atomically.")
@click.option("--as", "as_", type=click.Choice(AS_CHOICES), default="processes", show_default=True,
              help="Each input a process, or threads of one process (one address space).")
@click.option("--shared", "shared", multiple=True, metavar="REGION",
              help="Regions that map one shared file: a region name, or 0xSTART-0xEND. Repeatable.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Input format (default: detected from the content).")
@quiet_option
def merge(srcs: tuple[str, ...], out: str, as_: str, shared: tuple[str, ...], fmt: str | None,
          quiet: bool) -> None:
    """Merge several traces into one: each input a process (default) or threads of one."""
    interrupts.keep_target(out)
    result = merge_traces(list(srcs), out, as_, shared, fmt)
    if not quiet:
        for note in result.notes:
            click.echo(f"migrc-bench: note: {note}", err=True)
        click.echo(f"migrc-bench: {result.summary()}", err=True)


@command.command("info", epilog=INFO_EPILOG, short_help="Ops, threads, pages and footprint of a trace.")
@click.argument("trace", type=click.Path(path_type=str))
@format_option()
@click.option("--input-format", "input_fmt", type=click.Choice(FORMATS), default=None,
              help="Format of TRACE (default: detected; non-native inputs are parsed on the fly).")
def info(trace: str, fmt: str, input_fmt: str | None) -> None:
    """Records by op and thread, distinct pages (code/data, read/written), footprint, regions."""
    ti = trace_info(trace, input_fmt)
    if fmt == "json":
        sys.stdout.write(json.dumps(ti.to_dict(), indent=2) + "\n")
    elif fmt == "csv":
        emit_rows(_flat_rows(ti), "csv", columns=("section", "key", "value"))
    else:
        for title, rows, cols in _sections(ti):
            if fmt == "markdown":
                sys.stdout.write(f"\n### {title}\n\n" if title != "trace" else f"### {title}\n\n")
            emit_rows(rows, fmt, title=title if fmt == "table" else None, columns=cols)


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def _sections(ti: TraceInfo) -> list[tuple[str, list[dict[str, Any]], tuple[str, ...]]]:
    """The tables shown for --format table/markdown."""
    d = ti.to_dict()
    pages = d["pages"]
    summary = [
        ("trace", d["trace"]), ("format", d["format"]), ("source", d["source"]),
        ("trace version", str(d["trace_version"])),
        ("processes", len(d["processes"]) or 1), ("threads", d["threads"]),
        ("records", d["records"]),
        ("pages (4 KiB)", pages["total"]), ("code pages", pages["code"]),
        ("data pages", pages["data"]), ("data pages only read", pages["data_read_only"]),
        ("data pages written", pages["data_written"]),
        ("footprint", f"{d['footprint_bytes']:,} B ({d['footprint_bytes'] / 2**20:.1f} MiB, "
                      f"from {d['footprint_from']})"),
        ("generator", json.dumps(d["generator"], sort_keys=True) if d["generator"] else "-"),
    ]
    out: list[tuple[str, list[dict[str, Any]], tuple[str, ...]]] = [
        ("trace", [{"field": k, "value": str(v) if not isinstance(v, int) else f"{v:,}"}
                   for k, v in summary], ("field", "value")),
        ("records by op", [{"op": name, "records": n, "share": _share(n, ti.records)}
                           for name, n in d["records_by_op"].items()], ("op", "records", "share")),
        ("records by thread", [{"tid": t["tid"], "records": t["records"],
                                "share": _share(t["records"], ti.records)}
                               for t in d["records_by_thread"]], ("tid", "records", "share")),
    ]
    if d["processes"]:
        out.append(("processes", [{"pid": p["pid"], "name": p["name"], "threads": len(p["tids"]),
                                   "tids": _tid_ranges(p["tids"]), "records": p["records"],
                                   "share": _share(p["records"], ti.records),
                                   "regions": p["regions"]} for p in d["processes"]],
                    ("pid", "name", "threads", "tids", "records", "share", "regions")))
    if d["regions"]:
        v2 = bool(d["processes"])
        out.append(("regions", [{"pid": r.pid, "start": f"{r.start:#x}", "end": f"{r.end:#x}",
                                 "kind": r.kind, "writable": r.writable, "exec": r.exec,
                                 "pages": r.pages, "name": r.name,
                                 "file": f"{r.file.id}@{r.file.offset:#x}" if r.file else ""}
                                for r in ti.meta.regions],
                    (("pid",) if v2 else ()) + ("start", "end", "kind", "writable", "exec",
                                                "pages", "name") + (("file",) if v2 else ())))
    if d["shared_files"]:
        out.append(("shared files", [{"file": f["id"], "mappings": len(f["mappings"]),
                                      "pids": ", ".join(str(p) for p in
                                                        dict.fromkeys(m["pid"] for m in f["mappings"])),
                                      "pages": max(m["offset"] // 4096 + m["pages"]
                                                   for m in f["mappings"])}
                                     for f in d["shared_files"]],
                    ("file", "mappings", "pids", "pages")))
    return out


def _tid_ranges(tids: list[int]) -> str:
    """0-3, 7: thread ids as ranges."""
    runs: list[list[int]] = []
    for t in tids:
        if runs and runs[-1][1] == t - 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _flat_rows(ti: TraceInfo) -> list[dict[str, Any]]:
    """One (section, key, value) row per fact: the --format csv output."""
    d = ti.to_dict()
    rows = [{"section": "trace", "key": k, "value": d[k]}
            for k in ("trace", "format", "source", "trace_version", "threads", "records",
                      "footprint_bytes", "footprint_from")]
    rows.append({"section": "trace", "key": "generator",
                 "value": json.dumps(d["generator"], sort_keys=True) if d["generator"] else ""})
    rows += [{"section": "op", "key": name, "value": d["records_by_op"][name]} for name in OP_NAMES]
    rows += [{"section": "thread", "key": t["tid"], "value": t["records"]}
             for t in d["records_by_thread"]]
    rows += [{"section": "pages", "key": k, "value": v} for k, v in d["pages"].items()]
    rows += [{"section": "region", "key": i, "value": json.dumps(r, sort_keys=True)}
             for i, r in enumerate(d["regions"])]
    rows += [{"section": "process", "key": p["pid"], "value": json.dumps(p, sort_keys=True)}
             for p in d["processes"]]
    rows += [{"section": "shared_file", "key": f["id"], "value": json.dumps(f["mappings"])}
             for f in d["shared_files"]]
    return rows
