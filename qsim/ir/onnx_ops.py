"""Handlers for float ONNX ops (also the ops between QuantizeLinear/DequantizeLinear in QDQ models);
data movement is in ``onnx_moves``.

Each handler reads one ONNX node and adds IR nodes through ``ctx.emit``. Conv, Gemm and MatMul
with a constant weight absorb the per-channel affine ops that follow them (BatchNormalization,
Mul/Add by a per-channel constant) into their weights and bias, as deployment toolchains do.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import GraphError
from qsim.ir.onnx_context import Const, Context
from qsim.ir.onnx_fold import attr_or_input, attrs_of
from qsim.ir.onnx_proto import make_node
from qsim.ir.onnx_window import check_window, spatial_pads
from qsim.numerics.tensor_quant import TensorQuant


# -- shared helpers ------------------------------------------------------------------------------
def _window(ctx: Context, node, x: str, kernel) -> dict:
    a = attrs_of(node)
    shape = ctx.g.tensor(x).shape
    if len(shape) != 4 or len(kernel) != 2:
        raise ValueError(f"only 2-D (NCHW) windows are supported, got input {shape}, kernel {list(kernel)}")
    stride = tuple(a.get("strides", (1, 1)))
    dilation = tuple(a.get("dilations", (1, 1)))
    if len(stride) != 2 or min(stride) < 1:  # SAME padding divides by the stride
        raise GraphError(f"stride {list(stride)} must be two integers >= 1")
    return check_window(kernel, stride, dilation, spatial_pads(a, shape[2:], kernel, stride, dilation), shape[2:])


def weight_const(ctx: Context, node, index: int, role: str) -> Const:
    c = ctx.const(node.input[index])
    if c is None:
        raise ValueError(f"{role} {node.input[index]!r} must be a constant (initializer or weight input)")
    return c


def real_values(c: Const) -> np.ndarray | None:
    """A constant's real values: a quantized one (BatchNormalization's scale behind a
    DequantizeLinear, as quantize_static leaves it) dequantized as DequantizeLinear does."""
    if c.value is None or c.quant is None:
        return c.value
    from qsim.numerics.quantize import dequantize

    return dequantize(c.value, c.quant)


def _channel_vector(c: Const, rank: int, axis: int, channels: int) -> np.ndarray | None | bool:
    """A constant's per-channel values (None if shape-only), or False if it is not per-channel."""
    if len(c.shape) > rank or c.quant is not None:
        return False
    padded = (1,) * (rank - len(c.shape)) + tuple(c.shape)
    if any(d != 1 for i, d in enumerate(padded) if i != axis) or padded[axis] not in (1, channels):
        return False
    return None if c.value is None else np.broadcast_to(c.value.astype(np.float64).reshape(-1), (channels,))


def affine_tail(ctx: Context, out: str, channels: int, rank: int, axis: int):
    """Absorb BatchNormalization and per-channel Mul/Add after ``out``.

    Returns (last output, (scale, shift) or None when some parameter has no values, absorbed?)."""
    scale, shift, known, absorbed = np.ones(channels), np.zeros(channels), True, False
    while (node := ctx.sole_consumer(out)) is not None:
        if node.op_type == "BatchNormalization" and node.input[0] == out and not any(node.output[1:]):
            params = [ctx.const(i) for i in node.input[1:5]]
            if any(p is None or p.shape != (channels,) for p in params):
                break
            if all(p.value is not None for p in params):
                s, b, m, v = (real_values(p).astype(np.float64) for p in params)
                a = s / np.sqrt(v + attrs_of(node).get("epsilon", 1e-5))
                scale, shift = scale * a, shift * a + b - m * a
            else:
                known = False
        elif node.op_type in ("Mul", "Add") and out in node.input[:2] and node.input[0] != node.input[1]:
            other = ctx.const(node.input[1] if node.input[0] == out else node.input[0])
            vec = False if other is None else _channel_vector(other, rank, axis % rank, channels)
            if vec is False:
                break
            if vec is None:
                known = False
            elif node.op_type == "Mul":
                scale, shift = scale * vec, shift * vec
            else:
                shift = shift + vec
        else:
            break
        ctx.done.add(id(node))
        out, absorbed = node.output[0], True
    return out, ((scale, shift) if known else None), absorbed


def emit_matrix(ctx: Context, node, op: str, x: str, attrs: dict, w: Const, b: Const | None,
                names: tuple[str, str], channel_axis: int) -> None:
    """Emit Conv or Gemm with weight (out first) and optional bias, absorbing affine tails."""
    out, channels = node.output[0], w.shape[0]
    rank = 4 if op == "Conv" else len(ctx.g.tensor(x).shape)
    if w.quant is None and (b is None or b.quant is None):
        out, affine, absorbed = affine_tail(ctx, out, channels, rank, channel_axis)
        if absorbed:  # folded values differ from the file's: name them after the node
            known = affine is not None and w.value is not None and (b is None or b.value is not None)
            base = node.name or node.output[0]
            names = (ctx.fresh(f"{base}.weight"), ctx.fresh(f"{base}.bias"))
            if known:
                scale, shift = affine
                wv = (w.value * scale.reshape((-1,) + (1,) * (len(w.shape) - 1))).astype(w.value.dtype)
                bv = ((b.value.astype(np.float64) if b is not None else 0.0) * scale + shift).astype(w.value.dtype)
            else:
                wv = bv = None
            w = Const(w.shape, w.dtype, wv)
            b = Const((channels,), w.dtype, bv)
    weights = {"weight": ctx.weight(names[0], w)}
    if b is not None:
        weights["bias"] = ctx.weight(names[1], b)
    ctx.emit(op, node, [x], {**attrs, "bias": b is not None}, weights, outputs=[out])


# -- handlers ------------------------------------------------------------------------------------
def conv(ctx: Context, node) -> None:
    x = ctx.act(node.input[0])
    w = weight_const(ctx, node, 1, "Conv weight")
    b = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    attrs = {"out_channels": w.shape[0], "groups": int(attrs_of(node).get("group", 1)),
             **_window(ctx, node, x, attrs_of(node).get("kernel_shape", w.shape[2:]))}
    emit_matrix(ctx, node, "Conv", x, attrs, w, b, (node.input[1], node.input[2] if b else ""), 1)


def transposed(c: Const, perm=(1, 0)) -> Const:
    """A weight in the IR's (out, in) layout; a per-channel/block quant axis moves with it."""
    value = None if c.value is None else np.ascontiguousarray(np.transpose(c.value, perm))
    q = c.quant
    if q is not None:
        axis = None if q.axis is None else list(perm).index(q.axis % len(c.shape))
        blocked = q.scale.ndim == len(c.shape)
        q = TensorQuant(np.transpose(q.scale, perm) if blocked else q.scale,
                        np.transpose(q.zero_point, perm) if blocked and q.zero_point.ndim else q.zero_point,
                        q.fmt, axis, q.block_size)
    return Const(tuple(c.shape[p] for p in perm), c.dtype, value, q)


def gemm(ctx: Context, node) -> None:
    a = attrs_of(node)
    if a.get("transA", 0):
        raise ValueError("transA=1 is not supported")
    x = ctx.act(node.input[0])
    w = weight_const(ctx, node, 1, "Gemm B")
    name_w = node.input[1] if a.get("transB", 0) else ctx.fresh(f"{node.name or node.output[0]}.weight")
    w = w if a.get("transB", 0) else transposed(w)
    b = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if b is not None and b.shape != (w.shape[0],):  # (1, N) or a scalar: the IR bias is (N,)
        value = None if b.value is None else np.broadcast_to(b.value.reshape(-1), (w.shape[0],)).copy()
        b = Const((w.shape[0],), b.dtype, value, b.quant)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if alpha != 1.0 or beta != 1.0:
        if w.quant is not None or (b is not None and b.quant is not None):
            raise ValueError("alpha/beta other than 1 on quantized operands are not supported")
        name_w = ctx.fresh(f"{node.name or node.output[0]}.weight")
        w = Const(w.shape, w.dtype, None if w.value is None else w.value * np.float32(alpha))
        if b is not None:
            b = Const(b.shape, b.dtype, None if b.value is None else b.value * np.float32(beta))
    # kn_weight: the file's B was (K, N) (transB=0), which picks MLAS's M = 1 kernel (float_mlas_gemm)
    kn = {} if a.get("transB", 0) else {"kn_weight": True}
    emit_matrix(ctx, node, "Gemm", x, {"out_features": w.shape[0], **kn}, w, b,
                (name_w, node.input[2] if b is not None else ""), -1)


def matmul(ctx: Context, node) -> None:
    w = ctx.const(node.input[1])
    if w is not None and len(w.shape) == 2:  # x @ W with a constant W: a Linear layer
        x = ctx.act(node.input[0])
        emit_matrix(ctx, node, "Gemm", x, {"out_features": w.shape[1], "kn_weight": True}, transposed(w), None,
                    (ctx.fresh(f"{node.name or node.output[0]}.weight"), ""), -1)
    else:
        ctx.emit("MatMul", node, [ctx.act(node.input[0]), ctx.act(node.input[1])], {})


def batchnorm(ctx: Context, node) -> None:
    x = ctx.act(node.input[0])
    channels = ctx.g.tensor(x).shape[1]
    params = [weight_const(ctx, node, i, "BatchNormalization parameter") for i in range(1, 5)]
    out, affine, absorbed = affine_tail(ctx, node.output[0], channels, len(ctx.g.tensor(x).shape), 1)
    if not absorbed and all(p.value is not None for p in params):
        values = _ort_batchnorm(*(real_values(p) for p in params), attrs_of(node).get("epsilon", 1e-5))
    elif affine is not None and all(p.value is not None for p in params):
        s, b, m, v = (real_values(p).astype(np.float64) for p in params)
        a = s / np.sqrt(v + attrs_of(node).get("epsilon", 1e-5))
        scale, shift = a * affine[0], (b - m * a) * affine[0] + affine[1]
        values = (scale.astype(np.float32), shift.astype(np.float32))
    else:
        values = (None, None)
    base = node.name or node.output[0]
    weights = {role: ctx.weight(ctx.fresh(f"{base}.{role}"), Const((channels,), "float32", v))
               for role, v in zip(("scale", "shift"), values)}
    ctx.emit("BatchNorm", node, [x], {}, weights, outputs=[out])


def _ort_batchnorm(s, b, m, v, eps) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's per-channel (scale, shift), each step rounded to fp32 as its Eigen kernel takes
    them (1 / sqrt(var + eps), times scale; bias - mean * that), which ``float_ops.batchnorm`` applies
    as x * scale + shift without a fused multiply-add: equal to onnxruntime on every element
    (tests/golden/test_batchnorm_float.py); the float64 form differed on 25 % of them."""
    f32 = np.float32
    s, b, m, v = (np.asarray(a, f32) for a in (s, b, m, v))
    scale = (f32(1) / np.sqrt(v + f32(eps))) * s
    return scale, b - m * scale


def unary(op: str, **fixed):
    def handle(ctx: Context, node) -> None:
        ctx.emit(op, node, [ctx.act(node.input[0])], dict(fixed), passthrough=op in ("Relu", "Relu6"))

    return handle


def clip(ctx: Context, node) -> None:
    lo = attr_or_input(ctx, node, "min", 1, -np.inf)
    hi = attr_or_input(ctx, node, "max", 2, np.inf)
    lo, hi = float(np.asarray(lo)), float(np.asarray(hi))
    x = ctx.act(node.input[0])
    if lo == 0.0 and hi == 6.0:
        ctx.emit("Relu6", node, [x], {}, passthrough=True)
    elif lo == 0.0 and hi == np.inf:
        ctx.emit("Relu", node, [x], {}, passthrough=True)
    else:
        ctx.emit("Clip", node, [x], {"min": lo, "max": hi}, passthrough=True)


def with_attrs(op: str, keys: dict, passthrough: bool = False):
    """An op whose IR attributes are ONNX attributes renamed (``keys``: onnx -> ir, with defaults)."""

    def handle(ctx: Context, node) -> None:
        a = attrs_of(node)
        attrs = {ir: a.get(name, default) for name, (ir, default) in keys.items() if a.get(name, default) is not None}
        ctx.emit(op, node, [ctx.act(i) for i in node.input if i], attrs, passthrough=passthrough)

    return handle


def softmax(ctx: Context, node) -> None:
    # Before opset 13 Softmax flattened at ``axis`` (default 1); for the usual (N, classes) input
    # that is the last axis (or trailing axes of size 1): the only case the IR's softmax represents.
    default = -1 if ctx.opset >= 13 else 1
    x = ctx.act(node.input[0])
    axis = int(attrs_of(node).get("axis", default))
    rank = len(ctx.g.tensor(x).shape)
    shape = ctx.g.tensor(x).shape
    if ctx.opset < 13 and any(d != 1 for d in shape[axis % rank + 1:]):
        raise ValueError(f"opset {ctx.opset} Softmax over axes {axis}.. of a rank-{rank} input is not supported")
    ctx.emit("Softmax", node, [x], {"axis": axis})


def global_avgpool(ctx: Context, node) -> None:
    """GlobalAveragePool; ``graph_input``: it reads a graph input, the one case (besides an NCHWc
    conv's output, which qsim does not reproduce) where onnxruntime's NCHWc transformer takes a float
    pool at ORT_ENABLE_ALL (measured: behind a Transpose, Mul, Add or Relu it stays MLAS's), and so
    the order of its sums (``float_mlas.global_avgpool``)."""
    attrs = {"graph_input": True} if node.input[0] in ctx.data_inputs else {}
    ctx.emit("GlobalAvgPool", node, [ctx.act(node.input[0])], attrs)


def pool(op: str):
    def handle(ctx: Context, node) -> None:
        a = attrs_of(node)
        x = ctx.act(node.input[0])
        w = _window(ctx, node, x, a["kernel_shape"])
        if w.pop("dilation") != (1, 1):
            raise ValueError("dilated pooling is not supported")
        attrs = {**w, "ceil_mode": bool(a.get("ceil_mode", 0))}
        if op == "AvgPool":
            attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
        ctx.emit(op, node, [x], attrs, passthrough=op == "MaxPool")

    return handle


def binary(op: str):
    """Two activations: the IR's binary op; one constant operand: ``{op}Const`` holding it as a weight."""

    def handle(ctx: Context, node) -> None:
        a, b = node.input[0], node.input[1]
        ca, cb = ctx.const(a), ctx.const(b)
        if ca is None and cb is None:
            ctx.emit(op, node, [ctx.act(a), ctx.act(b)], {})
            return
        x, name, c, rev = (a, b, cb, False) if cb is not None else (b, a, ca, True)
        ctx.emit(f"{op}Const", node, [ctx.act(x)], {"operand_shape": c.shape, "reversed": rev},
                 {"operand": ctx.weight(name, c)})

    return handle


def sum_(ctx: Context, node) -> None:
    inputs = [ctx.act(i) for i in node.input]
    if len(inputs) == 1:
        ctx.alias[node.output[0]] = inputs[0]
        return
    acc = inputs[0]
    for k, t in enumerate(inputs[1:-1]):  # Sum of n inputs: a chain of n-1 Adds
        name = f"{node.name or node.output[0]}:sum{k}"
        part = make_node("Add", [], [f"{node.output[0]}:sum{k}"], name=name)
        ctx.emit("Add", part, [acc, t], {})
        acc = part.output[0]
    ctx.emit("Add", node, [acc, inputs[-1]], {})


def reduce_mean(ctx: Context, node) -> None:
    axes = attr_or_input(ctx, node, "axes", 1)
    attrs = {"keepdims": int(attrs_of(node).get("keepdims", 1))}
    if axes is not None:
        attrs["axes"] = tuple(int(v) for v in np.asarray(axes).reshape(-1))
    ctx.emit("ReduceMean", node, [ctx.act(node.input[0])], attrs)


def layer_norm(ctx: Context, node) -> None:
    x = ctx.act(node.input[0])
    rank = len(ctx.g.tensor(x).shape)
    if int(attrs_of(node).get("axis", -1)) % rank != rank - 1:
        raise ValueError("LayerNormalization over more than the last axis is not supported")
    gamma = weight_const(ctx, node, 1, "LayerNormalization scale")
    beta = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    base = node.name or node.output[0]
    beta_name = node.input[2] if beta is not None else ctx.fresh(f"{base}.beta")
    if beta is None:  # the IR's LayerNorm always has a shift
        beta = Const(gamma.shape, gamma.dtype, np.zeros(gamma.shape, np.float32))
    weights = {"gamma": ctx.weight(node.input[1], gamma), "beta": ctx.weight(beta_name, beta)}
    ctx.emit("LayerNorm", node, [x], {"eps": float(attrs_of(node).get("epsilon", 1e-5))}, weights)
