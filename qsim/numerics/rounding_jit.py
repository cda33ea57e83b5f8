"""Numba scalar twins of the rounding primitives in ``qsim.numerics.rounding`` and ``requant_ref``:
the one compiled definition of each, shared by the requantization, elementwise and fast-path
kernels (element for element the same bytes as the numpy spec)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1


@njit(cache=True)
def wrap32(v):
    v = v & 0xFFFFFFFF
    if v >= 0x80000000:
        v -= 0x100000000
    return v


@njit(cache=True)
def _nearest(y, f, tie_up):
    """floor(y) = f rounded to the nearest integer of y; a tie goes up when ``tie_up``."""
    d = y - f
    return f + 1.0 if d > 0.5 or (d == 0.5 and tie_up) else f


@njit(cache=True)
def round_half_even(y):
    """Round a float64 to the nearest integer, ties to even (nearbyint in the default mode)."""
    f = math.floor(y)
    return _nearest(y, f, (f % 2.0) != 0.0)


@njit(cache=True)
def round_half_away(y):
    """Round a float64 to the nearest integer, ties away from zero (C round())."""
    return _nearest(y, math.floor(y), y > 0.0)


@njit(cache=True)
def fma_f32(b, r, a):
    """round_fp32(b * r + a) with one rounding (see requant_ref.fma_f32)."""
    p = np.float64(b) * np.float64(r)
    s = p + np.float64(a)
    bb = s - p
    err = (p - (s - bb)) + (np.float64(a) - bb)
    f = np.float32(s)
    lo = f
    if np.float64(f) > s:
        lo = np.nextafter(f, np.float32(-np.inf))
    hi = np.nextafter(lo, np.float32(np.inf))
    mid = (np.float64(lo) + np.float64(hi)) / 2.0
    if s == mid and err != 0.0:
        return hi if err > 0.0 else lo
    return f


@njit(cache=True)
def rounding_divide_by_pot(x, e):
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = mask >> 1
    if x < 0:
        thr += 1
    q = x >> e
    if rem > thr:
        q += 1
    return q


@njit(cache=True)
def clamp(r, lo, hi):
    if r < lo:
        return lo
    if r > hi:
        return hi
    return r


@njit(cache=True)
def requant_f32(raw, mult, zp, qmin, qmax):
    """The float32 requantization of one value: ``clamp(rne(fp32(raw * mult)) + zp)`` (onnxruntime
    MLAS, XNNPACK, qnnpack; ``requant_ref.float32_ref`` is the numpy spec). ``raw`` is the fp32
    accumulator (an int32 converted with cvtdq2ps, or fbgemm's fma with its float bias). ``np.rint``
    rounds ties to even (the default mode) and vectorizes."""
    v = np.float64(np.rint(np.float32(raw * mult))) + zp
    if v < qmin:
        return np.int64(qmin)
    if v > qmax:
        return np.int64(qmax)
    return np.int64(v)


@njit(cache=True, inline="always")
def f32_code(acc, mult, zp, lo, hi):
    """``requant_f32`` (clamp(rne(fp32(acc * mult)) + zp)) of an int32 accumulator in
    float32 lanes only: ``zp``, ``lo``, ``hi`` are float32 integers below 2^17, so ``rint(p) + zp`` is
    exact wherever it can land inside [lo, hi] (beyond 2^24 it is rounded, but clamps to the same
    bound), and the clamp on the float gives the clamped integer. Twice the lanes of float64."""
    v = np.rint(np.float32(np.float32(acc) * mult)) + zp
    return np.int32(min(max(v, lo), hi))


@njit(cache=True)
def multiply_by_quantized_multiplier(x, q, shift):
    """gemmlowp MultiplyByQuantizedMultiplier on one int32 value held in an int64."""
    a = wrap32(x << shift) if shift > 0 else x
    ab = a * q
    t = ab + (np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30)))
    h = (-((-t) >> 31)) if t < 0 else (t >> 31)
    if a == _I32_MIN and q == _I32_MIN:
        h = np.int64(_I32_MAX)
    return rounding_divide_by_pot(h, -shift if shift < 0 else 0)


@njit(cache=True)
def single_rounding_multiply(x, q, shift):
    """TFLITE_SINGLE_ROUNDING: ``(x * q + 2^(30 - shift)) >> (31 - shift)`` in 64 bits, once."""
    total = 31 - shift
    return (x * q + (np.int64(1) << (total - 1))) >> total
