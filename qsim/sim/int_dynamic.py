"""Kernels of the dynamic quantization ops (``qsim.ir.ops.dynamic``), bit-exact with onnxruntime.

All take ``(inputs, weights, attrs)`` as the float reference kernels do and work on the arrays as
stored (uint8 codes, run-time float32 scales, int32 accumulators, bool masks); ``as_stored`` is
their entry for the integer executor.

DynamicQuantizeLinear follows onnxruntime's ``GetQuantizationParameter`` (core/util/qmath.h) and
``MlasQuantizeLinear`` (core/mlas/lib/quantize.cpp), all in fp32:
``lo = min(min(x), 0)``, ``hi = max(max(x), 0)``; ``scale = hi == lo ? 1 : (hi - lo) / 255``;
``zp = round_half_even(clamp(0 - lo / scale, 0, 255))``; ``y = clamp(round_half_even(x / scale),
-zp, 255 - zp) + zp``. Min and max do not depend on the order of the reduction, so the parallel
blocks onnxruntime uses give the same values, except with a NaN: ``mlas_minmax`` finds them as x86
MLAS does. The C++ operations keep what x86 gives a NaN: ``std::min(255.f, NaN)`` is 255, so a NaN
scale or initial zero point (a NaN input, ``-inf``, a denormal range) makes the zero point 255, and
the clamp ``maxps(x / scale, -zp)`` sends a NaN quotient to code 0. On arm64 (NEON's NaN-propagating
reductions and ``vmaxnmq``, unmeasured) a tensor whose quotients hold a NaN is refused.

MatMulInteger / ConvInteger products are exact: integer operands less their zero points multiplied
in float64 (every partial sum is an integer below 2**53 for K < 2**37), then wrapped to int32 as
onnxruntime's accumulators wrap.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from qsim.ir.ops._attrs import pads as _pads, pair
from qsim.kernels import pairs16
from qsim.kernels._common import conv_geometry, matmul_shapes
from qsim.sim.float_ops import conv as _float_conv, run_float_kernel
from qsim.sim.int_runtime import ort_cpu
from qsim.sim.mlas_minmax import min_max
from qsim.sim.ort_cast import ort_cast

_QMAX = np.float32(255.0)  # uint8: qmin 0, qmax 255 (the only type DynamicQuantizeLinear defines)


def dynamic_params(x: np.ndarray, per_token: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero point) of DynamicQuantizeLinear for a float32 tensor (see the module doc): 0-d
    arrays, or with ``per_token`` one per row of the last axis (shape (..., 1)). Elementwise fp32
    numpy operations round as the scalar C++ code does."""
    x = np.asarray(x, np.float32)
    axis, keep = (-1, True) if per_token else (None, False)
    if not x.size:
        lo = hi = np.zeros(x.shape[:-1] + (1,) if per_token else (), np.float32)
    elif per_token:
        lo, hi = x.min(axis=axis, keepdims=keep), x.max(axis=axis, keepdims=keep)
    else:
        lo, hi = min_max(x)  # a NaN hides values as MLAS's lanes hide them
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        lo = np.minimum(lo, np.float32(0))  # a NaN stays NaN, as with std::min(NaN, 0.f)
        hi = np.maximum(hi, np.float32(0))
        span = np.where(hi == lo, np.float32(1), hi - lo).astype(np.float32)
        scale = np.where(hi == lo, np.float32(1), span / _QMAX).astype(np.float32)
        initial = (np.float32(0) - (lo / scale).astype(np.float32)).astype(np.float32)
    # std::max(0.f, std::min(255.f, initial)): a NaN compares false and leaves 255
    zp = np.where(np.isnan(initial), _QMAX, np.rint(np.clip(initial, np.float32(0), _QMAX)))
    return np.asarray(scale, np.float32), np.asarray(zp).astype(np.uint8)


def quantize_with(x: np.ndarray, scale, zp) -> np.ndarray:
    """MLAS QuantizeLinear to uint8: fp32 division, clamp to the code range less the zero point
    (``maxps(q, -zp)`` first: a NaN quotient becomes ``-zp``, code 0), round half to even, add the
    zero point (``scale``, ``zp`` broadcast against ``x``)."""
    zp = np.asarray(zp).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y = (np.asarray(x, np.float32) / np.asarray(scale, np.float32)).astype(np.float32)
    y = np.where(y > -zp, y, -zp)
    y = np.where(y < _QMAX - zp, y, _QMAX - zp)
    return (np.rint(y) + zp).astype(np.uint8)


def dynamic_quantize_linear(inputs, w, attrs) -> list:
    x = np.asarray(inputs[0], np.float32)
    per_token = bool(attrs.get("per_token", False))
    if not per_token and ort_cpu() == "arm64" and not np.isfinite(x).all():
        raise ValueError("DynamicQuantizeLinear: a NaN or infinite input under onnxruntime on arm64, whose "
                         "NEON min/max and clamps of a NaN qsim has not measured")
    scale, zp = dynamic_params(x, per_token)
    return [quantize_with(x, scale, zp), scale, zp]


def wrap_int32(acc: np.ndarray) -> np.ndarray:
    """Exact integer results (held in float64 or int64) wrapped to int32 as the runtime's adds wrap."""
    v = np.asarray(acc).astype(np.int64)
    return ((v + 2**31) % 2**32 - 2**31).astype(np.int32)


def _less_zero_point(q: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    """Integer codes less their zero point (scalar, or one per ``axis`` entry), as float64."""
    zp = np.asarray(zp, np.float64).reshape(-1)
    if zp.size > 1:
        shape = [1] * q.ndim
        shape[axis] = zp.size
        zp = zp.reshape(shape)
    else:
        zp = zp.reshape(())
    return np.asarray(q, np.float64) - zp


def _pairs16(a, b) -> bool:
    """onnxruntime sums the products of a GEMM's uint8 A and int8 B in saturating int16 pairs
    (``qsim.kernels.pairs16``)."""
    return ort_cpu() == "avx2" and np.asarray(a).dtype == np.uint8 and np.asarray(b).dtype == np.int8


def matmul_integer(inputs, w, attrs) -> list:
    """ONNX MatMulInteger: (a - a_zp) @ (B - b_zp) in int32; ``b_zp`` scalar or one per column."""
    a = np.asarray(inputs[0], np.float64) - np.asarray(inputs[1], np.float64)  # a_zp: scalar or per row
    b = _less_zero_point(w["weight"], w["weight_zero_point"], 1)
    acc = np.matmul(a, b)
    if _pairs16(inputs[0], w["weight"]):
        a3, b3 = matmul_shapes(np.asarray(inputs[0]), np.asarray(w["weight"]))[:2]
        deficit = pairs16.matmul_deficit(a3, b3)
        acc = acc if deficit is None else acc + deficit.reshape(acc.shape)
    return [wrap_int32(acc)]


def conv_integer(inputs, w, attrs) -> list:
    """ONNX ConvInteger: the convolution of (x - x_zp) by (W - w_zp) (``w_zp`` scalar or one per output
    channel) in int32; padding holds the zero point, i.e. 0 after the subtraction."""
    x_zp = np.asarray(inputs[1]).reshape(-1)[0]
    x = np.asarray(inputs[0], np.float64) - float(x_zp)
    weight = _less_zero_point(w["weight"], w["weight_zero_point"], 0)
    acc = _float_conv([x], {"weight": weight}, {**attrs, "bias": False})[0]
    if _pairs16(w["weight"], inputs[0]):  # the weights are MLAS's A, x's NCHW im2col its B
        x0 = np.asarray(inputs[0])
        g = conv_geometry(x0, w["weight"], pair(attrs.get("stride", 1), "stride"), _pads(attrs.get("pad", 0)),
                          pair(attrs.get("dilation", 1), "dilation"), int(attrs.get("groups", 1)))
        deficit = pairs16.conv_deficit(x0, w["weight"], int(x_zp), g, order="chw")
        acc = acc if deficit is None else acc + deficit
    return [wrap_int32(acc)]


def cast(inputs, w, attrs) -> list:
    """ONNX Cast as onnxruntime converts (``qsim.sim.ort_cast``: float16 / bfloat16 round to nearest
    even, float -> int truncates, int -> float rounds to nearest even)."""
    return [ort_cast(inputs[0], attrs["to"])]


# -- OnnxEval: ONNX ops on masks, indices and other tensors the IR has no op for -------------------
def _axes(args, attrs, position: int = 1):
    """Reduction axes: the ``axes`` input (opset 13+/18+) or attribute; None: all axes."""
    if len(args) > position and args[position] is not None:
        return tuple(int(a) for a in np.asarray(args[position]).reshape(-1))
    axes = attrs.get("axes")
    return None if axes is None else tuple(int(a) for a in axes)


def _reduce(fn: Callable) -> Callable:
    def run(args, attrs):
        x, axes = args[0], _axes(args, attrs)
        if axes == () or axes is None:
            if attrs.get("noop_with_empty_axes", 0) and axes == ():
                return x
            axes = None
        return fn(x, axis=axes, keepdims=bool(attrs.get("keepdims", 1))).astype(x.dtype)
    return run


def _gather_elements(args, attrs):
    data, idx = args
    axis = int(attrs.get("axis", 0)) % data.ndim
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return np.take_along_axis(data, idx.astype(np.int64), axis)


def _gather(args, attrs):
    data, idx = args
    axis = int(attrs.get("axis", 0)) % data.ndim
    idx = np.asarray(idx, np.int64)
    return np.take(data, np.where(idx < 0, idx + data.shape[axis], idx), axis=axis)


def _expand(args, attrs):
    x, shape = args
    return np.array(np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(int(d) for d in shape))))


def _is_inf(args, attrs):
    x = args[0]
    return (np.isposinf(x) & bool(attrs.get("detect_positive", 1))) | (np.isneginf(x) & bool(attrs.get("detect_negative", 1)))


def _where(args, attrs):
    c, x, y = args
    return np.where(c, x, y).astype(np.result_type(x, y))


def _binary(fn: Callable) -> Callable:
    return lambda args, attrs: fn(args[0], args[1])


def _same_shape_as_out(args, attrs):
    """Reshape / Flatten / Squeeze / Unsqueeze of a non-float tensor: its values in the out shape."""
    return np.asarray(args[0]).reshape(tuple(attrs["out_shape"]))


ONNX_NUMPY: dict[str, Callable[[list, Mapping[str, Any]], np.ndarray]] = {
    "Where": _where, "Expand": _expand, "GatherElements": _gather_elements, "Gather": _gather,
    "ReduceSum": _reduce(np.sum), "ReduceMax": _reduce(np.max), "ReduceMin": _reduce(np.min),
    "Equal": _binary(np.equal), "Greater": _binary(np.greater), "GreaterOrEqual": _binary(np.greater_equal),
    "Less": _binary(np.less), "LessOrEqual": _binary(np.less_equal),
    "And": _binary(np.logical_and), "Or": _binary(np.logical_or), "Xor": _binary(np.logical_xor),
    "Not": lambda args, attrs: np.logical_not(args[0]), "IsNaN": lambda args, attrs: np.isnan(args[0]),
    "IsInf": _is_inf, "Neg": lambda args, attrs: np.negative(args[0]), "Abs": lambda args, attrs: np.abs(args[0]),
    "Reshape": _same_shape_as_out, "Flatten": _same_shape_as_out, "Squeeze": _same_shape_as_out,
    "Unsqueeze": _same_shape_as_out,
    "Transpose": lambda args, attrs: np.transpose(args[0], attrs.get("perm")),
    "Concat": lambda args, attrs: np.concatenate(args, axis=int(attrs["axis"])),
}


def eval_onnx(op: str, args: list, attrs: Mapping[str, Any]) -> np.ndarray:
    """One ONNX op on numpy arrays (``ONNX_NUMPY``); ``attrs`` are the ONNX node's attributes."""
    return np.asarray(ONNX_NUMPY[op](args, attrs))


def onnx_eval(inputs, w, attrs) -> list:
    args = [None if s is None else inputs[s] if isinstance(s, int) else w[s] for s in attrs["slots"]]
    while args and args[-1] is None:
        args.pop()
    onnx_attrs = {**dict(attrs.get("onnx_attrs", {})), "out_shape": attrs["out_shape"]}
    y = eval_onnx(attrs["onnx_op"], args, onnx_attrs)
    return [y.astype(np.dtype(attrs["out_dtype"]), copy=False) if "out_dtype" in attrs else y]


def as_stored(step) -> list:
    """The integer executor's entry: the kernel on the arrays as stored, weights as stored."""
    weights = {role: step.weight(role) for role in step.node.weights}
    try:
        return run_float_kernel(step.node.op, step.args, weights, step.node.attrs)
    except (ValueError, IndexError, TypeError) as exc:
        raise step.fail(str(exc)) from None
