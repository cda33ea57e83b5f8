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
