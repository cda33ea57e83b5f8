"""The AVX2 conv tiles with the requantization in registers (``avx2_requant``) equal the numpy spec
(``reference.conv2d_acc`` then ``Policy.requantize(impl="numpy")``) byte for byte, and equal the
tiles + row epilogue they replace (``vnni_fused.conv_rows_q``). Multipliers are planted at exact
halves (most outputs are ties), zero points at both ends, fused ReLU bounds, uint8 and int8
outputs, the int8 tiles (weights whose byte pairs cannot saturate) and the exact int16 ones (full
range weights), every tile height (runs of 1-5 pixels, whole and overlapping 6-pixel tiles)."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import avx2_requant, conv_input, reference, vnni_fused, vnni_ops
from qsim.kernels._common import acc_range, conv_geometry
from qsim.numerics.policies import PolicyName, get_policy
from qsim.numerics.requant_jit import requant_spec

pytestmark = pytest.mark.skipif(vnni_fused.CORE != "avx2", reason="the AVX2 core runs on x86 hosts without VNNI")

# (cin, cout, kernel, stride, pads, hw, batch): 1x1 and 3x3, K from 4 to 1152, 16..96 output
# channels (whole chunks, partial panels), output images of 1..81 pixels (every tile height)
SHAPES = [(4, 16, 1, 1, 0, 1, 1), (5, 32, 3, 2, 1, 5, 2), (64, 48, 1, 1, 0, 7, 3), (16, 64, 3, 1, 1, 9, 1),
          (128, 96, 3, 2, 0, 9, 2), (72, 80, 1, 2, 0, 4, 2), (3, 16, 3, 1, 1, 2, 1)]
# (s_in, s_out) with s_w = 0.5: multipliers 2^-2, 2^-5, 3 * 2^-6 (ties) and an ordinary one
SCALES = [(0.5, 1.0), (0.125, 2.0), (0.375, 4.0), (0.0173, 0.91)]


def _conv(rng, shape, scales, wmax, out_dtype):
    cin, cout, k, s, p, hw, n = shape
    x = rng.integers(0, 256, (n, cin, hw, hw)).astype(np.uint8)
    w = rng.integers(-wmax, wmax, (cout, cin, k, k)).astype(np.int8)
    xz = int(rng.choice([0, 255, int(rng.integers(0, 256))]))
    bias = rng.integers(-4000, 4000, cout).astype(np.int32)
    info = np.iinfo(out_dtype)
    zp = int(rng.choice([info.min, info.max, int(rng.integers(info.min, info.max + 1))]))
    lo, hi = (max(info.min, zp), info.max) if rng.random() < 0.5 else (info.min, info.max)
    s_in, s_out = scales
    s_w = np.full(cout, 0.5, np.float32)
    s_w[::3] = 0.25
    spec = requant_spec(PolicyName.ONNXRUNTIME, np.float32(s_in), s_w, np.float32(s_out), zp, lo, hi, cout)
    g = conv_geometry(x, w, (s, s), (p,) * 4, (1, 1), 1)
    acc_lo, acc_hi = acc_range(32)
    plan = vnni_ops.plan_conv(w, x.dtype, xz, np.zeros(cout, np.int64), bias.astype(np.int64), g, 32, acc_lo, acc_hi,
                              False, (spec, out_dtype))
    acc, _ = reference.conv2d_acc(x, w, xz, 0, bias, (s, s), (p,) * 4, (1, 1), 1, acc_bits=32, overflow="wrap")
    want = get_policy(PolicyName.ONNXRUNTIME).requantize(acc, np.float32(s_in), s_w, np.float32(s_out), zp, lo, hi,
                                                         1, None, "numpy").astype(out_dtype)
    return x, plan, spec, want


@pytest.mark.parametrize("scales", SCALES)
@pytest.mark.parametrize("out_dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("wmax", [64, 128], ids=["int8-tiles", "int16-tiles"])
def test_requantized_in_registers_equals_spec(scales, out_dtype, wmax):
    rng = np.random.default_rng(abs(hash((scales, wmax, np.dtype(out_dtype).name))) % 2**32)
    for shape in SHAPES:
        x, plan, spec, want = _conv(rng, shape, scales, wmax, out_dtype)
        fast = plan.group_terms[0][2]
        assert avx2_requant.applies(fast, shape[1])   # the path under test is the one taken
        got, events = vnni_ops.run_planned(plan, x, (spec, out_dtype))
        np.testing.assert_array_equal(got, want, err_msg=str(shape))
        assert events == 0
        # and the tiles + row epilogue it replaces write the same bytes
        g = plan.g
        xp = conv_input.planned_input(plan, x)
        rows = np.empty((g.n * g.oh * g.ow, g.m), out_dtype)
        w0g, const, _ = plan.group_terms[0]
        vnni_fused.conv_rows_q(xp.reshape(-1), plan.packs[0][0], plan.taps, plan.cgp // 4, plan.offs, plan.run,
                               plan.zeros, w0g, const, plan.acc_bits, plan.lo, plan.hi, plan.checked, 0, spec, rows,
                               fast, g.n, xp[0].size)
        np.testing.assert_array_equal(rows.reshape(g.n, g.oh, g.ow, g.m).transpose(0, 3, 1, 2), want)


def test_ties_are_planted():
    """The planted scales put outputs exactly on halves, so a wrong rounding rule would show."""
    rng = np.random.default_rng(1)
    _, plan, spec, _ = _conv(rng, SHAPES[2], SCALES[0], 64, np.uint8)
    acc = rng.integers(-1000, 1000, 4000).astype(np.float32) * np.float32(spec[1][1])   # 0.25
    assert np.mean(acc == np.floor(acc) + 0.5) > 0.1


def test_partial_chunks_take_the_row_epilogue():
    """Output channels that are not whole 16-column chunks (a 16-byte store would write past the
    row) and other requantization kinds keep the tiles + row epilogue."""
    assert not avx2_requant.applies((None, None, None), 40)
    assert not avx2_requant.applies(None, 64)
