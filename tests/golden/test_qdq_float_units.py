"""QDQ units onnxruntime leaves in float, found on torchvision models quantized with quantize_static
(DenseNet-121, ConvNeXt-tiny), against onnxruntime:

* BatchNormalization after a Concat (DenseNet), its scale quantized to int8 behind a
  DequantizeLinear: the dequantized parameters, combined in fp32 as onnxruntime's kernel does;
* Add / Mul by a per-channel quantized constant (ConvNeXt's Linear bias): a float island;
* a Conv whose bias is quantized as uint8 (ConvNeXt's stem): onnxruntime runs it in float, so qsim
  refuses it, naming the node."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402
from qsim.errors import QsimError  # noqa: E402

C = 16
SHAPE = (2, C, 5, 6)


def _save(tmp_path, nodes, inits, shape=SHAPE, opset=17):
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, shape)],
                                  [h.make_tensor_value_info("y", TP.FLOAT, shape)], inits),
                     opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def _same(path, x, level="enable_all"):
    opt = ort.SessionOptions()
    opt.graph_optimization_level = {"enable_all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[level]
    want = ort.InferenceSession(str(path), opt, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = qsim.simulate(path, {"x": x}, ort_level=level)["y"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def _qdq_io(nodes_from_d, inits):
    """x -> Q -> DQ ("d") -> ... -> "a" -> Q -> DQ -> y, uint8 activations."""
    inits = inits + [nh.from_array(np.float32(0.02), "sx"), nh.from_array(np.uint8(131), "zx"),
                     nh.from_array(np.float32(0.03), "sy"), nh.from_array(np.uint8(17), "zy")]
    nodes = [h.make_node("QuantizeLinear", ["x", "sx", "zx"], ["q"]), h.make_node("DequantizeLinear", ["q", "sx", "zx"], ["d"]),
             *nodes_from_d, h.make_node("QuantizeLinear", ["a", "sy", "zy"], ["qy"]),
             h.make_node("DequantizeLinear", ["qy", "sy", "zy"], ["y"])]
    return nodes, inits


def _bn_params(rng):
    s, b, m = (rng.standard_normal(C).astype(np.float32) * k for k in (3, 1, 2))
    v = (np.abs(rng.standard_normal(C)) + 1e-3).astype(np.float32)
    return s, b, m, v


@pytest.mark.parametrize("seed", range(3))
def test_float_batchnorm(tmp_path, seed):
    rng = np.random.default_rng(seed)
    inits = [nh.from_array(a, n) for a, n in zip(_bn_params(rng), "sbmv")]
    path = _save(tmp_path, [h.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)], inits)
    _same(path, (rng.standard_normal(SHAPE) * 5).astype(np.float32))


@pytest.mark.parametrize("level", ["enable_all", "disable_all"])
@pytest.mark.parametrize("seed", range(3))
def test_qdq_batchnorm_with_quantized_scale(tmp_path, seed, level):
    """DenseNet's pre-activation BN through quantize_static: its scale is an int8 weight behind a
    DequantizeLinear (qsim once read the codes as the scale). onnxruntime runs the unit in float at
    every level (no QDQ fusion takes a BatchNormalization), so it is no refusal at disable_all either
    (QOperator DenseNets were refused there)."""
    rng = np.random.default_rng(seed)
    s, b, m, v = _bn_params(rng)
    s_scale = np.float32(np.abs(s).max() / 127)
    inits = [nh.from_array(np.round(s / s_scale).astype(np.int8), "s_q"), nh.from_array(s_scale, "s_s"),
             nh.from_array(np.int8(0), "s_z"), nh.from_array(b, "b"), nh.from_array(m, "m"), nh.from_array(v, "v")]
    nodes, inits = _qdq_io([h.make_node("DequantizeLinear", ["s_q", "s_s", "s_z"], ["s"]),
                            h.make_node("BatchNormalization", ["d", "s", "b", "m", "v"], ["a"])], inits)
    _same(_save(tmp_path, nodes, inits), (rng.standard_normal(SHAPE) * 2).astype(np.float32), level)


@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_qdq_per_channel_constant_operand(tmp_path, op):
    rng = np.random.default_rng(5)
    shape = (2, 7, C)
    inits = [nh.from_array(rng.integers(-127, 128, C).astype(np.int8), "c_q"),
             nh.from_array((rng.uniform(0.5, 2, C) * 0.01).astype(np.float32), "c_s"),
             nh.from_array(np.zeros(C, np.int8), "c_z")]
    nodes, inits = _qdq_io([h.make_node("DequantizeLinear", ["c_q", "c_s", "c_z"], ["c"], axis=0),
                            h.make_node(op, ["d", "c"], ["a"])], inits)
    _same(_save(tmp_path, nodes, inits, shape), (rng.standard_normal(shape) * 2).astype(np.float32))


def test_conv_with_a_uint8_bias_is_refused(tmp_path):
    rng = np.random.default_rng(2)
    inits = [nh.from_array(rng.integers(-127, 128, (C, C, 1, 1)).astype(np.int8), "w_q"),
             nh.from_array(np.float32(0.01), "w_s"), nh.from_array(np.int8(0), "w_z"),
             nh.from_array(rng.integers(0, 256, C).astype(np.uint8), "b_q"), nh.from_array(np.float32(0.01), "b_s"),
             nh.from_array(np.uint8(128), "b_z")]
    nodes, inits = _qdq_io([h.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"]),
                            h.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b"]),
                            h.make_node("Conv", ["d", "w", "b"], ["a"], name="stem")], inits)
    path = _save(tmp_path, nodes, inits)
    opt = ort.SessionOptions()
    opt.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(path), opt, providers=["CPUExecutionProvider"])
    assert "Conv" in [n.op_type for n in onnx.load(tmp_path / "opt.onnx").graph.node]  # left in float
    with pytest.raises(QsimError, match=r"stem \(Conv, a uint8 bias\)"):
        qsim.simulate(path, {"x": np.zeros(SHAPE, np.float32)})
