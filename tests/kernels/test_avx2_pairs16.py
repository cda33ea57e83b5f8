"""The planned conv / Gemm kernel (``vnni_ops.plan_conv`` / ``run_planned``) on the host's core:
on AVX2 hosts without VNNI (``avx2``), MLAS's u8s8 sums with each byte pair (2j, 2j+1) of the
reduction saturated to int16 (pairs16), or exact sums where no packed pair can saturate; on VNNI
hosts exact sums, pairs16 declined. Byte for byte against a numpy model (``_pairs16_model``) with
planted saturating pairs (x = 255 under weight pairs (127, 127) and (-128, -128)), an odd reduction,
padded taps (raw x_zp), x_zp 0 and not, weight zero points, stride 2, groups, per-tensor and
per-channel scales; and, through a planned QLinearConv / QGemm, against onnxruntime where it runs
MLAS's AVX2 kernel (hosts without VNNI)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from _pairs16_model import conv_acc, gemm_acc
from qsim.kernels import avx2, reference, vnni, vnni_fused, vnni_ops
from qsim.kernels._common import conv_geometry
from qsim.numerics.policies import PolicyName, get_policy
from qsim.numerics.requant_jit import requant_spec

pytestmark = pytest.mark.skipif(not (vnni.HAS_VNNI or avx2.HAS_AVX2), reason="no x86 int8 core on this host")
ON_AVX2 = vnni_fused.CORE == "avx2"
ORT = PolicyName.ONNXRUNTIME

CASES = [  # (N, C, H, W, M, k, stride, pads, groups)
    (1, 16, 9, 9, 70, 3, (1, 1), (1, 1, 1, 1), 1),     # padded taps, a partial panel
    (2, 6, 8, 7, 32, 3, (2, 2), (1, 0, 1, 1), 1),      # 6 channels: pad channels pair together; stride 2
    (1, 2, 10, 10, 16, 3, (1, 1), (1, 1, 1, 1), 1),    # one pair per tap
    (1, 24, 7, 7, 64, 3, (1, 1), (1, 1, 1, 1), 2),     # groups of 12 channels
    (1, 7, 5, 6, 20, 1, (1, 1), (0, 0, 0, 0), 1),      # odd K in one tap: the last channel pairs with 0
]
ODD_TAPS = (1, 3, 12, 12, 32, 3, (2, 2), (1, 1, 1, 1), 1)   # MLAS pairs straddle taps: receptive-field rows
ROWS_CASES = [ODD_TAPS,
              (2, 3, 15, 14, 24, 7, (2, 2), (3, 2, 3, 1), 1),   # a stem: 7x7, stride 2
              (1, 6, 9, 9, 32, 3, (1, 1), (1, 1, 1, 1), 2),     # groups of 3 channels
              (1, 5, 8, 8, 16, 2, (1, 1), (0, 1, 1, 0), 1),     # even taps, odd channels
              (1, 3, 8, 8, 16, 2, (1, 1), (1, 0, 0, 1), 1)]     # tap rows of 6 bytes: copied byte by byte


def _plant(rng, x, w, groups):
    """x = 255 over a corner of the image, and weight pairs (127, 127) / (-128, -128) at pair
    positions (2j, 2j+1) of each filter's (ky, kx, c) reduction."""
    x[:, :, : x.shape[2] // 2 + 1, : x.shape[3] // 2 + 1] = 255
    m, cg, kh, kw = w.shape
    flat = w.transpose(0, 2, 3, 1).reshape(m, -1).copy()       # (M, K) in (ky, kx, c) order
    k = flat.shape[1]
    for j in range(m):
        for p in rng.choice(k // 2, size=max(1, k // 8), replace=False) if k >= 2 else []:
            flat[j, 2 * p: 2 * p + 2] = 127 if (j + p) % 2 else -128
        if cg % 2 and k > cg:    # a pair across taps: tap 0's last channel, tap 1's first
            flat[j, cg - 1: cg + 1] = 127 if j % 2 else -128
    return flat.reshape(m, kh, kw, cg).transpose(0, 3, 1, 2).copy()


def _run(x, w, xz, wz, bias, stride, pads, groups, pairs16, s_w, s_out):
    g = conv_geometry(x, w, stride, pads, (1, 1), groups)
    m = w.shape[0]
    spec = requant_spec(ORT, np.float32(0.5), s_w, s_out, 128, 0, 255, m, None)
    plan = vnni_ops.plan_conv(w, x.dtype, xz, wz, bias, g, 32, -2**31, 2**31 - 1, False, (spec, np.uint8), pairs16)
    _run.plan = plan
    if plan is None:
        return None
    return vnni_ops.run_planned(plan, x, (spec, np.uint8))[0]


def _want(acc, m, s_w, s_out):
    return get_policy(ORT).requantize(acc, np.float32(0.5), s_w, s_out, 128, 0, 255, 1, None, "numpy").astype(np.uint8)


def _scales(rng, m, per_channel):
    s_w = (rng.uniform(0.5, 1.0, m) if per_channel else np.full(m, 0.75)).astype(np.float32)
    return s_w, np.float32(24.0)    # multipliers ~ 1/64: a saturated pair (32003 off) moves the code by ~250


@pytest.mark.parametrize("case", CASES + ROWS_CASES)
@pytest.mark.parametrize("xz", [0, 37])
@pytest.mark.parametrize("per_channel", [False, True])
def test_pairs16_equals_the_saturating_model(case, xz, per_channel):
    """Odd channels over several taps (``ROWS_CASES``) run from receptive-field rows (``avx2_cols``):
    MLAS pairs a tap's last channel with the next tap's first."""
    n, c, h, wd, m, k, stride, pads, groups = case
    rng = np.random.default_rng(c * 100 + m + xz)
    x = rng.integers(0, 256, (n, c, h, wd)).astype(np.uint8)
    w = _plant(rng, x, rng.integers(-128, 128, (m, c // groups, k, k)).astype(np.int8), groups)
    w.flags.writeable = False
    bias = rng.integers(-4000, 4000, m).astype(np.int64)
    s_w, s_out = _scales(rng, m, per_channel)
    for wz in (np.zeros(m, np.int64), rng.integers(-2, 3, m)):   # wz != 0: window sums of the raw codes
        args = (x, w, xz, wz, bias, stride, pads, (1, 1), groups)
        sat = _want(conv_acc(*args, pairs16=True), m, s_w, s_out)
        assert np.any(sat != _want(conv_acc(*args, pairs16=False), m, s_w, s_out))   # the pairs saturate
        got = _run(x, w, xz, wz, bias, stride, pads, groups, True, s_w, s_out)
        if not ON_AVX2:   # the VNNI core does not saturate: the per-node path runs it
            assert got is None
            continue
        np.testing.assert_array_equal(got, sat)


@pytest.mark.parametrize("case", CASES + ROWS_CASES[:2])
@pytest.mark.parametrize("kind", ["u8s8", "s8s8", "u8u8", "s8u8"])
def test_exact_sums_where_no_pair_can_saturate(case, kind):
    """pairs16 off (other policies, int8 inputs shifted to uint8, uint8 weights shifted to int8):
    weights whose pairs cannot leave int16 run the AVX2 int8 tiles, pairs that can its int16 tiles
    (``avx2.widen``): exact sums either way."""
    n, c, h, wd, m, k, stride, pads, groups = case
    rng = np.random.default_rng(c * 10 + m)
    xdt, wdt = {"u8s8": (np.uint8, np.int8), "s8s8": (np.int8, np.int8), "u8u8": (np.uint8, np.uint8),
                "s8u8": (np.int8, np.uint8)}[kind]
    xi = np.iinfo(xdt)
    x = rng.integers(xi.min, xi.max + 1, (n, c, h, wd)).astype(xdt)
    x[:, :, :2] = xi.max
    shift = 128 if wdt == np.uint8 else 0
    s_w, s_out = _scales(rng, m, True)
    for lo_w, hi_w, fits in [(-64, 64, True), (-128, 127, False)]:    # fits: no pair can saturate
        w = (rng.integers(lo_w, hi_w + 1, (m, c // groups, k, k)) + shift).astype(wdt)
        w[:, :, 0, 0] = lo_w + shift
        if fits is False:
            w[0, :2, 0, 0] = -128 + shift     # one pair reaches -65280
        w.flags.writeable = False
        xz = int(rng.integers(xi.min, xi.max + 1))
        wz = rng.integers(-3, 4, m) + shift
        bias = rng.integers(-4000, 4000, m).astype(np.int64)
        got = _run(x, w, xz, wz, bias, stride, pads, groups, False, s_w, s_out)
        if ON_AVX2:   # the int16 tiles exactly where a pair could saturate
            assert _run.plan.packs[0][0].dtype == (np.int8 if fits else np.int16)
        acc, _ = reference.conv2d_acc(x, w, xz, wz, bias, stride, pads, (1, 1), groups, acc_bits=32, overflow="wrap")
        np.testing.assert_array_equal(got, _want(acc, m, s_w, s_out))
        if kind != "u8s8":   # pairs16 applies to uint8 x int8 only: the same exact sums
            np.testing.assert_array_equal(_run(x, w, xz, wz, bias, stride, pads, groups, True, s_w, s_out), got)


# --- through the planned nodes, against onnxruntime ---------------------------------------------

def _model(nodes, inits, x, out_shape, ms=False):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, list(out_shape))],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    model = helper.make_model(graph, opset_imports=ops)
    model.ir_version = 8
    return model


def _ort(model, x):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _planned(model, x, tmp_path):
    """(output, whether the node ran planned) of qsim's plan under policy onnxruntime, whose runtime
    sums u8 x s8 as MLAS does on this host (``u8s8_pairs16``: set here where the runtime predates it)."""
    import onnx

    from qsim.ir.onnx_import import load_onnx
    from qsim.sim.plan import ExecutionPlan

    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    graph = load_onnx(path)
    plan = ExecutionPlan(graph, "onnxruntime")
    if not hasattr(plan.rt, "u8s8_pairs16"):
        plan.rt = copy.copy(plan.rt)
        object.__setattr__(plan.rt, "u8s8_pairs16", not vnni.HAS_VNNI)
    out = plan.run({graph.inputs[0]: x}).outputs[graph.outputs[0]]
    return out, all(b is not False for b in plan._bound)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("xz", [0, 129])
@pytest.mark.parametrize("c, k", [(16, 3), (3, 7)])    # (3, 7): a stem, from receptive-field rows
def test_planned_qlinearconv_equals_onnxruntime(tmp_path, per_channel, xz, c, k):
    rng = np.random.default_rng(7 + xz)
    n, h, wd, m = 1, 11, 11, 48
    p = k // 2
    x = rng.integers(0, 256, (n, c, h, wd)).astype(np.uint8)
    w = _plant(rng, x, rng.integers(-128, 128, (m, c, k, k)).astype(np.int8), 1)
    bias = rng.integers(-20000, 20000, m).astype(np.int32)
    ws = (rng.uniform(0.01, 0.02, m) if per_channel else np.array(0.015)).astype(np.float32)
    inits = {"xs": np.float32(0.02), "xz": np.uint8(xz), "w": w, "ws": ws,
             "wz": np.zeros(m if per_channel else (), np.int8), "b": bias, "ys": np.float32(6.0), "yz": np.uint8(100)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                            strides=[2, 2], pads=[p] * 4, kernel_shape=[k, k], name="conv")
    oh = (h + 2 * p - k) // 2 + 1
    model = _model([node], inits, x, (n, m, oh, oh))
    got, planned = _planned(model, x, tmp_path)
    assert planned
    if not vnni.HAS_VNNI:
        want = _ort(model, x)
    else:
        acc = conv_acc(x, w, xz, 0, bias, (2, 2), (p,) * 4, (1, 1), 1, pairs16=False)
        s_w = np.broadcast_to(ws, (m,)).astype(np.float32)
        want = get_policy(ORT).requantize(acc, np.float32(0.02), s_w, np.float32(6.0), 100, 0, 255, 1, None,
                                          "numpy").astype(np.uint8)
    exact = conv_acc(x, w, xz, 0, bias, (2, 2), (p,) * 4, (1, 1), 1, pairs16=False)
    s_w = np.broadcast_to(ws, (m,)).astype(np.float32)
    exact_q = get_policy(ORT).requantize(exact, np.float32(0.02), s_w, np.float32(6.0), 100, 0, 255, 1, None, "numpy")
    assert np.any(want != exact_q) == (not vnni.HAS_VNNI)    # onnxruntime saturates where it runs AVX2
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("k", [64, 45])
def test_planned_qgemm_equals_onnxruntime(tmp_path, k):
    """com.microsoft QGemm (transB): K = 45 is odd, its last element pairs with a zero weight."""
    rng = np.random.default_rng(k)
    mrows, n = 5, 40
    x = rng.integers(0, 256, (mrows, k)).astype(np.uint8)
    x[:2] = 255
    b = _plant(rng, np.zeros((1, 1, 1, 1), np.uint8), rng.integers(-128, 128, (n, k, 1, 1)).astype(np.int8), 1)
    b = b.reshape(n, k)
    bias = rng.integers(-20000, 20000, n).astype(np.int32)
    xz = 11
    inits = {"as": np.float32(0.02), "az": np.uint8(xz), "b": b, "bs": np.float32(0.01), "bz": np.int8(0), "c": bias,
             "ys": np.float32(4.0), "yz": np.uint8(120)}
    node = helper.make_node("QGemm", ["x", "as", "az", "b", "bs", "bz", "c", "ys", "yz"], ["y"], transB=1,
                            domain="com.microsoft", name="fc")
    model = _model([node], inits, x, (mrows, n), ms=True)
    got, planned = _planned(model, x, tmp_path)
    assert planned
    exact = gemm_acc(x, b.T, xz, 0, bias, pairs16=False)
    sat = gemm_acc(x, b.T, xz, 0, bias, pairs16=not vnni.HAS_VNNI)
    if not vnni.HAS_VNNI:
        assert np.any(exact != sat)
        want = _ort(model, x)
        exact_q = get_policy(ORT).requantize(exact, np.float32(0.02), np.full(n, 0.01, np.float32), np.float32(4.0),
                                             120, 0, 255, 1, None, "numpy")
        assert np.any(want != exact_q)    # onnxruntime saturates
    else:
        want = get_policy(ORT).requantize(exact, np.float32(0.02), np.full(n, 0.01, np.float32), np.float32(4.0), 120,
                                          0, 255, 1, None, "numpy").astype(np.uint8)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("c", [3, 5])
def test_pairs16_rows_with_dilation(c):
    """Receptive-field rows of a dilated conv (taps not adjacent: copied byte by byte)."""
    rng = np.random.default_rng(c)
    m, k, stride, pads, dil = 24, 3, (1, 2), (2, 1, 1, 2), (2, 3)
    x = rng.integers(0, 256, (2, c, 13, 14)).astype(np.uint8)
    w = _plant(rng, x, rng.integers(-128, 128, (m, c, k, k)).astype(np.int8), 1)
    g = conv_geometry(x, w, stride, pads, dil, 1)
    s_w, s_out = _scales(rng, m, True)
    spec = requant_spec(ORT, np.float32(0.5), s_w, s_out, 128, 0, 255, m, None)
    bias = rng.integers(-4000, 4000, m).astype(np.int64)
    plan = vnni_ops.plan_conv(w, x.dtype, 9, np.zeros(m, np.int64), bias, g, 32, -2**31, 2**31 - 1, False,
                              (spec, np.uint8), True)
    if not ON_AVX2:
        assert plan is None
        return
    got = vnni_ops.run_planned(plan, x, (spec, np.uint8))[0]
    want = _want(conv_acc(x, w, 9, 0, bias, stride, pads, dil, 1, pairs16=True), m, s_w, s_out)
    np.testing.assert_array_equal(got, want)
