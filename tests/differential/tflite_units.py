"""LiteRT units: one random single-op .tflite model per call, int8 or int16x8 (int16 activations,
int8 weights, int64 bias; the *_U8_BCAST units also uint8), written with the project's own writer
(``TfliteWriter`` of tests/unit/_model_files.py). ``TFLITE_UNITS``: unit name -> builder(Gen) ->
TfliteModel; a unit's name is its TFLite op, with a suffix for a second unit of the same op."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.sim.int_elementwise import litert_pot_scale

from . import _paths  # noqa: F401  (tests/unit on sys.path)
from .gen import Gen
from _model_files import TfliteWriter  # noqa: E402  (the project's .tflite writer)

ACT = {"NONE": 0, "RELU": 1, "RELU6": 3}


class TfliteModel:
    """A TfliteWriter plus the subgraph's inputs, outputs and the values fed to them."""

    def __init__(self):
        self.w = TfliteWriter()
        self.ins, self.outs, self.feeds = [], [], {}

    def feed(self, g: Gen, name, shape, dtype, quant, value=None) -> int:
        t = self.w.tensor(name, shape, dtype, quant)
        self.ins.append(t)
        if value is None:
            value = g.codes(str(np.dtype(dtype)), shape, int(np.ravel(quant[1])[0]))
        self.feeds[name] = np.asarray(value, dtype)
        return t

    def out(self, name, shape, dtype, quant=None) -> int:
        t = self.w.tensor(name, shape, dtype, quant)
        self.outs.append(t)
        return t

    def save(self, path) -> Path:
        return self.w.save(path, self.ins, self.outs)


def _types(g: Gen) -> tuple[type, bool]:
    sixteen = g.chance(0.35)
    return (np.int16 if sixteen else np.int8), sixteen


def _zp(g: Gen, sixteen: bool) -> int:
    return 0 if sixteen else g.zero_point("int8")  # 16x8: symmetric activations


def _nhwc(g: Gen) -> tuple:
    return (g.int(1, 2), g.spatial(1, 9), g.spatial(1, 9), g.channels(24))


def _act_fn(g: Gen) -> int:
    return ACT[g.pick(["NONE", "NONE", "RELU", "RELU6"])]


def _conv(depthwise: bool):
    def build(g: Gen) -> TfliteModel:
        m = TfliteModel()
        dt, sixteen = _types(g)
        n, cin = g.int(1, 2), g.channels(24 if depthwise else 13)
        mult = g.pick([1, 1, 2]) if depthwise else 1
        cout = cin * mult if depthwise else g.channels(19)
        k = (g.int(1, 4), g.int(1, 4))
        stride, dil = (g.int(1, 3), g.int(1, 3)), (g.pick([1, 1, 2]), g.pick([1, 1, 2]))
        same = g.chance(0.5)
        h = g.int(max(1, (k[0] - 1) * dil[0] + 1), 11)
        w_ = g.int(max(1, (k[1] - 1) * dil[1] + 1), 11)
        s_in = g.scale()
        x = m.feed(g, "x", (n, h, w_, cin), dt, (s_in, _zp(g, sixteen)))
        per_channel = g.chance(0.7)
        s_w = g.scales(cout) if per_channel else np.array([g.scale()], np.float32)
        zeros = np.zeros(s_w.size, int)
        wshape = (1, *k, cout) if depthwise else (cout, *k, cin)
        wv = g.rng.integers(-127, 128, wshape) if g.chance(0.7) else g.rng.integers(-4, 5, wshape)
        wt = m.w.tensor("w", wshape, np.int8, (s_w, zeros, 3 if depthwise else 0), wv)
        btype = np.int64 if sixteen else np.int32
        bias_q = ((np.float32(s_in) * s_w).astype(np.float32), zeros, 0)
        bt = m.w.tensor("b", (cout,), btype, bias_q, g.rng.integers(-2 ** 16, 2 ** 16, cout))  # LiteRT needs one
        oh = -(-h // stride[0]) if same else (h - (k[0] - 1) * dil[0] - 1) // stride[0] + 1
        ow = -(-w_ // stride[1]) if same else (w_ - (k[1] - 1) * dil[1] - 1) // stride[1] + 1
        kk = k[0] * k[1] * (1 if depthwise else cin)
        s_out = g.out_scale(np.float32(s_in) * s_w[0], float(s_in * s_w.max()) * 3000 * np.sqrt(kk))
        y = m.out("y", (n, oh, ow, cout), dt, (s_out, _zp(g, sixteen)))
        P = m.w.s.Padding
        common = dict(padding=P.SAME if same else P.VALID, strideH=stride[0], strideW=stride[1],
                      dilationHFactor=dil[0], dilationWFactor=dil[1], fusedActivationFunction=_act_fn(g))
        if depthwise:
            opts = m.w.options("DepthwiseConv2DOptionsT", depthMultiplier=mult, **common)
            m.w.op("DEPTHWISE_CONV_2D", [x, wt, bt], [y], opts, "DepthwiseConv2DOptions")
        else:
            m.w.op("CONV_2D", [x, wt, bt], [y], m.w.options("Conv2DOptionsT", **common), "Conv2DOptions")
        return m
    return build


def fully_connected(g: Gen) -> TfliteModel:
    m = TfliteModel()
    dt, sixteen = _types(g)
    n, kk, o = g.int(1, 5), g.pick([1, 3, 8, 17, 33, 64, 100]), g.channels(33)
    s_in = g.scale()
    x = m.feed(g, "x", (n, kk), dt, (s_in, _zp(g, sixteen)))
    s_w = g.scales(o) if g.chance(0.5) else np.array([g.scale()], np.float32)
    zeros = np.zeros(s_w.size, int)
    wt = m.w.tensor("w", (o, kk), np.int8, (s_w, zeros, 0), g.rng.integers(-127, 128, (o, kk)))
    bias_q = ((np.float32(s_in) * s_w).astype(np.float32), zeros, 0)
    bt = m.w.tensor("b", (o,), np.int64 if sixteen else np.int32, bias_q,
                    g.rng.integers(-2 ** 16, 2 ** 16, o)) if g.chance(0.8) else -1
    s_out = g.out_scale(np.float32(s_in) * s_w[0], float(s_in * s_w.max()) * 3000 * np.sqrt(kk))
    y = m.out("y", (n, o), dt, (s_out, _zp(g, sixteen)))
    m.w.op("FULLY_CONNECTED", [x, wt, bt], [y],
           m.w.options("FullyConnectedOptionsT", fusedActivationFunction=_act_fn(g)), "FullyConnectedOptions")
    return m


def _zp_of(g: Gen, dt) -> int:
    """A zero point of storage type ``dt`` (int16x8: symmetric; the same draws as ``_zp``)."""
    return 0 if dt == np.int16 else g.zero_point(np.dtype(dt).name)


# the second operand of ADD / MUL: another activation ("same"), a constant per channel or one value
BINARY_FORMS = ["same", "same", "channel", "scalar"]
# ... or, in the *_U8_BCAST units, an activation that broadcasts: per channel (LiteRT's fivefold
# rows), per pixel (its scalar broadcasts, one per pixel), one value
ACT_BROADCAST = {"channel-act": lambda s: (1,) * (len(s) - 1) + s[-1:], "pixel-act": lambda s: s[:-1] + (1,),
                 "scalar-act": lambda s: (1,) * len(s)}


def _binary(op: str, dtypes=None):
    """ADD / MUL / SUB. ``dtypes`` None: int8 or int16x8, a same-shape or constant second operand;
    else the *_U8_BCAST units: the storage type drawn from ``dtypes`` (uint8: legacy asymmetric
    models) and the second operand also an activation that broadcasts (``ACT_BROADCAST``)."""
    def build(g: Gen) -> TfliteModel:
        m = TfliteModel()
        dt = _types(g)[0] if dtypes is None else g.pick(dtypes)
        shape = _nhwc(g) if g.chance(0.6) else (g.int(1, 3), g.channels(33))
        s_a = g.scale()
        if dtypes is not None and dt == np.int16 and g.chance(0.5):  # LiteRT's power-of-two int16 ADD (tie cases)
            s_a = np.float32(2.0 ** np.round(np.log2(s_a)))
        s_b = np.float32(s_a * 2.0 ** g.int(-3, 3)) if g.tie else g.scale()
        a = m.feed(g, "a", shape, dt, (s_a, _zp_of(g, dt)))
        form = g.pick(BINARY_FORMS if dtypes is None else BINARY_FORMS + [*ACT_BROADCAST] * 2)
        if form == "same" or form in ACT_BROADCAST:
            b = m.feed(g, "b", ACT_BROADCAST[form](shape) if form in ACT_BROADCAST else shape, dt, (s_b, _zp_of(g, dt)))
        else:
            bshape = (shape[-1],) if form == "channel" else ()
            zb = _zp_of(g, dt)
            b = m.w.tensor("b", bshape, dt, (s_b, zb), g.codes(np.dtype(dt).name, bshape, zb))
        if op == "MUL":
            s_y = np.float32(s_a * s_b * 2.0 ** g.int(0, 8)) if g.tie else np.float32(s_a * s_b * 128 * np.exp(g.rng.uniform(-2, 2)))
        else:
            s_y = np.float32(max(s_a, s_b) * 2.0 ** g.int(-1, 2)) if g.tie else np.float32((s_a + s_b) * np.exp(g.rng.uniform(-1, 1.5)))
        if op == "ADD" and dt == np.int16 and form != "same" and all(litert_pot_scale(v) for v in (s_a, s_b, s_y)):
            s_y = np.float32(s_y * 1.5)  # LiteRT's power-of-two int16 ADD does not broadcast: it aborts
        y = m.out("y", shape, dt, (s_y, _zp_of(g, dt)))
        first, second = (b, a) if form != "same" and g.chance(0.3) else (a, b)
        cls = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[op]
        m.w.op(op, [first, second], [y], m.w.options(f"{cls}T", fusedActivationFunction=_act_fn(g)), cls)
        return m
    return build


def _pool(op: str):
    def build(g: Gen) -> TfliteModel:
        m = TfliteModel()
        dt, sixteen = _types(g)
        k, stride, same = (g.int(1, 4), g.int(1, 4)), (g.int(1, 3), g.int(1, 3)), g.chance(0.5)
        n, h, w_, c = g.int(1, 2), g.int(k[0], 11), g.int(k[1], 11), g.channels(24)
        q = (g.scale(), _zp(g, sixteen))  # pooling keeps the input's parameters
        x = m.feed(g, "x", (n, h, w_, c), dt, q)
        oh = -(-h // stride[0]) if same else (h - k[0]) // stride[0] + 1
        ow = -(-w_ // stride[1]) if same else (w_ - k[1]) // stride[1] + 1
        y = m.out("y", (n, oh, ow, c), dt, q)
        P = m.w.s.Padding
        opts = m.w.options("Pool2DOptionsT", padding=P.SAME if same else P.VALID, strideH=stride[0],
                           strideW=stride[1], filterHeight=k[0], filterWidth=k[1], fusedActivationFunction=_act_fn(g))
        m.w.op(op, [x], [y], opts, "Pool2DOptions")
        return m
    return build


def concatenation(g: Gen) -> TfliteModel:
    """LiteRT requires every int8/int16 input at the output's scale and zero point (no rescaling)."""
    m = TfliteModel()
    dt, sixteen = _types(g)
    shape, axis = list(_nhwc(g)), g.pick([3, 3, 1, 2, -1])
    q, ins, total = (g.scale(), _zp(g, sixteen)), [], 0
    for i in range(g.int(1, 4)):
        shape_i = list(shape)
        shape_i[axis] = g.int(1, 7)
        total += shape_i[axis]
        ins.append(m.feed(g, f"x{i}", tuple(shape_i), dt, q))
    shape[axis] = total
    y = m.out("y", tuple(shape), dt, q)
    m.w.op("CONCATENATION", ins, [y], m.w.options("ConcatenationOptionsT", axis=axis), "ConcatenationOptions")
    return m


OUT_Q = {  # the fixed output parameters LiteRT requires of these ops
    ("SOFTMAX", False): (1 / 256, -128), ("SOFTMAX", True): (1 / 32768, 0),
    ("LOGISTIC", False): (1 / 256, -128), ("LOGISTIC", True): (1 / 32768, 0),
    ("TANH", False): (1 / 128, 0), ("TANH", True): (1 / 32768, 0)}


def _fixed_out(op: str):
    def build(g: Gen) -> TfliteModel:
        m = TfliteModel()
        dt, sixteen = _types(g)
        shape = (g.int(1, 3), g.pick([1, 2, 7, 10, 33, 100])) if op == "SOFTMAX" or g.chance(0.5) else _nhwc(g)
        s_in = g.scale(1e-4, 1.0) if g.chance(0.7) else g.scale()
        x = m.feed(g, "x", shape, dt, (s_in, _zp(g, sixteen)))
        y = m.out("y", shape, dt, OUT_Q[(op, sixteen)])
        if op == "SOFTMAX":
            m.w.op(op, [x], [y], m.w.options("SoftmaxOptionsT", beta=float(g.pick([1.0, 1.0, 0.5, 2.0]))), "SoftmaxOptions")
        else:
            m.w.op(op, [x], [y])
        return m
    return build


def hard_swish(g: Gen) -> TfliteModel:
    """int8 only (LiteRT's HARD_SWISH rejects int16 at invoke). The output scale is drawn near the
    input's (s_in / s_out of 128 and more makes LiteRT's Prepare fail; qsim refuses it too); a tie
    case uses s_in * 2^r, which puts the final rounding shift on halves."""
    m = TfliteModel()
    shape = _nhwc(g) if g.chance(0.6) else (g.int(1, 3), g.pick([1, 7, 16, 33, 100]))
    s_in = g.scale(1e-4, 1.0) if g.chance(0.7) else g.scale()
    s_out = np.float32(s_in * 2.0 ** g.int(-6, 3)) if g.tie else np.float32(s_in * np.exp(g.rng.uniform(-3.5, 2)))
    x = m.feed(g, "x", shape, np.int8, (s_in, g.zero_point("int8")))
    y = m.out("y", shape, np.int8, (s_out, g.zero_point("int8")))
    m.w.op("HARD_SWISH", [x], [y])
    return m

def mean(g: Gen) -> TfliteModel:
    m = TfliteModel()
    dt, sixteen = _types(g)
    shape = _nhwc(g)
    q = (g.scale(), _zp(g, sixteen))
    x = m.feed(g, "x", shape, dt, q)
    axes = g.pick([(1, 2), (1, 2), (2,), (3,), (1,)])
    keep = g.chance(0.7)
    out = tuple((1 if i in axes else d) for i, d in enumerate(shape)) if keep else \
        tuple(d for i, d in enumerate(shape) if i not in axes)
    ax = m.w.tensor("axes", (len(axes),), np.int32, None, np.array(axes))
    y = m.out("y", out, dt, q if g.chance(0.6) else (g.scale(), _zp(g, sixteen)))
    m.w.op("MEAN", [x, ax], [y], m.w.options("ReducerOptionsT", keepDims=keep), "ReducerOptions")
    return m


def pad(g: Gen) -> TfliteModel:
    m = TfliteModel()
    dt, sixteen = _types(g)
    shape = _nhwc(g)
    q = (g.scale(), _zp(g, sixteen))
    x = m.feed(g, "x", shape, dt, q)
    pads = np.array([[0, 0], [g.int(0, 2), g.int(0, 2)], [g.int(0, 2), g.int(0, 2)], [0, g.int(0, 1)]])
    p = m.w.tensor("pads", (4, 2), np.int32, None, pads)
    y = m.out("y", tuple(d + a + b for d, (a, b) in zip(shape, pads)), dt, q)
    m.w.op("PAD", [x, p], [y])
    return m


def reshape(g: Gen) -> TfliteModel:
    m = TfliteModel()
    dt, sixteen = _types(g)
    shape = _nhwc(g)
    q = (g.scale(), _zp(g, sixteen))
    x = m.feed(g, "x", shape, dt, q)
    size = int(np.prod(shape))
    target = g.pick([(shape[0], size // shape[0]), (shape[0], shape[1] * shape[2], shape[3]),
                     (shape[0], shape[2], shape[1], shape[3])])
    t = m.w.tensor("shape", (len(target),), np.int32, None, np.array(target))
    y = m.out("y", target, dt, q)
    m.w.op("RESHAPE", [x, t], [y])
    return m


def quantize(g: Gen) -> TfliteModel:
    """float -> int8/int16 (the input edge), or int8/int16 -> int8/int16 (a requantization)."""
    m = TfliteModel()
    dt, sixteen = _types(g)
    shape = _nhwc(g) if g.chance(0.5) else (g.int(1, 3), g.channels(33))
    q_out = (g.scale(), _zp(g, sixteen))
    if g.chance(0.5):
        x = m.feed(g, "x", shape, np.float32, None, g.floats(shape, q_out[0], q_out[1], str(np.dtype(dt))))
    else:
        src = g.pick([np.int8, np.int16])
        s_in = np.float32(q_out[0] * 2.0 ** g.int(-3, 3)) if g.tie else g.scale()
        x = m.feed(g, "x", shape, src, (s_in, 0 if src == np.int16 else g.zero_point("int8")))
    y = m.out("y", shape, dt, q_out)
    m.w.op("QUANTIZE", [x], [y])
    return m


def dequantize(g: Gen) -> TfliteModel:
    m = TfliteModel()
    dt, sixteen = _types(g)
    shape = _nhwc(g) if g.chance(0.5) else (g.int(1, 3), g.channels(33))
    x = m.feed(g, "x", shape, dt, (g.scale(), _zp(g, sixteen)))
    y = m.out("y", shape, np.float32)
    m.w.op("DEQUANTIZE", [x], [y])
    return m


TFLITE_UNITS = {
    "CONV_2D": _conv(False), "DEPTHWISE_CONV_2D": _conv(True), "FULLY_CONNECTED": fully_connected,
    "ADD": _binary("ADD"), "MUL": _binary("MUL"), "SUB": _binary("SUB"),
    "ADD_U8_BCAST": _binary("ADD", [np.uint8, np.uint8, np.int8, np.int16]),
    "MUL_U8_BCAST": _binary("MUL", [np.uint8, np.uint8, np.int8]),
    "AVERAGE_POOL_2D": _pool("AVERAGE_POOL_2D"), "MAX_POOL_2D": _pool("MAX_POOL_2D"),
    "CONCATENATION": concatenation, "SOFTMAX": _fixed_out("SOFTMAX"), "LOGISTIC": _fixed_out("LOGISTIC"),
    "TANH": _fixed_out("TANH"), "MEAN": mean, "PAD": pad, "RESHAPE": reshape,
    "QUANTIZE": quantize, "DEQUANTIZE": dequantize, "HARD_SWISH": hard_swish,
}
