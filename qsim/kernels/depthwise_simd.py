"""The 3x3 depthwise inner block in explicit LLVM vector IR (through llvmlite, as ``vnni`` does):
one block of L channels over a run of output pixels, its nine weight vectors and bias held in
registers for the whole run (the numba loops, vectorized along the channels, reload every weight
for every pixel: on Zen 3 they ran at ~3 MACs per cycle, bound by the loads).

Each pixel: nine loads of L input codes (zero- or sign-extended to int32 lanes), nine products
with the weights and the sum, one store of L int32 sums. The products are exact: the caller
passes int16 weights and 8-bit codes. On AVX2 the product is ``vpmaddwd`` (``llvm.x86.avx2.pmadd.wd``)
on int32 lanes whose high halves are zero on the weights' side: each lane is x * w + x_hi * 0,
the exact product (``vpmulld``, the plain ``mul``, takes twice the issue slots on Zen 3). Without
AVX2 (or with ``NUMBA_CPU_NAME`` pinning another target), and on AVX-512 hosts, where this block
has not been measured, ``usable`` is False and the numba loops of ``depthwise`` run instead.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

from qsim.kernels.llvm_ir import loop, target_has


# On AVX-512 targets the block has not been measured: the numba loops run there.
AVX2 = target_has("avx2") and not target_has("avx512f")
L = 8                       # int32 lanes per block: one ymm
_I8, _I16, _I32, _I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)


def usable(xdtype, wdtype, accdtype) -> bool:
    """Whether ``block3x3`` applies: AVX2 target, 8-bit codes, int16 weights, int32 sums."""
    return AVX2 and xdtype.itemsize == 1 and wdtype.itemsize == 2 and accdtype.itemsize == 4


def _ptr(context, builder, aty, val, off, elem):
    base = context.make_array(aty)(context, builder, val).data
    return builder.bitcast(builder.gep(base, [off]), elem.as_pointer())


def _codegen(signed: bool, pmadd: bool):
    vi32 = ir.VectorType(_I32, L)
    vx, vw = ir.VectorType(_I8, L), ir.VectorType(_I16, L)
    v16 = ir.VectorType(_I16, 2 * L)

    def codegen(context, builder, sig, args):
        (r0, r1, r2, xoff, dstep, pstep, wt, wstride, cb, bz, acc, aoff, astep, npix) = args
        aty = sig.args
        rows = [(aty[i], v) for i, v in enumerate((r0, r1, r2))]
        ws = []
        for k in range(9):
            p = _ptr(context, builder, aty[6], wt, builder.add(cb, builder.mul(wstride, ir.Constant(_I64, k))), vw)
            w16 = builder.load(p, align=1)
            # pmaddwd: high halves zero on the weights' side; plain mul: the signed value.
            ws.append(builder.zext(w16, vi32) if pmadd else builder.sext(w16, vi32))
        b = builder.load(_ptr(context, builder, aty[9], bz, cb, vi32), align=1)
        if pmadd:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vi32, [v16, v16]),
                                                "llvm.x86.avx2.pmadd.wd")
            wcast = [builder.bitcast(w, v16) for w in ws]

        def body(p, state):
            xo = builder.add(xoff, builder.mul(p, pstep))
            s = b
            for ky in range(3):
                aty_r, rv = rows[ky]
                for kx in range(3):
                    off = builder.add(xo, builder.mul(dstep, ir.Constant(_I64, kx)))
                    x = builder.load(_ptr(context, builder, aty_r, rv, off, vx), align=1)
                    xe = builder.sext(x, vi32) if signed else builder.zext(x, vi32)
                    k = 3 * ky + kx
                    prod = (builder.call(fn, [builder.bitcast(xe, v16), wcast[k]]) if pmadd
                            else builder.mul(xe, ws[k]))
                    s = builder.add(s, prod)
            dst = _ptr(context, builder, aty[10], acc, builder.add(aoff, builder.mul(p, astep)), vi32)
            builder.store(s, dst, align=1)
            return [s]

        loop(builder, npix, [b], body)
        return context.get_dummy_value()

    return codegen


def _ok(r0, r1, r2, wt, bz, acc) -> bool:
    """Raw pointer arithmetic: C-contiguous arrays of the types the block was written for."""
    return (all(isinstance(a, types.Array) and a.layout == "C" for a in (r0, r1, r2, wt, bz, acc))
            and r0.dtype == r1.dtype == r2.dtype and r0.dtype in (types.uint8, types.int8)
            and wt.dtype == types.int16 and bz.dtype == types.int32 and acc.dtype == types.int32)


def _make(pmadd: bool):
    @intrinsic
    def block3x3(typingctx, r0, r1, r2, xoff, dstep, pstep, wt, wstride, cb, bz, acc, aoff, astep, npix):
        """acc[aoff + p * astep + j] = bz[cb + j] + sum over ky, kx of
        r_ky[xoff + p * pstep + kx * dstep + j] * wt[3 ky + kx, cb + j] for p in [0, npix) (npix >= 1),
        j in [0, L): flat row arrays r0, r1, r2, wt (9, wstride) and the element offsets as int64."""
        if not _ok(r0, r1, r2, wt, bz, acc):
            return None
        sig = types.void(r0, r1, r2, types.int64, types.int64, types.int64, wt, types.int64, types.int64, bz, acc,
                         types.int64, types.int64, types.int64)
        return sig, _codegen(r0.dtype == types.int8, pmadd)

    return block3x3


block3x3 = _make(AVX2)
block3x3_mul = _make(False)      # the plain-mul form (any target): tests check it equals the numba loops
