"""onnxruntime's QuantizeLinear of a float tensor to a per-tensor 8/16-bit integer in one pass:
``clip(rne(fp32(x / scale)) + zp)``, a NaN's quotient taken as ``nanq`` (the formula of
``plan.fast_quantizer``, which runs it in numpy passes where this kernel does not apply)."""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def ort_quantize(x, scale, zp, lo, hi, nanq, out):
    """x: flat float32 or float64 values; scale, zp, lo, hi, nanq: float32; out: flat, the storage type.
    The quotient is formed in float64 from the float32 operands and rounded once to float32: that is
    the correctly rounded float32 quotient (binary64 carries more than 2 * 24 + 2 bits, so the double
    rounding of a division is innocuous), as numpy's float32 divide gives it."""
    s = np.float64(scale)
    for i in prange(x.size):
        q = np.float32(np.float64(np.float32(x[i])) / s)
        y = np.rint(q)
        if np.isnan(y):
            y = nanq
        y = np.float32(y + zp)
        out[i] = min(max(y, lo), hi)
