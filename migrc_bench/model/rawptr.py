"""Reads and writes of an array element by the array's address, for the compiled code.

The loop consumes each task's rows from chunks that are numpy arrays of their own, one per
thread per trace batch (feeder.Buffers). numba without NRT cannot take a list of arrays, and
copying every chunk into one 2-D buffer cost the replay thread ~2 ns a row (0.11 s of a
1-second headline run, issue 15). So the buffers hold each chunk's address, and the loop reads
its rows through these loads. Whoever hands an address to the loop keeps the array alive until
the loop is past it (feeder.Buffers keeps a reference per queued chunk). The page mapping
likewise writes each thread's rows of a batch straight into that thread's arrays
(pagemap.map_threads), rather than in file order first and gathered per thread after.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def address(a: np.ndarray) -> int:
    """The address of a contiguous array's first element."""
    assert a.flags.c_contiguous
    return a.__array_interface__["data"][0]


def _codegen(width: int):
    def codegen(context, builder, signature, args):
        base = builder.inttoptr(args[0], ir.IntType(width).as_pointer())
        return builder.load(builder.gep(base, [args[1]]))

    return codegen


@intrinsic
def load_int32(typingctx, addr, index):
    """Element ``index`` of the int32 array at ``addr``."""
    if isinstance(addr, types.Integer) and isinstance(index, types.Integer):
        return types.int32(types.int64, types.int64), _codegen(32)


@intrinsic
def load_uint32(typingctx, addr, index):
    """Element ``index`` of the uint32 array at ``addr``."""
    if isinstance(addr, types.Integer) and isinstance(index, types.Integer):
        return types.uint32(types.int64, types.int64), _codegen(32)


def _store_codegen(width: int):
    def codegen(context, builder, signature, args):
        base = builder.inttoptr(args[0], ir.IntType(width).as_pointer())
        builder.store(args[2], builder.gep(base, [args[1]]))
        return context.get_dummy_value()

    return codegen


@intrinsic
def store_int32(typingctx, addr, index, value):
    """Element ``index`` of the int32 array at ``addr`` set to ``value``."""
    if all(isinstance(x, types.Integer) for x in (addr, index, value)):
        return types.void(types.int64, types.int64, types.int32), _store_codegen(32)


@intrinsic
def store_uint32(typingctx, addr, index, value):
    """Element ``index`` of the uint32 array at ``addr`` set to ``value``."""
    if all(isinstance(x, types.Integer) for x in (addr, index, value)):
        return types.void(types.int64, types.int64, types.uint32), _store_codegen(32)
