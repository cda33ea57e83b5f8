"""A QuantizeLinear whose float input also feeds a float op gets a Quantize node of its own, so
the float consumer keeps seeing real numbers (it used to see the quantized codes)."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from qsim.ir.onnx_import import load_onnx
from qsim.sim.simulate import simulate


def _model(path):
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(rng.integers(-20, 20, (4, 3, 3, 3)).astype(np.int8), "wq"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
             numpy_helper.from_array(np.array(128, np.uint8), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"]),
             helper.make_node("Sigmoid", ["x"], ["side"])]  # reads the float x
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6]),
                           helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 3, 6, 6])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_float_consumer_of_a_quantized_tensor_sees_floats(tmp_path):
    path = tmp_path / "m.onnx"
    _model(path)
    g = load_onnx(path)
    assert [n.op for n in g.nodes()].count("Quantize") == 1
    x = np.random.default_rng(0).uniform(-2, 2, (1, 3, 6, 6)).astype(np.float32)
    ours = simulate(path, {"x": x})
    ref = dict(zip(["y", "side"], ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                   .run(None, {"x": x})))
    assert list(ours) == ["y", "side"]  # the model's names, although the IR stores y as uint8 codes
    np.testing.assert_allclose(ours["side"], ref["side"], rtol=1e-6)  # a float sigmoid of the real input
    assert ours["y"].dtype == np.float32  # the model ends in DequantizeLinear: float values
    assert np.array_equal(ours["y"], ref["y"])
    y_codes = simulate(g, {"x": x})[g.outputs[0]]  # a Graph answers in IR terms: the stored codes
    assert y_codes.dtype == np.uint8
    assert np.array_equal(y_codes.astype(np.int64), np.round(ref["y"] / np.float32(0.05)).astype(np.int64) + 128)
