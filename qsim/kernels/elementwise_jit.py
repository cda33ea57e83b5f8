"""Numba twins of ``qsim.kernels.elementwise`` (same signatures, same bytes). Parameters (Q31
multipliers, lookup tables) are derived by the numpy module; only the per-element work is compiled."""
from __future__ import annotations

import numpy as np
from numba import njit

from qsim.kernels import elementwise as ref
from qsim.numerics.rounding_jit import (clamp, multiply_by_quantized_multiplier, round_half_away, round_half_even,
                                       single_rounding_multiply)


@njit(cache=True)
def _add_kernel(a, b, p, zp1, zp2, zp_out, qmin, qmax, optimized):
    n = a.size
    out = np.empty(n, np.int64)
    nvec = n - n % 16 if optimized else 0
    for i in range(n):
        x = (a[i] - zp1) << p[6]
        y = (b[i] - zp2) << p[6]
        if i < nvec:
            raw = single_rounding_multiply(x, p[0], p[1]) + single_rounding_multiply(y, p[2], p[3])
        else:
            raw = multiply_by_quantized_multiplier(x, p[0], p[1]) + multiply_by_quantized_multiplier(y, p[2], p[3])
        out[i] = clamp(multiply_by_quantized_multiplier(raw, p[4], p[5]) + zp_out, qmin, qmax)
    return out


@njit(cache=True)
def _mul_kernel(a, b, q, shift, zp1, zp2, zp_out, qmin, qmax):
    out = np.empty(a.size, np.int64)
    for i in range(a.size):
        out[i] = clamp(multiply_by_quantized_multiplier((a[i] - zp1) * (b[i] - zp2), q, shift) + zp_out, qmin, qmax)
    return out


@njit(cache=True)
def _xnn_add_kernel(a, b, p, zp_out, qmin, qmax):
    out = np.empty(a.size, np.int64)
    for i in range(a.size):
        out[i] = clamp(((p[2] + a[i] * p[0] + b[i] * p[1]) >> p[3]) + zp_out, qmin, qmax)
    return out


@njit(cache=True)
def _xnn_mul_kernel(a, b, scale, zp1, zp2, zp_out, qmin, qmax):
    out = np.empty(a.size, np.int64)
    lo, hi = float(qmin - zp_out - 1), float(qmax - zp_out + 1)
    for i in range(a.size):
        y = np.float64(np.float32(np.float32((a[i] - zp1) * (b[i] - zp2)) * scale))
        out[i] = clamp(np.int64(clamp(round_half_even(y), lo, hi)) + zp_out, qmin, qmax)
    return out


@njit(cache=True)
def _lut_kernel(x, table, offset):
    out = np.empty(x.size, np.int64)
    for i in range(x.size):
        out[i] = table[x[i] - offset]
    return out


@njit(cache=True)
def _softmax_kernel(x, table, s_out, zp_out, qmin, qmax):
    rows, n = x.shape
    out = np.empty((rows, n), np.int64)
    for r in range(rows):
        mx = x[r, 0]
        for j in range(n):
            mx = max(mx, x[r, j])
        total = np.float32(0.0)
        for j in range(n):
            total = np.float32(total + table[255 - mx + x[r, j]])
        inv = np.float32(np.float32(1.0) / np.float32(total * s_out))
        for j in range(n):
            v = np.float64(np.float32(table[255 - mx + x[r, j]] * inv))
            out[r, j] = clamp(np.int64(round_half_away(v)) + zp_out, qmin, qmax)
    return out


def _flat(x1, x2):
    a, b = np.broadcast_arrays(np.asarray(x1, np.int64), np.asarray(x2, np.int64))
    return np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(), a.shape


def add_tflite(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127, left_shift=20,
               kernels: str = "reference"):
    if kernels not in ("reference", "optimized"):
        raise ValueError(f"unknown ADD kernels {kernels!r}; known: reference, optimized")
    a, b, shape = _flat(x1, x2)
    p = ref.tflite_add_params(s1, s2, s_out, left_shift)
    return _add_kernel(a, b, p, zp1, zp2, zp_out, qmin, qmax, kernels == "optimized").reshape(shape)


def mul_tflite(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127):
    a, b, shape = _flat(x1, x2)
    q, shift = ref.tflite_mul_params(s1, s2, s_out)
    return _mul_kernel(a, b, q, shift, zp1, zp2, zp_out, qmin, qmax).reshape(shape)


def add_xnnpack(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127):
    a, b, shape = _flat(x1, x2)
    return _xnn_add_kernel(a, b, ref.xnnpack_add_params(s1, zp1, s2, zp2, s_out), zp_out, qmin,
                           qmax).reshape(shape)


def mul_xnnpack(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127):
    a, b, shape = _flat(x1, x2)
    scale = np.float32(np.float32(np.float32(s1) * np.float32(s2)) / np.float32(s_out))
    return _xnn_mul_kernel(a, b, scale, zp1, zp2, zp_out, qmin, qmax).reshape(shape)


def activation_tflite(fn: str, x, s_in, zp_in, s_out, zp_out, kernels: str = "tflite"):
    x = np.asarray(x, np.int64)
    table = ref.lut_table(fn, s_in, zp_in, s_out, zp_out, kernels)
    return _lut_kernel(np.ascontiguousarray(x).ravel(), table, -128).reshape(x.shape)


def softmax_tflite(x, s_in, s_out, zp_out, beta: float = 1.0, qmin=-128, qmax=127):
    x = np.asarray(x, np.int64)
    table = ref.softmax_table(s_in, beta)
    out = _softmax_kernel(np.ascontiguousarray(x.reshape(-1, x.shape[-1])), table, np.float32(s_out),
                          zp_out, qmin, qmax)
    return out.reshape(x.shape)
