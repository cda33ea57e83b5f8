"""QOperator units: one random single-op (or Q -> DQ) ONNX model per call, for every op the integer
executor takes from a QOperator file. ``ONNX_UNITS``: op name -> builder(Gen) -> OnnxModel."""
from __future__ import annotations

import numpy as np

from .dynamic_units import DYNAMIC_UNITS
from .gen import INT_RANGE, Gen
from .onnx_build import OnnxModel

MS = "com.microsoft"


def _qp(m: OnnxModel, g: Gen, prefix: str, dtype: str, scale=None, zero=None) -> tuple[str, str, float, int]:
    """Scale and zero point constants; returns their names and values."""
    scale = g.scale() if scale is None else scale
    zero = g.zero_point(dtype) if zero is None else zero
    m.const(f"{prefix}_scale", np.float32(scale))
    m.const(f"{prefix}_zero", np.array(zero, dtype))
    return f"{prefix}_scale", f"{prefix}_zero", float(scale), int(zero)


def _act(g: Gen, m: OnnxModel, name: str, dtype: str, shape, scale=None, zero=None):
    """A fed quantized activation with its parameters: (x, x_scale, x_zero) names, and values."""
    s, z, sv, zv = _qp(m, g, name, dtype, scale, zero)
    m.feed(name, g.codes(dtype, shape, zv))
    return (name, s, z), sv, zv


def _weights(g: Gen, dtype: str, shape) -> np.ndarray:
    lo, hi = INT_RANGE[dtype]
    mode = g.pick(["full", "small", "extreme"])
    if mode == "full":
        return g.rng.integers(lo, hi + 1, shape).astype(dtype)
    if mode == "small":
        mid = 0 if dtype == "int8" else 128
        return (g.rng.integers(-7, 8, shape) + mid).astype(dtype)
    return g.rng.choice([lo, hi], shape).astype(dtype)


def _w_params(m: OnnxModel, g: Gen, dtype: str, channels: int, per_channel: bool, uniform_zero: bool = False):
    scales = g.scales(channels) if per_channel else np.float32(g.scale())
    if dtype == "int8" and not g.chance(0.2):
        zero = np.zeros(np.shape(scales), np.int8)
    else:
        zero = np.array(g.zero_point(dtype), dtype)
        zero = np.full(np.shape(scales), zero, dtype) if uniform_zero or g.chance(0.5) else \
            np.array([g.zero_point(dtype) for _ in range(np.size(scales))], dtype).reshape(np.shape(scales))
    m.const("w_scale", scales)
    m.const("w_zero", zero)
    return scales, zero


def _absmax(s_in, s_w, k: int) -> float:
    return float(np.float32(s_in) * np.max(s_w)) * 3000.0 * np.sqrt(max(k, 1))


def qlinear_conv(g: Gen) -> OnnxModel:
    m = OnnxModel("qlinear_conv")
    xt = g.pick(["uint8", "int8"])
    wt = "int8" if xt == "int8" else g.pick(["int8", "uint8"])
    kind = g.pick(["plain", "grouped", "depthwise", "strided", "padded", "dilated", "1x1"])
    groups = {"grouped": g.int(2, 4), "depthwise": g.channels(24)}.get(kind, 1)
    cin_g = 1 if kind == "depthwise" else g.channels(13)
    cout_g = g.pick([1, 1, 2, 3]) if kind == "depthwise" else g.channels(13)
    k = (1, 1) if kind == "1x1" else (g.int(1, 5), g.int(1, 5))
    stride = (g.int(2, 3), g.int(1, 3)) if kind == "strided" else (1, 1)
    dil = (g.int(2, 3), g.int(1, 2)) if kind == "dilated" else (1, 1)
    pads = [g.int(0, k[0] - 1 + (kind == "padded")), g.int(0, k[1] - 1), g.int(0, k[0] - 1), g.int(0, k[1] - 1)]
    pads = pads if kind in ("padded", "strided") or g.chance(0.3) else [0, 0, 0, 0]
    lo_h, lo_w = max(1, (k[0] - 1) * dil[0] + 1 - pads[0] - pads[2]), max(1, (k[1] - 1) * dil[1] + 1 - pads[1] - pads[3])
    h, w_ = g.int(lo_h, max(lo_h, 11)), g.int(lo_w, max(lo_w, 11))
    x, s_in, _ = _act(g, m, "x", xt, (g.int(1, 2), cin_g * groups, h, w_))
    cout = cout_g * groups
    m.const("w", _weights(g, wt, (cout, cin_g, *k)))
    s_w, _ = _w_params(m, g, wt, cout, g.chance(0.6), uniform_zero=True)
    product = np.float32(s_in) * np.atleast_1d(s_w)[0]
    y = _qp(m, g, "y", xt, g.out_scale(product, _absmax(s_in, s_w, cin_g * k[0] * k[1])))
    ins = [*x, "w", "w_scale", "w_zero", y[0], y[1]]
    if g.chance(0.7):
        ins.append(m.const("b", g.rng.integers(-2 ** g.int(4, 20), 2 ** g.int(4, 20), cout).astype(np.int32)))
    m.node("QLinearConv", ins, ["y"], kernel_shape=list(k), strides=list(stride), dilations=list(dil),
           pads=pads, group=groups)
    m.output("y", xt)
    return m


def _matmul_shapes(g: Gen):
    batch = [g.int(1, 3)] if g.chance(0.4) else []
    mm, kk, nn = g.int(1, 9), g.pick([1, 3, 7, 16, 17, 31, 64, 65, 130]), g.channels(33)
    return batch, mm, kk, nn


def qlinear_matmul(g: Gen) -> OnnxModel:
    m = OnnxModel("qlinear_matmul")
    at = g.pick(["uint8", "int8"])
    bt = g.pick(["int8", "uint8"]) if at == "uint8" else "int8"  # onnxruntime has no s8 x u8 kernel
    batch, mm, kk, nn = _matmul_shapes(g)
    a, s_a, _ = _act(g, m, "a", at, (*batch, mm, kk))
    if g.chance(0.7):  # a constant weight, per-tensor or per-column
        m.const("b", _weights(g, bt, (kk, nn)))
        per_col = g.chance(0.5)
        s_b = g.scales(nn) if per_col else np.float32(g.scale())
        zb = np.full(np.shape(s_b), g.zero_point(bt) if bt == "uint8" or g.chance(0.3) else 0, bt)
        m.const("b_scale", s_b)
        m.const("b_zero", zb)
        b = ("b", "b_scale", "b_zero")
    else:
        b, s_b, _ = _act(g, m, "b", bt, (*batch, kk, nn))
    y = _qp(m, g, "y", at, g.out_scale(np.float32(s_a) * np.atleast_1d(s_b)[0], _absmax(s_a, s_b, kk)))
    m.node("QLinearMatMul", [*a, *b, y[0], y[1]], ["y"])
    m.output("y", at)
    return m


def qgemm(g: Gen) -> OnnxModel:
    m = OnnxModel("qgemm")
    at = g.pick(["uint8", "int8"])
    _, mm, kk, nn = _matmul_shapes(g)
    a, s_a, _ = _act(g, m, "a", at, (mm, kk))
    trans_b = g.int(0, 1)
    m.const("w", _weights(g, "int8", (nn, kk) if trans_b else (kk, nn)))
    s_b, _ = _w_params(m, g, "int8", nn, g.chance(0.5), uniform_zero=True)
    ins = [*a, "w", "w_scale", "w_zero"]
    ins.append(m.const("c", g.rng.integers(-2 ** 16, 2 ** 16, nn).astype(np.int32)) if g.chance(0.7) else "")
    out_t = "float32" if g.chance(0.2) else at
    if out_t != "float32":
        y = _qp(m, g, "y", at, g.out_scale(np.float32(s_a) * np.atleast_1d(s_b)[0], _absmax(s_a, s_b, kk)))
        ins += [y[0], y[1]]
    m.node("QGemm", ins, ["y"], domain=MS, transB=trans_b)
    m.output("y", out_t)
    return m


def matmul_integer(g: Gen) -> OnnxModel:
    m = OnnxModel("matmul_integer")
    at, bt = g.pick(["uint8", "int8"]), g.pick(["int8", "uint8"])
    batch, mm, kk, nn = _matmul_shapes(g)
    big = g.chance(0.25)
    if big:  # accumulators beyond 2^24 (exact in int32, not in fp32): same-sign extremes
        kk = g.pick([1024, 2048, 4099])
    lo_a, hi_a = INT_RANGE[at]
    lo_b, hi_b = INT_RANGE[bt]
    m.feed("a", g.rng.choice([hi_a, hi_a, hi_a, lo_a], (*batch, mm, kk)).astype(at) if big else g.codes(at, (*batch, mm, kk)))
    m.const("b", g.rng.choice([hi_b, hi_b, hi_b, lo_b], (kk, nn)).astype(bt) if big else _weights(g, bt, (kk, nn)))
    ins = ["a", "b", m.const("a_zero", np.array(g.zero_point(at), at))]
    ins.append(m.const("b_zero", np.array([g.zero_point(bt) for _ in range(nn)], bt) if g.chance(0.5)
                       else np.array(g.zero_point(bt), bt)))
    m.node("MatMulInteger", ins, ["y"])
    m.output("y", "int32")
    return m


def conv_integer(g: Gen) -> OnnxModel:
    m = OnnxModel("conv_integer")
    xt, wt = g.pick(["uint8", "int8"]), g.pick(["uint8", "int8"])
    groups = g.pick([1, 1, 2, 3])
    cin_g, cout = g.channels(9), groups * g.channels(9)
    k = (g.int(1, 3), g.int(1, 3))
    pads = [g.int(0, k[0] - 1), g.int(0, k[1] - 1)] * 2
    m.feed("x", g.codes(xt, (1, cin_g * groups, g.int(k[0], 9), g.int(k[1], 9))))
    m.const("w", _weights(g, wt, (cout, cin_g, *k)))
    ins = ["x", "w", m.const("x_zero", np.array(g.zero_point(xt), xt)), m.const("w_zero", np.array(g.zero_point(wt), wt))]
    m.node("ConvInteger", ins, ["y"], kernel_shape=list(k), pads=pads, group=groups,
           strides=[g.int(1, 2), g.int(1, 2)])
    m.output("y", "int32")
    return m


def _nchw(g: Gen) -> tuple:
    return (g.int(1, 2), g.channels(24), g.spatial(1, 9), g.spatial(1, 9))


def _binary(op: str):
    def build(g: Gen) -> OnnxModel:
        m = OnnxModel(op.lower())
        t = g.pick(["uint8", "int8"])
        shape = _nchw(g) if g.chance(0.6) else (g.int(1, 2), g.int(1, 9), g.channels(33))
        a, s_a, _ = _act(g, m, "a", t, shape)
        form = g.pick(["same", "same", "channel", "scalar"])
        b_scale = g.scale() if not g.tie else np.float32(s_a * 2.0 ** g.int(-3, 3))
        if form == "same":
            b, s_b, _ = _act(g, m, "b", t, shape, scale=b_scale)
        else:
            bshape = ((shape[1], 1, 1) if len(shape) == 4 else (shape[-1],)) if form == "channel" else ()
            s, z, s_b, zb = _qp(m, g, "b", t, b_scale)
            m.const("b", g.codes(t, bshape, zb))
            b = ("b", s, z)
        if op == "QLinearAdd":
            y_scale = np.float32(max(s_a, s_b) * 2.0 ** g.int(-2, 2)) if g.tie else g.scale() if g.chance(0.3) \
                else np.float32((s_a + s_b) * np.exp(g.rng.uniform(-1.5, 1.5)))
        else:
            y_scale = np.float32(s_a * s_b * 2.0 ** g.int(0, 8)) if g.tie else \
                np.float32(s_a * s_b * 128 * np.exp(g.rng.uniform(-2, 2)))
        y = _qp(m, g, "y", t, y_scale)
        first, second = (b, a) if form != "same" and g.chance(0.3) else (a, b)  # the constant first, too
        m.node(op, [*first, *second, y[0], y[1]], ["y"], domain=MS)
        m.output("y", t)
        return m
    return build


def qlinear_concat(g: Gen) -> OnnxModel:
    m = OnnxModel("qlinear_concat")
    t = g.pick(["uint8", "int8"])
    shape = list(_nchw(g))
    axis = g.pick([1, 1, 2, 3, -1])
    ins, scale0 = [], g.scale()
    for i in range(g.int(1, 4)):
        shape_i = list(shape)
        shape_i[axis] = g.int(1, 7)
        s = scale0 if g.chance(0.3) else (np.float32(scale0 * 2.0 ** g.int(-2, 2)) if g.tie else g.scale())
        x, _, _ = _act(g, m, f"x{i}", t, tuple(shape_i), scale=s)
        ins += list(x)
    y = _qp(m, g, "y", t, scale0 if g.chance(0.3) else None)
    m.node("QLinearConcat", [y[0], y[1], *ins], ["y"], domain=MS, axis=axis)
    m.output("y", t)
    return m


def qlinear_avgpool(g: Gen) -> OnnxModel:
    m = OnnxModel("qlinear_avgpool")
    t = g.pick(["uint8", "int8"])
    k = (g.int(1, 4), g.int(1, 4))
    pads = [g.int(0, k[0] - 1), g.int(0, k[1] - 1), g.int(0, k[0] - 1), g.int(0, k[1] - 1)] if g.chance(0.5) else [0] * 4
    shape = (g.int(1, 2), g.channels(24), g.int(k[0], 11), g.int(k[1], 11))
    x, s_in, _ = _act(g, m, "x", t, shape)
    y = _qp(m, g, "y", t, np.float32(s_in * 2.0 ** g.int(-2, 2)) if g.tie or g.chance(0.5) else None)
    m.node("QLinearAveragePool", [*x, y[0], y[1]], ["y"], domain=MS, kernel_shape=list(k), pads=pads,
           strides=[g.int(1, 3), g.int(1, 3)], count_include_pad=g.int(0, 1), ceil_mode=int(g.chance(0.2)))
    m.output("y", t)
    return m


def qlinear_gap(g: Gen) -> OnnxModel:
    m = OnnxModel("qlinear_gap")
    t = g.pick(["uint8", "int8"])
    x, s_in, _ = _act(g, m, "x", t, _nchw(g))
    y = _qp(m, g, "y", t, np.float32(s_in * 2.0 ** g.int(-2, 2)) if g.tie or g.chance(0.5) else None)
    m.node("QLinearGlobalAveragePool", [*x, y[0], y[1]], ["y"], domain=MS, channels_last=0)
    m.output("y", t)
    return m


def maxpool(g: Gen) -> OnnxModel:
    m = OnnxModel("maxpool")
    t = g.pick(["uint8", "int8"])
    k = (g.int(1, 4), g.int(1, 4))
    pads = [g.int(0, k[0] - 1), g.int(0, k[1] - 1), g.int(0, k[0] - 1), g.int(0, k[1] - 1)] if g.chance(0.5) else [0] * 4
    m.feed("x", g.codes(t, (g.int(1, 2), g.channels(24), g.int(k[0], 11), g.int(k[1], 11))))
    m.node("MaxPool", ["x"], ["y"], kernel_shape=list(k), pads=pads, strides=[g.int(1, 3), g.int(1, 3)],
           ceil_mode=int(g.chance(0.2)))
    m.output("y", t)
    return m


def _unary(op: str, **attrs):
    def build(g: Gen) -> OnnxModel:
        m = OnnxModel(op.lower())
        t = g.pick(["uint8", "int8"])
        shape = _nchw(g) if op != "QLinearSoftmax" else (g.int(1, 3), g.int(1, 4), g.pick([1, 2, 7, 10, 33, 100]))
        x, s_in, _ = _act(g, m, "x", t, shape, scale=g.scale(1e-4, 1.0) if g.chance(0.6) else None)
        if op == "QLinearSoftmax" and g.chance(0.6):
            y = _qp(m, g, "y", t, np.float32(1 / 256), 0 if t == "uint8" else -128)
        elif op == "QLinearSigmoid" and g.chance(0.5):
            y = _qp(m, g, "y", t, np.float32(1 / 256), 0 if t == "uint8" else -128)
        else:
            y = _qp(m, g, "y", t, np.float32(s_in * 2.0 ** g.int(-2, 2)) if g.chance(0.5) else None)
        extra = {"alpha": float(g.pick([0.01, 0.1, 0.2, float(g.rng.uniform(0, 1)), 1.5]))} if op == "QLinearLeakyRelu" else {}
        if op == "QLinearSoftmax":
            extra = {"axis": -1, "opset": 13}
        m.node(op, [*x, y[0], y[1]], ["y"], domain=MS, **extra)
        m.output("y", t)
        return m
    return build


Q_TYPES = ("uint8", "int8", "uint16", "int16", "int4", "uint4", "float8e4m3fn", "float8e5m2")
RETURNABLE = ("uint8", "int8", "uint16", "int16")  # onnxruntime's Python API returns these directly


def quantize_linear(g: Gen) -> OnnxModel:
    """QuantizeLinear (float -> codes); types onnxruntime cannot hand back go through a DQ."""
    t = g.pick(Q_TYPES)
    m = OnnxModel(f"quantize_{t}")
    shape = _nchw(g)
    per_axis = g.chance(0.3)
    scale = g.scales(shape[1]) if per_axis else np.float32(g.scale())
    if t.startswith("float8"):
        zero = np.zeros(np.shape(scale), np.float32)
    else:
        zero = np.array([g.zero_point(t) for _ in range(np.size(scale))]).reshape(np.shape(scale))
    m.const("s", scale)
    m.const("z", zero, t) if t in ("int4", "uint4") or t.startswith("float8") else m.const("z", zero.astype(t))
    lo_hi = (-100, 100) if t.startswith("float8") else None
    x = g.floats(shape, np.min(scale), int(np.ravel(zero)[0]), "int8" if lo_hi else t)
    m.feed("x", x)
    attrs = {"axis": 1} if per_axis else {}
    if t in RETURNABLE:
        m.node("QuantizeLinear", ["x", "s", "z"], ["y"], **attrs)
        m.output("y", t)
    else:
        m.node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs)
        m.node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)
        m.output("y", "float32")
    return m


def dequantize_linear(g: Gen) -> OnnxModel:
    t = g.pick(("uint8", "int8", "uint16", "int16", "int32"))
    m = OnnxModel(f"dequantize_{t}")
    shape = _nchw(g)
    per_axis = g.chance(0.3) and t != "int32"
    scale = g.scales(shape[1]) if per_axis else np.float32(g.scale())
    zero = np.array([g.zero_point(t) for _ in range(np.size(scale))], t).reshape(np.shape(scale))
    m.const("s", scale)
    m.const("z", zero)
    m.feed("x", g.codes(t if t != "int32" else "int32", shape, int(np.ravel(zero)[0])))
    m.node("DequantizeLinear", ["x", "s", "z"], ["y"], **({"axis": 1} if per_axis else {}))
    m.output("y", "float32")
    return m


ONNX_UNITS = {
    "QLinearConv": qlinear_conv, "QLinearMatMul": qlinear_matmul, "QGemm": qgemm,
    "MatMulInteger": matmul_integer, "ConvInteger": conv_integer,
    "QLinearAdd": _binary("QLinearAdd"), "QLinearMul": _binary("QLinearMul"),
    "QLinearConcat": qlinear_concat, "QLinearAveragePool": qlinear_avgpool,
    "QLinearGlobalAveragePool": qlinear_gap, "MaxPool": maxpool,
    "QLinearSigmoid": _unary("QLinearSigmoid"), "QLinearLeakyRelu": _unary("QLinearLeakyRelu"),
    "QLinearSoftmax": _unary("QLinearSoftmax"),
    "QuantizeLinear": quantize_linear, "DequantizeLinear": dequantize_linear,
    **DYNAMIC_UNITS,
}
