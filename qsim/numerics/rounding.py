"""Rounding to integers and integer range handling: the format-independent primitives.

``round_to_int`` rounds float64 values to integral float64 values with any ``Rounding`` mode, exactly
(no ``x + 0.5`` shortcut, which is wrong for 0.49999999999999994 and for large odd values).
``wrap``/``saturate`` bring int64 values into an integer range. ``rounding_shift`` divides int64
values by 2^r with a rounding mode, the integer counterpart used by fixed-point pipelines.
"""
from __future__ import annotations

import numpy as np

from qsim.numerics.formats import IntFormat, Overflow, Rounding, enum_value


def round_to_int(x, mode: Rounding | str = Rounding.HALF_EVEN) -> np.ndarray:
    """Round float values to integral float64 values. NaN and inf pass through."""
    mode = enum_value(Rounding, mode)
    x = np.asarray(x, dtype=np.float64)
    if mode is Rounding.HALF_EVEN:
        return np.rint(x)  # IEEE round-to-nearest-even, the hardware default
    if mode is Rounding.FLOOR:
        return np.floor(x)
    if mode is Rounding.TOWARD_ZERO:
        return np.trunc(x)
    f = np.floor(x)
    d = x - f  # exact: x and floor(x) share the exponent range, so the difference is representable
    up = d > 0.5
    tie = d == 0.5
    if mode is Rounding.HALF_UP:
        up = up | tie
    elif mode is Rounding.HALF_AWAY:
        up = up | (tie & (x > 0))
    elif mode is Rounding.HALF_TOWARD_ZERO:
        up = up | (tie & (x < 0))
    # HALF_DOWN: ties stay at floor
    return f + up


def x86_cvt_i32(t) -> np.ndarray:
    """The int32 conversion of x86 (``cvtps2dq`` / ``cvtsd2si``, and a C cast of ``nearbyint``):
    round half to even; NaN and values outside int32 give INT32_MIN (the "integer indefinite")."""
    t = np.asarray(t, np.float64)
    ok = np.abs(t) < 2.0 ** 31
    return np.where(ok, np.rint(np.where(ok, t, 0.0)), -2.0 ** 31).astype(np.int64)


def wrap(v, bits: int, signed: bool = True) -> np.ndarray:
    """Two's complement wraparound of int64 values to ``bits`` bits (what int32 adders do silently)."""
    v = np.asarray(v, dtype=np.int64)
    if bits >= 64:
        return v
    mask = np.int64((1 << bits) - 1)
    u = v & mask
    if signed:
        half = np.int64(1 << (bits - 1))
        u = np.where(u >= half, u - np.int64(1 << bits), u)
    return u


def saturate(v, lo: int, hi: int) -> np.ndarray:
    return np.clip(np.asarray(v, dtype=np.int64), lo, hi)


def apply_overflow(v, lo: int, hi: int, bits: int, signed: bool, mode: Overflow | str) -> np.ndarray:
    """Bring int64 values into [lo, hi] (a ``bits``-bit range) with an overflow mode."""
    mode = enum_value(Overflow, mode)
    v = np.asarray(v, dtype=np.int64)
    if mode is Overflow.WRAP:
        return wrap(v, bits, signed)
    if mode is Overflow.SATURATE:
        return saturate(v, lo, hi)
    if mode is Overflow.SATURATE_SYMMETRIC:
        return saturate(v, -hi if signed else lo, hi)
    return np.where((v < lo) | (v > hi), np.int64(0), v)  # SATURATE_ZERO


def cast_int(v, fmt: IntFormat, overflow: Overflow | str = Overflow.SATURATE) -> np.ndarray:
    """An integer value stored into ``fmt``: wrap or saturate. Returns int64."""
    return apply_overflow(v, fmt.qmin, fmt.qmax, fmt.bits, fmt.signed, overflow)


def float_to_int(x, fmt: IntFormat, rounding: Rounding | str = Rounding.HALF_EVEN,
                 overflow: Overflow | str = Overflow.SATURATE) -> np.ndarray:
    """Round real values and store them into ``fmt``. NaN becomes 0 (as a saturating cvt would not
    define it; runtimes differ, so qsim picks the value that keeps tensors finite)."""
    r = round_to_int(x, rounding)
    r = np.where(np.isnan(r), 0.0, r)
    r = np.clip(r, -2.0 ** 62, 2.0 ** 62)  # keep int64 conversion defined; the overflow mode decides
    return cast_int(r.astype(np.int64), fmt, overflow)


def rounding_shift(v, shift, mode: Rounding | str = Rounding.HALF_UP) -> np.ndarray:
    """``v / 2^shift`` rounded with ``mode``, in exact int64 arithmetic (``shift`` >= 0, broadcast)."""
    mode = enum_value(Rounding, mode)
    v = np.asarray(v, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    if np.any(s < 0):
        raise ValueError("rounding_shift needs shift >= 0")
    q = v >> s  # floor division by 2^s
    rem = v - (q << s)  # in [0, 2^s)
    half = np.where(s > 0, np.int64(1) << np.maximum(s - 1, 0), np.int64(0))
    if mode is Rounding.FLOOR:
        return q
    if mode is Rounding.TOWARD_ZERO:
        return q + ((rem != 0) & (v < 0))
    gt = (rem > half) & (s > 0)
    tie = (rem == half) & (s > 0)
    if mode is Rounding.HALF_UP:
        up = gt | tie
    elif mode is Rounding.HALF_DOWN:
        up = gt
    elif mode is Rounding.HALF_AWAY:
        up = gt | (tie & (v >= 0))
    elif mode is Rounding.HALF_TOWARD_ZERO:
        up = gt | (tie & (v < 0))
    else:  # HALF_EVEN
        up = gt | (tie & ((q & 1) == 1))
    return q + up
