"""Numba requantization kernels, element for element the same as ``requant_ref`` (tests demand
byte equality). One compiled entry point, ``requant_rows``, dispatches on the policy's kind code so
that the whole module costs one compilation (cached on disk)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from qsim.numerics.policies import RequantKind

# The one place where a requantization kind becomes the integer the compiled kernel switches on.
KIND_FLOAT32, KIND_FLOAT32_BIAS, KIND_GEMMLOWP, KIND_NEON, KIND_SINGLE, KIND_CMSIS, KIND_FLOAT64 = range(7)
KIND_CODES = {RequantKind.FLOAT32: KIND_FLOAT32, RequantKind.FLOAT32_BIAS: KIND_FLOAT32_BIAS,
              RequantKind.GEMMLOWP: KIND_GEMMLOWP, RequantKind.NEON: KIND_NEON, RequantKind.SINGLE: KIND_SINGLE,
              RequantKind.CMSIS: KIND_CMSIS, RequantKind.FLOAT64: KIND_FLOAT64}


def kind_code(kind: RequantKind) -> int:
    return KIND_CODES[RequantKind(kind)]
_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1


@njit(cache=True)
def _wrap32(v):
    v = v & 0xFFFFFFFF
    if v >= 0x80000000:
        v -= 0x100000000
    return v


@njit(cache=True)
def _rne(y):
    """Round a float64 to the nearest integer, ties to even (nearbyint in the default mode)."""
    f = math.floor(y)
    d = y - f
    if d > 0.5 or (d == 0.5 and (f % 2.0) != 0.0):
        f += 1.0
    return f


@njit(cache=True)
def _half_away(y):
    f = math.floor(y)
    d = y - f
    if d > 0.5 or (d == 0.5 and y > 0.0):
        f += 1.0
    return f


@njit(cache=True)
def _fma_f32(b, r, a):
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
def _rdbpot(x, e):
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
def _clamp_float(r, lo, hi):
    if r < lo:
        return lo
    if r > hi:
        return hi
    return r


@njit(cache=True)
def _one(a, c, kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult, shift, zp, qmin, qmax):
    lo = float(qmin - zp - 1)
    hi = float(qmax - zp + 1)
    if kind == KIND_FLOAT32 or kind == KIND_FLOAT32_BIAS:
        raw = np.float32(a)
        if kind == KIND_FLOAT32_BIAS:
            raw = _fma_f32(fbias[c], frcp[c], raw)
        y = np.float64(np.float32(raw * fmult[c]))
        v = np.int64(_clamp_float(_rne(y), lo, hi))
    elif kind == KIND_FLOAT64:
        y = float(a) * s_in[c] * s_w[c] / s_out[c]
        r = _half_away(y)
        v32 = np.int64(r) if abs(r) < 2.0 ** 31 else np.int64(_I32_MIN)  # cvttsd2si: INT32_MIN outside
        v = _wrap32(v32 + zp) - zp  # the zero point is added in int32 (wraps) below
    elif kind == KIND_SINGLE:
        total = 31 - shift[c]
        v = (a * qmult[c] + (np.int64(1) << (total - 1))) >> total
    else:
        sh = shift[c]
        x = a
        if sh > 0:
            x = _wrap32(a << sh)
        r = -sh if sh < 0 else 0
        b = qmult[c]
        ab = x * b
        if kind == KIND_GEMMLOWP:
            nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
            t = ab + nudge
            h = (-((-t) >> 31)) if t < 0 else (t >> 31)  # C division: toward zero
            if x == _I32_MIN and b == _I32_MIN:
                h = np.int64(_I32_MAX)
            v = _rdbpot(h, r)
        elif kind == KIND_NEON:
            h = (ab + np.int64(1 << 30)) >> 31
            if h > _I32_MAX:
                h = np.int64(_I32_MAX)
            v = (h + ((np.int64(1) << (r - 1)) if r > 0 else np.int64(0))) >> r
        else:
            h = _wrap32((ab + np.int64(1 << 30)) >> 31)
            v = _rdbpot(h, r)
    v += zp
    if v < qmin:
        v = np.int64(qmin)
    if v > qmax:
        v = np.int64(qmax)
    return v


@njit(cache=True)
def requant_rows(acc, kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult, shift, zp, qmin, qmax):
    """acc: int64 (N, C); parameter vectors of length C. Returns int64 (N, C)."""
    n, ch = acc.shape
    out = np.empty((n, ch), dtype=np.int64)
    for i in range(n):
        for c in range(ch):
            out[i, c] = _one(acc[i, c], c, kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult, shift,
                             zp, qmin, qmax)
    return out
