"""A numpy model of MLAS's AVX2 u8s8 convolution sums (``pairs16``): the reduction index K of
each group runs over (ky, kx, c); raw codes (spatial padding holds x_zp) are multiplied pairwise,
each pair (2j, 2j+1) summed and saturated to int16 (an odd K pairs its last element with 0),
the pair sums added exactly; zero-point corrections and bias are exact outside."""
from __future__ import annotations

import numpy as np


def conv_acc(x, w, xz: int, wz, bias, stride, pads, dilation, groups, pairs16: bool) -> np.ndarray:
    """(N, M, OH, OW) int64 exact accumulators (pairs16: MLAS's saturating pairs)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    mg = m // groups
    (sh, sw), (dh, dw) = stride, dilation
    pt, pl, pb, pr = pads
    xp = np.full((n, c, h + pt + pb, wd + pl + pr), xz, dtype=np.int64)
    xp[:, :, pt:pt + h, pl:pl + wd] = x
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    wz = np.broadcast_to(np.asarray(wz, np.int64), (m,))
    out = np.empty((n, m, oh, ow), dtype=np.int64)
    for g in range(groups):
        # cols (N, OH, OW, K) in (ky, kx, c) order
        taps = [xp[:, g * cg:(g + 1) * cg, ky * dh: ky * dh + sh * (oh - 1) + 1: sh,
                   kx * dw: kx * dw + sw * (ow - 1) + 1: sw] for ky in range(kh) for kx in range(kw)]
        cols = np.stack(taps, axis=1).transpose(0, 3, 4, 1, 2).reshape(n, oh, ow, -1)
        wm = w[g * mg:(g + 1) * mg].astype(np.int64).transpose(0, 2, 3, 1).reshape(mg, -1)
        out[:, g * mg:(g + 1) * mg] = _dot(cols, wm, xz, wz[g * mg:(g + 1) * mg], pairs16).transpose(0, 3, 1, 2)
    if bias is not None:
        out += np.asarray(bias, np.int64).reshape(1, m, 1, 1)
    return out


def gemm_acc(a, b, az: int, bz, bias, pairs16: bool) -> np.ndarray:
    """(M, N) int64: a (M, K) by b (K, N)."""
    bz = np.broadcast_to(np.asarray(bz, np.int64), (b.shape[1],))
    out = _dot(a.astype(np.int64), b.T.astype(np.int64), az, bz, pairs16)
    return out if bias is None else out + np.asarray(bias, np.int64)


def _dot(cols, wm, xz, wz, pairs16):
    """cols (..., K) raw codes, wm (M, K) raw codes -> (..., M) of sum (x - xz)(w - wz)."""
    k = cols.shape[-1]
    if pairs16:
        prod = cols[..., None, :] * wm                        # (..., M, K)
        if k % 2:
            prod = np.concatenate([prod, np.zeros(prod.shape[:-1] + (1,), np.int64)], axis=-1)
        pairs = prod[..., 0::2] + prod[..., 1::2]
        s = np.clip(pairs, -32768, 32767).sum(axis=-1)
    else:
        s = cols @ wm.T
    sa = cols.sum(axis=-1)[..., None]
    sw = wm.sum(axis=1)
    return s - wz * sa - xz * sw + k * xz * wz
