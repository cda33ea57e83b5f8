"""A compiled fast path for the fp32 requantization policies (onnxruntime, xnnpack, qnnpack):
``clamp(rne(fp32(acc) * m[c]) + zp)`` (``rounding_jit.requant_f32``) straight into the output's
storage type.

``qsim.numerics`` keeps the general per-element kernel (every policy kind, one branchy call per
element); this one covers the float32 kind only, vectorizes, and writes uint8/int8 directly. It is
the same formula as ``requant_ref.float32_ref`` (tests compare the two paths bit for bit through the
executor's numba and numpy runs).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from qsim.numerics import get_policy
from qsim.numerics.policies import RequantKind
from qsim.numerics.multipliers import float32_multiplier
from qsim.numerics.rounding_jit import requant_f32


@njit(cache=True)
def _rows(acc, mult, zp, lo, hi, out):
    """acc (R, L) int64; mult (R,) fp32 per row; out (R, L) of the storage type."""
    r, n = acc.shape
    for i in range(r):
        m = mult[i]
        for j in range(n):
            out[i, j] = requant_f32(np.float32(acc[i, j]), m, zp, lo, hi)


@njit(cache=True)
def _cols(acc, mult, zp, lo, hi, out):
    """acc (R, C) int64; mult (C,) fp32 per column."""
    r, n = acc.shape
    for i in range(r):
        for j in range(n):
            out[i, j] = requant_f32(np.float32(acc[i, j]), mult[j], zp, lo, hi)


def applies(policy: str, bias) -> bool:
    return bias is None and get_policy(policy).kind is RequantKind.FLOAT32


def requantize_f32(policy: str, acc: np.ndarray, s_in, s_w, s_out, zp: int, lo: int, hi: int, axis: int,
                   dtype) -> np.ndarray:
    """The float32-kind policy's requantization of ``acc`` (channels on ``axis``) in ``dtype``."""
    m = float32_multiplier(s_in, s_w, s_out)  # the float32 kind's multiplier (Policy.params "fmult")
    acc = np.ascontiguousarray(acc, dtype=np.int64)
    out = np.empty(acc.shape, dtype=dtype)
    ax = axis % acc.ndim
    if m.size == 1 or ax == 0 and acc.ndim == 1:
        _rows(acc.reshape(1, -1), np.full(1, m[0], np.float32), zp, lo, hi, out.reshape(1, -1))
    elif ax == acc.ndim - 1:
        _cols(acc.reshape(-1, acc.shape[-1]), m, zp, lo, hi, out.reshape(-1, acc.shape[-1]))
    else:  # channels in the middle (NCHW): one multiplier per (outer, channel) row
        outer, c = int(np.prod(acc.shape[:ax])), acc.shape[ax]
        rows = np.tile(m, outer)
        _rows(acc.reshape(outer * c, -1), rows, zp, lo, hi, out.reshape(outer * c, -1))
    return out


@njit(cache=True)
def _ort_add(a, b, ra, rb, fixed, lo, hi, out):
    """``int_elementwise.ort_add`` on flat same-size arrays (same float64-emulated FMAs)."""
    for i in range(a.size):
        t = np.float32(np.float64(b[i]) * rb + fixed)
        t = np.float32(np.float64(a[i]) * ra + np.float64(t))
        v = np.rint(t)
        out[i] = lo if v < lo else (hi if v > hi else v)


def ort_add(a, b, ra, rb, fixed, lo: int, hi: int, dtype) -> np.ndarray:
    out = np.empty(a.shape, dtype=dtype)
    _ort_add(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1), np.float64(ra),
             np.float64(rb), np.float64(fixed), lo, hi, out.reshape(-1))
    return out
