"""Numba twins of ``qsim.kernels.elementwise`` (same signatures, same bytes). Parameters (Q31
multipliers, lookup tables) are derived by the numpy module; only the per-element work is compiled."""
from __future__ import annotations

import numpy as np
from numba import njit

from qsim.kernels import elementwise as ref
from qsim.numerics.requant_jit import gemmlowp_code, gemmlowp_mul
from qsim.numerics.rounding_jit import (clamp, multiply_by_quantized_multiplier, round_half_away, round_half_even,
                                       single_rounding_multiply)


@njit(cache=True, inline="always")
def _add_one(a, b, m, zo, lo, hi, single, fits):
    """LiteRT ADD of one code pair (int64), ``m`` = ``tflite_add_params`` as a tuple. ``single``: the
    inputs scaled with single rounding (the optimized kernel's 16-element vectors), else gemmlowp's
    double rounding. ``fits``: see ``_add_kernel``; both flags are constants of the calling loop."""
    x = (a - m[7]) << m[6]
    y = (b - m[8]) << m[6]
    if single:
        raw = single_rounding_multiply(x, m[0], m[1]) + single_rounding_multiply(y, m[2], m[3])
    elif fits:
        raw = gemmlowp_mul(x, m[0], m[1]) + gemmlowp_mul(y, m[2], m[3])
    else:
        raw = multiply_by_quantized_multiplier(x, m[0], m[1]) + multiply_by_quantized_multiplier(y, m[2], m[3])
    if fits:
        return gemmlowp_code(raw, m[4], m[5], zo, lo, hi)
    return clamp(multiply_by_quantized_multiplier(raw, m[4], m[5]) + zo, lo, hi)


@njit(cache=True)
def _add_kernel(a, b, p, zp1, zp2, zp_out, qmin, qmax, optimized, fits, out):
    """out[i] = LiteRT ADD of a[i], b[i] (flat, same size; any integer types, ``out`` too), ``p`` from
    ``elementwise.tflite_add_params``. ``optimized``: LiteRT's builtin kernel (elements in full
    16-element vectors scale their inputs with single rounding, the size % 16 tail as the
    reference); else the reference kernel (gemmlowp double rounding throughout): a loop for the
    vectors and one for the tail, so that neither tests the position.

    ``fits`` (``add_fits_int32``): every shifted input and the sum of the scaled inputs fit int32,
    where ``requant_jit.gemmlowp_mul`` (selects only, and a wrap to int32 before every multiply) is
    the same function as ``multiply_by_quantized_multiplier`` (branches; a wrap only on a left
    shift): the loops vectorize. Otherwise the branchy forms, on the same int64 values: beyond int32
    (zero points outside the storage type) they keep this kernel's former results, where the numpy
    spec ``elementwise.add_tflite`` wraps as ``gemmlowp_mul`` does (tests/kernels/test_add_tflite.py)."""
    n = a.size
    nvec = n - n % 16 if optimized else 0
    m = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], np.int64(zp1), np.int64(zp2))
    zo, lo, hi = np.int64(zp_out), np.int64(qmin), np.int64(qmax)
    if fits:
        for i in range(nvec):
            out[i] = _add_one(np.int64(a[i]), np.int64(b[i]), m, zo, lo, hi, True, True)
        for i in range(nvec, n):
            out[i] = _add_one(np.int64(a[i]), np.int64(b[i]), m, zo, lo, hi, False, True)
    else:
        for i in range(nvec):
            out[i] = _add_one(np.int64(a[i]), np.int64(b[i]), m, zo, lo, hi, True, False)
        for i in range(nvec, n):
            out[i] = _add_one(np.int64(a[i]), np.int64(b[i]), m, zo, lo, hi, False, False)


def add_fits_int32(dtype1, zp1: int, dtype2, zp2: int, left_shift: int) -> bool:
    """Whether ``_add_kernel`` may take its vectorizing loops for operands of these storage types and
    zero points: 8- or 16-bit codes, zero points in their range, so every shifted input
    (a - zp) << left_shift and the sum of the two scaled inputs (each at most half of it: TFLite's
    input multipliers are s_i / (2 max(s1, s2)) <= 1/2) fit int32, where ``gemmlowp_mul``'s wrap to
    int32 is the identity as in ``multiply_by_quantized_multiplier``."""
    for dtype, zp in ((dtype1, zp1), (dtype2, zp2)):
        dt = np.dtype(dtype)
        if dt.kind not in "iu" or dt.itemsize > 2:
            return False
        info = np.iinfo(dt)
        if not int(info.min) <= int(zp) <= int(info.max) or (int(info.max) - int(info.min)) << left_shift >= 1 << 31:
            return False
    return True


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


def _codes(x1, x2):
    """The operands broadcast and flattened in their own integer types (anything else as int64)."""
    a, b = (np.asarray(v) for v in (x1, x2))
    a, b = np.broadcast_arrays(*(v if v.dtype.kind in "iu" else v.astype(np.int64) for v in (a, b)))
    return np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(), a.shape


def _flat(x1, x2):
    a, b = np.broadcast_arrays(np.asarray(x1, np.int64), np.asarray(x2, np.int64))
    return np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(), a.shape


def add_tflite(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127, left_shift=20,
               kernels: str = "reference"):
    if kernels not in ("reference", "optimized"):
        raise ValueError(f"unknown ADD kernels {kernels!r}; known: reference, optimized")
    a, b, shape = _codes(x1, x2)
    p = ref.tflite_add_params(s1, s2, s_out, left_shift)
    out = np.empty(a.size, np.int64)
    _add_kernel(a, b, p, zp1, zp2, zp_out, qmin, qmax, kernels == "optimized",
                add_fits_int32(a.dtype, zp1, b.dtype, zp2, left_shift), out)
    return out.reshape(shape)


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
