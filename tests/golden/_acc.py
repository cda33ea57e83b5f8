"""Tiny int64 accumulator helpers for the golden tests (independent of qsim.kernels on purpose: the
golden tests check requantization, so the accumulation must be obviously right)."""
from __future__ import annotations

import numpy as np


def matmul_acc(a, b, a_zp, b_zp, bias=None):
    """(M, K) x (K, N) -> int64 (M, N): sum_k (a - a_zp)(b - b_zp[n]) + bias[n]."""
    a = np.asarray(a, np.int64) - np.int64(a_zp)
    b = np.asarray(b, np.int64) - np.asarray(b_zp, np.int64)
    acc = a @ b
    return acc if bias is None else acc + np.asarray(bias, np.int64)


def conv2d_acc(x, w, x_zp, w_zp, bias, stride=1, pad=0, groups=1):
    """NCHW x OIHW -> int64 NCHW, symmetric padding with the zero point (so padded terms are 0)."""
    x = np.asarray(x, np.int64) - np.int64(x_zp)
    w = np.asarray(w, np.int64) - np.asarray(w_zp, np.int64).reshape(-1, 1, 1, 1)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, oh, ow), np.int64)
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch,
                                                         w[g * og:(g + 1) * og, :, i, j])
    if bias is not None:
        out += np.asarray(bias, np.int64).reshape(1, -1, 1, 1)
    return out
