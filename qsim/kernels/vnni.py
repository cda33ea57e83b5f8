"""AVX-512 VNNI int8 GEMM/convolution core for numba, emitting `vpdpbusd` through llvmlite.

LLVM never emits vpdpbusd (u8 x s8 -> s32, 4-deep dot per lane) from plain numba code, so the
register tile is written as an intrinsic in LLVM IR. One tile computes MR rows x (16 * NV) columns:

    C[r, j] = sum over taps t, channel quads q, bytes e of
              U[base + r * pix_stride + taps[t] + 4q + e] * W[t, q, j, e]

U is the unsigned ("activation") side: each row r is one output pixel (conv: an NHWC input
pixel, channels padded to a multiple of 4; matmul: one row of A) and its 4-byte group is
broadcast to all lanes. W is the signed side, packed once per panel of 16*NV columns as
[taps][quads][16*NV][4] so that one 64-byte load feeds 16 columns. The int32 sums are exact as
long as K * 255 * 128 < 2^31 (callers check); zero points are corrected outside, in int64
(`vnni_ops`). Measured on this machine kind (Zen 5, one core): ~1 TOPS in the tile loop.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from qsim.kernels.llvm_ir import data_ptr, loop, store8, target_has, tile_typed


HAS_VNNI = target_has("avx512vnni")
NV = 4                      # zmm vectors per tile row: a panel is 64 columns (output channels)
NR = 16 * NV
MR = 4                      # rows per register tile: 4 x 4 accumulators + 4 loads + broadcast
MAX_K = (2**31 - 1) // (255 * 128)   # longest reduction whose int32 u8*s8 sum cannot wrap

_I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
_V16 = ir.VectorType(_I32, 16)


def _tile_codegen(mr: int, nv: int, gather: bool):
    """LLVM codegen of an mr x (16*nv) tile (see module doc); it overwrites C. Arguments
    (u, u_off, pix_stride, taps, quads, w, w_off, c, c_off, ldc): row r starts at byte
    u_off + r * pix_stride of U; gather: (u, u_off, offs, oi, taps, ...): row r starts at
    u_off + offs[oi + r], so one tile may take any pixels (output pixels of different rows, strided
    ones) and no padding pixel is computed to be dropped."""

    def codegen(context, builder, signature, args):
        head = 4 if gather else 3
        u_v, u_off_v = args[:2]
        taps_v, quads_v, w_v, w_off_v, c_v, c_off_v, ldc_v = args[head:]
        aty = signature.args
        u_base = builder.gep(data_ptr(context, builder, aty[0], u_v), [u_off_v])
        taps_arr = context.make_array(aty[head])(context, builder, taps_v)
        ntaps = cgutils.unpack_tuple(builder, taps_arr.shape, 1)[0]
        w_base = builder.gep(data_ptr(context, builder, aty[head + 2], w_v), [w_off_v])
        fnty = ir.FunctionType(_V16, [_V16, _V16, _V16])
        dp = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")
        zero = ir.Constant(_V16, None)
        splat = ir.Constant(ir.VectorType(_I32, 16), [0] * 16)
        panel_step = ir.Constant(_I64, 4 * 16 * nv)
        if gather:
            offs = context.make_array(aty[2])(context, builder, args[2]).data
            rows = [builder.gep(u_base, [builder.load(builder.gep(offs, [builder.add(args[3], ir.Constant(_I64, r))]))])
                    for r in range(mr)]
        else:
            rows = [builder.gep(u_base, [builder.mul(args[2], ir.Constant(_I64, r))]) for r in range(mr)]

        def tap_body(t, state):
            accs, wp = state[:-1], state[-1]
            toff = builder.load(builder.gep(taps_arr.data, [t]))
            urow = [builder.gep(p, [toff]) for p in rows]

            def quad_body(q, st):
                acc, wq = st[:-1], st[-1]
                wv = [builder.load(builder.bitcast(builder.gep(wq, [ir.Constant(_I64, 64 * v)]),
                                                   _V16.as_pointer()), align=1) for v in range(nv)]
                out = []
                for r in range(mr):
                    qoff = builder.shl(q, ir.Constant(_I64, 2))
                    word = builder.load(builder.bitcast(builder.gep(urow[r], [qoff]),
                                                        _I32.as_pointer()), align=1)
                    bc = builder.shuffle_vector(builder.insert_element(
                        ir.Constant(_V16, ir.Undefined), word, ir.Constant(_I32, 0)),
                        ir.Constant(_V16, ir.Undefined), splat)
                    for v in range(nv):
                        # operand order: (acc, unsigned bytes, signed bytes)
                        out.append(builder.call(dp, [acc[r * nv + v], bc, wv[v]]))
                return out + [builder.gep(wq, [panel_step])]

            return loop(builder, quads_v, list(accs) + [wp], quad_body)

        final = loop(builder, ntaps, [zero] * (mr * nv) + [w_base], tap_body)
        c_ptr = context.make_array(aty[head + 4])(context, builder, c_v).data
        for r in range(mr):
            row = builder.add(c_off_v, builder.mul(ldc_v, ir.Constant(_I64, r)))
            for v in range(nv):
                p = builder.gep(c_ptr, [builder.add(row, ir.Constant(_I64, 16 * v))])
                builder.store(final[r * nv + v], builder.bitcast(p, _V16.as_pointer()), align=4)
        return context.get_dummy_value()

    return codegen


def _make_tile(mr: int, nv: int):
    """The intrinsic of an mr x (16*nv) tile over rows pix_stride bytes apart (``_tile_codegen``)."""

    @intrinsic
    def tile(typingctx, u, u_off, pix_stride, taps, quads, w, w_off, c, c_off, ldc):
        if not tile_typed(u, taps, w, c):
            return None
        return types.void(u, u_off, pix_stride, taps, quads, w, w_off, c, c_off, ldc), _tile_codegen(mr, nv, False)

    return tile


def make_gather_tile(mr: int, nv: int):
    """The intrinsic of an mr x (16*nv) tile whose row r starts at u_off + offs[oi + r] (``_tile_codegen``)."""

    @intrinsic
    def tile(typingctx, u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc):
        if not tile_typed(u, taps, w, c, (offs, types.int64)):
            return None
        return (types.void(u, u_off, offs, oi, taps, quads, w, w_off, c, c_off, ldc),
                _tile_codegen(mr, nv, True))

    return tile


_tile_main = _make_tile(MR, NV)
_tile_one = _make_tile(1, NV)


@njit(cache=True, parallel=True)
def gemm_rows(u, lda, w, k4, c):
    """C (M, P*NR) int32 = U rows (M rows of lda bytes, first 4*k4 used) x packed W (P panels).

    For matmul: U is A shifted to uint8 and padded to a multiple of 4 columns."""
    m = c.shape[0]
    npanel = w.shape[0]
    taps = np.zeros(1, dtype=np.int64)
    mfull = m - m % MR
    panel_bytes = w.shape[1] * w.shape[2] * w.shape[3] * w.shape[4]
    ntile = mfull // MR
    # One work item per (panel, row tile) so both threads have work whether M or N is small.
    for item in prange(npanel * (ntile + (m - mfull))):
        j = item // (ntile + m - mfull)
        i = item % (ntile + m - mfull)
        if i < ntile:
            _tile_main(u, i * MR * lda, lda, taps, k4, w, j * panel_bytes, c, i * MR * c.shape[1] + j * NR,
                       c.shape[1])
        else:
            r = mfull + i - ntile
            _tile_one(u, r * lda, lda, taps, k4, w, j * panel_bytes, c, r * c.shape[1] + j * NR,
                      c.shape[1])


@njit(cache=True, parallel=True)
def conv_rows(xp, w, taps, quads, sh, sw, oh, ow, c):
    """Direct convolution of one image: xp (Hp, Wp, Cp) padded NHWC uint8; taps are byte offsets
    of each kernel tap; C (oh*ow, P*NR) int32 rows are output pixels."""
    wp_bytes = xp.shape[1] * xp.shape[2]
    cp = xp.shape[2]
    npanel = w.shape[0]
    panel_bytes = w.shape[1] * w.shape[2] * w.shape[3] * w.shape[4]
    ofull = ow - ow % MR
    ldc = c.shape[1]
    for item in prange(oh * npanel):
        oy = item // npanel
        j = item % npanel
        row0 = oy * sh * wp_bytes
        for ox in range(0, ofull, MR):
            _tile_main(xp, row0 + ox * sw * cp, sw * cp, taps, quads, w, j * panel_bytes, c,
                       (oy * ow + ox) * ldc + j * NR, ldc)
        for ox in range(ofull, ow):
            _tile_one(xp, row0 + ox * sw * cp, sw * cp, taps, quads, w, j * panel_bytes, c,
                      (oy * ow + ox) * ldc + j * NR, ldc)


def pack_weights(ws: np.ndarray, ntaps: int, quads: int) -> np.ndarray:
    """Pack signed weights ws (ntaps*quads*4, M) int8, row = tap * 4*quads + channel, into
    (panels, ntaps, quads, NR, 4) int8, columns padded with zeros to whole panels."""
    kk, m = ws.shape
    npanel = -(-m // NR)
    z = np.zeros((kk, npanel * NR), dtype=np.int8)
    z[:, :m] = ws
    return np.ascontiguousarray(z.reshape(ntaps, quads, 4, npanel, NR).transpose(3, 0, 1, 4, 2))


@njit(cache=True, parallel=True)
def to_nhwc(xu, groups, cgp, pt, pl, fill, flip, out):
    """out (N, G, Hp, Wp, cgp) uint8 = (xu ^ flip) in NHWC per group, `fill` in the spatial padding
    and 0 in the channel padding (paired with zero weights there)."""
    n_, c_, h, w = xu.shape
    cg = c_ // groups
    hp = out.shape[2]
    for item in prange(n_ * groups * hp):
        n = item // (groups * hp)
        g = (item // hp) % groups
        yp = item % hp
        if out.shape[4] == 4:      # stems: <= 4 channels, one 4-byte word per pixel
            _nhwc_row4(xu[n, g * cg:(g + 1) * cg], out[n, g, yp], yp - pt, pl, fill, flip)
        elif out.shape[4] == 3:    # a stem's 3-byte pixels (the AVX2 core's receptive-field rows)
            _nhwc_row3(xu[n, g * cg:(g + 1) * cg], out[n, g, yp], yp - pt, pl, fill, flip)
        else:
            _nhwc_row(xu[n, g * cg:(g + 1) * cg], out[n, g, yp], yp - pt, pl, fill, flip)


@njit(cache=True, parallel=True)
def pad_nhwc(xh, pt, pl, fill, flip, out):
    """out (N, Hp, Wp, Cp) uint8 = (xh ^ flip) from NHWC xh (N, H, W, C): the layout a fused conv
    writes, so rows are copied, not transposed; `fill` in the spatial padding, 0 in channels C..Cp."""
    hp = out.shape[1]
    for item in prange(xh.shape[0] * hp):
        _pad_row(xh, item // hp, item % hp - pt, pl, fill, flip, out[item // hp, item % hp])


@njit(cache=True)
def _pad_row(xh, n, y, pl, fill, flip, row):
    _, h, w, c = xh.shape
    row[:, c:] = 0
    if y < 0 or y >= h:
        row[:, :c] = fill
        return
    row[:pl, :c] = fill
    row[pl + w:, :c] = fill
    src = xh[n, y]
    if c == row.shape[1]:  # no channel padding: one contiguous run
        s = src.reshape(-1)
        d = row[pl:pl + w].reshape(-1)
        for i in range(s.size):
            d[i] = s[i] ^ flip
        return
    for xx in range(w):
        d = row[pl + xx]
        s = src[xx]
        for ch in range(c):
            d[ch] = s[ch] ^ flip


@njit(cache=True)
def _nhwc_row(xg, row, y, pl, fill, flip):
    # A helper over the group's view: simpler indexing than in the prange body (2x faster).
    cg, h, w = xg.shape
    row[:, cg:] = 0
    if y < 0 or y >= h:
        row[:, :cg] = fill
        return
    row[:pl, :cg] = fill
    row[pl + w:, :cg] = fill
    if cg >= 16:
        # Channel-inner: contiguous writes, strided reads (2.3x faster at 64 channels).
        for xx in range(w):
            dst = row[pl + xx]
            for c in range(cg):
                dst[c] = xg[c, y, xx] ^ flip
    else:
        for c in range(cg):
            src = xg[c, y]
            for xx in range(w):
                row[pl + xx, c] = src[xx] ^ flip


@njit(cache=True)
def _nhwc_row4(xg, row, y, pl, fill, flip):
    """``_nhwc_row`` for cgp == 4: each pixel one uint32 word, channel c in byte c (x86 is little
    endian), built from contiguous reads of each channel's row: 19 us instead of 200 us for a
    3 x 224 x 224 stem input (byte stores strided by 4 do not vectorize)."""
    cg, h, w = xg.shape
    words = row.reshape(-1).view(np.uint32)
    fw = np.uint32(0)   # a padding pixel: fill in the cg channels, 0 in the channel padding
    fl = np.uint32(0)
    for c in range(cg):
        fw |= np.uint32(fill) << np.uint32(8 * c)
        fl |= np.uint32(flip) << np.uint32(8 * c)
    if y < 0 or y >= h:
        words[:] = fw
        return
    words[:pl] = fw
    words[pl + w:] = fw
    d = words[pl:pl + w]
    if cg == 3:
        a, b, c = xg[0, y], xg[1, y], xg[2, y]
        for i in range(w):
            d[i] = (np.uint32(a[i]) | (np.uint32(b[i]) << np.uint32(8)) | (np.uint32(c[i]) << np.uint32(16))) ^ fl
    else:
        for i in range(w):
            v = np.uint32(0)
            for ch in range(cg):
                v |= np.uint32(xg[ch, y, i]) << np.uint32(8 * ch)
            d[i] = v ^ fl


@njit(cache=True)
def _nhwc_row3(xg, row, y, pl, fill, flip):
    """``_nhwc_row`` for 3 channels and no channel padding: each pixel's 3 bytes built as one word
    and stored 8 bytes wide (``llvm_ir.store8``) in pixel order, each store's excess overwritten
    by the next; the last 2 pixels byte by byte, so nothing past the row's pixels is touched (byte
    stores 3 apart: 150 us for a 3 x 224 x 224 input)."""
    _, h, w = xg.shape
    if y < 0 or y >= h:
        row[:, :] = fill
        return
    row[:pl, :] = fill
    row[pl + w:, :] = fill
    flat = row.reshape(-1)
    a, b, c = xg[0, y], xg[1, y], xg[2, y]
    fl = np.int64(flip) * np.int64(0x010101)
    last = max(w - 2, 0)
    for i in range(last):
        v = (np.int64(a[i]) | (np.int64(b[i]) << np.int64(8)) | (np.int64(c[i]) << np.int64(16))) ^ fl
        store8(flat, 3 * (pl + i), v)
    for i in range(last, w):
        flat[3 * (pl + i)] = a[i] ^ flip
        flat[3 * (pl + i) + 1] = b[i] ^ flip
        flat[3 * (pl + i) + 2] = c[i] ^ flip


@njit(cache=True, parallel=True)
def window_sums(xp, kh, kw, sh, sw, dh, dw, oh, ow):
    """sa (oh*ow,) int64: sum of the unsigned operand over each output pixel's receptive field."""
    hp, wp, cp = xp.shape
    s = np.zeros((hp, wp), dtype=np.int64)
    for y in prange(hp):
        for x in range(wp):
            t = 0
            for c in range(cp):
                t += xp[y, x, c]
            s[y, x] = t
    sa = np.zeros(oh * ow, dtype=np.int64)
    for oy in prange(oh):
        for ky in range(kh):
            src = s[oy * sh + ky * dh]
            for kx in range(kw):
                for ox in range(ow):
                    sa[oy * ow + ox] += src[ox * sw + kx * dw]
    return sa
