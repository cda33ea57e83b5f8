"""int8 (S8S8) QDQ units that onnxruntime leaves in float, now run as float islands (they were refused).

On x86-64 onnxruntime fuses an int8 unit only after turning its Q -> DQ pairs into uint8, which it
does only where the QuantizeLinear feeds one DequantizeLinear (``qsim.ir.onnx_s8_units``); elsewhere
the unit runs DQ -> fp32 op -> Q. For GlobalAveragePool, Softmax, Erf, Sigmoid, Tanh, LeakyRelu,
BatchNormalization and Pad qsim's float island is onnxruntime's fp32 op bit for bit: Sigmoid and Tanh
through MLAS's rational forms (numpy's differed on 57 % and 63 % of the fp32 results), Softmax with
the FMA3 kernel's exp, which is 0 below about -87.7 (qsim gave subnormals: 1.3 % of the outputs at
int8 scales up to 0.4).

Each op is checked twice: its fp32 result (an input QuantizeLinear read by two DequantizeLinear
nodes, the op's output a graph output: every code at six scales) and its int8 codes (the unit's
QuantizeLinear writing a graph output; inputs on half steps of the input scale, GlobalAveragePool's
means and LeakyRelu's products planted on .5 boundaries of the output scale). Measured with
onnxruntime 1.32 on an AVX2 host: 0 differences at ORT_ENABLE_EXTENDED and ORT_ENABLE_ALL. Below the
QDQ fusion (ORT_DISABLE_ALL) qsim still refuses all but Sigmoid, LeakyRelu and BatchNormalization
(``float_qdq_units``), which are equal there too."""
from __future__ import annotations

import platform

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                                reason="measured on x86-64 (MLAS's FMA3 / AVX-512 kernels)")
f32 = np.float32
LEVELS = {"disable_all": "ORT_DISABLE_ALL", "enable_extended": "ORT_ENABLE_EXTENDED", "enable_all": "ORT_ENABLE_ALL"}
S, Z = 0.05, 3

# op -> (attributes, extra inputs {name: constant}, input shape, output scale, output zero point)
OPS = {
    "GlobalAveragePool": ({}, {}, (8, 64, 8, 8), S, 0),
    "Softmax": ({"axis": -1}, {}, (32, 100), 1 / 256, -128),
    "Erf": ({}, {}, (8, 32, 16), 1 / 128, 0),
    "Sigmoid": ({}, {}, (8, 32, 16), 1 / 256, -128),
    "Tanh": ({}, {}, (8, 32, 16), 1 / 128, 0),
    "LeakyRelu": ({"alpha": 0.25}, {}, (8, 32, 16), S / 2, 0),
    "BatchNormalization": ({"epsilon": 1e-5}, {k: v.astype(f32) for k, v in zip(
        ("bs", "bb", "bm", "bv"), np.random.default_rng(7).standard_normal((4, 37)) * [[0.5], [0.3], [0.3], [0]]
        + [[1], [0], [0], [0.6]])}, (4, 37, 12, 12), 0.031, 2),
    "Div": ({}, {"dv": np.array(1.4142135, f32)}, (8, 32, 16), S, 0),  # GELU's x / sqrt(2) (ViT, Swin)
    "Pad": ({"mode": "constant"}, {"pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "cv": np.array(0, f32)},
            (2, 16, 12, 12), S, 3),
}
SAME_UNFUSED = ("Sigmoid", "LeakyRelu", "BatchNormalization")  # their QDQ units are not refused at ORT_DISABLE_ALL


def _save(path, op, scale, zp, fan_out, out_scale=1.0, out_zp=0, spec=None):
    attrs, extra, shape, _, _ = spec or OPS[op]
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["x", "s", "z"], ["q"]), n("DequantizeLinear", ["q", "s", "z"], ["d"]),
             n(op, ["d"] + list(extra), ["p" if not fan_out else "y"], name="unit", **attrs)]
    inits = [numpy_helper.from_array(f32(scale), "s"), numpy_helper.from_array(np.int8(zp), "z")]
    inits += [numpy_helper.from_array(v, k) for k, v in extra.items()]
    if fan_out:  # q read by a second DQ: it stays int8, the unit reads it unfused; y is the op's fp32 result
        nodes += [n("DequantizeLinear", ["q", "s", "z"], ["d2"]), n("Relu", ["d2"], ["side"])]
        outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                helper.make_tensor_value_info("side", TensorProto.FLOAT, None)]
    else:  # the unit's QuantizeLinear writes a graph output: it stays int8
        nodes.append(n("QuantizeLinear", ["p", "s2", "z2"], ["y"]))
        inits += [numpy_helper.from_array(f32(out_scale), "s2"), numpy_helper.from_array(np.int8(out_zp), "z2")]
        outs = [helper.make_tensor_value_info("y", TensorProto.INT8, None)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return str(path)


def _differ(path, x, level):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    want = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = qsim.simulate(path, {"x": x}, ort_level=level)["y"]
    assert got.shape == want.shape and got.dtype == want.dtype
    view = np.uint32 if want.dtype == np.float32 else want.dtype
    return int((got.view(view) != want.view(view)).sum())


def _levels(op):
    return list(LEVELS) if op in SAME_UNFUSED else ["enable_extended", "enable_all"]


@pytest.mark.parametrize("op", list(OPS))
def test_float_result_bits(tmp_path, op):
    """Every code of the int8 input at six scales (up to 0.45: Softmax's exps reach its underflow)."""
    shape = OPS[op][2]
    for k, scale in enumerate((0.003, 0.011, 0.05, 0.13, 0.29, 0.45)):
        rng = np.random.default_rng(k)
        codes = rng.integers(-128, 128, size=shape)
        codes.reshape(-1)[:256] = np.arange(-128, 128)
        zp = int(rng.integers(-20, 20))
        x = (f32(scale) * (codes - zp).astype(f32)).astype(f32)
        path = _save(tmp_path / f"{op}_{k}.onnx", op, scale, zp, fan_out=True)
        for level in _levels(op):
            assert _differ(path, x, level) == 0, (op, scale, level)


def _int8_input(op, rng):
    shape, s2 = OPS[op][2], OPS[op][3]
    if op == "GlobalAveragePool":  # each channel's code sum = m * 64 + 32: its mean on a .5 step of s2 = S
        codes = rng.integers(-60, 60, size=(shape[0] * shape[1], 64))
        head = codes[:, :-1].sum(1)
        codes[:, -1] = np.floor(head / 64) * 64 + 32 - head
        assert s2 == S and np.abs(codes).max() <= 120
        return (S * codes.reshape(shape)).astype(f32)
    # codes (plus Z) on half steps: the input QuantizeLinear rounds ties; LeakyRelu's 0.25 * x lands on
    # a .5 step of S / 2 for every odd negative code
    k = np.round(rng.standard_normal(shape) * 3 / S)
    return ((k + 0.5 * (rng.random(shape) < 0.5)) * S).astype(f32)


@pytest.mark.parametrize("op", list(OPS))
def test_int8_codes(tmp_path, op):
    _, _, _, s2, z2 = OPS[op]
    path = _save(tmp_path / f"{op}.onnx", op, S, Z, fan_out=False, out_scale=s2, out_zp=z2)
    for seed in range(3):
        x = _int8_input(op, np.random.default_rng(100 + seed))
        for level in _levels(op):
            assert _differ(path, x, level) == 0, (op, seed, level)


def test_pad_constant_value_refused(tmp_path):
    """A Pad writing another constant than 0 was imported as a zero pad (the constant dropped): an
    int8 Pad unit run in float would have been answered differently; it is refused now."""
    pad = helper.make_node("Pad", ["x", "pads", "cv"], ["y"])
    inits = [numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
             numpy_helper.from_array(np.array(0.7, f32), "cv")]
    g = helper.make_graph([pad], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 2, 3, 3))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "padc.onnx")
    with pytest.raises(qsim.QsimError, match="constant_value"):
        qsim.simulate(str(tmp_path / "padc.onnx"), {"x": np.zeros((1, 2, 3, 3), f32)})


@pytest.mark.parametrize("code,refused", [(128, False), (3, True)])
def test_pad_of_codes_pads_with_the_zero_point(tmp_path, code, refused):
    """A Pad of stored codes (QuantizeLinear -> Pad -> DequantizeLinear, as a QOperator model pads) pads
    with a code: the zero point is the real value 0 (equal to onnxruntime), another code is refused."""
    inits = [numpy_helper.from_array(np.array(0.05, f32), "s"), numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
             numpy_helper.from_array(np.array(code, np.uint8), "cv")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("Pad", ["q", "pads", "cv"], ["p"]),
             helper.make_node("DequantizeLinear", ["p", "s", "z"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 2, 4, 4))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "padq.onnx")
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(f32)
    if refused:
        with pytest.raises(qsim.QsimError, match="constant_value"):
            qsim.simulate(str(tmp_path / "padq.onnx"), {"x": x})
        return
    want = ort.InferenceSession(str(tmp_path / "padq.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.array_equal(qsim.simulate(str(tmp_path / "padq.onnx"), {"x": x})["y"], want)
