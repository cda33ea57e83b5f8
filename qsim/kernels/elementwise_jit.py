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
def _add_one(a, b, m, zo, lo, hi, single):
    """LiteRT ADD of one code pair (int64), ``m`` as ``_add_kernel`` packs it. ``single``: the
    inputs scaled with single rounding (the optimized kernel's 16-element vectors), else gemmlowp's
    double rounding; a constant of the calling loop. ``gemmlowp_mul`` wraps its operand to int32
    before the multiply, as LiteRT's reference C does (an int32 variable) and as the numpy spec
    does; the single-rounding form takes the int64 value, as the spec's ``_single`` does (LiteRT's
    optimized vectors differ from both where (a - zp) << left_shift leaves int32: measured with
    int8 zero points of +-2000..5000, which LiteRT accepts)."""
    x = (a - m[7]) << m[6]
    y = (b - m[8]) << m[6]
    if single:
        raw = single_rounding_multiply(x, m[0], m[1]) + single_rounding_multiply(y, m[2], m[3])
    else:
        raw = gemmlowp_mul(x, m[0], m[1]) + gemmlowp_mul(y, m[2], m[3])
    if single and m[6] == 20:  # the 8-bit kernel's int16 lanes (elementwise.add_tflite): they wrap
        v = gemmlowp_mul(raw, m[4], m[5])
        v = ((((v + 32768) & 0xFFFF) - 32768 + zo + 32768) & 0xFFFF) - 32768
        return min(max(v, lo), hi)
    return gemmlowp_code(raw, m[4], m[5], zo, lo, hi)


@njit(cache=True)
def _add_kernel(a, b, p, zp1, zp2, zp_out, qmin, qmax, optimized, out):
    """out[i] = LiteRT ADD of a[i], b[i] (flat, same size; any integer types, ``out`` too), ``p`` from
    ``elementwise.tflite_add_params``: element for element the numpy spec ``elementwise.add_tflite``
    for every code, zero point and shift (tests/kernels/test_add_tflite.py). ``optimized``: LiteRT's
    builtin kernel (elements in full 16-element vectors scale their inputs with single rounding,
    the size % 16 tail as the reference); else the reference kernel (gemmlowp double rounding
    throughout): a loop for the vectors and one for the tail, so that neither tests the position.
    Both loops are selects only (``gemmlowp_mul``): they vectorize.

    Shifts the numpy spec defines and a 64-bit shift instruction does not (numpy gives 0 for a
    shift by 64 or more; x86 takes the count mod 64) are settled here, outside the loops: inputs
    shifted left by 64 or more are 0 (both products 0, every output the clamped zero point); the
    output multiplier's left shift is capped at 32, which leaves the same low 32 bits (none) that
    ``gemmlowp_mul`` keeps."""
    n = a.size
    nvec = n - n % 16 if optimized else 0
    m = (p[0], p[1], p[2], p[3], p[4], min(p[5], np.int64(32)), p[6], np.int64(zp1), np.int64(zp2))
    zo, lo, hi = np.int64(zp_out), np.int64(qmin), np.int64(qmax)
    if p[6] >= 64:
        out[:] = min(max(zo, lo), hi)
        return
    for i in range(nvec):
        out[i] = _add_one(np.int64(a[i]), np.int64(b[i]), m, zo, lo, hi, True)
    for i in range(nvec, n):
        out[i] = _add_one(np.int64(a[i]), np.int64(b[i]), m, zo, lo, hi, False)


@njit(cache=True)
def _mul_kernel(a, b, q, shift, zp1, zp2, zp_out, qmin, qmax, nvec=0):
    """``elementwise.mul_tflite``; ``nvec``: the elements in the optimized kernel's full 16-element
    vectors (0: the reference kernel), whose int16 lanes saturate the product, then wrap adding zp_out."""
    out = np.empty(a.size, np.int64)
    for i in range(nvec):
        v = min(max(multiply_by_quantized_multiplier((a[i] - zp1) * (b[i] - zp2), q, shift), -32768), 32767)
        out[i] = clamp(((v + zp_out + 32768) & 0xFFFF) - 32768, qmin, qmax)
    for i in range(nvec, a.size):
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
    _add_kernel(a, b, p, zp1, zp2, zp_out, qmin, qmax, kernels == "optimized", out)
    return out.reshape(shape)


def mul_tflite(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127, kernels: str = "reference"):
    if kernels not in ("reference", "optimized"):
        raise ValueError(f"unknown MUL kernels {kernels!r}; known: reference, optimized")
    a, b, shape = _flat(x1, x2)
    q, shift = ref.tflite_mul_params(s1, s2, s_out)
    nvec = a.size - a.size % 16 if kernels == "optimized" else 0
    return _mul_kernel(a, b, q, shift, zp1, zp2, zp_out, qmin, qmax, nvec).reshape(shape)


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
