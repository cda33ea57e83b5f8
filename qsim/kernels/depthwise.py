"""Depthwise convolution (one filter per channel, multiplier 1) channels-last, with the
requantization in the epilogue: the kernel the fused path runs where the VNNI core does not apply
(one input channel per group).

Each work item is one output row of one image, its accumulators (OW x C) in L1. Pixels whose 3x3
window lies inside the image take all nine taps in one pass along the contiguous channels (the
loop vectorizes, the sum stays in registers: ``_interior3x3``); the others (borders, other kernel
sizes) go tap by tap, skipping taps in the spatial padding (it holds x_zp, which contributes 0).
The working integer type is the weights': int32 where the caller's bound on the exact sum allows
it (twice the lanes of int64), else int64; the sums are exact either way. They are then wrapped to
the accumulator width (counting exact sums outside it, as ``qsim.kernels.reference`` does in wrap
mode; wrap is order-independent) and requantized into the output's storage type while the row is
in cache: ``requant_jit.requant_run`` for every policy, the float32 kind in float32 lanes.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.kernels import epilogue_tflite
from qsim.kernels.portable import wrap_row
from qsim.numerics.requant_jit import KIND_FLOAT32, requant_run


@njit(cache=True, inline="always")
def _small(v):
    return -(1 << 17) < v < (1 << 17)


@njit(cache=True, inline="always")
def f32_code(acc, mult, zp, lo, hi):
    """``rounding_jit.requant_f32`` (clamp(rne(fp32(acc * mult)) + zp)) of an int32 accumulator in
    float32 lanes only: ``zp``, ``lo``, ``hi`` are float32 integers below 2^17, so ``rint(p) + zp`` is
    exact wherever it can land inside [lo, hi] (beyond 2^24 it is rounded, but clamps to the same
    bound), and the clamp on the float gives the clamped integer. Twice the lanes of float64."""
    v = np.rint(np.float32(np.float32(acc) * mult)) + zp
    return np.int32(min(max(v, lo), hi))


@njit(cache=True, parallel=True)
def depthwise_nhwc(xh, xz, ws, bias, sh, sw, dh, dw, pt, pl, bits, lo, hi, checked, rq, out):
    """xh (N, H, W, C) codes; ws (kh, kw, C) weights less their zero points, int32 or int64 (the
    working type: int32 only where every exact sum fits it); bias (C,) of the same type; out
    (N, OH, OW, C) in the storage type. Returns the overflow count (0 when not checked)."""
    oh = out.shape[1]
    half = (np.int64(1) << (bits - 1)) if checked else np.int64(0)
    counts = np.zeros(xh.shape[0] * oh, dtype=np.int64)
    for item in prange(xh.shape[0] * oh):
        # One output row per item, in a function of its own (see vnni_epilogue.epilogue_q).
        counts[item] = _row(xh, xz, ws, bias, item // oh, item % oh, sh, sw, dh, dw, pt, pl, bits, lo, hi,
                            half, rq, out)
    return counts.sum()


@njit(cache=True)
def _span(size, off, step, n):
    """The range [a, b) of o in [0, n) with 0 <= o * step + off < size."""
    a = 0 if off >= 0 else (-off + step - 1) // step
    b = min(n, (size - 1 - off) // step + 1) if size - 1 - off >= 0 else 0
    return a, max(a, b)


@njit(cache=True)
def _row(xh, xz, ws, bias, n, oy, sh, sw, dh, dw, pt, pl, bits, lo, hi, half, rq, out):
    _, h, w, c = xh.shape
    kh, kw = ws.shape[0], ws.shape[1]
    ow = out.shape[2]
    mask = (np.int64(1) << bits) - 1
    acc = np.empty((ow, c), dtype=ws.dtype)
    z = ws.dtype.type(xz)
    y0 = oy * sh - pt
    # Output pixels whose whole window lies inside the image: [i0, i1).
    i0, i1 = _span(w - (kw - 1) * dw, -pl, sw, ow)
    if kh == 3 and kw == 3 and y0 >= 0 and y0 + 2 * dh < h and i0 < i1:
        _interior3x3(xh[n, y0], xh[n, y0 + dh], xh[n, y0 + 2 * dh], z, ws, bias, sw, dw, pl, i0, i1, acc)
    else:
        i0 = i1 = 0
    for ox in range(ow):
        if ox < i0 or ox >= i1:
            _border_pixel(xh, n, y0, ox * sw - pl, z, ws, bias, dh, dw, acc[ox])
    dst = out[n, oy]
    if half == 0 and rq[0] == KIND_FLOAT32 and _small(rq[9]) and _small(rq[10]) and _small(rq[11]):
        # The common case: no wrapping to do and the float32 kind, all in fp32 lanes.
        mv = rq[1]
        fz, flo, fhi = np.float32(rq[9]), np.float32(rq[10]), np.float32(rq[11])
        for ox in range(ow):
            a = acc[ox]
            d = dst[ox]
            for ch in range(c):
                d[ch] = f32_code(a[ch], mv[ch], fz, flo, fhi)
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


@njit(cache=True)
def _interior3x3(r0, r1, r2, z, ws, bias, sw, dw, pl, i0, i1, acc):
    """3x3 windows inside the image: the nine taps of each pixel in one pass over the channels,
    the sum held in registers (one read of each input, one store of the result)."""
    c = acc.shape[1]
    w0, w1, w2, w3, w4, w5, w6, w7, w8 = (ws[0, 0], ws[0, 1], ws[0, 2], ws[1, 0], ws[1, 1], ws[1, 2],
                                          ws[2, 0], ws[2, 1], ws[2, 2])
    # sum (x - z) * w = sum x * w - z * sum w: exact modulo 2^width, and the true sum fits.
    bz = np.empty(c, dtype=acc.dtype)
    for ch in range(c):
        bz[ch] = bias[ch] - z * (w0[ch] + w1[ch] + w2[ch] + w3[ch] + w4[ch] + w5[ch] + w6[ch] + w7[ch] + w8[ch])
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
def _border_pixel(xh, n, y0, x0, z, ws, bias, dh, dw, a):
    """One output pixel tap by tap, skipping the taps in the padding (they hold x_zp: 0)."""
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
