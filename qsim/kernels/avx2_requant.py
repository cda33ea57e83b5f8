"""The AVX2 conv tiles with the float32-kind requantization applied to the accumulators in registers.

``vnni_fused.conv_rows_q`` stores each tile's int32 sums to a small buffer and requantizes it
row by row (``vnni_fused._f32_block``): ~0.5 ns per output on Zen 3, of which the vector work is a
third; the rest is the per-row loop set-up (a view of the output row, LLVM's run-time alias checks).
With K = 64 (ResNet-50's 64 -> 256 1x1 layers) that was as long as the tiles' multiplies. Here the
chunk's sums go straight through the same sequence as ``rounding_jit.f32_code``:

    vpaddd const -> vcvtdq2ps -> vmulps mult -> vroundps (to nearest even) -> vaddps zp
    -> vmaxps lo -> vminps hi -> vcvttps2dq -> 16 bytes stored

so the outputs are bit-identical (the same instructions, operand order included: ``max(lo, v)``
returns v for a NaN, as numba's ``max``). It applies where ``vnni_fused``'s ``fast`` epilogue
does (float32 kind, exact values proved to fit int32, zero point and bounds below 2^17), the
window sums are zero (signed weights) and the output channels are whole 16-column chunks.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from qsim.kernels import avx2, vnni_fused
from qsim.kernels.llvm_ir import data_ptr, tile_typed
from qsim.kernels.vnni import MR, NR
from qsim.kernels.vnni_fused import MR_WIDE

_I32, _I64 = ir.IntType(32), ir.IntType(64)
_F8 = ir.VectorType(ir.FloatType(), 8)
_D8 = ir.VectorType(_I32, 8)
_B16 = ir.VectorType(ir.IntType(8), 16)
_CONCAT = ir.Constant(ir.VectorType(_I32, 16), list(range(16)))


def _requant_store(context, builder, signature, args):
    """``avx2._tile_codegen``'s epilogue: args 8.. are (o, o_off, ldo, cols, kv, mv, j0, zlh): row r
    of the tile goes to o's bytes o_off + r * ldo.., column c to o_off + c; kv / mv the int32
    constants and float32 multipliers of the output channels from j0; zlh = (zp, lo, hi) float32."""
    aty = signature.args
    o_ptr = data_ptr(context, builder, aty[8], args[8])
    o_off, ldo, j0 = args[9], args[10], args[14]
    kv = builder.gep(context.make_array(aty[12])(context, builder, args[12]).data, [j0])
    mv = builder.gep(context.make_array(aty[13])(context, builder, args[13]).data, [j0])
    zlh = context.make_array(aty[15])(context, builder, args[15]).data
    zp, lo, hi = (builder.shuffle_vector(builder.insert_element(ir.Constant(_F8, ir.Undefined),
                                                                builder.load(builder.gep(zlh, [ir.Constant(_I64, i)])),
                                                                ir.Constant(_I32, 0)),
                                         ir.Constant(_F8, ir.Undefined), ir.Constant(_D8, [0] * 8))
                  for i in range(3))
    mod = builder.module
    fn = lambda name: cgutils.get_or_insert_function(mod, ir.FunctionType(_F8, [_F8, _F8]), name)
    vmax, vmin = fn("llvm.x86.avx.max.ps.256"), fn("llvm.x86.avx.min.ps.256")
    vround = cgutils.get_or_insert_function(mod, ir.FunctionType(_F8, [_F8, _I32]), "llvm.x86.avx.round.ps.256")

    def store(builder, ch, grp, sums):
        col = [ir.Constant(_I64, ch * avx2.CHUNK + 8 * v) for v in range(avx2.NV)]
        kvec = [builder.load(builder.bitcast(builder.gep(kv, [c]), _D8.as_pointer()), align=4) for c in col]
        mvec = [builder.load(builder.bitcast(builder.gep(mv, [c]), _F8.as_pointer()), align=4) for c in col]
        for i, r in enumerate(grp):
            codes = []
            for v in range(avx2.NV):
                f = builder.sitofp(builder.add(sums[i * avx2.NV + v], kvec[v]), _F8)
                f = builder.call(vround, [builder.fmul(f, mvec[v]), ir.Constant(_I32, 4)])   # 4: the MXCSR mode, RNE
                f = builder.call(vmin, [hi, builder.call(vmax, [lo, builder.fadd(f, zp)])])
                codes.append(builder.fptosi(f, _D8))
            b = builder.trunc(builder.shuffle_vector(codes[0], codes[1], _CONCAT), _B16)
            off = builder.add(builder.add(o_off, builder.mul(ldo, ir.Constant(_I64, r))),
                              ir.Constant(_I64, ch * avx2.CHUNK))
            builder.store(b, builder.bitcast(builder.gep(o_ptr, [off]), _B16.as_pointer()), align=1)

    return store


def _make_tile(mr: int):
    @intrinsic
    def tile(typingctx, u, u_off, offs, oi, taps, quads, w, w_off, o, o_off, ldo, cols, kv, mv, j0, zlh):
        wide = isinstance(w, types.Array) and w.dtype == types.int16
        w8 = w.copy(dtype=types.int8) if wide else w
        i32 = types.Array(types.int32, 1, "C")
        if not (tile_typed(u, taps, w8, i32, (offs, types.int64), (kv, types.int32), (mv, types.float32),
                           (zlh, types.float32))
                and isinstance(o, types.Array) and o.dtype in (types.uint8, types.int8) and o.layout == "C"):
            return None
        return (types.void(u, u_off, offs, oi, taps, quads, w, w_off, o, o_off, ldo, cols, kv, mv, j0, zlh),
                avx2._tile_codegen(mr, wide, _requant_store))

    return tile


_tile_wide, _tile_main, _tile_one = (_make_tile(mr) for mr in (MR_WIDE, MR, 1))


def applies(fast, cols: int) -> bool:
    """Whether ``conv_rows_f32`` computes ``vnni_fused.conv_rows_q``'s outputs where the window sums
    are zero: on the AVX2 core, with its float32 epilogue (``fast``), whole 16-column chunks."""
    return vnni_fused.CORE == "avx2" and fast is not None and cols % avx2.CHUNK == 0


@njit(cache=True, parallel=True)
def conv_rows_f32(xp, w, taps, quads, offs, run, kv, mv, zlh, out, nimg=1, img_bytes=0):
    """``vnni_fused.conv_rows_q`` with a ``fast`` epilogue (kv, mv its int32 constants and float32
    multipliers; zlh = (zp, lo, hi)) and zero window sums, requantized in the tiles' registers."""
    npanel = w.shape[0]
    npix = offs.shape[0]
    nruns = (npix + run - 1) // run
    per_img = nruns * npanel
    ldo = out.shape[1]
    # run by run where the weights stay in L2 and there are many runs, as ``conv_rows_q``
    run_major = nruns >= 8 and w.size * w.itemsize <= (1 << 18)
    for item in prange(nimg * per_img):
        n = item // per_img
        k = item - n * per_img
        j, r = k // nruns, k % nruns
        if run_major:
            r, j = k // npanel, k % npanel
        q0 = r * run
        _item(xp, w, taps, quads, offs, n * img_bytes, q0, min(run, npix - q0), (n * npix + q0) * ldo, ldo, j,
              kv, mv, zlh, out)


@njit(cache=True)
def _item(xp, w, taps, quads, offs, img0, q0, n, o0, ldo, j, kv, mv, zlh, out):
    """Pixels q0..q0+n of one image (output bytes o0.., a row per ldo) x panel j, as
    ``vnni_fused._tiles`` (a last wide tile overlapping the previous one writes the same bytes)."""
    wb = j * (w.shape[1] * w.shape[2] * w.shape[3] * w.shape[4])
    j0 = j * NR
    cols = min(NR, ldo - j0)
    o0 += j0
    o = out.reshape(-1)
    if n >= MR_WIDE:
        for i in range(0, n - MR_WIDE + 1, MR_WIDE):
            _tile_wide(xp, img0, offs, q0 + i, taps, quads, w, wb, o, o0 + i * ldo, ldo, cols, kv, mv, j0, zlh)
        if n % MR_WIDE:
            i = n - MR_WIDE
            _tile_wide(xp, img0, offs, q0 + i, taps, quads, w, wb, o, o0 + i * ldo, ldo, cols, kv, mv, j0, zlh)
        return
    full = n - n % MR
    for i in range(0, full, MR):
        _tile_main(xp, img0, offs, q0 + i, taps, quads, w, wb, o, o0 + i * ldo, ldo, cols, kv, mv, j0, zlh)
    for i in range(full, n):
        _tile_one(xp, img0, offs, q0 + i, taps, quads, w, wb, o, o0 + i * ldo, ldo, cols, kv, mv, j0, zlh)
