"""Reads of an array element by the array's address, for the compiled loop.

The loop consumes each task's rows from chunks that are numpy arrays of their own, one per
thread per trace batch (feeder.Buffers). numba without NRT cannot take a list of arrays, and
copying every chunk into one 2-D buffer cost the replay thread ~2 ns a row (0.11 s of a
1-second headline run, issue 15). So the buffers hold each chunk's address, and the loop reads
its rows through these loads. Whoever hands an address to the loop keeps the array alive until
the loop is past it (feeder.Buffers keeps a reference per queued chunk).
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
