"""Numpy reference requantization kernels: the executable spec of each policy.

Every kernel takes ``acc`` as int64 of shape (N, C) (C = output channels, 1 per tensor) and
per-channel parameter vectors of length C, and returns int64 outputs already clamped to
[qmin, qmax]. ``qsim.numerics.requant_jit`` has the numba twins; tests demand byte equality.
"""
from __future__ import annotations

import numpy as np

from qsim.numerics.multipliers import INT32_MAX, INT32_MIN
from qsim.numerics.rounding import round_to_int, wrap


def _trunc_div_pow2(v: np.ndarray, s: int) -> np.ndarray:
    """C integer division by 2^s (rounds toward zero)."""
    q = np.abs(v) >> s
    return np.where(v < 0, -q, q)


def _finish(y: np.ndarray, zp: int, qmin: int, qmax: int) -> np.ndarray:
    return np.clip(y + np.int64(zp), qmin, qmax).astype(np.int64)


def float32_ref(acc, mult, zp, qmin, qmax):
    """``rne(fp32(fp32(acc) * m)) + zp`` (onnxruntime MLAS, XNNPACK, PyTorch qnnpack). The int32 ->
    fp32 conversion rounds beyond 2^24, as the runtimes' cvtdq2ps does."""
    y = acc.astype(np.float32) * mult.astype(np.float32)[None, :]
    r = np.rint(y.astype(np.float64))
    r = np.clip(r, qmin - zp - 1, qmax - zp + 1)  # runtimes clamp in float first; same result
    return _finish(r.astype(np.int64), zp, qmin, qmax)


def fma_f32(b, r, a) -> np.ndarray:
    """fp32 fused multiply-add ``round_fp32(b * r + a)`` with one rounding, for fp32 inputs.

    The product of two fp32 is exact in float64; the float64 sum may round, so the TwoSum error
    term decides the rare case where that sum sits exactly between two fp32 neighbours."""
    b, r, a = (np.asarray(v, np.float32).astype(np.float64) for v in (b, r, a))
    p = b * r
    s = p + a
    bb = s - p
    err = (p - (s - bb)) + (a - bb)
    f = s.astype(np.float32)
    lo = np.where(f.astype(np.float64) > s, np.nextafter(f, np.float32(-np.inf)), f)
    hi = np.nextafter(lo, np.float32(np.inf))
    mid = (lo.astype(np.float64) + hi.astype(np.float64)) / 2
    at_mid = (s == mid) & (err != 0)
    return np.where(at_mid, np.where(err > 0, hi, lo), f).astype(np.float32)


def float32_bias_ref(acc, mult, fb, fr, zp, qmin, qmax):
    """fbgemm ``ReQuantizeOutput`` with a float bias: ``raw_f = fma(fb, fr, fp32(acc))`` (see
    ``policies.fbgemm_bias_term``), then ``lrintf(raw_f * C_multiplier) + zp``, in fp32."""
    raw = fma_f32(fb[None, :], fr[None, :], acc.astype(np.float32))
    y = raw * mult.astype(np.float32)[None, :]
    r = np.clip(np.rint(y.astype(np.float64)), qmin - zp - 1, qmax - zp + 1)
    return _finish(r.astype(np.int64), zp, qmin, qmax)


def _left(acc, shift):
    """``x * (1 << left_shift)`` on int32 (wraps like the two's complement hardware)."""
    return wrap(acc << np.maximum(shift, 0)[None, :], 32)


def _rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT: ties away from zero."""
    mask = (np.int64(1) << exponent) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> exponent) + (rem > thr)


def multiply_by_quantized_multiplier(x, qmult, shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier`` (gemmlowp double rounding) on int64 arrays holding
    int32 values; broadcasts. No zero point, no clamp."""
    x = np.asarray(x, np.int64)
    qmult, shift = np.asarray(qmult, np.int64), np.asarray(shift, np.int64)
    a = wrap(x << np.maximum(shift, 0), 32)
    ab = a * qmult
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    hi = _trunc_div_pow2(ab + nudge, 31)
    hi = np.where((a == INT32_MIN) & (qmult == INT32_MIN), INT32_MAX, hi)
    return _rdbpot(hi, np.maximum(-shift, 0))


def gemmlowp_ref(acc, qmult, shift, zp, qmin, qmax):
    """TFLite reference MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul, then
    RoundingDivideByPOT (ties away from zero). The first rounding is ties toward +inf, not away:
    the nudge for a negative product is 1 - 2^30 and C's division truncates, so -1.5 -> -1."""
    a = _left(acc, shift)
    b = qmult[None, :]
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    hi = _trunc_div_pow2(ab + nudge, 31)
    hi = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, hi)
    return _finish(_rdbpot(hi, np.maximum(-shift, 0)[None, :]), zp, qmin, qmax)


def neon_ref(acc, qmult, shift, zp, qmin, qmax):
    """NEON ``vqrdmulh`` (ties toward +inf, saturating) then ``vrshl`` by -r (ties toward +inf)."""
    a = _left(acc, shift)
    b = qmult[None, :]
    hi = (a * b + np.int64(1 << 30)) >> 31
    hi = np.minimum(hi, INT32_MAX)
    r = np.maximum(-shift, 0)[None, :]
    rnd = np.where(r > 0, np.int64(1) << np.maximum(r - 1, 0), 0)
    return _finish((hi + rnd) >> r, zp, qmin, qmax)


def single_ref(acc, qmult, shift, zp, qmin, qmax):
    """TFLITE_SINGLE_ROUNDING: ``(x * q + 2^(30 - shift)) >> (31 - shift)`` in 64 bits, once."""
    total = 31 - shift[None, :]
    y = (acc * qmult[None, :] + (np.int64(1) << (total - 1))) >> total
    return _finish(y, zp, qmin, qmax)


def cmsis_ref(acc, qmult, shift, zp, qmin, qmax):
    """CMSIS-NN ``arm_nn_requantize`` (default build): ``arm_nn_doubling_high_mult_no_sat`` adds
    2^30 and shifts right by 31 (ties toward +inf, as gemmlowp's SRDHM), then
    ``arm_nn_divide_by_power_of_two`` (ties away from zero). Identical to ``gemmlowp_ref`` except
    that it neither saturates INT32_MIN * INT32_MIN nor checks the int32 range: it wraps."""
    a = _left(acc, shift)
    hi = wrap((a * qmult[None, :] + np.int64(1 << 30)) >> 31, 32)
    return _finish(_rdbpot(hi, np.maximum(-shift, 0)[None, :]), zp, qmin, qmax)


def float64_ref(acc, s_in, s_w, s_out, zp, qmin, qmax):
    """Float64 path: ``round_half_away(double(acc) * s_in * s_w[c] / s_out)`` evaluated left to
    right in double (LiteRT reference FULLY_CONNECTED, float-scale overload)."""
    y = acc.astype(np.float64) * s_in[None, :] * s_w[None, :] / s_out[None, :]
    r = round_to_int(y, "half_away")
    inside = np.abs(r) < 2.0 ** 31  # the int32 cast (cvttsd2si) gives INT32_MIN outside, NaN too
    v = np.where(inside, np.where(inside, r, 0.0), -2.0 ** 31).astype(np.int64)
    v = (v + np.int64(zp) + 2 ** 31) % 2 ** 32 - 2 ** 31  # + zero point in int32 (wraps)
    return np.clip(v, qmin, qmax).astype(np.int64)
