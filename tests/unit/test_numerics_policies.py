"""Requantization policies: hand-computed ties, multiplier derivation, and numpy == numba (Hypothesis,
derandomized) with planted ties and small right shifts."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsim.errors import WorkloadError
from qsim.numerics import POLICIES, get_policy, requantize
from qsim.numerics.multipliers import quantize_multiplier

ACC = np.array([-3, -2, 2, 3])  # M = 1/4: -0.75 -0.5 0.5 0.75; the first rounding sees -1.5 -1 1 1.5
EXPECTED_QUARTER = {
    "onnxruntime": [-1, 0, 0, 1], "qnnpack": [-1, 0, 0, 1], "xnnpack": [-1, 0, 0, 1],
    "fbgemm": [-1, 0, 0, 1],
    "tflite-reference": [-1, -1, 1, 1],   # -1.5 -> -1 (SRDHM ties up), then -0.5 -> -1 (away)
    "cmsis-nn": [-1, -1, 1, 1],
    "tflite-optimized": [0, 0, 1, 1],     # -1.5 -> -1, then -0.5 -> 0 (vrshl ties up)
    "tflite-single-rounding": [-1, 0, 1, 1],  # -0.75 -> -1, -0.5 -> 0 (ties up, once)
    "litert-fc-reference": [-1, -1, 1, 1],    # half away from zero
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_hand_computed_ties(name):
    for impl in ("numpy", "numba"):
        out = requantize(ACC, 0.25, 0.5, 0.5, 0, -128, 127, policy=name, impl=impl)
        assert out.tolist() == EXPECTED_QUARTER[name], impl
        half = requantize(np.array([-3, -1, 1, 3, 5]), 0.5, 0.5, 0.5, 0, -128, 127, policy=name, impl=impl)
        exp = {"onnxruntime": [-2, 0, 0, 2, 2], "litert-fc-reference": [-2, -1, 1, 2, 3]}
        kind = POLICIES[name].kind
        want = exp["onnxruntime"] if kind.startswith("float32") else \
            exp["litert-fc-reference"] if kind == "float64" else [-1, 0, 1, 2, 3]
        assert half.tolist() == want, impl


def test_quantize_multiplier_cases():
    q, s = quantize_multiplier([0.5, 0.75, 1.0, 2.0 ** -40, 1 - 2.0 ** -40, 0.0, 3.0])
    assert q.tolist() == [2 ** 30, 3 * 2 ** 29, 2 ** 30, 0, 2 ** 30, 0, 3 * 2 ** 29]
    assert s.tolist() == [0, 0, 1, 0, 1, 0, 2]
    q, s = quantize_multiplier([2.0 ** 31, 2.0 ** 40], single_rounding=True)
    assert q.tolist() == [2 ** 31 - 1] * 2 and s.tolist() == [30, 30]
    # q = round(f * 2^31) rounds half away: f * 2^31 = k + 0.5 exactly
    m = (2 ** 30 + 0.5) / 2 ** 31
    assert quantize_multiplier(m)[0][0] == 2 ** 30 + 1


def test_per_channel_axis_and_errors():
    acc = np.arange(24).reshape(2, 3, 4) - 12
    sw = np.float32([0.5, 1.0, 2.0])
    out = requantize(acc, 1.0, sw, 1.0, 0, -128, 127, "onnxruntime", axis=1)
    ref = np.rint(acc * sw.reshape(1, 3, 1))
    assert np.array_equal(out, ref)
    with pytest.raises(WorkloadError, match="known: onnxruntime, fbgemm"):
        get_policy("tflite")
    with pytest.raises(WorkloadError, match="only 'fbgemm'"):
        requantize(acc, 1.0, 1.0, 1.0, 0, -128, 127, "onnxruntime", bias=1.0)
    with pytest.raises(ValueError, match="int32 accumulators"):
        requantize(np.array([2 ** 31]), 1.0, 1.0, 1.0, 0, -128, 127, "tflite-reference")


def test_fbgemm_float_bias_per_tensor_uses_fused_reciprocal():
    # atw = 0.1875 is not a power of two: bias * fp32(1/atw) fused into the add lands just below
    # the exact tie 18 * 0.75 = 13.5 (measured on torch 2.13); per channel the division is exact.
    acc, bias = np.array([55]), np.float32(-37 * 0.1875)
    pt = requantize(acc, 1.5, 0.125, 0.25, 0, -128, 127, "fbgemm", bias=bias)
    pc = requantize(acc.reshape(1, 1), 1.5, np.float32([0.125, 0.125])[:1], 0.25, 0, -128, 127,
                    "fbgemm", bias=np.float32([bias]), axis=1)
    assert pt.tolist() == [13]
    assert pc.tolist() == [[13]]  # a length-1 s_w is per tensor too: same rule
    pc2 = requantize(np.array([[55, 55]]), 1.5, np.float32([0.125, 0.125]), 0.25, 0, -128, 127,
                     "fbgemm", bias=np.float32([bias, bias]), axis=1)
    assert pc2.tolist() == [[14, 14]]


# Multipliers odd / 2^k plant exact ties; k up to 4 gives right shifts of 0..3 after the Q31 step.
tie_mult = st.tuples(st.sampled_from([1, 3, 5, 7, 9, 13]), st.integers(1, 5)).map(lambda t: t[0] / 2 ** t[1])
any_mult = st.floats(2.0 ** -20, 4.0, allow_nan=False, width=32)


@st.composite
def cases(draw):
    per_channel = draw(st.booleans())
    c = draw(st.integers(2, 5)) if per_channel else 1
    n = draw(st.integers(1, 12))
    lim = draw(st.sampled_from([64, 1 << 12, 1 << 20, (1 << 31) - 1]))
    acc = np.array(draw(st.lists(st.integers(-lim - 1 if lim > 2 ** 30 else -lim, lim),
                                 min_size=n * c, max_size=n * c)), np.int64).reshape(n, c)
    mults = [draw(st.one_of(tie_mult, any_mult)) for _ in range(c)]
    s_in = draw(st.sampled_from([1.0, 0.5, 0.03125, 0.0123]))
    s_w = np.float32(mults) / np.float32(s_in) if per_channel else np.float32(mults[0] / s_in)
    zp = draw(st.integers(-20, 20))
    lo, hi = draw(st.sampled_from([(-128, 127), (0, 255), (-32768, 32767), (-8, 7), (0, 127)]))
    bias = np.float32(draw(st.lists(st.floats(-1e4, 1e4, width=32), min_size=c, max_size=c))) \
        if draw(st.booleans()) else None
    return acc, s_in, s_w, zp, lo, hi, bias


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(cases(), st.sampled_from(list(POLICIES)))
def test_numpy_and_numba_are_byte_equal(case, name):
    acc, s_in, s_w, zp, lo, hi, bias = case
    pol = get_policy(name)
    kw = dict(axis=1, bias=bias if name == "fbgemm" else None)
    a = pol.requantize(acc, s_in, s_w, 1.0, zp, lo, hi, impl="numpy", **kw)
    b = pol.requantize(acc, s_in, s_w, 1.0, zp, lo, hi, impl="numba", **kw)
    assert a.dtype == b.dtype == np.int64
    assert np.array_equal(a, b)
    assert a.min() >= lo and a.max() <= hi


@settings(derandomize=True, max_examples=200, deadline=None, database=None)
@given(st.lists(st.integers(-(1 << 31), (1 << 31) - 1), min_size=1, max_size=30), tie_mult)
def test_single_rounding_is_exact_rounding_half_up(accs, m):
    """The single-rounding policy is round_half_up(acc * q * 2^(shift-31)): check with Python ints."""
    acc = np.array(accs, np.int64)
    out = requantize(acc, 1.0, m, 1.0, 0, -(1 << 31), (1 << 31) - 1, "tflite-single-rounding")
    q, s = quantize_multiplier(m)
    total = 31 - int(s[0])
    want = [min(max((a * int(q[0]) + (1 << (total - 1))) >> total, -(1 << 31)), (1 << 31) - 1)
            for a in accs]
    assert out.tolist() == want


def test_left_shift_of_32_or_more_is_taken_mod_32_by_the_reference_kernels():
    """A multiplier >= 2^31 (x scale 66.2, w 48.9, y 1.35e-6: LiteRT CONV_2D, long-run seed 100737) gives
    QuantizeMultiplier's shift 32. LiteRT's scalar reference kernels compute ``x * (1 << 32)`` with x86
    ``shl``, which takes the count mod 32 (x * 1); the vector kernels shift every bit out (0)."""
    s_in, s_w, s_out = np.float32(66.207306), np.float32(48.872692), np.float32(1.35e-06)
    q, shift = quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
    assert int(shift[0]) == 32 and int(q[0]) == 1198418208
    acc = np.array([100, -3, 0, 5000])
    lo, hi = -2**31, 2**31 - 1
    # SaturatingRoundingDoublingHighMul(acc, q): 100 * q / 2^31 = 55.81 -> 56; -3 * q / 2^31 = -1.67 -> -2
    assert requantize(acc, s_in, s_w, s_out, 0, lo, hi, policy="tflite-reference").tolist() == [56, -2, 0, 2790]
    assert requantize(acc, s_in, s_w, s_out, 7, lo, hi, policy="tflite-optimized").tolist() == [7, 7, 7, 7]
