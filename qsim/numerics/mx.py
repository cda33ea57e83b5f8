"""OCP Microscaling (MX v1.0) block quantization.

Each block of ``fmt.block`` consecutive elements along ``axis`` shares the E8M0 scale
``2^(floor(log2(amax)) - emax_elem)``, clamped to the E8M0 range [-127, 127]; elements are
``x / scale`` rounded to the element format and saturated to its maximum (the spec's clamp). An
all-zero block gets the scale of amax = 2^-126 (the FP32 minimum normal), as the OCP reference code
(microxcaling ``_shared_exponents``) does; a block holding NaN or inf gets a NaN scale.
MXINT8 elements are ``round(x / scale * 64) / 64`` clamped to +-127/64 (symmetric, as microxcaling).
"""
from __future__ import annotations

import numpy as np

from qsim.numerics.formats import IntFormat, MXFormat
from qsim.numerics.minifloat import round_float
from qsim.numerics.rounding import round_to_int

E8M0_MIN, E8M0_MAX = -127, 127


def _blocks(x: np.ndarray, axis: int, block: int) -> tuple[np.ndarray, int]:
    """Move ``axis`` last and pad it to a multiple of ``block``; returns (..., nblocks, block), length."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    pad = (-n) % block
    if pad:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,))], axis=-1)
    return x.reshape(x.shape[:-1] + (-1, block)), n


def mx_scale_exponents(x, fmt: MXFormat, axis: int = -1) -> np.ndarray:
    """Shared E8M0 exponents, shape (..., nblocks) with ``axis`` last; float64 (NaN for a NaN scale)."""
    b, _ = _blocks(x, axis, fmt.block)
    amax = np.max(np.abs(b), axis=-1)
    amax = np.where(amax == 0, 2.0 ** -126, amax)
    _, e2 = np.frexp(amax)
    exp = np.clip(e2.astype(np.float64) - 1 - fmt.emax_elem, E8M0_MIN, E8M0_MAX)
    return np.where(np.isfinite(amax), exp, np.nan)


def mx_quantize(x, fmt: MXFormat, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Returns (elements, exponents): element values (float64, on the element grid, ``x``'s shape)
    and the shared exponents (``axis`` last). ``elements * 2^exponent`` is the represented value."""
    x = np.asarray(x, dtype=np.float64)
    b, n = _blocks(x, axis, fmt.block)
    exp = mx_scale_exponents(x, fmt, axis)
    scaled = b / np.exp2(exp)[..., None]  # exact unless the element underflows fp64: harmless
    if isinstance(fmt.element, IntFormat):
        lim = 127.0
        q = np.clip(round_to_int(scaled * 64.0, fmt.rounding), -lim, lim) / 64.0
    else:
        q = round_float(scaled, fmt.element, fmt.rounding, saturate=True)
    q = q.reshape(q.shape[:-2] + (-1,))[..., :n]
    return np.moveaxis(q, -1, axis), exp


def mx_dequantize(elements, exponents, fmt: MXFormat, axis: int = -1) -> np.ndarray:
    e = np.moveaxis(np.asarray(elements, dtype=np.float64), axis, -1)
    scale = np.repeat(np.exp2(np.asarray(exponents, dtype=np.float64)), fmt.block, axis=-1)
    return np.moveaxis(e * scale[..., : e.shape[-1]], -1, axis)


def mx_cast(x, fmt: MXFormat, axis: int = -1) -> np.ndarray:
    """Quantize to MX and back: the values a consumer of the MX tensor sees."""
    q, exp = mx_quantize(x, fmt, axis)
    return mx_dequantize(q, exp, fmt, axis)
