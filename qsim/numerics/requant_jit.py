"""Numba requantization kernels, element for element the same as ``requant_ref`` (tests demand
byte equality). One compiled entry point, ``requant_rows``, dispatches on the policy's kind code so
that the whole module costs one compilation (cached on disk).

``requant_run`` is the same arithmetic on one run of accumulators, written straight into the
output's storage type: the matrix kernels' epilogues call it while a block of accumulators is
still in cache (``qsim.kernels.vnni_epilogue.epilogue_q``), with the parameters ``requant_spec`` packs."""
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
    rq = (kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult, shift, zp, qmin, qmax)
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


@njit(cache=True, inline="always")
def gemmlowp_code(a, q, sh, zp, qmin, qmax):
    """The GEMMLOWP kind of ``_one`` (``rounding_jit.multiply_by_quantized_multiplier``: SRDHM with
    its nudge and truncating division, then RoundingDivideByPOT), written with selects only."""
    x = _wrap32_nb(a << max(sh, 0))
    e = max(-sh, 0)
    ab = x * q
    t = ab + (np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30)))
    h = (t >> 31) if t >= 0 else -((-t) >> 31)
    h = np.int64(_I32_MAX) if (x == -(1 << 31)) & (q == -(1 << 31)) else h
    mask = (np.int64(1) << e) - 1
    v = (h >> e) + ((h & mask) > ((mask >> 1) + (h < 0))) + zp
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
    a ``requant_spec`` tuple. The float32 kind (the common one) has its own loops: they vectorize."""
    kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult, shift, zp, qmin, qmax = rq
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
    elif kind == KIND_NEON:
        for i in range(n):
            c = ch + i * step
            dst[i] = neon_code(np.int64(src[i]), qmult[c], shift[c], zp, qmin, qmax)
    elif kind == KIND_GEMMLOWP:
        for i in range(n):
            c = ch + i * step
            dst[i] = gemmlowp_code(np.int64(src[i]), qmult[c], shift[c], zp, qmin, qmax)
    else:
        for i in range(n):
            dst[i] = _one(np.int64(src[i]), ch + i * step, kind, fmult, fbias, frcp, s_in, s_w, s_out, qmult,
                          shift, zp, qmin, qmax)


def requant_spec(policy, s_in, s_w, s_out, zero_point: int, qmin: int, qmax: int, channels: int,
                 bias=None) -> tuple:
    """The parameters of ``requant_run`` for ``channels`` output channels: the same numbers
    ``Policy.requantize`` derives (per-tensor scales repeated per channel, which gives each
    channel the per-tensor value; fbgemm's float ``bias`` term as it forms it)."""
    pol = get_policy(policy)
    per_tensor = np.size(s_w) == 1
    sw = np.asarray(s_w, np.float32).reshape(-1)
    if per_tensor:
        sw = np.full(channels, sw[0], np.float32)
    p = pol.params(s_in, sw, s_out)
    fbias, frcp = np.zeros(channels, np.float32), np.ones(channels, np.float32)
    if bias is not None:
        fbias, frcp = fbgemm_bias_term(bias, p["fatw"], per_tensor=per_tensor)
    return (kind_code(pol.kind), p["fmult"], np.ascontiguousarray(fbias, np.float32),
            np.ascontiguousarray(frcp, np.float32), p["s_in"], p["s_w"], p["s_out"],
            p["qmult"].astype(np.int64), p["shift"].astype(np.int64), int(zero_point), int(qmin), int(qmax))
