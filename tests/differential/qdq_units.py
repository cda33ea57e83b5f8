"""QDQ units: the float op between QuantizeLinear/DequantizeLinear pairs, as ``quantize_static``
writes them: float input -> Q -> DQ, constant weights -> DQ (per-tensor or per-channel), int32
bias -> DQ, then Q -> DQ on the output. u8/s8 and s8/s8. onnxruntime fuses these units into its
integer kernels at ORT_ENABLE_ALL and runs them in float at ORT_DISABLE_ALL.
``QDQ_UNITS``: op name -> builder(Gen) -> OnnxModel."""
from __future__ import annotations

import numpy as np

from .gen import Gen
from .onnx_build import OnnxModel
from .onnx_units import _absmax, _nchw, _weights


def _in(m: OnnxModel, g: Gen, name: str, dtype: str, shape, scale=None) -> tuple[str, float]:
    """A float model input through Q -> DQ; returns the DQ output and the scale."""
    scale = np.float32(g.scale() if scale is None else scale)
    zero = g.zero_point(dtype)
    m.const(f"{name}_s", scale)
    m.const(f"{name}_z", np.array(zero, dtype))
    m.feed(name, g.floats(shape, scale, zero, dtype))
    m.node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"])
    m.node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"])
    return f"{name}_dq", float(scale)


def _out(m: OnnxModel, g: Gen, y: str, dtype: str, scale) -> None:
    m.const("y_s", np.float32(scale))
    m.const("y_z", np.array(g.zero_point(dtype), dtype))
    m.node("QuantizeLinear", [y, "y_s", "y_z"], ["y_q"])
    m.node("DequantizeLinear", ["y_q", "y_s", "y_z"], ["y"])
    m.output("y", "float32")


def _weight(m: OnnxModel, g: Gen, shape, axis: int, per_channel: bool) -> tuple[str, np.ndarray]:
    scales = g.scales(shape[axis]) if per_channel else np.float32(g.scale())
    m.const("w", _weights(g, "int8", shape))
    m.const("w_s", scales)
    m.const("w_z", np.zeros(np.shape(scales), np.int8))
    m.node("DequantizeLinear", ["w", "w_s", "w_z"], ["w_dq"], **({"axis": axis} if per_channel else {}))
    return "w_dq", np.atleast_1d(scales)


def _bias(m: OnnxModel, g: Gen, s_in: float, s_w: np.ndarray, n: int) -> str:
    scale = (np.float32(s_in) * s_w).astype(np.float32)
    m.const("b", g.rng.integers(-2 ** 14, 2 ** 14, n).astype(np.int32))
    m.const("b_s", scale if scale.size > 1 else scale.reshape(()))
    m.const("b_z", np.zeros(scale.shape if scale.size > 1 else (), np.int32))
    m.node("DequantizeLinear", ["b", "b_s", "b_z"], ["b_dq"], **({"axis": 0} if scale.size > 1 else {}))
    return "b_dq"


def _act_type(g: Gen) -> str:
    return g.pick(["uint8", "int8"])  # u8/s8 and s8/s8 (weights are always int8)


def conv(g: Gen) -> OnnxModel:
    m = OnnxModel("qdq_conv")
    t = _act_type(g)
    kind = g.pick(["plain", "grouped", "depthwise", "strided", "padded", "dilated", "1x1"])
    groups = {"grouped": g.int(2, 3), "depthwise": g.channels(24)}.get(kind, 1)
    cin_g = 1 if kind == "depthwise" else g.channels(9)
    cout = groups * (1 if kind == "depthwise" else g.channels(9))
    k = (1, 1) if kind == "1x1" else (g.int(1, 3), g.int(1, 3))
    stride = (g.int(2, 3), g.int(1, 2)) if kind == "strided" else (1, 1)
    dil = (2, g.int(1, 2)) if kind == "dilated" else (1, 1)
    pads = [g.int(0, k[0] - 1), g.int(0, k[1] - 1)] * 2 if kind in ("padded", "strided") else [0] * 4
    h, w_ = g.int((k[0] - 1) * dil[0] + 1, 10), g.int((k[1] - 1) * dil[1] + 1, 10)
    x, s_in = _in(m, g, "x", t, (1, cin_g * groups, h, w_))
    wq, s_w = _weight(m, g, (cout, cin_g, *k), 0, g.chance(0.6))
    ins = [x, wq] + ([_bias(m, g, s_in, s_w, cout)] if g.chance(0.7) else [])
    m.node("Conv", ins, ["yf"], kernel_shape=list(k), strides=list(stride), dilations=list(dil), pads=pads, group=groups)
    _out(m, g, "yf", t, g.out_scale(np.float32(s_in) * s_w[0], _absmax(s_in, s_w, cin_g * k[0] * k[1])))
    return m


def matmul(g: Gen) -> OnnxModel:
    m = OnnxModel("qdq_matmul")
    t = _act_type(g)
    mm, kk, nn = g.int(1, 7), g.pick([3, 16, 17, 64, 65]), g.channels(33)
    a, s_in = _in(m, g, "a", t, (mm, kk))
    if g.chance(0.7):
        b, s_w = _weight(m, g, (kk, nn), 1, g.chance(0.5))
    else:
        b, sb = _in(m, g, "b", t, (kk, nn))
        s_w = np.atleast_1d(np.float32(sb))
    m.node("MatMul", [a, b], ["yf"])
    _out(m, g, "yf", t, g.out_scale(np.float32(s_in) * s_w[0], _absmax(s_in, s_w, kk)))
    return m


def gemm(g: Gen) -> OnnxModel:
    m = OnnxModel("qdq_gemm")
    t = _act_type(g)
    mm, kk, nn = g.int(1, 7), g.pick([3, 16, 17, 64]), g.channels(33)
    a, s_in = _in(m, g, "a", t, (mm, kk))
    wq, s_w = _weight(m, g, (nn, kk), 0, g.chance(0.5))
    m.node("Gemm", [a, wq, _bias(m, g, s_in, s_w, nn)], ["yf"], transB=1)
    _out(m, g, "yf", t, g.out_scale(np.float32(s_in) * s_w[0], _absmax(s_in, s_w, kk)))
    return m


def _binary(op: str):
    def build(g: Gen) -> OnnxModel:
        m = OnnxModel(f"qdq_{op.lower()}")
        t = _act_type(g)
        shape = _nchw(g)
        a, s_a = _in(m, g, "a", t, shape)
        b, s_b = _in(m, g, "b", t, shape, np.float32(s_a * 2.0 ** g.int(-2, 2)) if g.tie else None)
        m.node(op, [a, b], ["yf"])
        s_y = (s_a * s_b * 128 if op == "Mul" else s_a + s_b) * np.exp(g.rng.uniform(-1, 1))
        _out(m, g, "yf", t, np.float32(s_y))
        return m
    return build


def concat(g: Gen) -> OnnxModel:
    m = OnnxModel("qdq_concat")
    t = _act_type(g)
    shape = list(_nchw(g))
    ins, s0 = [], g.scale()
    for i in range(g.int(2, 3)):
        shape[1] = g.int(1, 7)
        ins.append(_in(m, g, f"x{i}", t, tuple(shape), s0 if g.chance(0.5) else None)[0])
    m.node("Concat", ins, ["yf"], axis=1)
    _out(m, g, "yf", t, s0 if g.chance(0.5) else g.scale())
    return m


def _unary(op: str, **attrs):
    def build(g: Gen) -> OnnxModel:
        m = OnnxModel(f"qdq_{op.lower()}")
        t = _act_type(g)
        shape = _nchw(g) if op != "Softmax" else (g.int(1, 3), g.pick([2, 7, 10, 33]))
        x, s_in = _in(m, g, "x", t, shape, g.scale(1e-3, 1.0))
        extra = dict(attrs)
        if op in ("AveragePool", "MaxPool"):
            k = (g.int(1, min(3, shape[2])), g.int(1, min(3, shape[3])))
            extra.update(kernel_shape=list(k), strides=[g.int(1, 2), g.int(1, 2)])
        if op == "LeakyRelu":
            extra["alpha"] = float(g.pick([0.01, 0.1, 0.2]))
        m.node(op, [x], ["yf"], **extra)
        same = op in ("MaxPool",) or g.chance(0.3)
        fixed = {"Sigmoid": 1 / 256, "Softmax": 1 / 256}.get(op)
        _out(m, g, "yf", t, s_in if same else (fixed if fixed and g.chance(0.6) else np.float32(s_in * 2.0 ** g.int(-2, 2))))
        return m
    return build


def gather(g: Gen) -> OnnxModel:
    """Gather of constant indices (several, repeated, negative; a 0-, 1- or 2-D index array) along any
    axis of a quantized activation, out at the input's parameters (the codes move) or others."""
    m = OnnxModel("qdq_gather")
    t = _act_type(g)
    shape = _nchw(g)
    x, s_in = _in(m, g, "x", t, shape)
    axis = g.int(-4, 3)
    n = shape[axis]
    index = g.rng.integers(-n, n, g.pick([(), (1,), (g.int(1, 5),), (g.int(1, 3), g.int(1, 3))]))
    m.const("idx", np.asarray(index, np.int64))
    m.node("Gather", [x, "idx"], ["yf"], axis=axis)
    _out(m, g, "yf", t, s_in if g.chance(0.6) else np.float32(s_in * 2.0 ** g.int(-2, 2)))
    return m


def two_quantizations(g: Gen) -> OnnxModel:
    """One float input quantized by two QuantizeLinear nodes of their own parameters (each rounds the float
    itself), dequantized and added, or the two branches out apart through one output Concat."""
    m = OnnxModel("qdq_two_quantizations")
    t = _act_type(g)
    shape = _nchw(g)
    s = [g.scale(1e-3, 1.0), g.scale(1e-3, 1.0) if g.chance(0.7) else None]
    s[1] = s[0] if s[1] is None else s[1]
    zero = [g.zero_point(t), g.zero_point(t)]
    m.feed("x", g.floats(shape, s[0], zero[0], t))
    for i in (0, 1):
        m.const(f"s{i}", np.float32(s[i]))
        m.const(f"z{i}", np.array(zero[i], t))
        m.node("QuantizeLinear", ["x", f"s{i}", f"z{i}"], [f"q{i}"])
        m.node("DequantizeLinear", [f"q{i}", f"s{i}", f"z{i}"], [f"d{i}"])
    if g.chance(0.5):
        m.node("Add", ["d0", "d1"], ["yf"])
        _out(m, g, "yf", t, np.float32(s[0] + s[1]))
    else:
        m.node("Concat", ["d0", "d1"], ["yf"], axis=1)
        _out(m, g, "yf", t, np.float32(max(s)))
    return m


QDQ_UNITS = {
    "Conv": conv, "MatMul": matmul, "Gemm": gemm, "Add": _binary("Add"), "Mul": _binary("Mul"),
    "Concat": concat, "AveragePool": _unary("AveragePool"), "GlobalAveragePool": _unary("GlobalAveragePool"),
    "MaxPool": _unary("MaxPool"), "Sigmoid": _unary("Sigmoid"), "LeakyRelu": _unary("LeakyRelu"),
    "Softmax": _unary("Softmax", axis=-1), "Gather": gather, "TwoQuantizations": two_quantizations,
}
