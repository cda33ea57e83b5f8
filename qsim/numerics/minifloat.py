"""Rounding real values to a binary floating-point format (fp16, bf16, fp8, fp6, fp4).

Values are returned as float64 holding exactly the format's value. The rounding works on the real
value (no double rounding through fp32): the grid step is 2^(max(e, emin) - man_bits) where e is the
value's exponent, so subnormals come out right. Overflow is decided after rounding, which gives the
IEEE behaviour: E5M2 overflows to inf at 61440 (the tie above 57344 rounds to even, i.e. up), while
E4M3's tie at 464 rounds down to 448 (mantissa 110 is even).
"""
from __future__ import annotations

import numpy as np

from qsim.numerics.formats import FloatFormat, Rounding
from qsim.numerics.rounding import round_to_int


def round_float(x, fmt: FloatFormat, rounding: Rounding | str = Rounding.HALF_EVEN,
                saturate: bool = False) -> np.ndarray:
    """Nearest ``fmt`` values of ``x`` (float64 out).

    Overflow: ``saturate`` clamps to +-max (inf inputs too, as ONNX ``saturate=1`` does); otherwise a
    value beyond max becomes inf where the format has one, NaN for finite-only formats with a NaN
    (E4M3FN), and +-max for formats with neither (FP6/FP4, which always saturate). NaN stays NaN
    (FP6/FP4 have no NaN: the caller must not send one; it is returned as NaN).
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    _, e2 = np.frexp(a)  # a = m * 2^e2, m in [0.5, 1): exponent e = e2 - 1
    e = np.maximum(e2.astype(np.int64) - 1, fmt.emin)
    step = np.ldexp(1.0, (e - fmt.man_bits).astype(np.int32))
    with np.errstate(invalid="ignore", over="ignore"):
        q = round_to_int(a / step, rounding) * step  # a / step is exact (power of two)
    q = np.where(np.isinf(a), np.inf, q)
    over = q > fmt.max
    if saturate or not fmt.nan:
        q = np.where(over, fmt.max, q)
    elif fmt.finite_only:
        q = np.where(over, np.nan, q)
    else:
        q = np.where(over, np.inf, q)
    q = np.where(np.isnan(x), np.nan, q)
    return np.copysign(q, x)


def to_fp16(x) -> np.ndarray:
    """IEEE binary16, round to nearest even, overflow to inf (numpy's own cast is exact here)."""
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)
