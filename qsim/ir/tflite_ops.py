"""Handlers for TFLite builtin ops (NHWC in the file, NCHW in the IR); ``TFLITE_OPS`` is the table.

Where TFLite semantics depend on the NHWC memory order (FULLY_CONNECTED flattening a 4-D input,
RESHAPE of a 4-D tensor with spatial extent) the handler inserts the IR Transpose that makes the
NCHW graph compute the same values; with 1x1 spatial extent both orders agree and nothing is added.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import GraphError
from qsim.ir.onnx_window import check_window
from qsim.ir.tflite_context import NHWC_TO_NCHW, TfliteContext, _ints, ir_shape

ACTIVATIONS = {1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def _inputs(op) -> list[int]:
    return _ints(op.inputs)


def _fused(attrs: dict, opts) -> dict:
    act = ACTIVATIONS.get(int(getattr(opts, "fusedActivationFunction", 0) or 0))
    if act:
        attrs["activation"] = act
    return attrs


def same_pads(in_hw, kernel, stride, dilation=(1, 1)) -> tuple[int, int, int, int]:
    """TensorFlow SAME padding as (top, left, bottom, right): the odd pixel goes bottom/right."""
    lo, hi = [], []
    for size, k, s, d in zip(in_hw, kernel, stride, dilation):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        lo.append(total // 2)
        hi.append(total - total // 2)
    return (lo[0], lo[1], hi[0], hi[1])


def _window(ctx: TfliteContext, x: str, kernel, opts, dilation=(1, 1)) -> dict:
    shape = ctx.g.tensor(x).shape
    if len(shape) != 4:
        raise ValueError(f"expected a 4-D NHWC input, got rank {len(shape)}")
    stride = (int(opts.strideH), int(opts.strideW))
    if min(stride) < 1:  # SAME padding divides by the stride
        raise GraphError(f"stride {list(stride)} must be two integers >= 1")
    pad = same_pads(shape[2:], kernel, stride, dilation) if int(opts.padding) == 0 else (0, 0, 0, 0)
    window = check_window(kernel, stride, dilation, pad, shape[2:])
    del window["dilation"]  # conv handlers give it themselves; pools have none
    return window


def _bias(op) -> int | None:
    ins = _inputs(op)
    return ins[2] if len(ins) > 2 and ins[2] >= 0 else None


def conv_2d(ctx: TfliteContext, index: int, op) -> None:
    ins, opts = _inputs(op), op.builtinOptions
    x = ctx.act(ins[0])
    cout, kh, kw, cin = ctx.shape(ins[1])
    dilation = (int(opts.dilationHFactor or 1), int(opts.dilationWFactor or 1))
    attrs = {"out_channels": cout, "groups": ctx.g.tensor(x).shape[1] // cin, "dilation": dilation,
             **_window(ctx, x, (kh, kw), opts, dilation), "bias": _bias(op) is not None, "tflite_layout": "OHWI"}
    weights = {"weight": ctx.weight(ins[1], (0, 3, 1, 2))}
    if _bias(op) is not None:
        weights["bias"] = ctx.weight(_bias(op))
    ctx.emit("Conv", index, [x], _fused(attrs, opts), weights, tflite_op=op)


def depthwise_conv_2d(ctx: TfliteContext, index: int, op) -> None:
    ins, opts = _inputs(op), op.builtinOptions
    x = ctx.act(ins[0])
    _, kh, kw, cout = ctx.shape(ins[1])
    dilation = (int(opts.dilationHFactor or 1), int(opts.dilationWFactor or 1))
    attrs = {"out_channels": cout, "groups": ctx.g.tensor(x).shape[1], "dilation": dilation,
             **_window(ctx, x, (kh, kw), opts, dilation), "bias": _bias(op) is not None,
             "depth_multiplier": int(opts.depthMultiplier or 1), "tflite_layout": "1HWO"}
    weights = {"weight": ctx.weight(ins[1], (3, 0, 1, 2))}
    if _bias(op) is not None:
        weights["bias"] = ctx.weight(_bias(op))
    ctx.emit("Conv", index, [x], _fused(attrs, opts), weights, tflite_op=op)


def _move(ctx: TfliteContext, op: str, x: str, attrs: dict, suffix: str) -> str:
    """An IR data-movement node the NHWC -> NCHW translation needs; keeps the input's quantization."""
    name = f"{x}:{suffix}"
    ctx.g.add_node(op, name, [x], attrs, outputs=[name], dtype=ctx.g.tensor(x).dtype)
    if x in ctx.g.quant_params and ctx.g.quant_params[x].axis is None:
        ctx.g.quant_params[name] = ctx.g.quant_params[x]
    return name


def _to_nhwc(ctx: TfliteContext, x: str) -> str:
    shape = ctx.g.tensor(x).shape
    if len(shape) == 4 and shape[2] * shape[3] > 1:  # NCHW and NHWC orders differ
        return _move(ctx, "Transpose", x, {"perm": (0, 2, 3, 1)}, "nhwc")
    return x


def fully_connected(ctx: TfliteContext, index: int, op) -> None:
    ins, opts = _inputs(op), op.builtinOptions
    x = ctx.act(ins[0])
    out_features, in_features = ctx.shape(ins[1])
    shape = ctx.g.tensor(x).shape
    if shape[-1] != in_features or len(shape) == 4:  # FULLY_CONNECTED flattens NHWC to (-1, in)
        x = _to_nhwc(ctx, x)
        x = _move(ctx, "Reshape", x, {"shape": (-1, in_features)}, "flat")
    attrs = {"out_features": out_features, "bias": _bias(op) is not None, "tflite_layout": "OI"}
    weights = {"weight": ctx.weight(ins[1])}
    if _bias(op) is not None:
        weights["bias"] = ctx.weight(_bias(op))
    ctx.emit("Gemm", index, [x], _fused(attrs, opts), weights, tflite_op=op)


def binary(ir_op: str):
    """Two activations: the IR's binary op; one constant operand: ``{op}Const`` holding it as a weight."""

    def handle(ctx: TfliteContext, index: int, op) -> None:
        a, b = _inputs(op)[:2]
        attrs = _fused({}, op.builtinOptions)
        if ir_op == "Add" and getattr(op.builtinOptions, "potScaleInt16", False):
            # LiteRT's int16 ADD takes its power-of-two path only where this option is set (absent: not)
            attrs["pot_scale_int16"] = True
        if ctx.values[a] is None and ctx.values[b] is None:
            xa, xb = ctx.act(a), ctx.act(b)
            sa, sb = ctx.g.tensor(xa).shape, ctx.g.tensor(xb).shape
            low = min((sa, sb), key=len)
            if len(sa) != len(sb) and max(len(sa), len(sb)) == 4 and int(np.prod(low)) > 1:
                raise ValueError(f"a 4-D activation with an activation of shape {tuple(low)}: the IR holds "
                                 "4-D tensors as NCHW, and where the lower-rank one lands in it is not "
                                 "modelled (a constant operand or a one-value activation is)")
            ctx.emit(ir_op, index, [xa, xb], attrs, tflite_op=op)
            return
        x, c, rev = (a, b, False) if ctx.values[b] is not None else (b, a, True)
        x = ctx.act(x)
        operand = ctx.const_input(c, x)
        attrs.update(operand_shape=ctx.g.tensor(operand).shape, reversed=rev)
        ctx.emit(f"{ir_op}Const", index, [x], attrs, {"operand": operand}, tflite_op=op)

    return handle


def pool(ir_op: str):
    def handle(ctx: TfliteContext, index: int, op) -> None:
        opts = op.builtinOptions
        x = ctx.act(_inputs(op)[0])
        attrs = _window(ctx, x, (int(opts.filterHeight), int(opts.filterWidth)), opts)
        if ir_op == "AvgPool":
            attrs["count_include_pad"] = False  # TFLite averages over the valid pixels only
        ctx.emit(ir_op, index, [x], _fused(attrs, opts), tflite_op=op)

    return handle


def reshape(ctx: TfliteContext, index: int, op) -> None:
    ins = _inputs(op)
    x = ctx.act(ins[0])
    out = _ints(op.outputs)[0]
    target = list(ctx.shape(out))
    if not target or -1 in target:
        given = ctx.values[ins[1]] if len(ins) > 1 and ins[1] >= 0 else None
        target = [int(d) for d in (given if given is not None else op.builtinOptions.newShape)]
    total = int(np.prod(ctx.g.tensor(x).shape))
    if -1 in target:
        target[target.index(-1)] = total // int(np.prod([d for d in target if d != -1]))
    x = _to_nhwc(ctx, x)
    if len(target) == 4 and target[1] * target[2] > 1:
        x = _move(ctx, "Reshape", x, {"shape": tuple(target)}, "nhwc_out")
        ctx.emit("Transpose", index, [x], {"perm": NHWC_TO_NCHW}, tflite_op=op)
    else:
        ctx.emit("Reshape", index, [x], {"shape": ir_shape(tuple(target))}, tflite_op=op)


def softmax(ctx: TfliteContext, index: int, op) -> None:
    x = ctx.act(_inputs(op)[0])
    axis = 1 if len(ctx.g.tensor(x).shape) == 4 else -1  # TFLite: the last (channel) axis
    ctx.emit("Softmax", index, [x], {"axis": axis, "beta": float(op.builtinOptions.beta or 1.0)}, tflite_op=op)


def unary(ir_op: str):
    def handle(ctx: TfliteContext, index: int, op) -> None:
        ctx.emit(ir_op, index, [ctx.act(_inputs(op)[0])], {}, tflite_op=op)

    return handle


def quantize(ctx: TfliteContext, index: int, op) -> None:
    src, out = _inputs(op)[0], _ints(op.outputs)[0]
    if ctx.dtype(src).startswith("float"):  # the model's input edge: the input is stored quantized
        x = ctx.act(src)
        q = ctx.quant(out, NHWC_TO_NCHW if len(ctx.shape(out)) == 4 else None)
        if q is not None:
            ctx.g.quant_params[x] = q
        ctx.alias[out] = x
    else:  # int8 <-> int16 or a change of scale: a real requantization pass
        ctx.emit("Requantize", index, [ctx.act(src)], {}, tflite_op=op)


def dequantize(ctx: TfliteContext, index: int, op) -> None:
    src, out = _inputs(op)[0], _ints(op.outputs)[0]
    if ctx.values[src] is not None:  # float16 (or int8) weights stored compressed: a constant
        ctx.values[out] = ctx.values[src].astype(np.float32)
    else:  # the output edge: the float output is the quantized tensor read back
        ctx.alias[out] = ctx.act(src)


def concatenation(ctx: TfliteContext, index: int, op) -> None:
    names = [ctx.act(i) for i in _inputs(op)]
    rank = len(ctx.g.tensor(names[0]).shape)
    axis = int(op.builtinOptions.axis) % rank
    axis = NHWC_TO_NCHW.index(axis) if rank == 4 else axis
    ctx.emit("Concat", index, names, _fused({"axis": axis}, op.builtinOptions), tflite_op=op)


def mean(ctx: TfliteContext, index: int, op) -> None:
    ins = _inputs(op)
    x = ctx.act(ins[0])
    rank = len(ctx.g.tensor(x).shape)
    axes = sorted(int(a) % rank for a in np.asarray(ctx.values[ins[1]]).reshape(-1))
    axes = sorted(NHWC_TO_NCHW.index(a) for a in axes) if rank == 4 else axes
    keep = bool(op.builtinOptions.keepDims) if op.builtinOptions is not None else False
    ctx.emit("ReduceMean", index, [x], {"axes": tuple(axes), "keepdims": int(keep)}, tflite_op=op)


def pad(ctx: TfliteContext, index: int, op) -> None:
    ins = _inputs(op)
    x = ctx.act(ins[0])
    pads = np.asarray(ctx.values[ins[1]]).reshape(-1, 2)
    if len(pads) == 4:
        pads = pads[list(NHWC_TO_NCHW)]
    ctx.emit("Pad", index, [x], {"pads": tuple(int(p) for p in list(pads[:, 0]) + list(pads[:, 1]))}, tflite_op=op)


TFLITE_OPS = {
    "CONV_2D": conv_2d, "DEPTHWISE_CONV_2D": depthwise_conv_2d, "FULLY_CONNECTED": fully_connected,
    "ADD": binary("Add"), "SUB": binary("Sub"), "MUL": binary("Mul"),
    "AVERAGE_POOL_2D": pool("AvgPool"), "MAX_POOL_2D": pool("MaxPool"),
    "RESHAPE": reshape, "SOFTMAX": softmax, "LOGISTIC": unary("Sigmoid"), "TANH": unary("Tanh"),
    "RELU": unary("Relu"), "RELU6": unary("Relu6"), "HARD_SWISH": unary("HardSwish"),
    "QUANTIZE": quantize, "DEQUANTIZE": dequantize,
    "CONCATENATION": concatenation, "MEAN": mean, "PAD": pad,
}
