"""The compiled LiteRT ADD (``elementwise_jit._add_kernel``, in the operands' storage types) equals
the numpy spec ``elementwise.add_tflite`` byte for byte, reference and optimized kernels, int8 and
int16, on both of its paths (the vectorizing loops and the general int64 one): every
code pair of two zero points (all 65,536 int8 pairs), sizes with and without the optimized kernel's
scalar tail (n % 16), output scales that make the last rounding a tie on most outputs (s_out = 2, 4
and 8 times the input scale: RoundingDivideByPOT's ties away from zero, positive and negative),
unequal input scales (single against double rounding of the inputs), fused-activation clamps, and
operands whose zero points or width leave the int32 range the vectorizing loops rely on
(``add_fits_int32`` refuses them)."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import elementwise as ew
from qsim.kernels import elementwise_jit as ewj
from qsim.numerics.rounding_jit import multiply_by_quantized_multiplier, single_rounding_multiply

CASES = [  # (s1, s2, s_out): ties at s_out = 2^k * s; unequal scales; an ordinary quotient
    (0.25, 0.25, 0.5), (0.25, 0.25, 1.0), (0.1, 0.1, 0.8), (0.5, 0.125, 0.5), (0.0371, 0.0593, 0.0789),
    (0.02, 0.3, 0.05),
]


def _both(a, b, s1, z1, s2, z2, so, zo, lo, hi, kernels, left_shift, dtype):
    want = ew.add_tflite(a, b, s1, z1, s2, z2, so, zo, lo, hi, left_shift, kernels)
    p = ew.tflite_add_params(s1, s2, so, left_shift)
    fits = ewj.add_fits_int32(a.dtype, z1, b.dtype, z2, left_shift)
    for path in {fits, False}:   # the path the operands take, and the general one
        got = np.empty(a.size, dtype)
        ewj._add_kernel(a.reshape(-1), b.reshape(-1), p, z1, z2, zo, lo, hi, kernels == "optimized", path, got)
        np.testing.assert_array_equal(got, want.reshape(-1).astype(dtype))


@pytest.mark.parametrize("kernels", ["reference", "optimized"])
@pytest.mark.parametrize("scales", CASES)
def test_every_int8_pair(kernels, scales):
    s1, s2, so = scales
    codes = np.arange(-128, 128)
    a, b = (v.astype(np.int8).reshape(-1) for v in np.meshgrid(codes, codes))   # 65,536: a multiple of 16
    for z1, z2, zo, lo, hi in [(0, 0, 0, -128, 127), (-128, 5, -128, -128, 127), (17, -3, 9, 9, 127)]:
        _both(a, b, s1, z1, s2, z2, so, zo, lo, hi, kernels, 20, np.int8)
        _both(a[:1000 + 7], b[:1000 + 7], s1, z1, s2, z2, so, zo, lo, hi, kernels, 20, np.int8)   # a tail of 7


@pytest.mark.parametrize("kernels", ["reference", "optimized"])
def test_int16(kernels):
    rng = np.random.default_rng(3)
    a = np.concatenate([rng.integers(-32768, 32768, 4000), [-32768, 32767, 0, -1, 1]]).astype(np.int16)
    b = np.concatenate([rng.integers(-32768, 32768, 4000), [32767, -32768, 0, 1, -1]]).astype(np.int16)
    for s1, s2, so in CASES:
        _both(a, b, s1, 0, s2, 0, so, 0, -32768, 32767, kernels, 15, np.int16)


def test_fits_only_where_int32_holds():
    assert ewj.add_fits_int32(np.int8, -128, np.int8, 127, 20) and ewj.add_fits_int32(np.int16, 0, np.int16, 0, 15)
    assert ewj.add_fits_int32(np.uint8, 0, np.uint8, 255, 20) and ewj.add_fits_int32(np.int8, 0, np.uint8, 255, 20)
    assert not ewj.add_fits_int32(np.int8, 200, np.int8, 0, 20)       # a zero point outside int8
    assert not ewj.add_fits_int32(np.int8, 0, np.uint8, -1, 20)       # ... outside uint8
    assert not ewj.add_fits_int32(np.int16, 0, np.int16, 0, 16)       # 65535 << 16 leaves int32
    assert not ewj.add_fits_int32(np.int32, 0, np.int32, 0, 0)
    assert not ewj.add_fits_int32(np.int8, 0, np.int32, 0, 0)


def _int64_loop(a, b, p, z1, z2, zo, lo, hi, optimized):
    """The general path element by element in Python, with ``rounding_jit``'s scalar functions: no
    wrap to int32 before a multiplier without a left shift (the numpy spec wraps there)."""
    out, nvec = np.empty(a.size, np.int64), a.size - a.size % 16 if optimized else 0
    for i, (u, v) in enumerate(zip(a.tolist(), b.tolist())):
        x, y = np.int64(u - z1) << p[6], np.int64(v - z2) << p[6]
        mul = single_rounding_multiply if i < nvec else multiply_by_quantized_multiplier
        raw = mul(x, p[0], p[1]) + mul(y, p[2], p[3])
        out[i] = min(max(multiply_by_quantized_multiplier(raw, p[4], p[5]) + zo, lo), hi)
    return out


def test_zero_points_outside_the_type_take_the_general_path():
    """int8 codes with zero points far outside int8 (shifted inputs up to 3128 << 20, beyond int32):
    the general loop keeps the int64 arithmetic; the vectorizing loops would wrap (as the numpy spec
    does), which gives other integers here."""
    rng = np.random.default_rng(5)
    a, b = (rng.integers(-128, 128, 1000 + 7).astype(np.int8) for _ in range(2))
    args = (0.25, 3000, 0.125, -2500, 1.0, 400, -128, 127)   # unwrapped outputs -86..10: none clamped
    p = ew.tflite_add_params(0.25, 0.125, 1.0)
    assert not ewj.add_fits_int32(a.dtype, 3000, b.dtype, -2500, 20)
    for optimized in (False, True):
        general, wrapped = np.empty(a.size, np.int8), np.empty(a.size, np.int8)
        ewj._add_kernel(a, b, p, 3000, -2500, 400, -128, 127, optimized, False, general)
        ewj._add_kernel(a, b, p, 3000, -2500, 400, -128, 127, optimized, True, wrapped)
        np.testing.assert_array_equal(general, _int64_loop(a, b, p, 3000, -2500, 400, -128, 127, optimized))
        spec = ew.add_tflite(a, b, *args, kernels="optimized" if optimized else "reference")
        np.testing.assert_array_equal(wrapped, spec)
        assert not np.array_equal(general, wrapped)
