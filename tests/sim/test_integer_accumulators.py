"""MatMulInteger / ConvInteger return onnxruntime's int32 accumulators exactly, also beyond 2^24
(where a float32 multiplier of 1 would round): u8 x s8 products of length 2048 at the extremes."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

from qsim import simulate  # noqa: E402


def _save(tmp_path, node, inputs, output, inits):
    graph = helper.make_graph([node], "acc", inputs, [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"{node.op_type}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _ort(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def test_matmul_integer_beyond_2_24(tmp_path):
    rng = np.random.default_rng(0)
    a = np.where(rng.random((4, 2048)) < 0.9, 255, 0).astype(np.uint8)
    a[3] = rng.integers(0, 256, 2048)
    b = np.where(rng.random((2048, 8)) < 0.9, -128, 127).astype(np.int8)
    b[:, 7] = rng.integers(-128, 128, 2048)
    inits = [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.array(3, np.uint8), "a_zero"),
             numpy_helper.from_array(np.arange(-4, 4, dtype=np.int8), "b_zero")]  # per-column zero points
    node = helper.make_node("MatMulInteger", ["a", "b", "a_zero", "b_zero"], ["y"])
    vi = helper.make_tensor_value_info
    path = _save(tmp_path, node, [vi("a", TensorProto.UINT8, [4, 2048])], vi("y", TensorProto.INT32, [4, 8]), inits)
    want = _ort(path, {"a": a})
    got = simulate(path, {"a": a})["y"]
    assert np.abs(want.astype(np.int64)).max() > 2 ** 24  # the float32 rounding would show
    assert got.dtype == want.dtype == np.int32 and got.shape == want.shape
    assert np.array_equal(got, want)


def test_matmul_integer_of_two_inputs(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 3, 1024)).astype(np.uint8), rng.integers(0, 256, (1024, 5)).astype(np.uint8)
    inits = [numpy_helper.from_array(np.array(128, np.uint8), "a_zero"), numpy_helper.from_array(np.array(7, np.uint8), "b_zero")]
    node = helper.make_node("MatMulInteger", ["a", "b", "a_zero", "b_zero"], ["y"])
    vi = helper.make_tensor_value_info
    path = _save(tmp_path, node, [vi("a", TensorProto.UINT8, [2, 3, 1024]), vi("b", TensorProto.UINT8, [1024, 5])],
                 vi("y", TensorProto.INT32, [2, 3, 5]), inits)
    want, got = _ort(path, {"a": a, "b": b}), simulate(path, {"a": a, "b": b})["y"]
    assert got.dtype == np.int32 and np.array_equal(got, want)


def test_conv_integer_beyond_2_24(tmp_path):
    rng = np.random.default_rng(2)
    x = np.where(rng.random((1, 512, 6, 6)) < 0.95, 255, 0).astype(np.uint8)
    w = np.where(rng.random((4, 512, 3, 3)) < 0.95, 255, 1).astype(np.uint8)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(2, np.uint8), "x_zero"),
             numpy_helper.from_array(np.array(0, np.uint8), "w_zero")]
    node = helper.make_node("ConvInteger", ["x", "w", "x_zero", "w_zero"], ["y"], pads=[1, 1, 1, 1], strides=[2, 1])
    vi = helper.make_tensor_value_info
    path = _save(tmp_path, node, [vi("x", TensorProto.UINT8, [1, 512, 6, 6])],
                 vi("y", TensorProto.INT32, [1, 4, 3, 6]), inits)
    want, got = _ort(path, {"x": x}), simulate(path, {"x": x})["y"]
    assert np.abs(want.astype(np.int64)).max() > 2 ** 24
    assert got.dtype == np.int32 and got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("per_channel", [False, True])
def test_qgemm_float_output(tmp_path, per_channel):
    """com.microsoft QGemm without y_scale returns fp32(acc) * fp32(a_scale * b_scale[n]), the int32
    bias C inside the accumulator: exact, also where acc needs more than 24 bits."""
    rng = np.random.default_rng(3)
    k, n = 1536, 12
    b = rng.integers(-128, 128, (n, k)).astype(np.int8)
    b[:4] = 127
    b_scale = rng.uniform(1e-4, 3e-3, n if per_channel else 1).astype(np.float32)
    inits = [numpy_helper.from_array(np.array(0.0213, np.float32), "a_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "a_zero"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(b_scale.reshape(-1) if per_channel else b_scale.reshape(()), "b_scale"),
             numpy_helper.from_array(np.zeros(n if per_channel else (), np.int8), "b_zero"),
             numpy_helper.from_array(rng.integers(-50000, 50000, n).astype(np.int32), "c")]
    node = helper.make_node("QGemm", ["a", "a_scale", "a_zero", "b", "b_scale", "b_zero", "c"], ["y"],
                            domain="com.microsoft", transB=1)
    graph = helper.make_graph([node], "qgemm", [helper.make_tensor_value_info("a", TensorProto.UINT8, [3, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    path = tmp_path / "qgemm.onnx"
    path.write_bytes(model.SerializeToString())
    a = rng.integers(0, 256, (3, k)).astype(np.uint8)
    a[0] = 255
    want, got = _ort(path, {"a": a}), simulate(path, {"a": a})["y"]
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)
