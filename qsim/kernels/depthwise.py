"""Depthwise convolution (one filter per channel, multiplier 1) channels-last, with the
requantization in the epilogue: the kernel the fused path runs where the VNNI core does not apply
(one input channel per group).

Each work item is one output row of one image; for every output pixel the taps are summed for all
channels at once (the inner loop runs along the contiguous channels and vectorizes), exactly in
int64 (the spatial padding holds x_zp, which contributes 0), then wrapped to the accumulator
width (counting exact sums outside it, as ``qsim.kernels.reference`` does in wrap mode; wrap is
order-independent) and requantized by ``requant_jit.requant_run`` into the output's storage type.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.kernels.portable import wrap_row
from qsim.numerics.requant_jit import requant_run


@njit(cache=True, parallel=True)
def depthwise_nhwc(xh, xz, ws, bias, sh, sw, dh, dw, pt, pl, bits, lo, hi, checked, rq, out):
    """xh (N, H, W, C) codes; ws (kh, kw, C) int64 weights less their zero points; bias (C,) int64;
    out (N, OH, OW, C) in the storage type. Returns the overflow count (0 when not checked)."""
    oh = out.shape[1]
    half = (np.int64(1) << (bits - 1)) if checked else np.int64(0)
    counts = np.zeros(xh.shape[0] * oh, dtype=np.int64)
    for item in prange(xh.shape[0] * oh):
        # One output row per item, in a function of its own (see vnni_epilogue.epilogue_q).
        counts[item] = _row(xh, xz, ws, bias, item // oh, item % oh, sh, sw, dh, dw, pt, pl, bits, lo, hi,
                            half, rq, out)
    return counts.sum()


@njit(cache=True)
def _row(xh, xz, ws, bias, n, oy, sh, sw, dh, dw, pt, pl, bits, lo, hi, half, rq, out):
    _, h, w, c = xh.shape
    kh, kw = ws.shape[0], ws.shape[1]
    mask = (np.int64(1) << bits) - 1
    acc = np.empty(c, dtype=np.int64)
    cnt = 0
    for ox in range(out.shape[2]):
        acc[:] = bias
        for ky in range(kh):
            y = oy * sh - pt + ky * dh
            if y < 0 or y >= h:
                continue
            for kx in range(kw):
                xx = ox * sw - pl + kx * dw
                if xx < 0 or xx >= w:
                    continue
                src = xh[n, y, xx]
                wv = ws[ky, kx]
                for ch in range(c):
                    acc[ch] += (np.int64(src[ch]) - xz) * wv[ch]
        if half != 0:
            cnt += wrap_row(acc, lo, hi, half, mask, acc)
        requant_run(acc, 0, 1, rq, out[n, oy, ox])
    return cnt
