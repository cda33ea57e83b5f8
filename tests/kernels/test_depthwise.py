"""The channels-last depthwise kernel (``qsim.kernels.depthwise`` through ``jit.conv2d_requant``)
equals the numpy spec byte for byte on the shapes its code paths split on: the 3x3 interior pass
and the tap-by-tap border pass (strides 1 and 2, dilation, asymmetric padding, rows without an
interior pixel), other kernel sizes, channel counts that fill no whole vector, batch > 1, the
int32 and int64 working types, the float32 kind in float32 lanes and the other kinds, and the
overflow count of a narrow accumulator. Multipliers are exact powers of two, so many outputs are
rounding ties."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import jit, reference
from qsim.numerics.policies import PolicyName, get_policy
from qsim.numerics.requant_jit import requant_spec

CASES = [  # (N, C, H, W, kh, kw, stride, pads, dilation)
    (2, 19, 9, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 33, 10, 11, 3, 3, (2, 2), (1, 0, 1, 1), (1, 1)),
    (3, 7, 6, 5, 3, 3, (2, 1), (0, 2, 1, 0), (2, 1)),
    (1, 144, 5, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 1, 4, 4, 3, 3, (1, 1), (2, 2, 2, 2), (1, 1)),     # one channel, border pixels only at the edges
    (2, 17, 7, 9, 5, 5, (1, 2), (2, 2, 2, 2), (1, 1)),    # 5x5: tap by tap
    (1, 9, 3, 4, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)),
]


def _run(x, w, xz, wz, bias, stride, pads, dil, acc_bits, policy, s_w, dtype, zp, lo, hi):
    c = w.shape[0]
    spec = requant_spec(policy, np.float32(0.5), s_w, np.float32(1.0), zp, lo, hi, c)
    args = (x, w, xz, wz, bias, stride, pads, dil, c)
    got, events = jit.conv2d_requant(*args, acc_bits=acc_bits, requant=(spec, dtype))
    acc, want_events = reference.conv2d_acc(*args, acc_bits=acc_bits, overflow="wrap")
    want = get_policy(policy).requantize(acc, np.float32(0.5), s_w, np.float32(1.0), zp, lo, hi, 1, None, "numpy")
    np.testing.assert_array_equal(got, want.astype(dtype))
    assert got.dtype == dtype and events == want_events
    return events


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("policy", [PolicyName.ONNXRUNTIME, PolicyName.TFLITE_REFERENCE, PolicyName.TFLITE_OPTIMIZED])
def test_depthwise_equals_reference(case, policy):
    n, c, h, wd, kh, kw, stride, pads, dil = case
    rng = np.random.default_rng(c * 100 + kh)
    for xdt, layout in [(np.uint8, "nhwc"), (np.int8, "nchw")]:
        info = np.iinfo(xdt)
        x = rng.integers(info.min, info.max + 1, (n, h, wd, c)).astype(xdt)
        x[:, 0, 0, :] = info.max  # planted extremes at a corner
        x = x.transpose(0, 3, 1, 2) if layout == "nhwc" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        w = rng.integers(-128, 128, (c, 1, kh, kw)).astype(np.int8)
        w.flags.writeable = False   # the prepared weights are cached, as in the executor
        xz = int(rng.integers(info.min, info.max + 1))
        bias = rng.integers(-4000, 4000, c).astype(np.int32)
        s_w = np.where(np.arange(c) % 3 == 0, 0.25, 0.125).astype(np.float32)  # exact: many ties
        for zp, lo, hi, dtype in [(3, 0, 255, np.uint8), (-5, -5, 127, np.int8)]:  # a fused ReLU on int8
            _run(x, w, xz, rng.integers(-3, 4, c), bias, stride, pads, dil, 32, policy, s_w, dtype, zp, lo, hi)
            _run(x, w, xz, 0, None, stride, pads, dil, 32, policy, s_w, dtype, zp, lo, hi)


def test_int64_working_type_and_overflow_count():
    """int16 weights on a 7x7 window: the exact sums pass 2^31 (the int64 working type), and a
    32-bit accumulator counts and wraps them; a 16-bit one on 8-bit data counts planted overflows."""
    rng = np.random.default_rng(5)
    c = 11
    x = rng.integers(-32768, 32768, (2, c, 9, 9)).astype(np.int16)
    w = rng.integers(-32768, 32768, (c, 1, 7, 7)).astype(np.int16)
    x[0, 0] = 32767
    w[0] = -32768           # channel 0 of image 0: the exact sum is about -2^36
    s_w = np.full(c, 2.0 ** -20, np.float32)
    events = _run(x, w, 0, 0, None, (1, 1), (3, 3, 3, 3), (1, 1), 32, PolicyName.ONNXRUNTIME, s_w, np.int16,
                  0, -32768, 32767)
    assert events > 0
    x8 = np.full((1, c, 6, 6), 255, np.uint8)
    w8 = np.full((c, 1, 3, 3), -128, np.int8)
    events = _run(x8, w8, 0, 0, None, (1, 1), (1, 1, 1, 1), (1, 1), 16, PolicyName.ONNXRUNTIME,
                  np.full(c, 0.5, np.float32), np.int8, 0, -128, 127)
    assert events == c * 36    # every window sums at least 4 * 255 * -128 < -2^15
