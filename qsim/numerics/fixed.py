"""Fixed point ``ap_fixed<W, I, Q, O>``: every assignment rounds (Q) to the grid 2^-(W-I), then
handles overflow (O) on the W-bit raw integer. As in hls4ml/Vivado HLS, rounding happens first, so a
value that rounds up past the maximum overflows."""
from __future__ import annotations

import numpy as np

from qsim.numerics.formats import FixedFormat
from qsim.numerics.rounding import apply_overflow, round_to_int


def fixed_raw(x, fmt: FixedFormat) -> np.ndarray:
    """Real values -> the W-bit raw integers (int64) of ``fmt``."""
    scaled = np.asarray(x, dtype=np.float64) * (2.0 ** fmt.frac_bits)  # exact: power-of-two scaling
    r = round_to_int(scaled, fmt.rounding)
    if np.any(~np.isfinite(r)):
        raise ValueError("fixed-point cast of a NaN or infinite value")
    r = np.clip(r, -2.0 ** 62, 2.0 ** 62)  # beyond any W <= 62 range; the overflow mode decides
    return apply_overflow(r.astype(np.int64), fmt.raw_min, fmt.raw_max, fmt.width, fmt.signed,
                          fmt.overflow)


def fixed_value(raw, fmt: FixedFormat) -> np.ndarray:
    """Raw integers -> real values (float64; exact for W <= 53)."""
    return np.asarray(raw, dtype=np.float64) * (2.0 ** -fmt.frac_bits)


def fixed_cast(x, fmt: FixedFormat) -> np.ndarray:
    """Assign real values to an ``ap_fixed`` variable and read them back."""
    return fixed_value(fixed_raw(x, fmt), fmt)
