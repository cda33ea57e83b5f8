"""glibc's single-precision ``tanhf``, operation for operation, for the table activations whose
runtime calls it (LiteRT's XNNPACK delegate builds its int8 TANH table with ``std::tanh(float)``,
which the shipped binary links to ``tanhf@GLIBC``).

glibc up to 2.40 implements ``tanhf`` and ``expm1f`` with the fdlibm algorithms
(sysdeps/ieee754/flt-32/s_tanhf.c, s_expm1f.c): they are not correctly rounded (about a quarter of
the floats in [2^-12, 12] come out one ulp from the correctly rounded tanh), and one ulp decides a
quantized code where the exact value lies near a half (an int8 TANH seed: tanhf(0.47397608) * 128
is exactly 56.5 in glibc, 56.5000076 correctly rounded). Evaluated here in numpy float32 scalars,
each operation rounded as the C code rounds it (x86-64 baseline: no contracted multiply-adds).
"""
from __future__ import annotations

import numpy as np

_F32 = np.float32
_ONE, _TWO, _HALF = _F32(1.0), _F32(2.0), _F32(0.5)
_LN2_HI, _LN2_LO, _INV_LN2 = _F32(6.9313812256e-01), _F32(9.0580006145e-06), _F32(1.4426950216e+00)
# fdlibm's scaled expm1 coefficients Q1..Q5 (s_expm1f.c)
_Q = tuple(_F32(c) for c in (-3.3333335072e-02, 1.5873016091e-03, -7.9365076090e-05, 4.0082177293e-06,
                             -2.0109921195e-07))


def _bits(v: np.float32) -> int:
    return int(np.array(v, _F32).view(np.uint32))


def _from_bits(b: int) -> np.float32:
    return np.array(b & 0xFFFFFFFF, np.uint32).view(_F32)[()]


def _add_exponent(y: np.float32, k: int) -> np.float32:
    return _from_bits(_bits(y) + (k << 23))


def expm1f(x: np.float32) -> np.float32:
    """fdlibm ``expm1f`` for finite x with |x| < 88.72 (all that ``tanhf`` passes: |x| < 44)."""
    x = _F32(x)
    hx = _bits(x)
    negative = bool(hx & 0x80000000)
    hx &= 0x7FFFFFFF
    if hx >= 0x4195B844 and negative:  # x < -27 ln2: -1 (with inexact)
        return _F32(-1.0)
    c = _F32(0.0)
    if hx > 0x3EB17218:  # |x| > ln2 / 2: reduce by k ln2
        if hx < 0x3F851592:  # and |x| < 1.5 ln2
            hi, lo, k = (x + _LN2_HI, -_LN2_LO, -1) if negative else (x - _LN2_HI, _LN2_LO, 1)
        else:
            k = int(_F32(_INV_LN2 * x) + (-_HALF if negative else _HALF))  # C truncates
            t = _F32(k)
            hi = _F32(x - _F32(t * _LN2_HI))
            lo = _F32(t * _LN2_LO)
        x = _F32(hi - lo)
        c = _F32(_F32(hi - x) - lo)
    elif hx < 0x33000000:  # |x| < 2^-25: x itself
        return x
    else:
        k = 0
    hfx = _F32(_HALF * x)
    hxs = _F32(x * hfx)
    poly = _Q[4]
    for q in reversed(_Q[:4]):
        poly = _F32(q + _F32(hxs * poly))
    r1 = _F32(_ONE + _F32(hxs * poly))
    t = _F32(_F32(3.0) - _F32(r1 * hfx))
    e = _F32(hxs * _F32(_F32(r1 - t) / _F32(_F32(6.0) - _F32(x * t))))
    if k == 0:
        return _F32(x - _F32(_F32(x * e) - hxs))
    e = _F32(_F32(x * _F32(e - c)) - c)
    e = _F32(e - hxs)
    if k == -1:
        return _F32(_F32(_HALF * _F32(x - e)) - _HALF)
    if k == 1:
        if x < _F32(-0.25):
            return _F32(_F32(-2.0) * _F32(e - _F32(x + _HALF)))
        return _F32(_ONE + _F32(_TWO * _F32(x - e)))
    if k <= -2 or k > 56:
        y = _F32(_ONE - _F32(e - x))
        return _F32(_add_exponent(y, k) - _ONE)
    if k < 23:
        t = _from_bits(0x3F800000 - (0x1000000 >> k))  # 1 - 2^-k
        y = _F32(t - _F32(e - x))
    else:
        t = _from_bits((0x7F - k) << 23)  # 2^-k
        y = _F32(_F32(x - _F32(e + t)) + _ONE)
    return _add_exponent(y, k)


def tanhf(x) -> np.float32:
    """fdlibm ``tanhf`` (glibc's up to 2.40) of one float32."""
    x = _F32(x)
    ix = _bits(x) & 0x7FFFFFFF
    if ix >= 0x7F800000:
        return _F32(np.tanh(x))  # +-1 for +-inf, NaN for NaN
    if ix >= 0x41B00000:  # |x| >= 22: +-1
        z = _ONE
    elif ix < 0x24000000:  # |x| < 2^-55 (zero included): x
        return x
    elif ix >= 0x3F800000:  # |x| >= 1
        t = expm1f(_F32(_TWO * abs(x)))
        z = _F32(_ONE - _F32(_TWO / _F32(t + _TWO)))
    else:
        t = expm1f(_F32(-_TWO * abs(x)))
        z = _F32(-t / _F32(t + _TWO))
    return z if not np.signbit(x) else -z


def tanhf_array(v) -> np.ndarray:
    return np.array([tanhf(t) for t in np.asarray(v, _F32).ravel()], _F32).reshape(np.shape(v))


# glibc 2.28+ ``logf`` (sysdeps/ieee754/flt-32/e_logf.c, e_logf_data.c): 16 subintervals of
# [0x3f330000, 2 * 0x3f330000) with (1/c, log c) in double, a degree-4 polynomial in double, one
# rounding to float at the end. Not correctly rounded (0.818 ulp): 22 of the logf(FLT_MAX / D),
# D < 2^20, differ from the correctly rounded log, and numpy's float32 log differs on 28,614.
_LOGF_TAB = tuple((float.fromhex(a), float.fromhex(b)) for a, b in (
    ("0x1.661ec79f8f3bep+0", "-0x1.57bf7808caadep-2"), ("0x1.571ed4aaf883dp+0", "-0x1.2bef0a7c06ddbp-2"),
    ("0x1.49539f0f010bp+0", "-0x1.01eae7f513a67p-2"), ("0x1.3c995b0b80385p+0", "-0x1.b31d8a68224e9p-3"),
    ("0x1.30d190c8864a5p+0", "-0x1.6574f0ac07758p-3"), ("0x1.25e227b0b8eap+0", "-0x1.1aa2bc79c81p-3"),
    ("0x1.1bb4a4a1a343fp+0", "-0x1.a4e76ce8c0e5ep-4"), ("0x1.12358f08ae5bap+0", "-0x1.1973c5a611cccp-4"),
    ("0x1.0953f419900a7p+0", "-0x1.252f438e10c1ep-5"), ("0x1p+0", "0x0p+0"),
    ("0x1.e608cfd9a47acp-1", "0x1.aa5aa5df25984p-5"), ("0x1.ca4b31f026aap-1", "0x1.c5e53aa362eb4p-4"),
    ("0x1.b2036576afce6p-1", "0x1.526e57720db08p-3"), ("0x1.9c2d163a1aa2dp-1", "0x1.bc2860d22477p-3"),
    ("0x1.886e6037841edp-1", "0x1.1058bc8a07ee1p-2"), ("0x1.767dcf5534862p-1", "0x1.4043057b6ee09p-2")))
_LOGF_LN2 = float.fromhex("0x1.62e42fefa39efp-1")
_LOGF_POLY = tuple(float.fromhex(c) for c in ("-0x1.00ea348b88334p-2", "0x1.5575b0be00b6ap-2", "-0x1.ffffef20a4123p-2"))
_LOGF_OFF = 0x3f330000


def logf(x) -> np.float32:
    """glibc ``logf`` for a positive normal finite float (the only inputs its callers here pass),
    in Python doubles, operation for operation (x86-64 baseline: no contracted multiply-adds)."""
    ix = _bits(_F32(x))
    if not 0x00800000 <= ix < 0x7f800000:
        raise ValueError(f"logf here takes positive normal floats, not {float(x)!r}")
    if ix == 0x3f800000:
        return _F32(0.0)
    tmp = (ix - _LOGF_OFF) & 0xFFFFFFFF  # uint32 in C
    i = (tmp >> (23 - 4)) % 16
    k = (tmp - (1 << 32) if tmp & 0x80000000 else tmp) >> 23  # arithmetic shift of the int32
    z = float(_from_bits(ix - (tmp & (0x1ff << 23))))
    invc, logc = _LOGF_TAB[i]
    r = z * invc - 1.0
    y0 = logc + float(k) * _LOGF_LN2
    r2 = r * r
    y = _LOGF_POLY[1] * r + _LOGF_POLY[2]
    y = _LOGF_POLY[0] * r2 + y
    y = y * r2 + (y0 + r)
    return _F32(y)
