"""onnxruntime's u8 x s8 products on x86 CPUs without VNNI: pairs summed into int16, saturating.

MLAS's u8s8 GEMM and convolution kernels for AVX2 (and AVX-512 without VNNI) multiply with
``vpmaddubsw``: the products of two neighbouring reduction elements, raw uint8 x int8 codes, are
summed into an int16 with signed saturation, then widened and summed exactly (``vpmaddwd`` by ones,
``vpaddd``). Measured against onnxruntime 1.32 on an AVX2 host (tests/golden/test_pairs16.py):

* it happens where MLAS's GEMM takes a uint8 A and an int8 B: QLinearConv, QGemm, QLinearMatMul and
  MatMulInteger with uint8 activations and int8 weights; ConvInteger, which multiplies the weights (A)
  by the input's im2col (B), with int8 activations and uint8 weights. Other mixes, and QLinearConv's
  depthwise kernels (one filter per channel), are exact;
* the pairs are (2j, 2j + 1) of the reduction index: a matmul's k; a QLinearConv's (ky, kx, c) within
  its group (MLAS's channels-last im2col order, also its ConvSym kernels' order), a ConvInteger's
  (c, ky, kx) (its NCHW im2col); padded taps hold the raw x_zp and an odd K's last element pairs with 0;
* the zero points are corrected outside the pairs, exactly (the products are of raw codes).

The saturated sum is the exact sum plus a deficit, the sum over pairs of clamp16(p) - p, nonzero only
where a pair saturates. With uint8 x, a pair can saturate only where 255 * (w0+ + w1+) > 32767 or
255 * (w0- + w1-) < -32768 (w+ / w- the positive / negative part): those weight pairs are found
once per weight array (``risky_pairs``; 1.5-3.4 % of the pairs of ResNet-50 and MobileNetV2 u8/s8),
and the deficit is summed over them alone (``conv_deficit``, ``matmul_deficit``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

I16_MIN, I16_MAX = -32768, 32767


def risky_pairs(b: np.ndarray, lo: int = 0, hi: int = 255):
    """The pairs of ``b`` (N, K) (one row of K weights per output) that can saturate against an
    operand in [lo, hi]: (cols, k0, k1, w0, w1) int64 arrays (k1 == K: an odd K's last element,
    paired with 0); None if none."""
    b = b.astype(np.int64)
    if b.shape[1] % 2:
        b = np.concatenate([b, np.zeros((b.shape[0], 1), np.int64)], axis=1)
    w0, w1 = b[:, 0::2], b[:, 1::2]
    top = np.maximum(lo * w0, hi * w0) + np.maximum(lo * w1, hi * w1)
    bottom = np.minimum(lo * w0, hi * w0) + np.minimum(lo * w1, hi * w1)
    cols, j = np.nonzero((top > I16_MAX) | (bottom < I16_MIN))
    if cols.size == 0:
        return None
    return cols, 2 * j, 2 * j + 1, w0[cols, j], w1[cols, j]


@njit(cache=True, inline="always")
def _deficit(p):
    if p > I16_MAX:
        return I16_MAX - p
    if p < I16_MIN:
        return I16_MIN - p
    return 0


@njit(cache=True, parallel=True)
def _matmul_deficit(a3, cols, k0, k1, w0, w1, out):
    """out (B, M, N) += the deficit of a3 (B, M, Kp) uint8 (Kp even: padded with 0) on the risky pairs."""
    nb, m = a3.shape[0], a3.shape[1]
    for item in prange(nb * m):
        bi, i = item // m, item % m
        row = a3[bi, i]
        for r in range(cols.size):
            p = np.int64(row[k0[r]]) * w0[r] + np.int64(row[k1[r]]) * w1[r]
            out[bi, i, cols[r]] += _deficit(p)


def matmul_deficit(a3: np.ndarray, b3: np.ndarray):
    """The deficit (B, M, N) int64 of a3 (B, M, K) uint8 times b3 (B, K, N) int8 (views of
    ``_common.matmul_shapes``), or None where no pair of b can saturate."""
    k = a3.shape[2]
    if k % 2:  # the odd K's last element pairs with 0
        a3 = np.concatenate([a3, np.zeros(a3.shape[:2] + (1,), a3.dtype)], axis=2)
    shared = b3.shape[0] == 1 or b3.strides[0] == 0  # one weight matrix for every batch
    out = None
    for i in range(1 if shared else b3.shape[0]):
        risky = risky_pairs(b3[i].T)
        if risky is None:
            continue
        if out is None:
            out = np.zeros((a3.shape[0], a3.shape[1], b3.shape[2]), np.int64)
        sel = slice(None) if shared else slice(i, i + 1)
        _matmul_deficit(np.ascontiguousarray(a3[sel]), *risky, out[sel])
    return out


@njit(cache=True, parallel=True)
def _conv_deficit(xp, cols, taps, w0, w1, mg, cg, sh, sw, out):
    """out (N, M, OH, OW) += the deficit over the risky pairs; xp (N, C, Hp, Wp) the input padded
    with the raw x_zp; taps (pairs, 2, 3): each element's (channel in the group, row, column offset),
    channel -1 for an odd K's pad element (0)."""
    n, _, oh, ow = out.shape
    for item in prange(n * oh):
        b, oy = item // oh, item % oh
        for r in range(cols.size):
            m = cols[r]
            ca, ya, xa = taps[r, 0, 0] + (m // mg) * cg, taps[r, 0, 1] + oy * sh, taps[r, 0, 2]
            cb, yb, xb = taps[r, 1, 0] + (m // mg) * cg, taps[r, 1, 1] + oy * sh, taps[r, 1, 2]
            pad = taps[r, 1, 0] < 0
            for ox in range(ow):
                p = np.int64(xp[b, ca, ya, xa + ox * sw]) * w0[r]
                if not pad:
                    p += np.int64(xp[b, cb, yb, xb + ox * sw]) * w1[r]
                out[b, m, oy, ox] += _deficit(p)


# The reduction orders of a convolution: QLinearConv's channels-last im2col (ky, kx, c); ConvInteger's
# NCHW im2col (c, ky, kx).
ORDERS = {"hwc": (0, 2, 3, 1), "chw": (0, 1, 2, 3)}


def conv_deficit(x: np.ndarray, w: np.ndarray, x_zp: int, g, order: str = "hwc"):
    """The deficit (N, M, OH, OW) int64 of a convolution of 8-bit x by 8-bit w, one unsigned and the
    other signed (g: ``_common.conv_geometry``), whose reduction runs in ``order``; None where no pair
    of w can saturate."""
    axes = ORDERS[order]
    info = np.iinfo(x.dtype)
    risky = risky_pairs(w.transpose(axes).reshape(w.shape[0], -1), info.min, info.max)
    if risky is None:
        return None
    cols, k0, k1, w0, w1 = risky
    dims = tuple(w.shape[a] for a in axes[1:])  # the (c, ky, kx) axes in reduction order
    taps = np.empty((cols.size, 2, 3), np.int64)
    for e, k in enumerate((k0, k1)):
        idx = dict(zip(axes[1:], np.unravel_index(np.minimum(k, w[0].size - 1), dims)))
        taps[:, e] = np.stack([idx[1], idx[2] * g.dilation[0], idx[3] * g.dilation[1]], axis=1)
    taps[k1 >= w[0].size, 1, 0] = -1
    pt, pl, pb, pr = g.pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=x_zp)
    out = np.zeros((g.n, g.m, g.oh, g.ow), np.int64)
    _conv_deficit(xp, cols, taps, w0, w1, g.mg, g.cg, g.stride[0], g.stride[1], out)
    return out
