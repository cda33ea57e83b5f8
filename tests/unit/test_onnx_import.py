"""ONNX import on real files: the classic models onnx ships, models quantized here with onnxruntime
(QDQ and QOperator, per-tensor and per-channel), hand-written QDQ for other element types, a
weightless export, and the error paths."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from qsim.errors import GraphError, QsimError
from qsim.ir.onnx_import import load_onnx, plan_from_graph
import _model_files as M  # tests/unit is on sys.path (pytest rootdir-relative import)

# Published figures: params of the original networks and MACs at 224x224 (torchvision's model
# table counts MACs as "GFLOPS"). qsim folds BatchNorm into the conv bias, so BN networks come out
# ~0.1-0.3 % under counts that list BN scale and shift separately. None: no reliable figure; those
# models are checked for importing, validating and producing 1000 classes.
LIGHT = {  # name: (params, params rel. tol, MACs, MACs rel. tol)
    "resnet50": (25_557_032, 0.01, 4.09e9, 0.01),  # torchvision resnet50
    "vgg19": (143_667_240, 0, 19.63e9, 0.01),  # torchvision vgg19 (Simonyan & Zisserman 2015)
    "bvlc_alexnet": (60_965_224, 0, None, None),  # BVLC Caffe AlexNet (grouped convs)
    "squeezenet": (1_235_496, 0, 0.35e9, 0.01),  # torchvision squeezenet1_1
    "densenet121": (7_978_856, 0.01, 2.83e9, 0.01),  # torchvision densenet121
    "inception_v1": (7.0e6, 0.01, None, None),  # BVLC GoogLeNet without auxiliary heads
    "inception_v2": (None, None, None, None),
    "shufflenet": (None, None, None, None),
    "zfnet512": (None, None, None, None),
}


@pytest.mark.parametrize("name", sorted(LIGHT))
def test_light_models_import(name):
    g = load_onnx(M.light_dir() / f"light_{name}.onnx")
    counts = g.summary()
    params, ptol, macs, mtol = LIGHT[name]
    if params is not None:
        assert counts["params"] == pytest.approx(params, rel=ptol)
    if macs is not None:
        assert counts["macs"] == pytest.approx(macs, rel=mtol)
    assert counts["macs"] > 0 and len(g.inputs) == 1 and g.tensor(g.outputs[0]).numel == 1000
    assert not g.quant_params and plan_from_graph(g).name == "fp32"


def test_resnet50_matches_builder_and_batch():
    builders = pytest.importorskip("qsim.ir.builders")
    path = M.light_dir() / "light_resnet50.onnx"
    g, ref = load_onnx(path).summary(), builders.resnet50().summary()
    assert (g["macs"], g["params"]) == (ref["macs"], ref["params"])
    g4 = load_onnx(path, batch=4)  # the Reshape before the classifier bakes batch 1 into the file
    assert g4.summary()["macs"] == 4 * g["macs"]
    assert g4.tensor(g4.outputs[0]).shape == (4, 1000)


def test_batchnorm_folded_into_conv(tmp_path):
    g = load_onnx(M.light_dir() / "light_resnet50.onnx")
    ops = {n.op for n in g.nodes()}
    assert "BatchNorm" not in ops and all(n.attrs["bias"] for n in g.nodes() if n.op == "Conv")


def test_float_model_keeps_weights(tmp_path):
    path = M.small_cnn(tmp_path / "cnn.onnx")
    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    g = load_onnx(path)
    assert [n.op for n in g.nodes()] == ["Conv", "Relu", "Conv", "Relu", "MaxPool", "Conv", "Add",
                                         "GlobalAvgPool", "Flatten", "Gemm", "Softmax"]
    dw = g.node("dw")
    assert dw.attrs["groups"] == 8 and dw.attrs["pad"] == (1, 1, 1, 1)
    for node in g.nodes():
        for t in node.weights.values():
            np.testing.assert_array_equal(g.constants[t], init[t])


def test_matmul_add_becomes_gemm(tmp_path):
    path = M.small_mlp(tmp_path / "mlp.onnx")
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    g = load_onnx(path)
    assert [n.op for n in g.nodes()] == ["Gemm", "Relu", "Gemm"]
    fc1 = g.node("fc1")
    np.testing.assert_array_equal(g.constants[fc1.weights["weight"]], init["w1"].T)
    np.testing.assert_array_equal(g.constants[fc1.weights["bias"]], init["b1"])


def test_shape_chain_folded(tmp_path):
    path = M.shape_chain_cnn(tmp_path / "chain.onnx")
    g = load_onnx(path)
    assert [n.op for n in g.nodes()] == ["Conv", "Reshape", "Gemm"]
    assert g.node("flatten").attrs["shape"] == (1, 64) and g.tensor("y").shape == (1, 5)
    g3 = load_onnx(path, batch=3)  # the folded Shape sees the new batch
    assert g3.node("flatten").attrs["shape"] == (3, 64) and g3.tensor("y").shape == (3, 5)


def test_weightless_export(tmp_path):
    path = M.weightless_cnn(tmp_path / "weightless.onnx")
    g = load_onnx(path)
    assert g.inputs == ["x"] and not g.constants
    assert [n.op for n in g.nodes()] == ["Conv", "Relu", "Flatten", "Gemm"]
    assert g.summary()["params"] == 4 * 3 * 3 * 3 + 4 + 64 * 5 + 5  # conv, folded BN bias, fc
    assert g.tensor(g.node("fc").weights["weight"]).shape == (5, 64)
    assert g.tensor("y").shape == (1, 5)  # the symbolic batch defaults to 1
    assert load_onnx(path, batch=3).tensor("y").shape == (3, 5)


# -- quantized models ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    pytest.importorskip("onnxruntime.quantization")
    base = tmp_path_factory.mktemp("quantized")
    files = {}
    for model, build in (("cnn", M.small_cnn), ("mlp", M.small_mlp), ("branch", M.branch_cnn)):
        src = build(base / f"{model}.onnx")
        for fmt in ("qdq", "qoperator"):
            for per_channel in (False, True):
                files[model, fmt, per_channel] = M.quantize(src, base / f"{model}_{fmt}_{per_channel}.onnx",
                                                            fmt, per_channel)
    return files


# QOperator ops: (quantized input, its scale, its zero point) triples and the output's pair.
QOP_PARAMS = {"QLinearConv": ([(0, 1, 2), (3, 4, 5)], (6, 7)), "QLinearMatMul": ([(0, 1, 2), (3, 4, 5)], (6, 7)),
              "QLinearAdd": ([(0, 1, 2), (3, 4, 5)], (6, 7)), "QGemm": ([(0, 1, 2), (3, 4, 5)], (7, 8)),
              "QLinearMul": ([(0, 1, 2), (3, 4, 5)], (6, 7)),
              "QLinearGlobalAveragePool": ([(0, 1, 2)], (3, 4)), "QLinearSoftmax": ([(0, 1, 2)], (3, 4)),
              "QLinearAveragePool": ([(0, 1, 2)], (3, 4)), "QLinearSigmoid": ([(0, 1, 2)], (3, 4)),
              "QLinearConcat": ([(2, 3, 4), (5, 6, 7)], (0, 1)),
              "QuantizeLinear": ([], None), "DequantizeLinear": ([(0, 1, 2)], None)}


def _expected_params(model: onnx.ModelProto):
    """(tensor, scale name, zero point name) for every quantized tensor the file names."""
    out = []
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            out.append((node.input[0], node.input[1], node.input[2]))
        elif node.op_type in QOP_PARAMS:
            triples, y = QOP_PARAMS[node.op_type]
            out += [(node.input[x], node.input[s], node.input[z]) for x, s, z in triples]
            if y:
                out.append((node.output[0], node.input[y[0]], node.input[y[1]]))
    return out


def _ir_tensor(g, model, name):
    """The IR tensor holding an ONNX tensor: activations keep their names through Q/DQ aliases; a
    MatMul weight is stored transposed under its node's name."""
    producers = {o: n for n in model.graph.node for o in n.output}
    while name not in g.tensors and name in producers and producers[name].op_type in ("QuantizeLinear",
                                                                                      "DequantizeLinear"):
        name = producers[name].input[0]
    if name in g.tensors:
        return name, False
    user = next(n for n in model.graph.node if name in n.input)
    while user.op_type == "DequantizeLinear":
        user = next(n for n in model.graph.node if user.output[0] in n.input)
    for node in g.nodes():  # QLinearMatMul B / MatMul weights: (in, out) in the file, (out, in) in the IR
        for t in node.weights.values():
            if t.startswith((user.name or user.output[0]) + "."):
                return t, True
    raise AssertionError(f"no IR tensor for {name}")


@pytest.mark.parametrize("model", ["cnn", "mlp", "branch"])
@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_quantized_params_exact(quantized, model, fmt, per_channel):
    path = quantized[model, fmt, per_channel]
    onnx_model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    g = load_onnx(path)
    expected = _expected_params(onnx_model)
    assert expected
    for tensor, s, z in expected:
        ir, transposed = _ir_tensor(g, onnx_model, tensor)
        q = g.quant_params[ir]
        assert q.scale.dtype == init[s].dtype and np.array_equal(q.scale, init[s]), tensor
        assert q.zero_point.dtype == init[z].dtype and np.array_equal(q.zero_point, init[z]), tensor
        assert g.tensor(ir).dtype == str(init[z].dtype)
        if tensor in init:  # a quantized weight: the stored integers, in the IR layout
            np.testing.assert_array_equal(g.constants[ir], init[tensor].T if transposed else init[tensor])
        if init[s].size > 1:
            assert q.axis == 0  # output channels / features, in the IR layout
    weights = [g.tensor(t) for n in g.nodes() for r, t in n.weights.items() if r == "weight"]
    assert weights and all(w.dtype == "int8" for w in weights)
    assert all(g.tensor(t).dtype == "int32" for n in g.nodes() for r, t in n.weights.items() if r == "bias")
    plan = plan_from_graph(g)
    assert (plan.default.weight.name, plan.default.activation.name, plan.default.accumulator.name) == ("int8", "uint8", "int32")


def test_quantized_counts_match_float(quantized, tmp_path):
    for model, build in (("cnn", M.small_cnn), ("mlp", M.small_mlp)):
        ref = load_onnx(build(tmp_path / f"{model}.onnx")).summary()
        for fmt in ("qdq", "qoperator"):
            assert load_onnx(quantized[model, fmt, True]).summary()["macs"] == ref["macs"]


def test_qoperator_ops_become_float_ops(quantized):
    g = load_onnx(quantized["branch", "qoperator", True])
    assert [n.op for n in g.nodes()] == ["Conv", "Conv", "Concat", "AvgPool", "Sigmoid", "Mul"]
    assert all(g.tensor(t).dtype == "uint8" and t in g.quant_params for n in g.nodes() for t in n.outputs)


def test_matmul_integer(tmp_path):
    g = load_onnx(M.matmul_integer(tmp_path / "mmi.onnx"))
    (node,) = g.nodes()
    w = node.weights["weight"]
    assert node.op == "Gemm" and g.tensor(w).shape == (4, 8) and g.tensor("y").dtype == "int32"
    assert np.array_equal(g.quant_params[w].zero_point, np.array([0, 1, -1, 2], np.int8))
    assert g.quant_params[w].axis == 0 and np.all(g.quant_params[w].scale == 1)  # the op scales by 1
    assert g.quant_params["x"].zero_point == 3 and g.tensor("x").dtype == "uint8"


@pytest.mark.parametrize("act,weight", [
    (onnx.TensorProto.INT16, onnx.TensorProto.INT8), (onnx.TensorProto.UINT8, onnx.TensorProto.INT4),
    (onnx.TensorProto.INT8, onnx.TensorProto.UINT4),
    (onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E4M3FN),
], ids=["a16w8", "a8w4", "a8uw4", "fp8"])
def test_qdq_element_types(tmp_path, act, weight):
    path = M.qdq_conv(tmp_path / "q.onnx", act, weight, per_channel=True)
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    g = load_onnx(path)
    conv = g.node("conv")
    w = conv.weights["weight"]
    assert w == "w_q" and g.constants[w].dtype == init["w_q"].dtype
    np.testing.assert_array_equal(g.constants[w].astype(np.float32), init["w_q"].astype(np.float32))
    q = g.quant_params[w]
    assert np.array_equal(q.scale, init["w_scale"]) and q.axis == 0
    assert q.zero_point.dtype == init["w_zero"].dtype
    assert g.quant_params["x"].zero_point.dtype == init["x_zero"].dtype
    names = {onnx.TensorProto.INT16: "int16", onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.INT8: "int8",
             onnx.TensorProto.INT4: "int4", onnx.TensorProto.UINT4: "uint4",
             onnx.TensorProto.FLOAT8E4M3FN: "float8e4m3fn"}
    assert (g.tensor("x").dtype, g.tensor(w).dtype, g.tensor("y_f").dtype) == (names[act], names[weight], names[act])
    assert plan_from_graph(g).for_node(conv).weight.name in ("int8", "int4", "uint4", "fp8_e4m3")


# -- errors --------------------------------------------------------------------------------------
def test_unknown_op_names_op_node_and_supported(tmp_path):
    with pytest.raises(GraphError) as err:
        load_onnx(M.unknown_op_model(tmp_path / "unknown.onnx"))
    msg = str(err.value)
    assert "Einsum" in msg and "the_einsum" in msg and "supported ops:" in msg and "QLinearConv" in msg


def test_truncated_file(tmp_path):
    data = (M.light_dir() / "light_resnet50.onnx").read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(QsimError, match="truncated.onnx"):
        load_onnx(path)


def test_garbage_and_missing_files(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(QsimError, match="garbage.onnx"):
        load_onnx(path)
    with pytest.raises(QsimError, match="not found"):
        load_onnx(tmp_path / "missing.onnx")


def test_layer_norm_keeps_its_epsilon(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(
        [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], epsilon=1e-12)], "ln",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        [numpy_helper.from_array(np.ones(8, np.float32), "g"), numpy_helper.from_array(np.zeros(8, np.float32), "b")])
    path = tmp_path / "ln.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    (node,) = load_onnx(path).nodes()
    assert node.attrs["eps"] == pytest.approx(1e-12)  # BERT's epsilon, not the 1e-5 default
