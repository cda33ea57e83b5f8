"""Corners found by differential fuzzing against onnxruntime: MaxPool on plain 8-bit tensors with
padding and ceil_mode (the last window may not start in the end padding), and a refusal where
qsim does not model the runtime (QLinearAveragePool with ceil_mode)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

from qsim import simulate  # noqa: E402
from qsim.errors import GraphError  # noqa: E402


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


def test_qlinear_average_pool_ceil_mode_is_refused(tmp_path):
    inits = [numpy_helper.from_array(np.array(v, t), n) for v, t, n in
             ((0.1, np.float32, "s"), (3, np.uint8, "z"))]
    node = helper.make_node("QLinearAveragePool", ["x", "s", "z", "s", "z"], ["y"], domain="com.microsoft",
                            kernel_shape=[3, 2], strides=[3, 2], ceil_mode=1)
    path = _save(tmp_path, node, [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 2, 7, 7])],
                 [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits, ["com.microsoft"])
    with pytest.raises(GraphError, match=r"QLinearAveragePool.*ceil_mode=1 is not supported"):
        simulate(path, {"x": np.zeros((1, 2, 7, 7), np.uint8)})
