"""llvmlite pieces shared by the kernels written in LLVM IR (``vnni``, ``avx2``, ``depthwise_simd``,
``avx2_cols``): which CPU numba compiles for, an array's data pointer, a counted loop with carried
values, the tiles' argument check, and unaligned 8-byte loads and stores."""
from __future__ import annotations

import llvmlite.binding as llb
import numba
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic

_I8, _I64 = ir.IntType(8), ir.IntType(64)


def target_has(feature: str) -> bool:
    """True when numba compiles for a CPU with ``feature`` (LLVM's name: "avx512vnni", "avx2"): the
    host's own features, unless NUMBA_CPU_NAME / NUMBA_CPU_FEATURES pin another target (e.g. for
    portable caches)."""
    if numba.config.CPU_FEATURES:
        return f"+{feature}" in numba.config.CPU_FEATURES.split(",")
    if numba.config.CPU_NAME not in (None, "host"):
        return False
    return bool(llb.get_host_cpu_features().get(feature, False))


def data_ptr(context, builder, arrty, val):
    return builder.bitcast(context.make_array(arrty)(context, builder, val).data, _I8.as_pointer())


def loop(builder, count, carried, body):
    """Emit `for i in range(count)` (count >= 1) with loop-carried LLVM values; return them."""
    pre = builder.block
    head = builder.append_basic_block("ir.loop")
    done = builder.append_basic_block("ir.done")
    builder.branch(head)
    builder.position_at_end(head)
    i = builder.phi(_I64)
    phis = []
    for v in carried:
        p = builder.phi(v.type)
        p.add_incoming(v, pre)
        phis.append(p)
    i.add_incoming(ir.Constant(_I64, 0), pre)
    new = body(i, phis)
    nxt = builder.add(i, ir.Constant(_I64, 1))
    tail = builder.block
    builder.cbranch(builder.icmp_signed("<", nxt, count), head, done)
    i.add_incoming(nxt, tail)
    for p, v in zip(phis, new):
        p.add_incoming(v, tail)
    builder.position_at_end(done)
    # `done` is reached only from the latch, so the last iteration's values dominate it.
    return new


def tile_typed(u, taps, w, c, *more) -> bool:
    """Raw pointer arithmetic in the tiles: accept only the C-contiguous arrays they were written for."""
    want = ((u, types.uint8), (taps, types.int64), (w, types.int8), (c, types.int32)) + more
    return all(isinstance(a, types.Array) and a.dtype == d and a.layout == "C" for a, d in want)


@intrinsic
def load8(typingctx, a, off):
    """The 8 bytes of uint8 array a at byte off, as one unaligned int64 load."""
    if not (isinstance(a, types.Array) and a.dtype == types.uint8 and a.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        p = builder.gep(data_ptr(context, builder, sig.args[0], args[0]), [args[1]])
        return builder.load(builder.bitcast(p, _I64.as_pointer()), align=1)

    return types.int64(a, off), codegen


@intrinsic
def store8(typingctx, a, off, v):
    """Store int64 v as the 8 bytes of uint8 array a at byte off (unaligned)."""
    if not (isinstance(a, types.Array) and a.dtype == types.uint8 and a.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        p = builder.gep(data_ptr(context, builder, sig.args[0], args[0]), [args[1]])
        builder.store(args[2], builder.bitcast(p, _I64.as_pointer()), align=1)
        return context.get_dummy_value()

    return types.void(a, off, types.int64), codegen
