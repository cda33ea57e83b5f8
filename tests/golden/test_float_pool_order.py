"""Float AveragePool and ReduceMean islands in onnxruntime's summation order (``qsim.sim.float_pool``).

qsim's float AveragePool summed each window with numpy (pairwise over the window view) and its
ReduceMean was numpy's mean; onnxruntime 1.32 (CPU, x86-64) sums in the orders of its kernels: MLAS's
vector pool (column sums, then kw of them), the NCHWc pool and its own count_include_pad + ceil_mode
loop (row-major from 0), Eigen's 4-lane sum for the last axes, MLAS's M = 1 SGEMM for a middle axis
at batch >= 2, a chain from 0 elsewhere. On 797,760 pooled floats per level (4 channel counts,
kernels 2 / 3 / 5, strides 1 / 2, pads 0 / 1, count_include_pad, ceil_mode; the pool reading the graph
input or a Mul's output) numpy's last bit differed on 47 % (45 % at ORT_ENABLE_ALL) and on 40 % of
6,332 means; through a QuantizeLinear with planted .5 boundaries 6-8 % (pool) and 20 % (mean) of the
codes differed. Now none does, at every session level.

A QDQ AveragePool is QLinearAveragePool from ORT_ENABLE_EXTENDED up (``int_pool``); at lower levels,
and for an int8 unit left int8, qsim refuses it as before. ReduceMean has no QDQ fusion: its DQ ->
ReduceMean -> Q unit is this float island at every level."""
from __future__ import annotations

import platform

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                                reason="measured on x86-64 (MLAS / Eigen SSE orders, NCHWc)")
SCALE = 2.0 ** -4
f32 = np.float32
LEVELS = {"disable_all": "ORT_DISABLE_ALL", "enable_extended": "ORT_ENABLE_EXTENDED", "enable_all": "ORT_ENABLE_ALL"}


def _save(tmp_path, nodes, inits, x, opset, quantize):
    if quantize:
        nodes.append(helper.make_node("QuantizeLinear", ["p", "s", "z"], ["y"]))
        inits += [numpy_helper.from_array(f32(SCALE), "s"), numpy_helper.from_array(np.uint8(128), "z")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8 if quantize else TensorProto.FLOAT,
                                                         None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    return str(path)


def _plant(rows):
    """Set each row's last element so that its exact mean lies on a .5 boundary of the codes."""
    head = rows[:, :-1].astype(np.float64).sum(1)
    n = rows.shape[1]
    rows[:, -1] = ((np.floor(head / n / SCALE) + 0.5) * SCALE * n - head).astype(f32)


def _check(path, x, level):
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    want = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = qsim.simulate(path, {"x": x}, ort_level=level)["y"]
    assert got.shape == want.shape
    view = np.uint32 if want.dtype == np.float32 else want.dtype
    assert int((got.view(view) != want.view(view)).sum()) == 0


# (channels, kernel, stride, pad, count_include_pad, ceil_mode): 16 takes the NCHWc pool at enable_all,
# 37 MLAS's vector kernel; stride 3 MLAS's generic kernel; include_pad + ceil_mode onnxruntime's own loop
POOLS = [(16, 3, 1, 1, 0, 0), (37, 3, 1, 1, 1, 0), (37, 5, 2, 1, 0, 1), (16, 2, 2, 0, 1, 1), (37, 3, 3, 0, 0, 0)]


@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("c, k, s, p, include, ceil", POOLS)
@pytest.mark.parametrize("behind_mul", [False, True])
def test_float_avgpool_bits(tmp_path, level, c, k, s, p, include, ceil, behind_mul):
    x = np.random.default_rng(c + k).standard_normal((1, c, 15, 17)).astype(f32)
    nodes = [helper.make_node("Mul", ["x", "one"], ["m"])] if behind_mul else []
    nodes.append(helper.make_node("AveragePool", ["m" if behind_mul else "x"], ["y"], kernel_shape=[k, k],
                                  strides=[s, s], pads=[p] * 4, count_include_pad=include, ceil_mode=ceil))
    inits = [numpy_helper.from_array(f32(1), "one")] if behind_mul else []
    _check(_save(tmp_path, nodes, inits, x, 17, False), x, level)


@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("c, k", [(16, 2), (37, 3), (64, 5)])
def test_float_avgpool_then_quantize(tmp_path, level, c, k):
    """Disjoint windows (stride = kernel), each window's mean planted on a .5 boundary."""
    h, w = 5 * k, 6 * k
    win = np.random.default_rng(c).standard_normal((c * 5 * 6, k * k)).astype(f32)
    _plant(win)
    x = np.ascontiguousarray(win.reshape(1, c, 5, 6, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(1, c, h, w))
    nodes = [helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[k, k], strides=[k, k])]
    _check(_save(tmp_path, nodes, [], x, 17, True), x, level)


# (shape, axes): KR (LayerNorm style, spatial), all axes, channel axis at batch 1 (a chain) and 2 (MLAS
# M = 1 SGEMM), leading axis (RK), an RKR and an unmerged pattern
MEANS = [((1, 197, 768), (-1,)), ((2, 50, 37), (-1,)), ((1, 37, 7, 9), (2, 3)), ((3, 1000), (0, 1)),
         ((1, 16, 20, 20), (1,)), ((2, 37, 9, 9), (1,)), ((8, 300), (0,)), ((2, 6, 5, 3), (0, 2)),
         ((2, 6, 5, 3), (1, 3))]


@pytest.mark.parametrize("level", ["disable_all", "enable_all"])
@pytest.mark.parametrize("shape, axes", MEANS)
@pytest.mark.parametrize("opset, keepdims", [(13, 1), (18, 0)])
def test_float_reduce_mean_then_quantize(tmp_path, level, shape, axes, opset, keepdims):
    rng = np.random.default_rng(len(shape) + sum(shape))
    red = sorted(a % len(shape) for a in axes)
    perm = [i for i in range(len(shape)) if i not in red] + red
    n = int(np.prod([shape[a] for a in red]))
    rows = rng.standard_normal((int(np.prod(shape)) // n, n)).astype(f32)
    _plant(rows)
    x = np.ascontiguousarray(np.transpose(rows.reshape([shape[i] for i in perm]), np.argsort(perm)))
    if opset >= 18:
        nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["p"], keepdims=keepdims)]
        inits = [numpy_helper.from_array(np.array(axes, np.int64), "axes")]
    else:
        nodes, inits = [helper.make_node("ReduceMean", ["x"], ["p"], axes=list(axes), keepdims=keepdims)], []
    _check(_save(tmp_path, nodes, inits, x, opset, True), x, level)


@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("op", ["AveragePool", "ReduceMean"])
def test_int8_unit_left_unfused(tmp_path, level, op):
    """An int8 QuantizeLinear writing a graph output stays int8 (``onnx_s8_units``): onnxruntime runs the
    DQ -> op -> Q unit in float at every level, the float island qsim now runs (it refused it). The
    input x * 3 behind a Mul, so that the pooled values are not on the int8 grid."""
    x = (np.random.default_rng(5).standard_normal((1, 16, 15, 17)) * 3).astype(f32)
    nodes = [helper.make_node("Mul", ["x", "one"], ["m"]), helper.make_node("QuantizeLinear", ["m", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"])]
    if op == "AveragePool":
        nodes.append(helper.make_node(op, ["d"], ["p"], kernel_shape=[3, 3], pads=[1] * 4))
    else:
        nodes.append(helper.make_node(op, ["d"], ["p"], axes=[2, 3]))
    nodes.append(helper.make_node("QuantizeLinear", ["p", "s2", "z"], ["y"]))
    inits = [numpy_helper.from_array(f32(v), k) for k, v in (("one", 1), ("s", 0.05), ("s2", 0.0125))]
    inits.append(numpy_helper.from_array(np.int8(3), "z"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "s8.onnx")
    if level == "disable_all":  # below the QDQ fusion every DQ -> op -> Q unit is refused, int8 or not
        with pytest.raises(qsim.QsimError):
            qsim.simulate(str(tmp_path / "s8.onnx"), {"x": x}, ort_level=level)
        return
    _check(str(tmp_path / "s8.onnx"), x, level)
