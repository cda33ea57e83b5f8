"""LiteRT's quantized HARD_SWISH (MobileNetV3's activation): int16 fixed point, no table.

``hardswish_tflite_params`` is ``HardSwishPrepare`` (tensorflow/lite/kernels/activations.cc):
the multipliers are fp32 quotients of the tensors' fp32 scales, ``hires = s_in / 128``,
``output = fp32(hires / s_out)``, ``reluish = fp32(hires / fp32(3 / 32768))``, each through
QuantizeMultiplier (Q31) and then narrowed to Q15 (``(q + 2^15) >> 16``, 32767 at the top).
Prepare fails (no runtime answer) where the output multiplier's exponent is positive, i.e.
``s_in / (128 s_out) >= 1``.

``hardswish_tflite`` is ``reference_ops::HardSwish`` on int16 lanes: the input offset shifted
left by 7, scaled to the output's (pre-shift) scale with gemmlowp's rounding doubling high
multiply; the "reluish" factor (x / 3 saturated to [-1, 1] in Q15, then mapped to [0, 1]) with
the same multiply, a saturating left shift split around it, or a rounding right shift; their
product with the truncating doubling high multiply; a rounding right shift; the output zero
point added in int16 (wrapping, as the C++ narrows); clamp to the storage type. The builtin
optimized kernel (LiteRT 2.3, x86) answers the same on every code measured: 200 random scale /
zero-point sets, 300 more over s_in 1e-9..1e4, 35 edge sets, 2,000 differential seeds. The
XNNPACK delegate does not take quantized HARD_SWISH (an int8 model keeps its HARD_SWISH node
after delegation, where an ADD becomes DELEGATE), so that policy runs the builtin kernel.
Not told apart by any case measured: the int16 mask of RoundingDivideByPOT for exponents of 16
and more (kept as the source computes it) and ties of the rounding high multiply (ties up vs
away from zero gave the same codes on 3,000 random sets).
"""
from __future__ import annotations

import numpy as np

from qsim.numerics.multipliers import quantize_multiplier

_F32 = np.float32
_I16_MIN, _I16_MAX = -(1 << 15), (1 << 15) - 1


def _q15(m) -> tuple[int, int]:
    """QuantizeMultiplier of an fp32 multiplier (widened to double), then
    DownScaleInt32ToInt16Multiplier: (q15, exponent)."""
    q, e = quantize_multiplier(float(_F32(m)))
    q, e = int(q[0]), int(e[0])
    q15 = _I16_MAX if q >= (1 << 31) - 1 - (1 << 15) else (q + (1 << 15)) >> 16
    return q15, e


def hardswish_tflite_params(s_in, s_out) -> tuple[int, int, int, int]:
    """(output_q15, output_exponent, reluish_q15, reluish_exponent) as HardSwishPrepare computes
    them; ``ValueError`` where Prepare fails (output exponent > 0)."""
    hires = _F32(_F32(1.0 / 128.0) * _F32(s_in))
    oq, oe = _q15(_F32(hires / _F32(s_out)))
    rq, re = _q15(_F32(hires / _F32(3.0 / 32768.0)))
    if oe > 0:
        raise ValueError(f"output multiplier exponent {oe} > 0 (s_in / s_out >= 128): LiteRT's "
                         "HardSwishPrepare fails")
    return oq, oe, rq, re


def _wrap16(v):
    return ((np.asarray(v, np.int64) + (1 << 15)) & 0xFFFF) - (1 << 15)


def _sat16(v):
    return np.clip(v, _I16_MIN, _I16_MAX)


def _srdhm16(a, b: int):
    """gemmlowp SaturatingRoundingDoublingHighMul on int16: (a*b + nudge) / 2^15, truncating
    division, nudge 2^14 (ab >= 0) or 1 - 2^14; -32768 * -32768 saturates to 32767."""
    ab = np.asarray(a, np.int64) * int(b)
    v = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(v >= 0, v >> 15, -((-v) >> 15))
    return np.where((np.asarray(a) == _I16_MIN) & (b == _I16_MIN), _I16_MAX, _wrap16(q))


def _sdhm16(a, b):
    """LiteRT's SaturatingDoublingHighMul (int16): a*b / 2^15 truncated toward zero."""
    ab = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    q = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    both_min = (np.asarray(a) == _I16_MIN) & (np.asarray(b) == _I16_MIN)
    return np.where(both_min, _I16_MAX, _wrap16(q))


def _rdbpot16(x, exponent: int):
    """gemmlowp RoundingDivideByPOT on int16 (ties away from zero). The mask is an int16: from an
    exponent of 16 it is all ones (every bit of x is "remainder"), as the template computes it."""
    x = np.asarray(x, np.int64)
    if exponent == 0:
        return x
    mask = int(_wrap16((1 << exponent) - 1))
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def _sat_left16(x, amount: int):
    return _sat16(np.asarray(x, np.int64) * (1 << amount))


def hardswish_tflite(x, s_in, zp_in, s_out, zp_out, qmin=-128, qmax=127):
    """LiteRT int8 / uint8 HARD_SWISH (all three kernel sets); int64 codes in [qmin, qmax]."""
    oq, oe, rq, re = hardswish_tflite_params(s_in, s_out)
    # (x - zp) * 2^7 fits int16 for 8-bit codes and in-range zero points (|x - zp| <= 255)
    hires = (np.asarray(x, np.int64) - int(zp_in)) * 128
    pre_out = _srdhm16(hires, oq)
    r = hires
    if re > 0:
        r = _sat_left16(r, re - 1)
    r = _srdhm16(r, rq)
    if re > 0:
        r = _sat_left16(r, 1)
    elif re < 0:
        r = _rdbpot16(r, -re)
    r = (r + (1 << 15)) >> 1
    y = _rdbpot16(_sdhm16(r, pre_out), -oe)
    # |y| <= 32638, so the int16 sum wraps only for uint8 zero points above 129 near s_in / s_out =
    # 128: LiteRT then answers 0 for the top code (measured, test_tflite_hardswish.py)
    return np.clip(_wrap16(y + int(zp_out)), qmin, qmax)
