"""Average pooling channels-last (``avgpool_nhwc``): the layout the fused convolutions write, read
without a transpose. Each work item is one output row of one image; each output pixel sums its
window's cells inside the image for all channels at once (the innermost loop runs along the
contiguous channels and vectorizes), then divides with the rounding of ``portable._round_div``
(the same integer the NCHW kernel and ``reference.avgpool2d`` give). Max pooling channels-last is
``portable.maxpool_nhwc``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.kernels.portable import _round_div


@njit(cache=True, parallel=True)
def avgpool_nhwc(xh, zp, kh, kw, sh, sw, pt, pl, include_pad, mode, acc_type, out):
    """xh (N, H, W, C) integers; out (N, OH, OW, C) of xh's type. ``acc_type``: a 1-element array of the
    summing type (int32 where kh * kw * max|x| fits it, else int64). ``mode``: a
    ``portable.ROUND_*`` code; ``include_pad``: padding cells count (holding ``zp``)."""
    oh = out.shape[1]
    for item in prange(xh.shape[0] * oh):
        _avg_row(xh, zp, kh, kw, sh, sw, pt, pl, include_pad, mode, item // oh, item % oh, acc_type, out)


@njit(cache=True)
def _avg_row(xh, zp, kh, kw, sh, sw, pt, pl, include_pad, mode, n, oy, acc_type, out):
    _, h, w, c = xh.shape
    acc = np.empty(c, dtype=acc_type.dtype)
    y0 = oy * sh - pt
    ya, yb = max(y0, 0), min(y0 + kh, h)
    for ox in range(out.shape[2]):
        x0 = ox * sw - pl
        xa, xb = max(x0, 0), min(x0 + kw, w)
        acc[:] = 0
        for y in range(ya, yb):
            for xx in range(xa, xb):
                s = xh[n, y, xx]
                for ch in range(c):
                    acc[ch] += s[ch]
        cnt = (yb - ya) * (xb - xa)
        pad = np.int64(0)
        if include_pad:
            pad = np.int64(zp) * (kh * kw - cnt)
            cnt = kh * kw
        d = out[n, oy, ox]
        for ch in range(c):
            d[ch] = _round_div(np.int64(acc[ch]) + pad, np.int64(cnt), mode)


@njit(cache=True)
def channel_sums(x3, out):
    """out[n, c] = sum over p of x3[n, p, c] (x3: (N, pixels, C) channels-last), exact in out's type
    where it holds every sum (``sum_type``):
    the sums of a global pooling, reading the data once in memory order (a numpy sum over the
    spatial axes of the NCHW view of channels-last data strides across it, ~10x slower on
    MobileNetV2's last 7x7x1280 map)."""
    for n in range(x3.shape[0]):
        acc = out[n]
        for c in range(acc.size):
            acc[c] = 0
        for p in range(x3.shape[1]):
            row = x3[n, p]
            for c in range(acc.size):
                acc[c] += row[c]



@njit(cache=True)
def global_avg_q(x3, channels_last, zin, scale, flo, fhi, zout, acc, out):
    """onnxruntime's QLinearGlobalAveragePool of x3 ((N, pixels, C) channels-last, else (N, C,
    pixels)) into out (N, C): the exact sum less zin * pixels, then clamp(fp32(fp32(sum) * scale),
    flo, fhi) rounded half to even plus zout, as ``plan_ops.plan_global_avgpool``'s numpy form. One
    call (sums read in memory order, the requantization on the C sums) instead of four numpy
    passes: ~0.1 ms -> ~0.01 ms on MobileNetV2's last 1280x7x7 map (Zen 3). ``acc``: (C,) scratch
    whose type the channels-last sums run in (``sum_type``): 16-bit lanes where pixels * |code|
    fits them: the 49 x 1280 sums took 6.7 us in int64, 4.5 us in int32, 2.0 us in int16."""
    n_, c_ = out.shape
    for n in range(n_):
        if channels_last:
            channel_sums(x3[n:n + 1], acc.reshape(1, c_))
        else:
            for c in range(c_):
                plane = x3[n, c]
                s = np.int64(0)
                for p in range(plane.size):
                    s += plane[p]
                acc[c] = s
        base = np.int64(zin) * (x3.shape[1] if channels_last else x3.shape[2])
        for c in range(c_):
            r = min(max(np.float32(np.float32(np.int64(acc[c]) - base) * scale), flo), fhi)
            out[n, c] = np.int64(np.rint(r)) + zout


def sum_type(dtype, pixels: int):
    """The narrowest integer type that holds every sum of ``pixels`` codes of ``dtype`` exactly."""
    info = np.iinfo(dtype)
    for t in (np.int16, np.uint16, np.int32, np.int64):
        if np.iinfo(t).min <= pixels * info.min and pixels * info.max <= np.iinfo(t).max:
            return t
    return np.int64
