"""The requantization fused into the VNNI kernels' epilogue (``jit.conv2d_requant``,
``jit.matmul_requant``) equals the numpy spec: ``reference.conv2d_acc`` / ``matmul_acc`` followed by
``Policy.requantize(impl="numpy")`` and the cast to the output type, byte for byte, for every
policy. Multipliers are planted at exact halves (m = 2^-k, m = 3 * 2^-k), so most outputs are
ties for the float policies and the fixed-point ones run at right shifts 0..3, where double and
single rounding differ on up to 25 % of outputs; a narrow accumulator checks the overflow count."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import jit, reference, vnni
from qsim.numerics.policies import POLICIES, PolicyName, RequantKind, get_policy
from qsim.numerics.requant_jit import requant_spec

pytestmark = pytest.mark.skipif(not vnni.HAS_VNNI, reason="the fused epilogue runs on the VNNI core only")

# (s_in, s_out) pairs: with s_w = 0.5 the multiplier is exactly 2^-2 .. 2^-5 or 3 * 2^-6 (ties),
# or an ordinary value (random rounding).
SCALES = [(0.5, 1.0), (0.25, 1.0), (0.125, 2.0), (0.375, 4.0), (0.0173, 0.91)]
OUT_TYPES = {"uint8": (np.uint8, 0, 255), "int8": (np.int8, -128, 127)}


def _expected(acc, events, policy, s_in, s_w, s_out, zp, lo, hi, axis, fbias, dtype):
    y = get_policy(policy).requantize(acc, s_in, s_w, s_out, zp, lo, hi, axis, fbias, "numpy")
    return y.astype(dtype), events


def _case(rng, policy, scales, out, per_channel, m):
    s_in, s_out = scales
    dtype, qmin, qmax = OUT_TYPES[out]
    s_w = np.full(m, 0.5, np.float32) if per_channel else np.float32(0.5)
    if per_channel:
        s_w[::3] = 0.25  # channels at another exact power of two
    zp = int(rng.integers(qmin, qmax + 1))
    lo, hi = (max(qmin, zp), qmax) if rng.random() < 0.5 else (qmin, qmax)  # a fused ReLU or none
    fbias = (rng.standard_normal(m) * 3).astype(np.float32) if policy is PolicyName.FBGEMM else None
    spec = requant_spec(policy, np.float32(s_in), s_w, np.float32(s_out), zp, lo, hi, m, fbias)
    return spec, (np.float32(s_in), s_w, np.float32(s_out), zp, lo, hi, fbias, dtype)


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("scales", SCALES)
def test_conv_fused_equals_reference(policy, scales):
    rng = np.random.default_rng(abs(hash((policy.value, scales))) % 2**32)
    for per_channel, groups, out, xdt, acc_bits in [(True, 1, "uint8", np.uint8, 32), (False, 2, "int8", np.int8, 32),
                                                     (True, 1, "int8", np.uint8, 12)]:
        m, cg = 32 * groups, 5
        x = rng.integers(np.iinfo(xdt).min, np.iinfo(xdt).max + 1, (2, cg * groups, 7, 6)).astype(xdt)
        w = rng.integers(-128, 128, (m, cg, 3, 3)).astype(np.int8)
        xz = int(rng.integers(np.iinfo(xdt).min, np.iinfo(xdt).max + 1))
        wz = rng.integers(-3, 4, m)
        bias = None if policy is PolicyName.FBGEMM else rng.integers(-4000, 4000, m).astype(np.int32)
        spec, (s_in, s_w, s_out, zp, lo, hi, fbias, dtype) = _case(rng, policy, scales, out, per_channel, m)
        args = (x, w, xz, wz, bias, (1, 2), (1, 0, 1, 1), (1, 1), groups)
        got = jit.conv2d_requant(*args, acc_bits=acc_bits, requant=(spec, dtype))
        assert got is not None
        acc, events = reference.conv2d_acc(*args, acc_bits=acc_bits, overflow="wrap")
        want = _expected(acc, events, policy, s_in, s_w, s_out, zp, lo, hi, 1, fbias, dtype)
        assert got[0].dtype == dtype and got[0].shape == want[0].shape
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1] == want[1]
        if acc_bits == 12:
            assert want[1] > 0  # the narrow accumulator did overflow: the count was checked


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("scales", SCALES)
def test_depthwise_fused_equals_reference(policy, scales):
    """One channel per group: the channels-last depthwise kernel (any 8/16-bit input, any stride,
    dilation and padding), fed both NCHW arrays and NCHW views of channels-last data."""
    rng = np.random.default_rng(abs(hash(("dw", policy.value, scales))) % 2**32)
    for xdt, stride, dil, pads, acc_bits, layout in [(np.uint8, (1, 1), (1, 1), (1, 1, 1, 1), 32, "nchw"),
                                                     (np.int8, (2, 1), (1, 2), (0, 2, 1, 0), 32, "nhwc"),
                                                     (np.int16, (1, 2), (1, 1), (2, 1, 0, 1), 20, "nchw")]:
        c = 19
        x = rng.integers(np.iinfo(xdt).min, np.iinfo(xdt).max + 1, (2, 9, 8, c)).astype(xdt)
        x = x.transpose(0, 3, 1, 2) if layout == "nhwc" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        w = rng.integers(-128, 128, (c, 1, 3, 3)).astype(np.int8)
        xz = int(rng.integers(np.iinfo(xdt).min, np.iinfo(xdt).max + 1))
        wz = rng.integers(-3, 4, c)
        bias = None if policy is PolicyName.FBGEMM else rng.integers(-4000, 4000, c).astype(np.int32)
        spec, (s_in, s_w, s_out, zp, lo, hi, fbias, dtype) = _case(rng, policy, scales, "int8", True, c)
        args = (x, w, xz, wz, bias, stride, pads, dil, c)
        got = jit.conv2d_requant(*args, acc_bits=acc_bits, requant=(spec, dtype))
        acc, events = reference.conv2d_acc(*args, acc_bits=acc_bits, overflow="wrap")
        want = _expected(acc, events, policy, s_in, s_w, s_out, zp, lo, hi, 1, fbias, dtype)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[0].dtype == dtype and got[1] == want[1]
        if acc_bits == 20:
            assert want[1] > 0  # int16 inputs overflow a 20-bit accumulator: the count was checked


@pytest.mark.parametrize("policy", list(POLICIES))
def test_matmul_fused_equals_reference(policy):
    rng = np.random.default_rng(7)
    for scales in SCALES:
        n, k = 70, 37
        a = rng.integers(0, 256, (3, 5, k)).astype(np.uint8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        bias = None if policy is PolicyName.FBGEMM else rng.integers(-4000, 4000, n).astype(np.int32)
        az = int(rng.integers(0, 256))
        spec, (s_in, s_w, s_out, zp, lo, hi, fbias, dtype) = _case(rng, policy, scales, "uint8", True, n)
        got = jit.matmul_requant(a, b, az, 0, bias, acc_bits=32, requant=(spec, dtype))
        acc, events = reference.matmul_acc(a, b, az, 0, bias, acc_bits=32, overflow="wrap")
        want = _expected(acc, events, policy, s_in, s_w, s_out, zp, lo, hi, -1, fbias, dtype)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[0].dtype == dtype and got[1] == want[1] == 0


def test_planted_ties_are_exercised():
    """The planted scales put outputs exactly on halves: the test above would notice a wrong tie rule."""
    acc = np.arange(-40, 40, dtype=np.int64).reshape(-1, 1)
    y = acc.astype(np.float64) * 0.125
    assert np.mean(y == np.floor(y) + 0.5) > 0.1
    p = get_policy(PolicyName.TFLITE_REFERENCE).params(np.float32(0.25), np.float32(0.5), np.float32(1.0))
    assert p["shift"][0] < 0 and p["qmult"][0] == 1 << 30  # an exact power of two: ties at small shifts
    assert {POLICIES[p].kind for p in POLICIES} == set(RequantKind)  # every kind is parametrized above
