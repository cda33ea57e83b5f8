"""Requantization multipliers: how each runtime turns (s_in, s_w[c], s_out) into the numbers its
integer pipeline uses. The derivation belongs to the policy: the same scales give different
multipliers (and so different outputs) in different runtimes.
"""
from __future__ import annotations

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def float32_multiplier(s_in, s_w, s_out) -> np.ndarray:
    """``fp32(fp32(s_in * s_w) / s_out)``: onnxruntime (QLinearConv ``X_scale * W_scale[i] /
    Y_scale``), XNNPACK (``input_scale * kernel_scale / output_scale``), PyTorch fbgemm/qnnpack
    (``act_times_w_scale / output_scale``). Every step is one fp32 operation."""
    s_in, s_w, s_out = (np.asarray(v, dtype=np.float32) for v in (s_in, s_w, s_out))
    return np.atleast_1d((s_in * s_w) / s_out).astype(np.float32)


def float32_act_times_w(s_in, s_w) -> np.ndarray:
    """fbgemm's ``act_times_w_scale = fp32(s_in * s_w)``, the divisor of its float bias."""
    return np.atleast_1d(np.float32(s_in) * np.asarray(s_w, dtype=np.float32)).astype(np.float32)


def float64_multiplier(s_in, s_w, s_out) -> np.ndarray:
    """``double(s_in) * double(s_w) / double(s_out)``: TFLite/LiteRT per-channel conv, depthwise
    and fully connected (``PopulateConvolutionQuantizationParams``) before QuantizeMultiplier."""
    s_in, s_w, s_out = (np.asarray(v, dtype=np.float32).astype(np.float64) for v in (s_in, s_w, s_out))
    return np.atleast_1d(s_in * s_w / s_out)


def quantize_multiplier(m, single_rounding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``QuantizeMultiplier``: ``m = q * 2^shift`` with q a Q31 int32 in [2^30, 2^31).

    ``frexp`` gives m = f * 2^e with f in [0.5, 1); ``q = round_half_away(f * 2^31)`` (std::round;
    f * 2^31 is exact in float64); q == 2^31 is halved with shift + 1; a shift below -31 gives
    (0, 0). With TFLITE_SINGLE_ROUNDING a shift above 30 is saturated to (2^31 - 1, 30).
    Returns (int64 multipliers, int64 shifts), positive shift = left shift.
    """
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    if np.any(m < 0) or not np.all(np.isfinite(m)):
        raise ValueError("requantization multipliers must be finite and >= 0")
    f, e = np.frexp(m)
    t = f * 2.0 ** 31
    q = np.floor(t + 0.5).astype(np.int64)  # t >= 0 and exact: floor(t + .5) is half-away here
    shift = e.astype(np.int64)
    top = q == (1 << 31)
    q = np.where(top, q // 2, q)
    shift = np.where(top, shift + 1, shift)
    small = shift < -31
    q = np.where(small | (m == 0), 0, q)
    shift = np.where(small | (m == 0), 0, shift)
    if single_rounding:
        big = shift > 30
        q = np.where(big, INT32_MAX, q)
        shift = np.where(big, 30, shift)
    return q.astype(np.int64), shift.astype(np.int64)
