"""The planned executor's LiteRT ADD (``add_tflite.add_into``) equals the numpy spec
``elementwise.add_tflite`` byte for byte, reference and optimized kernels, int8 and int16: every
code pair of two zero points (all 65,536 int8 pairs), sizes with and without the optimized kernel's
scalar tail (n % 16), output scales that make the last rounding a tie on most outputs (s_out = 2, 4
and 8 times the input scale: RoundingDivideByPOT's ties away from zero, positive and negative),
unequal input scales (single against double rounding of the inputs), fused-activation clamps, and
operands whose zero points or width leave the int32 range it relies on (``applies`` refuses them)."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import add_tflite
from qsim.kernels import elementwise as ew

CASES = [  # (s1, s2, s_out): ties at s_out = 2^k * s; unequal scales; an ordinary quotient
    (0.25, 0.25, 0.5), (0.25, 0.25, 1.0), (0.1, 0.1, 0.8), (0.5, 0.125, 0.5), (0.0371, 0.0593, 0.0789),
    (0.02, 0.3, 0.05),
]


def _both(a, b, s1, z1, s2, z2, so, zo, lo, hi, kernels, left_shift, dtype):
    want = ew.add_tflite(a, b, s1, z1, s2, z2, so, zo, lo, hi, left_shift, kernels)
    p = ew.tflite_add_params(s1, s2, so, left_shift)
    got = np.empty(a.size, dtype)
    add_tflite.add_into(a.reshape(-1), b.reshape(-1), p, z1, z2, zo, lo, hi, kernels == "optimized", got)
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


def test_applies_only_where_int32_holds():
    assert add_tflite.applies(np.int8, -128, 127, 20) and add_tflite.applies(np.int16, 0, 0, 15)
    assert add_tflite.applies(np.uint8, 0, 255, 20)
    assert not add_tflite.applies(np.int8, 200, 0, 20)        # a zero point outside int8
    assert not add_tflite.applies(np.int16, 0, 0, 16)         # 65535 << 16 leaves int32
    assert not add_tflite.applies(np.int32, 0, 0, 0)
