"""Dynamic quantization against onnxruntime, element for element: DynamicQuantizeLinear on random
tensors with planted ties (x / scale exactly k + 0.5, a zero point exactly k + 0.5), all-zero,
all-negative and constant tensors; a Conv + MatMul + Gemm model through ``quantize_dynamic``, every
intermediate integer tensor compared; a clear error for an op still unsupported."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("onnxruntime")

import qsim  # noqa: E402
from qsim.errors import GraphError  # noqa: E402
from qsim.sim.int_dynamic import dynamic_quantize_linear  # noqa: E402

from _dynamic_ort import dql_model, integer_mismatches, ort_session, ort_trace  # noqa: E402

SIXTEENTH = np.float32(1 / 16)


def _tensor(rng, mode: str) -> np.ndarray:
    shape = tuple(int(d) for d in rng.integers(1, 9, rng.integers(1, 5)))
    if mode == "normal":
        return (rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 50.0])).astype(np.float32)
    if mode == "zeros":
        return np.zeros(shape, np.float32)
    if mode == "negative":
        return -np.abs(rng.standard_normal(shape)).astype(np.float32) - np.float32(0.01)
    if mode == "positive":
        return np.abs(rng.standard_normal(shape)).astype(np.float32) + np.float32(0.01)
    if mode == "constant":
        return np.full(shape, np.float32(rng.choice([-3.5, 0.25, 7.0])), np.float32)
    # ties: lo = -63/16 and hi = 12 give scale (hi - lo) / 255 = 1/16 exactly and zero point 63;
    # "zp_tie": lo = -2.5/16 gives an initial zero point of exactly 2.5 (rounds to 2)
    lo = np.float32(-2.5 / 16) if mode == "zp_tie" else np.float32(-63 / 16)
    hi = np.float32((255 - 2.5) / 16) if mode == "zp_tie" else np.float32(12.0)
    k = rng.integers(-60, 190, size=max(int(np.prod(shape)), 2))
    x = ((k + 0.5) * SIXTEENTH).astype(np.float32).clip(lo, hi)
    x[:2] = lo, hi
    return rng.permutation(x).reshape(-1)


MODES = ["normal", "zeros", "negative", "positive", "constant", "ties", "zp_tie"]


@pytest.mark.parametrize("mode", MODES)
def test_dynamic_quantize_linear_equals_onnxruntime(mode):
    rng = np.random.default_rng(MODES.index(mode))
    session = ort_session(dql_model())
    ties = 0
    for _ in range(40):
        x = _tensor(rng, mode)
        want = session.run(None, {"x": x})
        got = dynamic_quantize_linear([x], {}, {})
        assert got[0].dtype == np.uint8 and got[0].shape == x.shape
        np.testing.assert_array_equal(got[0], want[0])
        assert np.float32(got[1]).tobytes() == np.float32(want[1]).tobytes()
        assert int(got[2]) == int(want[2])
        ties += int(np.count_nonzero(np.float32(x / np.float32(got[1])) % 1 == 0.5))
    if mode in ("ties", "zp_tie"):
        assert ties > 1000  # the planted ties are there, and rounded as onnxruntime rounds them
    if mode == "zp_tie":
        assert int(got[2]) == 2  # 2.5 rounds half to even


def test_dynamic_quantize_linear_hand_checked():
    # lo = -1, hi = 1.55: scale = 2.55 / 255 = 0.01 (fp32), zero point round(100.0000) = 100
    y, scale, zp = dynamic_quantize_linear([np.array([-1.0, 0.0, 0.005, 0.015, 1.55], np.float32)], {}, {})
    assert np.float32(scale) == np.float32(np.float32(2.55) / np.float32(255)) and int(zp) == 100
    np.testing.assert_array_equal(y, [0, 100, 100, 102, 255])  # 0.5 -> 0 and 1.5 -> 2: half to even
    y, scale, zp = dynamic_quantize_linear([np.zeros((3,), np.float32)], {}, {})
    assert float(scale) == 1.0 and int(zp) == 0 and not y.any()


def _small_model(path) -> None:
    """Conv (padded, bias) -> Relu -> Reshape -> MatMul -> Gemm (transB, bias)."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in [
        ("wc", rng.standard_normal((8, 3, 3, 3))), ("bc", rng.standard_normal(8)),
        ("wm", rng.standard_normal((8 * 4 * 4, 16))), ("wg", rng.standard_normal((10, 16))),
        ("bg", rng.standard_normal(10))]] + [numpy_helper.from_array(np.array([2, -1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "wm"], ["m"]),
             helper.make_node("Gemm", ["m", "wg", "bg"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("weight_type", ["QInt8", "QUInt8"])
def test_quantize_dynamic_model_equals_onnxruntime(tmp_path, weight_type):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _small_model(tmp_path / "f.onnx")
    quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), weight_type=getattr(QuantType, weight_type),
                     op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"} <= ops
    rng = np.random.default_rng(3)
    for scale in (0.01, 1.0, 30.0):
        x = (rng.standard_normal((2, 3, 8, 8)) * scale).astype(np.float32)
        x[0, 0, 0, :2] = 0.0
        want = ort_session(str(tmp_path / "q.onnx")).run(None, {"x": x})[0]
        got, trace = qsim.simulate(tmp_path / "q.onnx", {"x": x}, trace=True)
        assert got["y"].dtype == np.float32
        np.testing.assert_array_equal(got["y"], want)  # float glue (Cast, Mul, Add) in fp32, as onnxruntime
        bad = integer_mismatches(trace, ort_trace(tmp_path / "q.onnx", {"x": x}))
        assert bad.pop("<compared>") > 2 * 3 * 64 and bad == {}


def test_unsupported_op_is_named(tmp_path):
    node = helper.make_node("Det", ["x"], ["y"], name="det0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "d.onnx"))
    with pytest.raises(GraphError, match=r"unsupported op Det \(node 'det0'\)"):
        qsim.simulate(tmp_path / "d.onnx", {"x": np.eye(3, dtype=np.float32)})


def test_mask_and_index_ops_equal_onnxruntime(tmp_path):
    """The ops an exported attention mask brings, on data (not folded): GatherElements, Gather of a
    data tensor, ReduceSum, Where, Expand, Equal, Not, And, IsNaN, Cast (bool, int64, float)."""
    i64 = lambda name, v: numpy_helper.from_array(np.asarray(v, np.int64), name)  # noqa: E731
    init = [i64("idx", [[2, 0, 1, 1, 3, 0]] * 2), i64("axes", [1]), i64("shape", [2, 1, 6]), i64("rows", [1, 0]),
            numpy_helper.from_array(np.float32(-np.inf), "ninf"), numpy_helper.from_array(np.float32(0), "zero"),
            numpy_helper.from_array(np.int64(0), "zero_i")]
    nodes = [helper.make_node("Equal", ["mask", "zero_i"], ["pad"]), helper.make_node("Not", ["pad"], ["keep"]),
             helper.make_node("Cast", ["keep"], ["keep_f"], to=TensorProto.FLOAT),
             helper.make_node("GatherElements", ["x", "idx"], ["ge"], axis=1),
             helper.make_node("Gather", ["ge", "rows"], ["rows_x"], axis=0),
             helper.make_node("And", ["keep", "keep"], ["both"]),
             helper.make_node("Where", ["both", "rows_x", "ninf"], ["masked"]),
             helper.make_node("IsNaN", ["masked"], ["nan"]), helper.make_node("Where", ["nan", "zero", "masked"], ["clean"]),
             helper.make_node("Unsqueeze", ["keep_f", "axes"], ["keep3"]),
             helper.make_node("Expand", ["keep3", "shape"], ["keep_e"]),
             helper.make_node("Mul", ["keep_e", "clean"], ["prod"]),
             helper.make_node("ReduceSum", ["prod", "axes"], ["y"], keepdims=0),
             helper.make_node("Cast", ["mask"], ["y_mask"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "mask", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6]),
                                              helper.make_tensor_value_info("mask", TensorProto.INT64, [2, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("y_mask", TensorProto.FLOAT, None)], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32),
             "mask": np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], np.int64)}
    want = ort_session(str(tmp_path / "m.onnx")).run(None, feeds)
    got = qsim.simulate(tmp_path / "m.onnx", feeds)
    for value, name in zip(want, ("y", "y_mask")):
        assert got[name].dtype == value.dtype and got[name].shape == value.shape
        np.testing.assert_array_equal(got[name], value)
    bad = integer_mismatches(qsim.simulate(tmp_path / "m.onnx", feeds, trace=True)[1], ort_trace(tmp_path / "m.onnx", feeds))
    assert bad.pop("<compared>") >= 4 * 12 and bad == {}


@pytest.mark.parametrize("bias", [True, False])
def test_dynamic_quantize_matmul_contrib_op(tmp_path, bias):
    rng = np.random.default_rng(7)
    k, n = 64, 24
    init = [numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), "w"),
            numpy_helper.from_array(np.float32(0.0123), "ws"), numpy_helper.from_array(np.int8(0), "wz"),
            numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b")]
    node = helper.make_node("DynamicQuantizeMatMul", ["x", "w", "ws", "wz"] + (["b"] if bias else []), ["y"],
                            domain="com.microsoft", name="dqmm")
    graph = helper.make_graph([node], "d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(model, str(tmp_path / "d.onnx"))
    session = ort_session(str(tmp_path / "d.onnx"))
    for scale in (0.01, 3.0):
        x = (rng.standard_normal((2, 5, k)) * scale).astype(np.float32)
        np.testing.assert_array_equal(qsim.simulate(tmp_path / "d.onnx", {"x": x})["y"], session.run(None, {"x": x})[0])
