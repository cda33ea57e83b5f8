"""The VNNI convolution with the requantization in the same parallel loop (``vnni_fused``) equals
the numpy spec byte for byte on the shapes its work items split on: output pixels gathered through
their input offsets in runs (a shorter last run, pixel counts that fill no whole register tile,
runs ending in an overlapping tile; rows of 7 pixels, stride 2), stems (<= 4 channels, also per group),
general rows (3x3, stride 2, padding, dilation), output channels filling no whole panel, groups,
uint8 weights (window sums), int8 inputs (the +128 shift), batch > 1 (symmetric weights: one
parallel region) and the overflow count of a narrow accumulator. Multipliers are exact powers of
two: many ties."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import jit, reference, vnni, vnni_fused
from qsim.numerics.policies import PolicyName, get_policy
from qsim.numerics.requant_jit import requant_spec

pytestmark = pytest.mark.skipif(not vnni.HAS_VNNI, reason="the fused kernel runs on the VNNI core only")

CASES = [  # (N, C, H, W, M, k, stride, pads, dilation, groups)
    (1, 40, 7, 7, 96, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),     # flat: 49 pixels = 32 + 17
    (2, 24, 9, 10, 144, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),   # flat: 90 pixels, 3 panels (the last partial)
    (1, 19, 9, 8, 70, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (2, 32, 11, 10, 64, 3, (2, 2), (1, 0, 1, 1), (1, 2), 2),
    (1, 16, 8, 9, 33, 1, (2, 1), (0, 0, 0, 0), (1, 1), 1),     # 1x1 at stride 2: rows, not flat
    (2, 20, 7, 7, 40, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),     # 7-pixel rows: padded rows as one flat run
    (1, 12, 9, 11, 24, 3, (1, 1), (2, 1, 0, 2), (2, 2), 1),    # the same with dilation, uneven padding
    (1, 8, 17, 5, 16, 1, (1, 1), (1, 0, 0, 2), (1, 1), 1),     # a padded 1x1: flat over padded rows
    (2, 3, 17, 15, 32, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),    # stems (<= 4 channels)
    (1, 4, 19, 18, 64, 7, (2, 2), (3, 2, 3, 1), (1, 1), 1),
    (1, 2, 9, 9, 16, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),
    (1, 8, 9, 9, 32, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),     # groups of 4 and 2 channels: one word
    (2, 6, 7, 8, 48, 3, (2, 1), (1, 0, 1, 2), (1, 1), 3),     # per pixel (vnni._nhwc_row4)
    (1, 64, 7, 7, 200, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),   # 49 pixels: runs of 30 + 19, 4 panels
    (1, 16, 14, 14, 64, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),  # stride 2: 49 pixels gathered across rows
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("policy", [PolicyName.ONNXRUNTIME, PolicyName.TFLITE_REFERENCE, PolicyName.FBGEMM])
def test_fused_conv_equals_reference(case, policy):
    n, c, h, wd, m, k, stride, pads, dil, groups = case
    rng = np.random.default_rng(m * 10 + k)
    if k == 1 and stride == (1, 1):
        assert h * wd % vnni_fused.RUN and h * wd % vnni.MR  # a short last run and a partial tile
    # symmetric int8 weights (zero point 0, no window sums): a batch runs in one parallel region
    for xdt, wdt, acc_bits, sym in [(np.uint8, np.int8, 32, False), (np.int8, np.uint8, 32, False),
                                    (np.uint8, np.int8, 13, False), (np.uint8, np.int8, 32, True),
                                    (np.int8, np.int8, 13, True)]:
        xi, wi = np.iinfo(xdt), np.iinfo(wdt)
        x = rng.integers(xi.min, xi.max + 1, (n, c, h, wd)).astype(xdt)
        w = rng.integers(wi.min, wi.max + 1, (m, c // groups, k, k)).astype(wdt)
        w.flags.writeable = False
        xz = int(rng.integers(xi.min, xi.max + 1))
        wz = rng.integers(wi.min, wi.max + 1, m) if wdt == np.uint8 else rng.integers(-2, 3, m) * (not sym)
        fbias = (rng.standard_normal(m) * 3).astype(np.float32) if policy is PolicyName.FBGEMM else None
        bias = None if fbias is not None else rng.integers(-4000, 4000, m).astype(np.int32)
        s_w = np.where(np.arange(m) % 3 == 0, 0.25, 0.5).astype(np.float32)
        s_in, s_out, zp, lo, hi = np.float32(0.125), np.float32(2.0), -3, -3, 127   # a fused ReLU, int8 out
        spec = requant_spec(policy, s_in, s_w, s_out, zp, lo, hi, m, fbias)
        args = (x, w, xz, wz, bias, stride, pads, dil, groups)
        got, events = jit.conv2d_requant(*args, acc_bits=acc_bits, requant=(spec, np.int8))
        acc, want_events = reference.conv2d_acc(*args, acc_bits=acc_bits, overflow="wrap")
        want = get_policy(policy).requantize(acc, s_in, s_w, s_out, zp, lo, hi, 1, fbias, "numpy")
        np.testing.assert_array_equal(got, want.astype(np.int8))
        assert got.dtype == np.int8 and events == want_events
        if acc_bits == 13:
            assert events > 0


@pytest.mark.parametrize("groups", [1, 24])
def test_plan_cache_follows_every_parameter(groups):
    """The plan kept beside read-only weights is keyed on everything it derives from: the same
    frozen weights under another bias, zero point, output multiplier or input shape give the
    reference's bits, and a plan is reused only for identical calls."""
    rng = np.random.default_rng(11)
    c = 24
    w = rng.integers(-128, 128, (24 if groups > 1 else 32, c // groups, 3, 3)).astype(np.int8)
    w.flags.writeable = False
    m = w.shape[0]
    for trial in range(4):
        hw = 6 if trial < 3 else 9
        x = rng.integers(0, 256, (1, c, hw, hw)).astype(np.uint8)
        bias = rng.integers(-4000, 4000, m).astype(np.int32)
        wz = np.full(m, trial - 1)
        xz, s_w = 100 + trial, np.full(m, 0.5 / (trial + 1), np.float32)
        spec = requant_spec(PolicyName.ONNXRUNTIME, np.float32(0.25), s_w, np.float32(1.0), 0, 0, 255, m)
        args = (x, w, xz, wz, bias, (1, 1), (1, 1, 1, 1), (1, 1), groups)
        for _ in range(2):
            got, events = jit.conv2d_requant(*args, acc_bits=32, requant=(spec, np.uint8))
            acc, _ = reference.conv2d_acc(*args, acc_bits=32, overflow="wrap")
            want = get_policy(PolicyName.ONNXRUNTIME).requantize(acc, np.float32(0.25), s_w, np.float32(1.0), 0, 0,
                                                                 255, 1, None, "numpy")
            np.testing.assert_array_equal(got, want.astype(np.uint8))
