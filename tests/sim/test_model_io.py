"""``qsim.simulate`` on a model file answers as the runtime does: feeds keyed by the model's own
input names in its dtype and layout (NHWC for .tflite), outputs keyed by the model's own output
names with onnxruntime's / LiteRT's dtype, shape and layout; bad feeds are errors naming the input."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

from qsim import simulate  # noqa: E402
from qsim.errors import QsimError  # noqa: E402
from qsim.sim.simulate import load_model  # noqa: E402


def _onnx(path, nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "io", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def _quantize_model(tmp_path, batch="N"):
    """x (float, symbolic batch) -> QuantizeLinear -> y (uint8); a second output z: DequantizeLinear(y)."""
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(128, np.uint8), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"]),
             helper.make_node("DequantizeLinear", ["y", "s", "z"], ["back"])]
    vi = helper.make_tensor_value_info
    return _onnx(tmp_path / "q.onnx", nodes, [vi("x", TensorProto.FLOAT, [batch, 4, 5])],
                 [vi("y", TensorProto.UINT8, [batch, 4, 5]), vi("back", TensorProto.FLOAT, [batch, 4, 5])], inits)


def test_quantize_linear_output_keeps_its_name_and_dtype(tmp_path):
    path = _quantize_model(tmp_path)
    x = np.random.default_rng(0).uniform(-8, 8, (3, 4, 5)).astype(np.float32)
    x[0, 0, :3] = [0.025, 0.075, -0.125]  # exact ties of x / 0.05: half to even
    want = dict(zip(["y", "back"], ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})))
    got = simulate(path, {"x": x})  # batch 3 on a symbolic batch axis, as onnxruntime takes it
    assert list(got) == ["y", "back"]
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape == (3, 4, 5)
        assert np.array_equal(got[name], want[name]), name
    graph, io = load_model(path)
    assert set(io.output_names) == {"y", "back"} and set(io.output_names.values()) <= set(graph.outputs)


def test_bad_feeds_name_the_input(tmp_path):
    path = _quantize_model(tmp_path, batch=2)
    x = np.zeros((2, 4, 5), np.float32)
    for feeds, message in [({}, "no array given for input 'x'"), ({"x": x, "w": x}, "no model input named 'w'"),
                           ({"x": x.astype(np.float64)}, "input 'x' takes float32"),
                           ({"x": x[:, :, :4]}, r"input 'x' has shape \[2, 4, 4\]; the model takes \[2, 4, 5\]")]:
        with pytest.raises(QsimError, match=message):
            simulate(path, feeds)


def test_tflite_is_fed_and_answers_nhwc(tmp_path):
    """H == W == C: an NCHW array would pass a shape check; the contract is the file's NHWC."""
    pytest.importorskip("ai_edge_litert")
    import _int_tflite  # noqa: F401  (puts tests/golden on the path)
    from _tflite_models import conv2d, run

    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (8, 3, 3, 8)).astype(np.int8)
    bias = rng.integers(-500, 500, 8).astype(np.int32)
    model = conv2d((1, 8, 8, 8), w, bias, 0.05, 3, rng.uniform(0.002, 0.01, 8), 0.2, -4)
    path = tmp_path / "conv.tflite"
    path.write_bytes(model)
    x = rng.integers(-128, 128, (1, 8, 8, 8)).astype(np.int8)
    want = run(model, [x], "reference")
    got = simulate(path, {"x": x})
    assert list(got) == ["y"] and got["y"].dtype == np.int8 and got["y"].shape == want.shape
    assert np.array_equal(got["y"], want)
    with pytest.raises(QsimError, match="input 'x' takes int8"):
        simulate(path, {"x": x.astype(np.float32)})
