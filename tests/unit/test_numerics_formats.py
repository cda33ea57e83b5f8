"""Hand-computed cases for every number format: exact equality, planted ties."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.errors import WorkloadError
from qsim.numerics import (BF16, FP4_E2M1, FP6_E2M3, FP6_E3M2, FP8_E4M3, FP8_E5M2, FP16, FixedFormat,
                           IntFormat, Rounding, cast_int, fixed_cast, fixed_raw, float_to_int,
                           get_format, round_float, round_to_int, rounding_shift, wrap)

NAN = float("nan")


def eq(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


TIES = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]


@pytest.mark.parametrize("mode,expected", [
    (Rounding.HALF_EVEN, [-2, -2, -0, 0, 2, 2]),
    (Rounding.HALF_AWAY, [-3, -2, -1, 1, 2, 3]),
    (Rounding.HALF_UP, [-2, -1, 0, 1, 2, 3]),
    (Rounding.HALF_DOWN, [-3, -2, -1, 0, 1, 2]),
    (Rounding.HALF_TOWARD_ZERO, [-2, -1, 0, 0, 1, 2]),
    (Rounding.FLOOR, [-3, -2, -1, 0, 1, 2]),
    (Rounding.TOWARD_ZERO, [-2, -1, 0, 0, 1, 2]),
])
def test_rounding_modes_on_ties(mode, expected):
    assert eq(round_to_int(TIES, mode), expected)


def test_rounding_near_half_is_not_a_tie():
    x = np.nextafter(0.5, 0.0)  # 0.49999999999999994: x + 0.5 rounds to 1.0 in fp64
    for mode in (Rounding.HALF_UP, Rounding.HALF_AWAY, Rounding.HALF_EVEN):
        assert round_to_int(x, mode) == 0.0


def test_rounding_shift_modes():
    v = np.array([-7, -6, -5, -3, 3, 5, 6, 7])  # / 2 -> -3.5 -3 -2.5 -1.5 1.5 2.5 3 3.5
    assert rounding_shift(v, 1, "half_up").tolist() == [-3, -3, -2, -1, 2, 3, 3, 4]
    assert rounding_shift(v, 1, "half_away").tolist() == [-4, -3, -3, -2, 2, 3, 3, 4]
    assert rounding_shift(v, 1, "half_even").tolist() == [-4, -3, -2, -2, 2, 2, 3, 4]
    assert rounding_shift(v, 1, "floor").tolist() == [-4, -3, -3, -2, 1, 2, 3, 3]
    assert rounding_shift(v, 1, "toward_zero").tolist() == [-3, -3, -2, -1, 1, 2, 3, 3]
    assert rounding_shift(v, 0, "half_up").tolist() == v.tolist()


def test_integer_formats_wrap_and_saturate():
    i8, u4, i2 = IntFormat(8), IntFormat(4, False), IntFormat(2)
    assert (i8.qmin, i8.qmax, u4.qmin, u4.qmax, i2.qmin, i2.qmax) == (-128, 127, 0, 15, -2, 1)
    assert cast_int([128, -129, 300], i8, "wrap").tolist() == [-128, 127, 44]
    assert cast_int([128, -129, 300], i8, "saturate").tolist() == [127, -128, 127]
    assert cast_int([-128, 127], i8, "saturate_symmetric").tolist() == [-127, 127]
    assert cast_int([16, -1, 15], u4, "wrap").tolist() == [0, 15, 15]
    assert cast_int([16, -1, 15], u4, "saturate_zero").tolist() == [0, 0, 15]
    assert wrap([2 ** 31, -(2 ** 31) - 1], 32).tolist() == [-(2 ** 31), 2 ** 31 - 1]
    assert IntFormat(32).qmax == 2 ** 31 - 1 and get_format("uint32").qmax == 2 ** 32 - 1
    assert float_to_int([2.5, -2.5, 1e10, NAN], i8).tolist() == [2, -2, 127, 0]
    with pytest.raises(WorkloadError):
        IntFormat(65)


def test_fixed_point_rounding_and_overflow_modes():
    # ap_fixed<8,4>: step 1/16, range [-8, 7.9375]
    f = FixedFormat(8, 4)
    tie = 1 / 32 + 3 / 16  # 0.21875: exactly between 3/16 and 4/16
    assert fixed_cast(tie, f) == 3 / 16                                   # AP_TRN
    assert fixed_cast(tie, FixedFormat(8, 4, rounding="half_up")) == 4 / 16       # AP_RND
    assert fixed_cast(-tie, FixedFormat(8, 4, rounding="half_up")) == -3 / 16
    assert fixed_cast(tie, FixedFormat(8, 4, rounding="half_even")) == 4 / 16     # AP_RND_CONV
    assert fixed_cast(tie - 1 / 16, FixedFormat(8, 4, rounding="half_even")) == 2 / 16
    assert fixed_cast(-tie, FixedFormat(8, 4, rounding="half_away")) == -4 / 16   # AP_RND_INF
    assert fixed_cast(-tie, FixedFormat(8, 4, rounding="half_toward_zero")) == -3 / 16
    assert fixed_cast(tie, FixedFormat(8, 4, rounding="half_down")) == 3 / 16     # AP_RND_MIN_INF
    assert fixed_cast(-tie, FixedFormat(8, 4, rounding="toward_zero")) == -3 / 16  # AP_TRN_ZERO
    assert fixed_cast(-tie, f) == -4 / 16                                  # floor
    # overflow: 8.0 is raw 128
    assert fixed_cast(8.0, f) == -8.0                                      # AP_WRAP
    assert fixed_cast(8.0, FixedFormat(8, 4, overflow="saturate")) == 7.9375
    assert fixed_cast(-9.0, FixedFormat(8, 4, overflow="saturate")) == -8.0
    assert fixed_cast(-9.0, FixedFormat(8, 4, overflow="saturate_symmetric")) == -7.9375
    assert fixed_cast(9.0, FixedFormat(8, 4, overflow="saturate_zero")) == 0.0
    # rounding happens before overflow: 7.97 rounds up to 8.0, which then saturates or wraps
    assert fixed_cast(7.97, FixedFormat(8, 4, True, "half_up", "saturate")) == 7.9375
    assert fixed_cast(7.97, FixedFormat(8, 4, True, "half_up", "wrap")) == -8.0
    # unsigned ap_ufixed<4,2>: step 1/4, [0, 3.75]
    u = FixedFormat(4, 2, signed=False, overflow="wrap")
    assert fixed_raw([4.0, -0.25, 3.75], u).tolist() == [0, 15, 15]
    # integer bits beyond the width: ap_fixed<4,6> has step 4
    assert fixed_cast(13.0, FixedFormat(4, 6, rounding="half_even")) == 12.0
    with pytest.raises(WorkloadError):
        FixedFormat(8, 4, rounding="nearest")


def test_fp8_e4m3_edges():
    f = FP8_E4M3
    assert (f.max, f.emin, f.min_subnormal) == (448.0, -6, 2.0 ** -9)
    # 464 is the tie between 448 (mantissa 110, even) and 480 (not a value: 0x7F is NaN)
    assert eq(round_float([448, 464, 465, 500, 1e9, np.inf, -np.inf, NAN], f),
              [448, 448, NAN, NAN, NAN, NAN, NAN, NAN])
    assert eq(round_float([464, 465, 1e9, np.inf, -np.inf], f, saturate=True), [448, 448, 448, 448, -448])
    # subnormals: step 2^-9; ties to even; below half the smallest subnormal -> 0
    s = 2.0 ** -9
    assert eq(round_float([s, 1.5 * s, 2.5 * s, 0.5 * s, 0.51 * s, -0.5 * s], f),
              [s, 2 * s, 2 * s, 0, s, -0.0])
    assert round_float(2.0 ** -6 - s / 2, f) == 2.0 ** -6  # rounds up into the normals
    assert eq(round_float([1.0625, 1.1875, 17.0, 19.0], f), [1.0, 1.25, 16.0, 20.0])


def test_fp8_e5m2_edges():
    f = FP8_E5M2
    assert (f.max, f.emin, f.min_subnormal) == (57344.0, -14, 2.0 ** -16)
    # 61440 is the tie between 57344 (mantissa 11, odd) and 65536: IEEE rounds to even -> inf
    assert eq(round_float([57344, 61439, 61440, -61440, np.inf, NAN], f),
              [57344, 57344, np.inf, -np.inf, np.inf, NAN])
    assert eq(round_float([61440, np.inf, -1e9], f, saturate=True), [57344, 57344, -57344])
    assert eq(round_float([1.125, 1.375, 2.0 ** -16 * 1.5, 2.0 ** -17], f),
              [1.0, 1.5, 2.0 ** -15, 0.0])


def test_fp16_bf16_fp6_fp4():
    assert eq(round_float([65504, 65519, 65520, 2.0 ** -25, 1 + 2 ** -11], FP16),
              [65504, 65504, np.inf, 0.0, 1.0])
    assert eq(round_float([1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.3895313892515355e38 * 1.004], BF16),
              [1.0, 1 + 2 ** -6, np.inf])
    assert eq(round_float([7.5, 7.75, 100, 0.0625, 0.1875], FP6_E2M3), [7.5, 7.5, 7.5, 0.0, 0.25])
    assert eq(round_float([28, 30, 100, 0.0625 * 1.5], FP6_E3M2), [28, 28, 28, 0.125])
    assert eq(round_float([0.25, 0.75, 2.5, 5, 7, -100], FP4_E2M1), [0, 1, 2, 4, 6, -6])
    assert eq(round_float([0.25, 2.5, 5], FP4_E2M1, Rounding.HALF_AWAY), [0.5, 3, 6])


def test_float_rounding_agrees_with_ml_dtypes_on_fp32_inputs():
    ml = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(20000) * np.exp2(rng.integers(-24, 20, 20000))).astype(np.float32)
    for fmt, dt in ((FP8_E4M3, ml.float8_e4m3fn), (FP8_E5M2, ml.float8_e5m2), (BF16, ml.bfloat16),
                    (FP6_E2M3, ml.float6_e2m3fn), (FP6_E3M2, ml.float6_e3m2fn), (FP4_E2M1, ml.float4_e2m1fn)):
        ours = round_float(x, fmt, saturate=not fmt.nan)
        with np.errstate(over="ignore"):
            theirs = x.astype(dt).astype(np.float64)
        assert eq(ours, theirs), fmt.name


def test_unknown_names_list_the_known_ones():
    with pytest.raises(WorkloadError, match="known: .*fp8_e4m3"):
        get_format("fp7")
    with pytest.raises(WorkloadError, match="half_even"):
        round_to_int(1.0, "nearest")
    assert get_format("fp8") is FP8_E4M3 and get_format("int4") == IntFormat(4)
