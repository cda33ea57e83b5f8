"""TFLite import on .tflite files written here with LiteRT's schema module (and run by LiteRT to
show they are real models): NHWC -> NCHW, per-channel scales, fused activations, error paths."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

import _model_files as M  # noqa: E402  (tests/unit is on sys.path)

from qsim.errors import GraphError, QsimError  # noqa: E402
from qsim.ir.onnx_import import plan_from_graph  # noqa: E402
from qsim.ir.tflite_import import NHWC_TO_NCHW, load_tflite  # noqa: E402

# IR layout of the weights the test model holds: (file layout, permutation file -> IR)
WEIGHT_PERMS = {"conv.w": (0, 3, 1, 2), "dw.w": (3, 0, 1, 2)}


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return M.tflite_int8_cnn(tmp_path_factory.mktemp("tfl") / "cnn.tflite")


def _file_tensors(path):
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    return model, model.subgraphs[0].tensors


def test_litert_runs_the_written_model(cnn):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(cnn))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.random.default_rng(0).random((1, 8, 8, 3), np.float32))
    it.invoke()
    assert it.get_tensor(it.get_output_details()[0]["index"]).shape == (1, 10)


def test_int8_cnn_structure(cnn):
    g = load_tflite(cnn)
    assert [n.op for n in g.nodes()] == ["Conv", "MaxPool", "Conv", "Add", "MulConst", "AvgPool", "Reshape",
                                         "Gemm", "Softmax"]
    assert g.inputs == ["x"] and g.tensor("x").shape == (1, 3, 8, 8) and g.tensor("x").dtype == "int8"
    conv, dw = g.node("conv"), g.node("dw")
    assert conv.attrs["activation"] == "RELU6" and conv.attrs["pad"] == (1, 1, 1, 1)
    assert dw.attrs["groups"] == 8 and dw.attrs["stride"] == (2, 2) and dw.attrs["pad"] == (0, 0, 1, 1)
    assert g.node("add").attrs["activation"] == "RELU"
    assert g.tensor("dw").shape == (1, 8, 4, 4) and g.tensor("mul.k").shape == (1, 8, 1, 1)
    assert g.summary()["macs"] == 8 * 8 * 8 * 27 + 4 * 4 * 8 * 9 + 10 * 8
    plan = plan_from_graph(g)
    assert (plan.default.weight.name, plan.default.activation.name, plan.default.accumulator.name) == ("int8", "int8", "int32")


def test_int8_cnn_values_and_quant_exact(cnn):
    g = load_tflite(cnn)
    model, tensors = _file_tensors(cnn)
    checked = 0
    for t in tensors:
        name = t.name.decode()
        if t.quantization is None or t.quantization.scale is None or not len(t.quantization.scale):
            continue
        ir = "x" if name == "x_q" else name  # QUANTIZE of the input: the input is stored int8
        q = g.quant_params[ir]
        assert np.array_equal(q.scale, np.asarray(t.quantization.scale, np.float32)), name
        assert np.array_equal(q.zero_point, np.asarray(t.quantization.zeroPoint, np.int64)), name
        if len(t.quantization.scale) > 1:
            perm = WEIGHT_PERMS.get(name, tuple(range(len(t.shape))))
            assert q.axis == perm.index(t.quantization.quantizedDimension), name
        buf = model.buffers[t.buffer].data
        if buf is not None and len(buf):
            dtype = {9: np.int8, 2: np.int32}[t.type]
            value = np.frombuffer(np.asarray(buf, np.uint8).tobytes(), dtype).reshape(t.shape)
            if name in WEIGHT_PERMS:
                value = value.transpose(WEIGHT_PERMS[name])
            elif name == "mul.k":
                value = value.reshape(1, 1, 1, -1).transpose(NHWC_TO_NCHW)
            np.testing.assert_array_equal(g.constants[name], value)
        checked += 1
    assert checked == 17


def test_int16x8(tmp_path):
    g = load_tflite(M.tflite_int16x8_mlp(tmp_path / "mlp16.tflite"))
    assert [n.op for n in g.nodes()] == ["Gemm", "Sigmoid"]
    fc = g.node("fc")
    assert (g.tensor("x").dtype, g.tensor(fc.weights["weight"]).dtype, g.tensor(fc.weights["bias"]).dtype) == (
        "int16", "int8", "int64")
    assert g.quant_params["x"].scale == np.float32(1 / 4096)
    p = plan_from_graph(g).for_node(fc)
    assert (p.weight.name, p.activation.name) == ("int8", "int16")


def test_unsupported_op(tmp_path):
    w = M.TfliteWriter()
    x = w.tensor("x", (1, 4), np.float32)
    y = w.tensor("y", (1, 4), np.float32)
    w.op("EXP", [x], [y])
    with pytest.raises(GraphError) as err:
        load_tflite(w.save(tmp_path / "exp.tflite", [x], [y]))
    msg = str(err.value)
    assert "EXP" in msg and "operator 0" in msg and "supported ops:" in msg and "DEPTHWISE_CONV_2D" in msg


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_truncated(cnn, tmp_path, cut):
    data = cnn.read_bytes()
    path = tmp_path / "truncated.tflite"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(QsimError, match="truncated.tflite"):
        load_tflite(path)


def test_garbage_and_missing(tmp_path):
    path = tmp_path / "garbage.tflite"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    with pytest.raises(QsimError, match="garbage.tflite"):
        load_tflite(path)
    with pytest.raises(QsimError, match="not found"):
        load_tflite(tmp_path / "missing.tflite")
