"""Corners found by differential fuzzing against onnxruntime: MaxPool on plain 8-bit tensors with
padding and ceil_mode (the last window may not start in the end padding), and QLinearAveragePool
with ceil_mode (windows past the input's edge)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

from qsim import simulate  # noqa: E402


def _save(tmp_path, node, inputs, outputs, inits=(), domains=()):
    graph = helper.make_graph([node], "edge", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    path = tmp_path / f"{node.op_type}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("kernel,strides,pads,ceil", [([2, 1], [3, 3], [0, 0, 0, 0], 1), ([3, 3], [2, 2], [1, 1, 1, 1], 1),
                                                     ([2, 2], [1, 2], [1, 0, 1, 1], 0)])
def test_maxpool_on_8bit_tensors(tmp_path, dtype, kernel, strides, pads, ceil):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=kernel, strides=strides, pads=pads, ceil_mode=ceil)
    path = _save(tmp_path, node, [helper.make_tensor_value_info("x", elem, [2, 5, 4, 7])],
                 [helper.make_tensor_value_info("y", elem, None)])
    x = np.random.default_rng(0).integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, (2, 5, 4, 7)).astype(dtype)
    x[0, 0] = np.iinfo(dtype).min  # a window of minimums next to the padding
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = simulate(path, {"x": x})["y"]
    assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("level", ["ORT_DISABLE_ALL", "ORT_ENABLE_ALL"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("kernel,strides,pads,include_pad", [
    ([3, 2], [3, 2], [0, 0, 1, 1], 0), ([4, 4], [2, 1], [0, 0, 0, 0], 1), ([3, 3], [2, 2], [1, 1, 1, 1], 1),
    ([2, 3], [3, 2], [1, 0, 0, 1], 0), ([3, 1], [2, 3], [0, 0, 2, 0], 1)])
def test_qlinear_average_pool_ceil_mode(tmp_path, level, dtype, kernel, strides, pads, include_pad):
    """ceil_mode=1: the extra windows end at the input's edge; count_include_pad divides by the whole
    kernel even where a window hangs past the padding (F5: shape and values as onnxruntime)."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    zx, zy = (3, 200) if dtype == np.uint8 else (-70, 100)
    inits = [numpy_helper.from_array(np.array(v, t), n) for v, t, n in
             ((0.0371, np.float32, "sx"), (zx, dtype, "zx"), (0.0213, np.float32, "sy"), (zy, dtype, "zy"))]
    node = helper.make_node("QLinearAveragePool", ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft",
                            kernel_shape=kernel, strides=strides, pads=pads, ceil_mode=1,
                            count_include_pad=include_pad)
    path = _save(tmp_path, node, [helper.make_tensor_value_info("x", elem, [2, 6, 9, 8])],
                 [helper.make_tensor_value_info("y", elem, None)], inits, ["com.microsoft"])
    info = np.iinfo(dtype)
    x = np.random.default_rng(3).integers(info.min, info.max + 1, (2, 6, 9, 8)).astype(dtype)
    x[0, 0] = info.max  # saturating windows, and exact ties of the average
    x[0, 1, :, ::2] = info.min
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = simulate(path, {"x": x})["y"]
    assert got.dtype == want.dtype and got.shape == want.shape
    assert int(np.sum(got != want)) == 0


def _qlinear_avgpool(tmp_path, x, params, **attrs):
    """Run one QLinearAveragePool (uint8) on onnxruntime at both levels and on qsim."""
    inits = [numpy_helper.from_array(np.array(v, t), n) for v, t, n in
             zip(params, (np.float32, np.uint8, np.float32, np.uint8), ("sx", "zx", "sy", "zy"))]
    node = helper.make_node("QLinearAveragePool", ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft",
                            **attrs)
    path = _save(tmp_path, node, [helper.make_tensor_value_info("x", 2, list(x.shape))],
                 [helper.make_tensor_value_info("y", 2, None)], inits, ["com.microsoft"])
    got = simulate(path, {"x": x})["y"]
    for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_ALL"):
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert got.shape == want.shape and int(np.sum(got != want)) == 0
    return got


def test_qlinear_average_pool_past_int32_clamps_low(tmp_path):
    """An average past the int32 range after / y_scale: onnxruntime's int32 cast of nearbyintf gives
    INT32_MIN, so the output is the type's minimum (0), not 255 (long-run seed 100016)."""
    x = np.full((1, 2, 7, 7), 45, np.uint8)
    x[0, 0, :4, :3] = 255  # 35.7 * 210 / 1.95e-6 = 3.8e9: past int32
    x[0, 1, :4, :3] = 250  # 35.7 * 205 / 1.95e-6 = 3.75e9
    x[0, 1, 1, 3:6] = 46  # 35.7 / 1.95e-6 / 12 = 1.5e6 codes: saturates high, within int32
    y = _qlinear_avgpool(tmp_path, x, (35.7015495300293, 45, 1.949489842445473e-06, 97), kernel_shape=[4, 3],
                         strides=[1, 3], count_include_pad=1)
    assert y[0, 0, 0, 0] == 0 and y[0, 1, 0, 0] == 0 and y[0, 1, 0, 1] == 255 and y[0, 0, 0, 1] == 97


def test_qlinear_average_pool_whole_image_window_is_global(tmp_path):
    """A window covering the whole unpadded image runs MLAS's global average pool: exact integer sum,
    one fp32 scale, ties to even (seed 100040): (30+220+64+38 - 4*255) * 0.125 = -83.5 -> -84 + 113."""
    x = np.array([30, 220, 64, 38, 11, 208, 39, 61], np.uint8).reshape(2, 1, 4, 1)
    y = _qlinear_avgpool(tmp_path, x, (0.287353515625, 255, 0.57470703125, 113), kernel_shape=[4, 1], strides=[2, 1])
    assert y[0, 0, 0, 0] == 29


def test_qlinear_sigmoid_takes_mlas_logistic(tmp_path):
    """QLinearSigmoid's table is MLAS's rational approximation of the logistic, not exp: at a tiny
    output scale the two differ by a code (seed 101509: x 219 -> sigmoid(-9.17) = 1.0365e-4 (MLAS)
    vs 1.0371e-4 (exp); / 3.399e-6 + 149 = 179.49 vs 179.51)."""
    inits = [numpy_helper.from_array(np.array(v, t), n) for v, t, n in
             ((0.25482767820358276, np.float32, "sx"), (255, np.uint8, "zx"),
              (3.3990145311690867e-06, np.float32, "sy"), (149, np.uint8, "zy"))]
    node = helper.make_node("QLinearSigmoid", ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft")
    path = _save(tmp_path, node, [helper.make_tensor_value_info("x", 2, [256])],
                 [helper.make_tensor_value_info("y", 2, None)], inits, ["com.microsoft"])
    x = np.arange(256).astype(np.uint8)
    got = simulate(path, {"x": x})["y"]
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert got[219] == 179 and int(np.sum(got != want)) == 0
