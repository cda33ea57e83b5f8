"""Numba requantization kernels, element for element the same as ``requant_ref`` (tests demand
byte equality). One compiled entry point, ``requant_rows``, dispatches on the policy's kind code so
that the whole module costs one compilation (cached on disk).

``requant_run`` is the same arithmetic on one run of accumulators, written straight into the
output's storage type: the matrix kernels' epilogues call it while a block of accumulators is
still in cache (``qsim.kernels.vnni_epilogue.epilogue_q``), with the parameters ``requant_spec`` packs.

The NEON kind (LiteRT's optimized CONV_2D / FULLY_CONNECTED / DEPTHWISE_CONV_2D) also has a
single-shift form, ``neon_fx`` with the per-channel terms of ``neon_terms``: the two roundings
(vqrdmulh's 2^31 and vrshl's 2^r) folded into one add and one arithmetic shift, the same integer
wherever ``neon_terms`` admits the channel (the proof is there); runs along the channels use it."""
from __future__ import annotations

import numpy as np
from numba import njit

from qsim.numerics.policies import RequantKind, fbgemm_bias_term, get_policy
from qsim.numerics.rounding_jit import (clamp, fma_f32, multiply_by_quantized_multiplier, requant_f32,
                                       round_half_away, rounding_divide_by_pot, single_rounding_multiply, wrap32)

# The one place where a requantization kind becomes the integer the compiled kernel switches on.
KIND_FLOAT32, KIND_FLOAT32_BIAS, KIND_GEMMLOWP, KIND_NEON, KIND_SINGLE, KIND_CMSIS, KIND_FLOAT64 = range(7)
KIND_CODES = {RequantKind.FLOAT32: KIND_FLOAT32, RequantKind.FLOAT32_BIAS: KIND_FLOAT32_BIAS,
              RequantKind.GEMMLOWP: KIND_GEMMLOWP, RequantKind.NEON: KIND_NEON, RequantKind.SINGLE: KIND_SINGLE,
              RequantKind.CMSIS: KIND_CMSIS, RequantKind.FLOAT64: KIND_FLOAT64}


def kind_code(kind: RequantKind) -> int:
    return KIND_CODES[RequantKind(kind)]


_I32_MAX = (1 << 31) - 1


@njit(cache=True, inline="always")
def _one(a, c, kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult, shift, zp, qmin, qmax):
    lo = float(qmin - zp - 1)
    hi = float(qmax - zp + 1)
    if kind == KIND_FLOAT32 or kind == KIND_FLOAT32_BIAS:
        raw = np.float32(a)
        if kind == KIND_FLOAT32_BIAS:
            raw = fma_f32(fbias[c], frcp[c], raw)
        return requant_f32(raw, fmult[c], zp, qmin, qmax)
    elif kind == KIND_FLOAT64:
        y = float(a) * s_in[c] * s_w[c] / s_out[c]
        r = round_half_away(y)
        v32 = np.int64(r) if abs(r) < 2.0 ** 31 else np.int64(-(1 << 31))  # cvttsd2si: INT32_MIN outside
        v = wrap32(v32 + zp) - zp  # the zero point is added in int32 (wraps) below
    elif kind == KIND_SINGLE:
        v = single_rounding_multiply(a, qmult[c], shift[c])
    elif kind == KIND_GEMMLOWP:
        v = multiply_by_quantized_multiplier(a, qmult[c], shift[c])
    else:  # NEON, CMSIS
        sh = shift[c]
        x = a
        if sh > 0:
            x = wrap32(a << sh)
        r = -sh if sh < 0 else 0
        b = qmult[c]
        ab = x * b
        if kind == KIND_NEON:
            h = (ab + np.int64(1 << 30)) >> 31
            if h > _I32_MAX:
                h = np.int64(_I32_MAX)
            v = (h + ((np.int64(1) << (r - 1)) if r > 0 else np.int64(0))) >> r
        else:
            h = wrap32((ab + np.int64(1 << 30)) >> 31)
            v = rounding_divide_by_pot(h, r)
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
    rq = (kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult, shift, zp, qmin, qmax, neon_terms(kind, qmult, shift))
    for i in range(n):
        requant_run(acc[i], 0, 1, rq, out[i])
    return out


@njit(cache=True, inline="always")
def _wrap32_nb(v):
    """``wrap32`` without a branch (vectorizes)."""
    return ((v + np.int64(0x80000000)) & np.int64(0xFFFFFFFF)) - np.int64(0x80000000)


@njit(cache=True, inline="always")
def neon_code(a, q, sh, zp, qmin, qmax):
    """The NEON kind of ``_one`` (vqrdmulh, then a rounding shift), written without branches."""
    x = _wrap32_nb(a << max(sh, 0))
    r = max(-sh, 0)
    h = min((x * q + np.int64(1 << 30)) >> 31, np.int64(_I32_MAX))
    v = ((h + ((np.int64(1) << r) >> 1)) >> r) + zp
    return min(max(v, np.int64(qmin)), np.int64(qmax))


@njit(cache=True)
def neon_terms(kind, qmult, shift):
    """The per-channel terms of ``neon_fx``, int64 (4, C): q, 32 + left shift, 31 + r, and
    2^30 + ((1 << r) >> 1) * 2^31 (r = max(-shift, 0)); (0, C) for another kind, or when a channel
    is outside the range where the single shift is proved equal to ``neon_code``:
    q in (-2^31, 2^31), left shift <= 31 (32 shifts every bit out: ``neon_code`` gives 0, and
    a << 64 is undefined), r <= 31.

    Proof, with P = x * q (x, q int32, q != -2^31, so |P| <= 2^31 (2^31 - 1) = 2^62 - 2^31):
    ``neon_code``'s h = (P + 2^30) >> 31 < 2^31, so its saturation at INT32_MAX never acts; then
    with b = (1 << r) >> 1 (an integer), floor((floor(A / 2^31) + b) / 2^r) = floor((A + b 2^31) / 2^(31 + r))
    (floor(floor(y) / m) = floor(y / m) for an integer m > 0), which is ``neon_fx`` with A = P + 2^30;
    |A + b 2^31| <= 2^62 - 2^30 + 2^61 < 2^63: no int64 overflow. The wrap of x << ls to int32 is
    (x << (32 + ls)) >> 32 in int64 (the low 32 bits of x << ls, sign-extended)."""
    c = qmult.shape[0]
    if kind != KIND_NEON:
        return np.zeros((0, c), dtype=np.int64)
    out = np.empty((4, c), dtype=np.int64)
    for j in range(c):
        q, sh = np.int64(qmult[j]), np.int64(shift[j])
        r = max(-sh, 0)
        if not (-_I32_MAX <= q <= _I32_MAX and sh <= 31 and r <= 31):
            return np.zeros((0, c), dtype=np.int64)
        out[0, j] = q
        out[1, j] = 32 + max(sh, 0)
        out[2, j] = 31 + r
        out[3, j] = np.int64(1 << 30) + (((np.int64(1) << r) >> 1) << 31)
    return out


@njit(cache=True, inline="always")
def neon_fx(a, q, ls, s, rnd, zp, qmin, qmax):
    """``neon_code`` in one rounding shift, with the terms ``neon_terms`` gives a channel (see the
    proof there): fewer vector instructions per lane, and no saturation."""
    x = (a << ls) >> 32
    v = ((x * q + rnd) >> s) + zp
    return min(max(v, np.int64(qmin)), np.int64(qmax))


@njit(cache=True, inline="always")
def gemmlowp_mul(a, q, sh):
    """``rounding_jit.multiply_by_quantized_multiplier`` (gemmlowp MultiplyByQuantizedMultiplier:
    SRDHM with its nudge and truncating division, then RoundingDivideByPOT) written with selects
    only, so that the loops calling it vectorize."""
    x = _wrap32_nb(a << max(sh, 0))
    e = max(-sh, 0)
    ab = x * q
    t = ab + (np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30)))
    h = (t >> 31) if t >= 0 else -((-t) >> 31)
    h = np.int64(_I32_MAX) if (x == -(1 << 31)) & (q == -(1 << 31)) else h
    mask = (np.int64(1) << e) - 1
    return (h >> e) + ((h & mask) > ((mask >> 1) + (h < 0)))


@njit(cache=True, inline="always")
def gemmlowp_code(a, q, sh, zp, qmin, qmax):
    """The GEMMLOWP kind of ``_one``: ``gemmlowp_mul``, the zero point, the clamp."""
    v = gemmlowp_mul(a, q, sh) + zp
    return min(max(v, np.int64(qmin)), np.int64(qmax))


@njit(cache=True, inline="always")
def float32_code(acc, mult, zp, flo, fhi):
    """``requant_f32`` of an integer accumulator with the clamp on the float value (the same
    integer: rint gives an integer-valued float and the bounds are integers): no branches, so the
    loops that call it vectorize. ``flo``/``fhi``: qmin/qmax as float64."""
    v = np.float64(np.rint(np.float32(np.float32(acc) * mult))) + zp
    return np.int64(min(max(v, flo), fhi))


@njit(cache=True, inline="always")
def requant_run(src, ch, step, rq, dst):
    """dst[i] = the requantization of the int32 value src[i] at channel ``ch + i * step`` (step 0:
    a run of one channel, 1: a run along the channels), clamped and stored in dst's type. ``rq`` is
    a ``requant_spec`` tuple. The float32 and fixed-point kinds have loops of their own, with the
    parameters of one channel or of contiguous channels (no strided gathers): they vectorize."""
    kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult, shift, zp, qmin, qmax, fx = rq
    n = dst.size
    if kind == KIND_FLOAT32 and step == 0:
        m = fmult[ch]
        for i in range(n):
            dst[i] = requant_f32(np.float32(src[i]), m, zp, qmin, qmax)
    elif kind == KIND_FLOAT32:
        mv = fmult[ch:ch + n]
        flo, fhi = np.float64(qmin), np.float64(qmax)
        for i in range(n):
            dst[i] = float32_code(src[i], mv[i], zp, flo, fhi)
    elif kind == KIND_NEON and step == 1 and fx.shape[0] == 4:
        fq, fl, fs, fr = fx[0, ch:ch + n], fx[1, ch:ch + n], fx[2, ch:ch + n], fx[3, ch:ch + n]
        for i in range(n):
            dst[i] = neon_fx(np.int64(src[i]), fq[i], fl[i], fs[i], fr[i], zp, qmin, qmax)
    elif (kind == KIND_NEON or kind == KIND_GEMMLOWP) and step == 1:
        qv, sv = qmult[ch:ch + n], shift[ch:ch + n]
        if kind == KIND_NEON:
            for i in range(n):
                dst[i] = neon_code(np.int64(src[i]), qv[i], sv[i], zp, qmin, qmax)
        else:
            for i in range(n):
                dst[i] = gemmlowp_code(np.int64(src[i]), qv[i], sv[i], zp, qmin, qmax)
    elif kind == KIND_NEON or kind == KIND_GEMMLOWP:   # one channel: its parameters hoisted
        q1, s1 = qmult[ch], shift[ch]
        if kind == KIND_NEON:
            for i in range(n):
                dst[i] = neon_code(np.int64(src[i]), q1, s1, zp, qmin, qmax)
        else:
            for i in range(n):
                dst[i] = gemmlowp_code(np.int64(src[i]), q1, s1, zp, qmin, qmax)
    else:
        for i in range(n):
            dst[i] = _one(np.int64(src[i]), ch + i * step, kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult,
                          shift, zp, qmin, qmax)


def requant_spec(policy, s_in, s_w, s_out, zero_point: int, qmin: int, qmax: int, channels: int,
                 bias=None) -> tuple:
    """The parameters of ``requant_run`` for ``channels`` output channels: the same numbers
    ``Policy.requantize`` derives (per-tensor scales repeated per channel, which gives each
    channel the per-tensor value; fbgemm's float ``bias`` term as it forms it), and last the
    NEON kind's single-shift terms (``neon_terms``; an empty array for the other kinds).
    Kernels read the first twelve by index: new entries go at the end."""
    pol = get_policy(policy)
    per_tensor = np.size(s_w) == 1
    sw = np.asarray(s_w, np.float32).reshape(-1)
    if per_tensor:
        sw = np.full(channels, sw[0], np.float32)
    p = pol.params(s_in, sw, s_out)
    fbias, frcp = np.zeros(channels, np.float32), np.ones(channels, np.float32)
    if bias is not None:
        fbias, frcp = fbgemm_bias_term(bias, p["fatw"], per_tensor=per_tensor)
    kind, qmult, shift = kind_code(pol.kind), p["qmult"].astype(np.int64), p["shift"].astype(np.int64)
    return (kind, p["fmult"], np.ascontiguousarray(fbias, np.float32),
            np.ascontiguousarray(frcp, np.float32), p["s_in"], p["s_w"], p["s_out"],
            qmult, shift, int(zero_point), int(qmin), int(qmax), _neon_terms(kind, qmult, shift))


def _neon_terms(kind, qmult, shift) -> np.ndarray:
    """``neon_terms``, its empty answer for another kind given here: a jitted call costs a cold
    process the function's load from numba's cache (~4 ms) in a model with no NEON requantization."""
    if kind != KIND_NEON:
        return np.zeros((0, qmult.shape[0]), dtype=np.int64)
    return neon_terms(kind, qmult, shift)
