"""AVX2 register tiles of the int8 conv core, for x86 hosts without AVX-512 VNNI.

The same packed weights and the same call as ``vnni.make_gather_tile`` (so ``vnni_fused`` runs
either core): W packed [taps][quads][NR = 64 columns][4] int8, each output pixel's 4-byte channel
group of the unsigned operand U broadcast to all lanes. The dot product is the one MLAS's AVX2
u8s8 kernel computes, on 256-bit vectors (8 int32 columns each):

    vpmaddubsw  u8 x s8 byte pairs (e0, e1), (e2, e3) summed into int16 WITH SIGNED SATURATION
    vpmaddwd    the two int16 of a quad times 1, summed into int32 (exact)
    vpaddd      into the accumulator

So C[r, j] = sum over taps, quads of sat16(U[4q] W[4q] + U[4q+1] W[4q+1]) + sat16(U[4q+2] W[4q+2] +
U[4q+3] W[4q+3]). Where no packed pair can reach the int16 bounds (``vnni_ops._pairs_exact``) the
sum is the exact one; otherwise it is MLAS's saturating one, which ``vnni_ops`` plans only where the
packed pairs are MLAS's pairs (2j, 2j+1) of the reduction index (``vnni_ops._pairs_aligned``, else
from receptive-field rows, ``avx2_cols``). Exact sums of weights whose pairs can saturate take the
int16 tiles: the weights widened to int16 (``chunked``), U's pairs zero-extended by vpshufb, vpmaddwd
(exact: |u * w| <= 255 * 128), ~1.4x the uops of the int8 tiles for the same multiplies.

A tile is mr pixels x one 64-column panel, computed as 4 chunks of 16 columns (mr x 2
accumulators), each over the whole reduction, whose weights are one sequential stream
(``chunked``): 16 ymm registers hold 6 x 2 accumulators, the int16 ones, the broadcast and a
product (MLAS's AVX2 kernel: up to 6 rows x 16 columns), the weights memory operands; the int16
tiles take the rows in passes of <= 3, weights and masks in registers. Zen 3, one core: ~190 GOPS in the int8 tile
loop (2 multiplies a cycle), ~350-380 GOPS on 2 threads.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

from qsim.kernels.llvm_ir import data_ptr, loop, target_has, tile_typed
from qsim.kernels.vnni import NR


HAS_AVX2 = target_has("avx2")
CHUNK = 16      # columns per chunk: 2 ymm accumulators per row (``chunked``)
NV = CHUNK // 8

_I8, _I16, _I32, _I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
_B32 = ir.VectorType(_I8, 32)
_W16 = ir.VectorType(_I16, 16)
_D8 = ir.VectorType(_I32, 8)


class _VolatileLoad(ir.LoadInstr):
    """``load volatile`` (llvmlite's builder has no volatile loads)."""

    def descr(self, buf):
        buf.append("load volatile {0}, {1} {2}, align {3}\n".format(
            self.type, self.operands[0].type, self.operands[0].get_reference(), self.align))


def _tile_codegen(mr: int, wide: bool, epilogue=None):
    """LLVM codegen of an mr x NR gather tile (arguments as ``vnni._tile_codegen`` with gather:
    (u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc), then cols); it overwrites C's
    columns < cols (whole 16-column chunks). W in ``chunked`` layout; wide: int16, the sums exact
    (vpmaddwd on zero-extended U pairs); w_off counts elements. ``epilogue(context, builder,
    signature, args)``: returns ``store(builder, ch, rows, sums)``, which writes the int32 sums of
    one chunk (sums[i * 2 + v]: row rows[i], columns ch * CHUNK + 8 v..) where C's would be
    (``avx2_requant``: requantized); default: stored to C."""
    nv = NV
    chunks = NR // CHUNK
    esize = 2 if wide else 1
    # wide: the bytes (e0, e1) / (e2, e3) of each 32-bit lane of the broadcast quad, zero-extended
    # to int16 by vpshufb (the shuffle ports, not vpmaddwd's; index 0x80 writes a zero byte)
    halves = [ir.Constant(_B32, [v for i in range(4 * 2) for v in (4 * i + 2 * h, 0x80, 4 * i + 2 * h + 1, 0x80)])
              for h in (0, 1)]

    def codegen(context, builder, signature, args):
        u_v, u_off_v, offs_v, oi_v, taps_v, quads_v, w_v, w_off_v, c_v, c_off_v, ldc_v, cols_v = args[:12]
        aty = signature.args
        u_base = builder.gep(data_ptr(context, builder, aty[0], u_v), [u_off_v])
        offs = context.make_array(aty[2])(context, builder, offs_v).data
        rows = [builder.gep(u_base, [builder.load(builder.gep(offs, [builder.add(oi_v, ir.Constant(_I64, r))]))])
                for r in range(mr)]
        taps_arr = context.make_array(aty[4])(context, builder, taps_v)
        ntaps = cgutils.unpack_tuple(builder, taps_arr.shape, 1)[0]
        w_base = builder.gep(data_ptr(context, builder, aty[6], w_v), [builder.mul(w_off_v, ir.Constant(_I64, esize))])
        store = (epilogue or _store_sums)(context, builder, signature, args)
        mod = builder.module
        maddubs = cgutils.get_or_insert_function(mod, ir.FunctionType(_W16, [_B32, _B32]), "llvm.x86.avx2.pmadd.ub.sw")
        maddwd = cgutils.get_or_insert_function(mod, ir.FunctionType(_D8, [_W16, _W16]), "llvm.x86.avx2.pmadd.wd")
        ones = ir.Constant(_W16, [1] * 16)
        zero = ir.Constant(_D8, None)
        splat = ir.Constant(_D8, [0] * 8)
        quad_step = ir.Constant(_I64, 4 * CHUNK * esize)    # one quad of a chunk
        # a chunk's stream: taps x quads x quad_step bytes
        chunk_bytes = builder.mul(builder.mul(ntaps, quads_v), quad_step)
        pshufb = cgutils.get_or_insert_function(mod, ir.FunctionType(_B32, [_B32, _B32]), "llvm.x86.avx2.pshuf.b")
        # wide: rows in passes of <= 3 (6 accumulators, the 4 weight vectors of a quad and the 2
        # masks held in registers; 6 rows with weights and masks as memory operands took 3 256-bit
        # loads per 2 multiplies, over Zen 3's 2 a cycle: half the speed of the int8 tiles)
        npass = -(-mr // 3) if wide else 1
        step = -(-mr // npass)
        passes = [list(range(i, min(mr, i + step))) for i in range(0, mr, step)]

        def _chunk(builder, ch, grp):
            """Rows grp x columns ch * CHUNK.. of the tile, over the whole reduction."""
            w0 = builder.gep(w_base, [builder.mul(chunk_bytes, ir.Constant(_I64, ch))])

            def tap_body(t, state):
                accs, wp = state[:-1], state[-1]
                toff = builder.load(builder.gep(taps_arr.data, [t]))
                urow = [builder.gep(rows[r], [toff]) for r in grp]

                def quad_body(q, st):
                    acc, wq = st[:-1], st[-1]
                    def vload(ptr):
                        ld = _VolatileLoad(builder.block, ptr)
                        ld.align = 1
                        builder._insert(ld)
                        return ld

                    def weight(v, h=0):
                        # A load per use, volatile so that none is merged or hoisted: each one becomes
                        # vpmaddubsw's memory operand, and the 12 accumulators, the int16 ones, the
                        # broadcast and the product fit the 16 ymm registers (two weight vectors held
                        # in registers made it 17: an accumulator spilled in every iteration).
                        ptr = builder.bitcast(builder.gep(wq, [ir.Constant(_I64, h * 4 * CHUNK + 32 * v)]),
                                              (_W16 if wide else _B32).as_pointer())
                        return builder.load(ptr, align=1) if wide else vload(ptr)

                    qoff = builder.shl(q, ir.Constant(_I64, 2))
                    out = []
                    for r in range(len(grp)):
                        word = builder.load(builder.bitcast(builder.gep(urow[r], [qoff]), _I32.as_pointer()),
                                            align=1)
                        bc = builder.shuffle_vector(builder.insert_element(
                            ir.Constant(_D8, ir.Undefined), word, ir.Constant(_I32, 0)),
                            ir.Constant(_D8, ir.Undefined), splat)
                        bc = builder.bitcast(bc, _B32)
                        if wide:
                            hv = [builder.bitcast(builder.call(pshufb, [bc, m]), _W16) for m in halves]
                            for v in range(nv):
                                a = acc[r * nv + v]
                                for h in (0, 1):
                                    a = builder.add(a, builder.call(maddwd, [hv[h], weight(v, h)]))
                                out.append(a)
                            continue
                        for v in range(nv):
                            # operand order: (unsigned bytes, signed bytes)
                            pair = builder.call(maddubs, [bc, weight(v)])
                            out.append(builder.add(acc[r * nv + v], builder.call(maddwd, [pair, ones])))
                    return out + [builder.gep(wq, [quad_step])]

                return loop(builder, quads_v, list(accs) + [wp], quad_body)

            final = loop(builder, ntaps, [zero] * (len(grp) * nv) + [w0], tap_body)
            store(builder, ch, grp, final[:-1])

        for ch, grp in ((ch, grp) for ch in range(chunks) for grp in passes):
            # chunks past the panel's valid columns are skipped (their sums would not be read)
            with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, ch * CHUNK), cols_v)):
                _chunk(builder, ch, grp)
        return context.get_dummy_value()

    return codegen


def _store_sums(context, builder, signature, args):
    """The default epilogue: the int32 sums stored to C (row r at c_off + r * ldc)."""
    c_ptr = context.make_array(signature.args[8])(context, builder, args[8]).data
    c_off, ldc = args[9], args[10]

    def store(builder, ch, grp, sums):
        for i, r in enumerate(grp):
            row = builder.add(c_off, builder.mul(ldc, ir.Constant(_I64, r)))
            for v in range(NV):
                p = builder.gep(c_ptr, [builder.add(row, ir.Constant(_I64, ch * CHUNK + 8 * v))])
                builder.store(sums[i * NV + v], builder.bitcast(p, _D8.as_pointer()), align=4)

    return store


def make_gather_tile(mr: int):
    """The intrinsic of an mr x NR tile whose row r starts at u_off + offs[oi + r]: the call of
    ``vnni.make_gather_tile(mr, NV)`` and the panel's valid columns (chunks past them are skipped),
    on AVX2. Packed int8 weights: MLAS's saturating pairs (module
    doc); int16 weights (``chunked(wide=True)``): exact sums."""
    @intrinsic
    def tile(typingctx, u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc, cols):
        wide = isinstance(w, types.Array) and w.dtype == types.int16
        w8 = w.copy(dtype=types.int8) if wide else w
        if not tile_typed(u, taps, w8, c, (offs, types.int64)):
            return None
        return (types.void(u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc, cols),
                _tile_codegen(mr, wide))

    return tile


def chunked(packed: np.ndarray, wide: bool) -> np.ndarray:
    """The AVX2 tiles' weights from ``vnni.pack_weights``' (P, T, Q, NR, 4) int8: each panel as
    NR / CHUNK column chunks one after the other, each [T][Q][CHUNK][4] int8 (wide: int16
    [T][Q][2][CHUNK][2], a quad's channels (4q, 4q + 1) of the chunk's columns, then (4q + 2, 4q + 3):
    each 32-bit lane one column's pair, for vpmaddwd). A chunk's whole reduction is one sequential
    stream (a 512-channel 3x3 layer: 73 KB, from L2), not 64 bytes of every 256. Returned in the
    packing's shape (P, T, Q, NR, 4 or 2 * NR, 2): the same elements per panel."""
    p, t, q, nr, _ = packed.shape
    w = packed.reshape(p, t, q, nr // CHUNK, CHUNK, 4)
    if not wide:
        return np.ascontiguousarray(w.transpose(0, 3, 1, 2, 4, 5)).reshape(p, t, q, nr, 4)
    w = w.astype(np.int16).reshape(p, t, q, nr // CHUNK, CHUNK, 2, 2).transpose(0, 3, 1, 2, 5, 4, 6)
    return np.ascontiguousarray(w).reshape(p, t, q, 2 * nr, 2)
