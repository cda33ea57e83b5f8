"""Depthwise convolution (one filter per channel, multiplier 1) channels-last, with the
requantization in the epilogue: the kernel the fused path runs where the VNNI core does not apply
(one input channel per group).

Each work item is one output row of one image, its accumulators (OW x C) in L1. A 3x3 kernel
takes every pixel in one pass of its nine taps (the sum in registers, one store): input rows in
the padding are read from a row of x_zp codes (x_zp contributes 0: the bias carries
-x_zp * sum(w)), the pixels whose window lies inside the row's columns in one run (``_interior``:
on AVX2 ``depthwise_simd``'s block of 8 channels over the run, weights in registers; elsewhere
numba loops vectorized along the channels, at stride 1 over the flattened row in chunks of
planned tiled weights, ``tiles``), the left and right edge pixels one by one with their columns
in the padding read from x_zp codes (``_edge_pixel``). Other kernel sizes go tap by tap, skipping
the taps in the padding. Measured on the 2-core Zen 3 VM (AVX2), one thread, MobileNetV2's
depthwise shapes: 2.6 ms -> 1.65 ms in all (onnxruntime's kernels: 1.6 ms), the 112x112 C=32
layer 0.70 -> 0.28 ms.
The working integer type is the weights': int32 where the caller's bound on the exact sum allows
it (twice the lanes of int64), else int64; the sums are exact either way. They are then wrapped to
the accumulator width (counting exact sums outside it, as ``qsim.kernels.reference`` does in wrap
mode; wrap is order-independent) and requantized into the output's storage type while the row is
in cache: ``requant_jit.requant_run`` for every policy, the float32 kind in float32 lanes.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.core.extending import overload

from qsim.kernels import depthwise_simd, epilogue_tflite
from qsim.kernels.portable import wrap_row
from qsim.numerics.requant_jit import KIND_FLOAT32, requant_run
from qsim.numerics.rounding_jit import f32_code


@njit(cache=True, inline="always")
def _small(v):
    return -(1 << 17) < v < (1 << 17)


def depthwise_nhwc(xh, xz, ws, bias, sh, sw, dh, dw, pt, pl, bits, lo, hi, checked, rq, out):
    """xh (N, H, W, C) codes; ws (kh, kw, C) weights less their zero points, int32 or int64 (the
    working type: int32 only where every exact sum fits it); bias (C,) of the same type; out
    (N, OH, OW, C) in the storage type. Returns the overflow count (0 when not checked)."""
    key = (id(ws), id(bias), id(rq), xz, xh.dtype)
    hit = _TILES.get(key)
    if hit is None or hit[0] is not ws or hit[1] is not bias or hit[2] is not rq:
        if len(_TILES) >= 64:
            _TILES.clear()
        hit = _TILES[key] = (ws, bias, rq, tiles(ws, bias, xz, xh.dtype, rq))
    return depthwise_tiled(xh, xz, ws, bias, hit[3], sh, sw, dh, dw, pt, pl, bits, lo, hi, checked, rq, out)


_TILES: dict = {}   # depthwise_nhwc's tiles of the arrays it was last called with (the same objects)


TILE = 1024   # elements per chunk of the flat stride-1 loop (256: C=144 layers 1.2x slower)


def tiles(ws, bias, xz: int, xdtype, rq) -> tuple:
    """What a 3x3 kernel's single passes read, planned once (``depthwise_tiled``): the nine taps'
    weights (9, T) and the bias less xz * sum(w) (T,) (wrapped to the working type: the sums are
    exact modulo 2^width and the true ones fit), then the float32 kind's multipliers (T,), each
    repeated T / C times along the channels (T = C * max(1, 256 // C)); and a row of xz codes
    standing for the padding. Weights are stored as int16 where they fit: half the bytes, and
    ``depthwise_simd``'s vpmaddwd takes them (16 x 16-bit products are exact in its int32 lanes).
    Empty arrays (the tap-by-tap path) for other kernel sizes or an xz outside x's type."""
    kh, kw, c = ws.shape
    info = np.iinfo(xdtype)
    k = max(1, TILE // c) if kh == 3 and kw == 3 and info.min <= xz <= info.max else 0
    w9 = ws.reshape(-1, c)[:9 if k else 0]
    wdt = np.int16 if w9.size and -32768 <= w9.min() and w9.max() <= 32767 else ws.dtype
    wt = np.ascontiguousarray(np.tile(w9, (1, k)), dtype=wdt)
    bz = np.tile((bias.astype(np.int64) - xz * w9.astype(np.int64).sum(0)).astype(ws.dtype), k)
    mt = np.tile(np.asarray(rq[1]).reshape(-1)[:c], k if rq[0] == KIND_FLOAT32 else 0)
    return wt, bz, mt, np.full((1, c), xz, dtype=xdtype)


@njit(cache=True, parallel=True)
def depthwise_tiled(xh, xz, ws, bias, tl, sh, sw, dh, dw, pt, pl, bits, lo, hi, checked, rq, out):
    """``depthwise_nhwc`` with its ``tiles`` planned."""
    oh = out.shape[1]
    half = (np.int64(1) << (bits - 1)) if checked else np.int64(0)
    counts = np.zeros(xh.shape[0] * oh, dtype=np.int64)
    wt, bzt, mt, zp = tl
    n, h, w, c = xh.shape
    # A row of xz codes stands for an input row in the padding (its taps contribute 0).
    zrow = np.empty((w if wt.shape[1] else 0, c), dtype=xh.dtype)
    for i in range(zrow.shape[0]):
        zrow[i] = zp[0]
    for item in prange(n * oh):
        # One output row per item, in a function of its own (see vnni_epilogue.epilogue_q).
        counts[item] = _row(xh, xz, ws, bias, wt, bzt, mt, zrow, item // oh, item % oh, sh, sw, dh, dw, pt, pl,
                            bits, lo, hi, half, rq, out)
    return counts.sum()


@njit(cache=True)
def _span(size, off, step, n):
    """The range [a, b) of o in [0, n) with 0 <= o * step + off < size."""
    a = 0 if off >= 0 else (-off + step - 1) // step
    b = min(n, (size - 1 - off) // step + 1) if size - 1 - off >= 0 else 0
    return a, max(a, b)


@njit(cache=True)
def _row(xh, xz, ws, bias, wt, bzt, mt, zrow, n, oy, sh, sw, dh, dw, pt, pl, bits, lo, hi, half, rq, out):
    _, h, w, c = xh.shape
    ow = out.shape[2]
    mask = (np.int64(1) << bits) - 1
    acc = np.empty((ow, c), dtype=ws.dtype)
    y0 = oy * sh - pt
    if wt.shape[1] > 0:
        # 3x3: every pixel in one pass of its nine taps, rows and columns in the padding read from zrow.
        ya, yb, yc = y0, y0 + dh, y0 + 2 * dh
        r0 = xh[n, ya] if 0 <= ya < h else zrow
        r1 = xh[n, yb] if 0 <= yb < h else zrow
        r2 = xh[n, yc] if 0 <= yc < h else zrow
        i0, i1 = _span(w - 2 * dw, -pl, sw, ow)   # pixels whose columns all lie inside the image
        if i0 < i1:
            _interior(r0, r1, r2, wt, bzt, c, sw, dw, pl, i0, i1, acc)
        else:
            i0 = i1 = 0
        for ox in range(ow):
            if ox < i0 or ox >= i1:
                _edge_pixel(r0, r1, r2, zrow, ox, ox * sw - pl, dw, wt, bzt, acc)
    else:
        z = ws.dtype.type(xz)
        for ox in range(ow):
            _border_pixel(xh, n, y0, ox * sw - pl, z, ws, bias, dh, dw, acc[ox])
    dst = out[n, oy]
    if half == 0 and mt.size > 0 and _small(rq[9]) and _small(rq[10]) and _small(rq[11]):
        # The common case: no wrapping to do and the float32 kind, all in fp32 lanes, the row
        # flat in chunks against the tiled multipliers.
        fz, flo, fhi = np.float32(rq[9]), np.float32(rq[10]), np.float32(rq[11])
        af, df = acc.ravel(), dst.ravel()
        tt = mt.size
        for s0 in range(0, af.size, tt):
            a, d = af[s0:], df[s0:]
            for j in range(min(tt, af.size - s0)):
                d[j] = f32_code(a[j], mt[j], fz, flo, fhi)
        return 0
    if epilogue_tflite.applies(half, rq):   # LiteRT's NEON kind, nothing to count: the row in one call
        epilogue_tflite.neon_rows(acc, rq, dst)
        return 0
    cnt = 0
    wide = np.empty(c if half != 0 else 0, dtype=np.int64)
    for ox in range(ow):
        a = acc[ox]
        if half != 0:
            cnt += wrap_row(a, lo, hi, half, mask, wide)
            requant_run(wide, 0, 1, rq, dst[ox])
        else:
            requant_run(a, 0, 1, rq, dst[ox])
    return cnt


def _interior(r0, r1, r2, wt, bz, c, sw, dw, pl, i0, i1, acc):
    """The 3x3 windows [i0, i1) of a row inside its columns (dispatched on the types: ``_interior_impl``)."""


@overload(_interior)
def _interior_impl(r0, r1, r2, wt, bz, c, sw, dw, pl, i0, i1, acc):
    """AVX2 with 8-bit codes, int16 weights, int32 sums: ``depthwise_simd.block3x3`` per block of L
    channels (the last C % L channels in a scalar loop); else the numba loops vectorized along the
    channels, the flat one at stride 1."""
    if depthwise_simd.AVX2 and depthwise_simd._ok(r0, r1, r2, wt, bz, acc):
        lanes = depthwise_simd.L
        block = depthwise_simd.block3x3

        def simd(r0, r1, r2, wt, bz, c, sw, dw, pl, i0, i1, acc):
            cl = c - c % lanes
            x0 = (i0 * sw - pl) * c
            for cb in range(0, cl, lanes):
                block(r0, r1, r2, x0 + cb, dw * c, sw * c, wt, wt.shape[1], cb, bz, acc, i0 * c + cb, c, i1 - i0)
            if cl < c:
                _tail3x3(r0, r1, r2, wt, bz, cl, sw, dw, pl, i0, i1, acc)
        return simd

    def loops(r0, r1, r2, wt, bz, c, sw, dw, pl, i0, i1, acc):
        if sw == 1:
            _interior3x3_flat(r0.ravel(), r1.ravel(), r2.ravel(), wt, bz, c, dw, pl, i0, i1, acc.ravel())
        else:
            _interior3x3(r0, r1, r2, wt, bz, sw, dw, pl, i0, i1, acc)
    return loops


@njit(cache=True)
def _tail3x3(r0, r1, r2, wt, bz, c0, sw, dw, pl, i0, i1, acc):
    """Channels [c0, C) of the windows [i0, i1), scalar (fewer than one block of channels)."""
    t = acc.dtype.type
    for ox in range(i0, i1):
        xa = ox * sw - pl
        for ch in range(c0, acc.shape[1]):
            s = bz[ch]
            for ky in range(3):
                r = r0 if ky == 0 else (r1 if ky == 1 else r2)
                for kx in range(3):
                    s += t(r[xa + kx * dw, ch]) * wt[3 * ky + kx, ch]
            acc[ox, ch] = s


@njit(cache=True)
def _interior3x3(r0, r1, r2, wt, bz, sw, dw, pl, i0, i1, acc):
    """Strides > 1, 3x3 windows inside the rows: the nine taps of each pixel in one pass over the
    channels, the sum held in registers (one read of each input, one store of the result)."""
    c = acc.shape[1]
    w0, w1, w2, w3, w4, w5, w6, w7, w8 = wt[0], wt[1], wt[2], wt[3], wt[4], wt[5], wt[6], wt[7], wt[8]
    t = acc.dtype.type
    for ox in range(i0, i1):
        xa = ox * sw - pl
        a0, a1, a2 = r0[xa], r0[xa + dw], r0[xa + 2 * dw]
        b0, b1, b2 = r1[xa], r1[xa + dw], r1[xa + 2 * dw]
        c0, c1, c2 = r2[xa], r2[xa + dw], r2[xa + 2 * dw]
        a = acc[ox]
        for ch in range(c):
            a[ch] = (bz[ch] + t(a0[ch]) * w0[ch] + t(a1[ch]) * w1[ch] + t(a2[ch]) * w2[ch]
                     + t(b0[ch]) * w3[ch] + t(b1[ch]) * w4[ch] + t(b2[ch]) * w5[ch]
                     + t(c0[ch]) * w6[ch] + t(c1[ch]) * w7[ch] + t(c2[ch]) * w8[ch])


@njit(cache=True)
def _edge_pixel(r0, r1, r2, zrow, ox, x0, dw, wt, bz, acc):
    """A 3x3 window crossing the left or right edge, column by column, the columns in the padding
    read from zrow (xz codes). Indexed in place, no views made per pixel (see ``to_nhwc``; here
    the gain measured 5-9%, within the 2-core VM's noise)."""
    w, c = r0.shape
    t = acc.dtype.type
    for ch in range(c):
        acc[ox, ch] = bz[ch]
    for kx in range(3):
        xx = x0 + kx * dw
        if 0 <= xx < w:
            for ch in range(c):
                acc[ox, ch] += (t(r0[xx, ch]) * wt[kx, ch] + t(r1[xx, ch]) * wt[3 + kx, ch]
                                + t(r2[xx, ch]) * wt[6 + kx, ch])
        else:
            for ch in range(c):
                acc[ox, ch] += t(zrow[0, ch]) * (t(wt[kx, ch]) + t(wt[3 + kx, ch]) + t(wt[6 + kx, ch]))


@njit(cache=True)
def _interior3x3_flat(r0, r1, r2, wt, bz, c, dw, pl, i0, i1, acc):
    """Stride 1: the interior pixels [i0, i1) of a row are one contiguous run of the flattened
    rows (output element q = ox * C + ch reads q + (kx * dw - pl) * C of each row), taken in
    chunks of T = k * C elements against weights tiled k times: the loop setup (runtime alias
    checks, vector prologue) is paid once per chunk of k pixels instead of once per pixel."""
    tt = wt.shape[1]
    t = acc.dtype.type
    w0, w1, w2, w3, w4, w5, w6, w7, w8 = wt[0], wt[1], wt[2], wt[3], wt[4], wt[5], wt[6], wt[7], wt[8]
    o0, o1, o2 = -pl * c, (dw - pl) * c, (2 * dw - pl) * c
    end = i1 * c
    for s0 in range(i0 * c, end, tt):
        m = min(tt, end - s0)
        a0, a1, a2 = r0[s0 + o0:], r0[s0 + o1:], r0[s0 + o2:]
        b0, b1, b2 = r1[s0 + o0:], r1[s0 + o1:], r1[s0 + o2:]
        c0, c1, c2 = r2[s0 + o0:], r2[s0 + o1:], r2[s0 + o2:]
        a = acc[s0:]
        for j in range(m):
            a[j] = (bz[j] + t(a0[j]) * w0[j] + t(a1[j]) * w1[j] + t(a2[j]) * w2[j]
                    + t(b0[j]) * w3[j] + t(b1[j]) * w4[j] + t(b2[j]) * w5[j]
                    + t(c0[j]) * w6[j] + t(c1[j]) * w7[j] + t(c2[j]) * w8[j])


@njit(cache=True)
def _border_pixel(xh, n, y0, x0, z, ws, bias, dh, dw, a):
    """One output pixel tap by tap (kernels other than 3x3), skipping the taps in the padding
    (they hold x_zp: 0)."""
    _, h, w, c = xh.shape
    for ch in range(c):
        a[ch] = bias[ch]
    for ky in range(ws.shape[0]):
        y = y0 + ky * dh
        if y < 0 or y >= h:
            continue
        for kx in range(ws.shape[1]):
            xx = x0 + kx * dw
            if xx < 0 or xx >= w:
                continue
            src = xh[n, y, xx]
            wv = ws[ky, kx]
            for ch in range(c):
                a[ch] += (a.dtype.type(src[ch]) - z) * wv[ch]


@njit(cache=True, parallel=True)
def to_nhwc(x, out):
    """out (N, H, W, C) = x (N, C, H, W), both C-contiguous: the channels-last copy of a
    channels-first input, eight channels per pass along a row (numpy's ascontiguousarray of the
    transposed view took 1.75 ms for MobileNetV2's depthwise inputs on one Zen 3 thread, this
    0.7 ms; 2 threads 0.4 ms). Indexed in place: views made per pixel in a parallel loop (an
    atomic reference count on the shared parent each) ran 20x slower on two threads."""
    n, c, h, w = x.shape
    for item in prange(n * h):
        b, y = item // h, item % h
        for c0 in range(0, c - c % 8, 8):   # (c8 = c - c % 8 hoisted above the prange: 4x slower)
            for p in range(w):
                out[b, y, p, c0] = x[b, c0, y, p]
                out[b, y, p, c0 + 1] = x[b, c0 + 1, y, p]
                out[b, y, p, c0 + 2] = x[b, c0 + 2, y, p]
                out[b, y, p, c0 + 3] = x[b, c0 + 3, y, p]
                out[b, y, p, c0 + 4] = x[b, c0 + 4, y, p]
                out[b, y, p, c0 + 5] = x[b, c0 + 5, y, p]
                out[b, y, p, c0 + 6] = x[b, c0 + 6, y, p]
                out[b, y, p, c0 + 7] = x[b, c0 + 7, y, p]
        for ch in range(c - c % 8, c):
            for p in range(w):
                out[b, y, p, ch] = x[b, ch, y, p]
