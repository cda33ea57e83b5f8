"""Integer kernels of the matrix ops, pooling and data movement (Conv, Gemm, MatMul, MaxPool,
AvgPool, GlobalAvgPool, Concat, Reshape/Flatten/Transpose, Relu/Relu6/Clip, Requantize, Embedding).

Each takes a ``Step`` and returns the node's outputs as integer arrays in the output's storage type.
The accumulation runs through ``step.kernels`` (numba or numpy reference: same bits), then the
runtime's requantization policy. ``Fallback`` asks the executor to run the node as a float island
(dequantize, float op, quantize): the runtimes do exactly that for these cases (e.g. onnxruntime's
QLinearConcat with differing scales is quantize(dequantize(x)) per input).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qsim.errors import GraphError
from qsim.ir.ops._attrs import pads as _pads, pair
from qsim.numerics import get_policy
from qsim.numerics.formats import Rounding
from qsim.numerics.policies import Kernels, PolicyName
from qsim.kernels import pairs16
from qsim.kernels._common import MAX_ACC_BITS, acc_range, conv_geometry, matmul_shapes
from qsim.numerics.rounding import round_to_int, wrap
from qsim.numerics.quantize import dequantize
from qsim.sim.float_ops import run_float_kernel
from qsim.sim import int_fast
from qsim.sim.int_pool import avgpool, global_avgpool, maxpool  # noqa: F401  (registry entries int_ops.*)
from qsim.sim.int_common import (Fallback, Step, activation_range, int_range, quantize_as, same_params,
                                 scalar_scale, scalar_zp, storage, to_storage)


def _requant(step: Step, policy: str, acc, s_in, s_w, yq, axis: int, bias=None) -> np.ndarray:
    lo, hi = activation_range(step, yq)
    step.bounds[step.node.outputs[0]] = (lo, hi)
    if _is_accumulator(yq, s_in, s_w) and bias is None:  # MatMulInteger / ConvInteger: no requantization
        return np.asarray(acc).astype(np.int32)
    if step.impl == "numba" and int_fast.applies(policy, bias):
        return int_fast.requantize_f32(policy, acc, s_in, s_w, scalar_scale(step, yq, "the output"),
                                       scalar_zp(step, yq, "the output"), lo, hi, axis, storage(yq))
    try:
        y = get_policy(policy).requantize(acc, s_in, s_w, scalar_scale(step, yq, "the output"),
                                          scalar_zp(step, yq, "the output"), lo, hi, axis, bias,
                                          step.impl)
    except ValueError as exc:  # an accumulator wider than the policy's int32 (acc_bits > 32)
        raise step.fail(str(exc)) from None
    return to_storage(y, yq)


def fusable_requant(step: Step, yq, s_in, s_w, b_float) -> bool:
    """Whether the requantization may run in the matrix kernel's epilogue (``int_fast.fused``):
    compiled kernels, wrapping accumulators of at most 32 bits (every policy's int32 input), and
    an output that is requantized (not the accumulator itself)."""
    return (step.impl == "numba" and step.overflow == "wrap" and step.acc_bits <= 32
            and not (_is_accumulator(yq, s_in, s_w) and b_float is None))


def _is_accumulator(yq, s_in, s_w) -> bool:
    """An int32 output whose scale is the operands' fp32(s_in * s_w) (zero point 0): the accumulator
    itself (MatMulInteger / ConvInteger, QGemm's float output before its scaling), exact at any
    magnitude (a float32 multiplier of 1 would round it beyond 2^24)."""
    if yq.fmt.element_type != "int32" or np.any(yq.zero_point != 0):
        return False
    product = (np.float32(s_in) * np.asarray(s_w, np.float32)).astype(np.float32)
    return np.shape(yq.scale) in ((), np.shape(product)) and bool(np.all(yq.scale == product))


def _weight_int(step: Step, role: str):
    w = step.weight(role)
    q = step.weight_quant(role)
    if q is None or q.int_fmt is None:
        raise Fallback
    if not np.issubdtype(w.dtype, np.integer):  # int2/int4/uint4 held as ml_dtypes types
        w = w.astype(q.fmt.storage_dtype)
    return w, q


def _bias(step: Step, policy: str, s_in, s_w):
    """(integer bias for the accumulator, float bias for fbgemm's requantization)."""
    if "bias" not in step.node.weights:
        return None, None
    b = step.weight("bias")
    bq = step.weight_quant("bias")
    if policy is PolicyName.FBGEMM:  # fbgemm adds the bias in float after the integer product
        return None, (dequantize(b, bq) if bq is not None else b.astype(np.float32))
    if bq is None or not np.issubdtype(b.dtype, np.integer):
        raise step.fail("the bias is float; integer pipelines take an int32 bias quantized at "
                        "s_in * s_w (zero point 0)")
    return b.astype(np.int64), None


def _w_zp(q) -> np.ndarray:
    return q.zero_point.reshape(-1).astype(np.int64)


class ConvSetup(NamedTuple):
    """What a convolution node needs besides its input values (``conv_setup``)."""
    w: np.ndarray
    wq: object             # the weight's TensorQuant
    policy: PolicyName     # the requantization policy of this conv (depthwise or not)
    s_in: np.float32
    b_float: object        # fbgemm's float bias, else None
    depthwise: bool
    rest: tuple            # conv2d_acc's arguments after x
    fusable: bool          # requantization may run in the kernel's epilogue (``int_fast.fused``)


def conv_setup(step: Step) -> ConvSetup:
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    w, wq = _weight_int(step, "weight")
    groups = int(step.attr("groups", 1))
    # LiteRT's DEPTHWISE_CONV_2D on one input channel is a plain convolution to the graph (groups 1),
    # but the runtime still runs its depthwise kernel
    depthwise = groups > 1 and groups == x.shape[1] or step.attr("tflite_layout", None) == "1HWO"
    policy = step.rt.depthwise if depthwise else step.rt.conv
    s_in = scalar_scale(step, xq, "the input")
    b_int, b_float = _bias(step, policy, s_in, wq.scale)
    rest = (scalar_zp(step, xq, "the input"), _w_zp(wq), b_int, pair(step.attr("stride", 1), "stride"),
            _pads(step.attr("pad", 0)), pair(step.attr("dilation", 1), "dilation"), groups)
    fusable = (fusable_requant(step, yq, s_in, wq.scale, b_float)
               and not (depthwise and step.rt.depthwise_tail is not None))
    return ConvSetup(w, wq, policy, s_in, b_float, depthwise, (w,) + rest, fusable)


def pairs16_applies(step: Step, a: np.ndarray, b: np.ndarray) -> bool:
    """The runtime sums the products of a GEMM's uint8 A and int8 B in saturating int16 pairs
    (``qsim.kernels.pairs16``)."""
    return step.rt.u8s8_pairs16 and a.dtype == np.uint8 and b.dtype == np.int8


def _conv_deficit(step: Step, x: np.ndarray, c: ConvSetup):
    """The int16 pairs' deficit of a convolution, or None. ConvInteger (an int32 output) multiplies
    the weights (A) by x's NCHW im2col (B); QLinearConv x's channels-last im2col (A) by the weights
    (B), except in its depthwise kernels."""
    if not step.rt.u8s8_pairs16:
        return None
    g = conv_geometry(x, c.w, *c.rest[4:])
    x_zp = int(np.asarray(c.rest[1]).reshape(-1)[0])
    if step.out_q().fmt.name == "int32":
        return pairs16.conv_deficit(x, c.w, x_zp, g, "chw") if pairs16_applies(step, c.w, x) else None
    if pairs16_applies(step, x, c.w) and (g.cg > 1 or g.mg > 1):
        return pairs16.conv_deficit(x, c.w, x_zp, g, "hwc")
    return None


def _accumulate(step: Step, kernel, args: tuple, deficit) -> np.ndarray:
    """``kernel``'s accumulator (conv2d_acc / matmul_acc), its overflow events counted. With the int16
    pairs' deficit (``pairs16``) the sums are taken exact, the deficit added, and the total (what the
    runtime's accumulator holds) wrapped and counted; a saturating accumulator clamps that total
    once (the order of clamps inside the pairs' sum is not modelled)."""
    if deficit is None:
        acc, events = kernel(*args, acc_bits=step.acc_bits, overflow=step.overflow)
    else:
        exact, _ = kernel(*args, acc_bits=MAX_ACC_BITS, overflow="wrap")
        total = exact + deficit.reshape(exact.shape)
        lo, hi = acc_range(step.acc_bits)
        events = np.count_nonzero((total < lo) | (total > hi))
        acc = np.clip(total, lo, hi) if step.overflow == "saturate" else wrap(total, step.acc_bits)
    step.overflow_events += int(events)
    return acc


def conv(step: Step):
    x, yq = step.args[0], step.out_q()
    c = conv_setup(step)
    args = (x,) + c.rest
    deficit = _conv_deficit(step, x, c)
    if c.fusable and deficit is None:
        y = int_fast.fused(step, "conv2d_requant", args, c.policy, c.s_in, c.wq.scale, yq, c.b_float)
        if y is not None:
            return [y]
    acc = _accumulate(step, step.kernels.conv2d_acc, args, deficit)
    if c.depthwise and step.rt.depthwise_tail is not None:
        return [optimized_depthwise(step, acc, c.s_in, c.wq.scale, yq)]
    return [_requant(step, c.policy, acc, c.s_in, c.wq.scale, yq, 1, c.b_float)]


def optimized_depthwise(step: Step, acc, s_in, s_w, yq):
    """LiteRT's optimized DEPTHWISE_CONV_2D on x86 (measured, LiteRT 2.3, 3x3 kernels, depth
    multiplier 1): channels in full groups of 8 round like the NEON kernels (tflite-optimized),
    the last C % 8 channels like the reference kernel (gemmlowp double rounding)."""
    vec = _requant(step, step.rt.depthwise, acc, s_in, s_w, yq, 1)
    tail = acc.shape[1] - acc.shape[1] % 8
    if tail < acc.shape[1]:
        ref = _requant(step, step.rt.depthwise_tail, acc, s_in, s_w, yq, 1)
        vec[:, tail:] = ref[:, tail:]
    return vec


class GemmSetup(NamedTuple):
    w: np.ndarray
    wq: object
    s_in: np.float32
    b_float: object
    rest: tuple            # matmul_acc's arguments after x
    fusable: bool


def gemm_setup(step: Step) -> GemmSetup:
    xq, yq = step.in_q(), step.out_q()
    w, wq = _weight_int(step, "weight")
    s_in = scalar_scale(step, xq, "the input")
    b_int, b_float = _bias(step, step.rt.fc, s_in, wq.scale)
    rest = (w.T, scalar_zp(step, xq, "the input"), _w_zp(wq), b_int)
    return GemmSetup(w, wq, s_in, b_float, rest, fusable_requant(step, yq, s_in, wq.scale, b_float))


def gemm(step: Step):
    x, yq = step.args[0], step.out_q()
    c = gemm_setup(step)
    args = (x,) + c.rest
    deficit = _matmul_deficit(step, x, c.rest[0])
    if c.fusable and deficit is None:
        y = int_fast.fused(step, "matmul_requant", args, step.rt.fc, c.s_in, c.wq.scale, yq, c.b_float)
        if y is not None:
            return [y]
    acc = _accumulate(step, step.kernels.matmul_acc, args, deficit)
    return [_requant(step, step.rt.fc, acc, c.s_in, c.wq.scale, yq, -1, c.b_float)]


def _matmul_deficit(step: Step, a: np.ndarray, b: np.ndarray):
    if not pairs16_applies(step, a, b):
        return None
    a3, b3 = matmul_shapes(a, b)[:2]
    return pairs16.matmul_deficit(a3, b3)


def matmul(step: Step):
    a, b = step.args
    aq, bq, yq = step.in_q(0), step.in_q(1), step.out_q()
    per_column = bq.scale.size > 1
    if per_column and (bq.axis is None or bq.axis % b.ndim != b.ndim - 1):
        raise step.fail("MatMul's second operand may be per-channel along its last axis only")
    args = (a, b, scalar_zp(step, aq, "operand A"), bq.zero_point.reshape(-1).astype(np.int64))
    acc = _accumulate(step, step.kernels.matmul_acc, args, _matmul_deficit(step, a, b))
    return [_requant(step, step.rt.matmul, acc, scalar_scale(step, aq, "operand A"), bq.scale, yq, -1)]


def move(step: Step):
    """Reshape, Flatten, Transpose, Slice, Split: no arithmetic when the parameters carry over unchanged."""
    if not same_params(step.in_q(), step.out_q()) and step.in_q() != step.out_q():
        raise Fallback
    return run_float_kernel(step.node.op, step.args, {}, step.node.attrs)


def constant(step: Step):
    """The stored integers of the weight, where their parameters are the output's (the importer gives
    the output the constant's); else a float island (dequantized, stored at the output's)."""
    wq, yq = step.weight_quant("value"), step.out_q()
    if wq is None or not (wq is yq or same_params(wq, yq)):
        raise Fallback
    return [step.weight("value")]


def concat(step: Step):
    yq = step.out_q()
    qs = [step.int_quant(t) for t in step.node.inputs]
    if all(same_params(q, yq) for q in qs):
        return [np.concatenate(step.args, axis=int(step.attr("axis", 1)))]
    if step.rt.quantize is Kernels.ONNXRUNTIME:  # QLinearConcat: quantize(dequantize(x)) per input = a float island
        raise Fallback
    # LiteRT ConcatenationWithScaling: round_half_away(x * scale + bias) + zp_out, fp32.
    f32 = np.float32
    inv = f32(1.0) / scalar_scale(step, yq, "the output")
    zout, (lo, hi) = scalar_zp(step, yq, "the output"), int_range(yq)
    parts = []
    for x, q in zip(step.args, qs):
        if same_params(q, yq):
            parts.append(x.astype(np.int64))
            continue
        scale = f32(scalar_scale(step, q, "an input") * inv)
        bias = f32(-scalar_zp(step, q, "an input") * scale)
        v = (x.astype(f32) * scale + bias).astype(np.float64)
        parts.append(np.clip(round_to_int(v, Rounding.HALF_AWAY) + zout, lo, hi).astype(np.int64))
    step.bounds[step.node.outputs[0]] = (lo, hi)
    return [to_storage(np.concatenate(parts, axis=int(step.attr("axis", 1))), yq)]


def _clamp(step: Step, lo_v: float, hi_v: float):
    """A clamp at the quantized bounds of [lo_v, hi_v] on a quantized tensor with unchanged
    parameters (the quantize formula of the runtime puts 0 and 6 on the grid)."""
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    if not same_params(xq, yq):
        raise Fallback
    qlo, qhi = int_range(yq)
    lo = qlo if lo_v == -np.inf else int(quantize_as(step, np.array(lo_v), yq))
    hi = qhi if hi_v == np.inf else int(quantize_as(step, np.array(hi_v), yq))
    step.bounds[step.node.outputs[0]] = (lo, hi)
    return [to_storage(np.clip(x, lo, hi), yq)]


def relu(step: Step):
    return _clamp(step, 0.0, np.inf)


def relu6(step: Step):
    return _clamp(step, 0.0, 6.0)


def clip(step: Step):
    return _clamp(step, step.attr("min", -np.inf), step.attr("max", np.inf))


def requantize(step: Step):
    """A quantized tensor rescaled (LiteRT QUANTIZE int -> int): ``(x - zp_in)`` times s_in / s_out.

    Measured per kernel set (LiteRT 2.3): the reference kernel and every int16 case run TFLite's
    ``MultiplyByQuantizedMultiplier`` (the reference requantization); the optimized int8 -> int8
    kernel runs blocks of 16 (flat NHWC order) with the NEON requantization and its tail with the
    reference one; XNNPACK's int8 -> int8 (``qs8-vcvt``) is ``((x - zp_in) * M + (zp_out << 8) + 128)
    >> 8`` with ``M = rint(256 * fp32(s_in / s_out))``; XNNPACK takes ratios in [2^-8, 2^7] only and
    leaves the others to the optimized builtin kernel. Other runtimes: their conv requantization."""
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    zin, s_in = scalar_zp(step, xq, "the input"), scalar_scale(step, xq, "the input")
    acc = x.astype(np.int64) - zin
    pol = step.rt.policy
    if pol not in (PolicyName.TFLITE_OPTIMIZED, PolicyName.XNNPACK) or step.rt.conv is not pol:
        return [_requant(step, step.rt.conv, acc, s_in, np.float32(1.0), yq, -1)]
    int8 = xq.fmt.name == "int8" and yq.fmt.name == "int8"
    ref = _requant(step, PolicyName.TFLITE_REFERENCE, acc, s_in, np.float32(1.0), yq, -1)
    if not int8:
        return [ref]
    ratio = np.float32(np.float32(s_in) / np.float32(scalar_scale(step, yq, "the output")))
    if pol is PolicyName.XNNPACK and 2.0 ** -8 <= ratio <= 2.0 ** 7:
        lo, hi = activation_range(step, yq)
        m = int(np.rint(np.float32(256.0) * ratio))
        y = (acc * m + (scalar_zp(step, yq, "the output") << 8) + 128) >> 8
        return [to_storage(np.clip(y, lo, hi), yq)]
    body = _requant(step, PolicyName.TFLITE_OPTIMIZED, acc, s_in, np.float32(1.0), yq, -1)
    nhwc = acc.shape if acc.ndim != 4 else (acc.shape[0],) + acc.shape[2:] + (acc.shape[1],)
    n = int(np.prod(nhwc, dtype=np.int64))
    tail = (np.arange(n) >= n - n % 16).reshape(nhwc)
    tail = np.moveaxis(tail, -1, 1) if acc.ndim == 4 else tail
    return [np.where(tail, ref, body).astype(body.dtype)]


def embedding(step: Step):
    """Rows of a quantized table gathered by integer ids: the output codes are the table's rows and
    the output keeps the table's parameters, as onnxruntime runs ``DQ(table_q) -> Gather -> Q`` when
    Q has the table's scale and zero point (the QDQ pair is dropped: a Gather on the int8 table) and
    as LiteRT's GATHER does. Other output parameters (or a per-channel table) fall back to the float
    island, which is what an unfused DQ -> Gather -> Q computes."""
    w, wq = _weight_int(step, "weight")
    yq = step.out_q()
    if not same_params(wq, yq):
        raise Fallback
    ids = np.asarray(step.args[0])
    if not np.issubdtype(ids.dtype, np.integer):  # an unquantized feed arrives as fp32 (exact below 2**24)
        if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
            raise step.fail("embedding ids must be integers")
        ids = ids.astype(np.int64)
    rows = w.shape[0]
    if ids.size and (ids.min() < -rows or ids.max() >= rows):  # negative ids count from the end (ONNX Gather)
        raise step.fail(f"embedding ids must lie in [{-rows}, {rows - 1}], got [{ids.min()}, {ids.max()}]")
    return [to_storage(w[ids.astype(np.int64)], yq)]


def pad(step: Step):
    """Pad (TFLite PAD / PADV2 without a value, ONNX Pad): a copy; constant cells hold the input's
    zero point (the real value 0), which every runtime writes (LiteRT ``pad.cc``: ``output_zero_point``
    with in and out parameters equal). reflect / edge copy stored codes, exact with any parameters."""
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    if not same_params(xq, yq):
        raise GraphError(f"node {step.node.name!r} (Pad): input and output quantization differ; a quantized "
                         "Pad keeps its input's parameters")
    rank = x.ndim
    pads = [int(p) for p in step.attr("pads")]
    widths = [(pads[i], pads[i + rank]) for i in range(rank)]
    if min(pads) < 0:
        raise GraphError(f"node {step.node.name!r} (Pad): negative pads {pads} are not supported")
    mode = step.attr("mode", "constant") or "constant"
    if mode == "constant":
        y = np.pad(x, widths, constant_values=scalar_zp(step, xq, "the input"))
    elif mode in ("reflect", "edge"):
        y = np.pad(x, widths, mode=mode)
    else:
        raise GraphError(f"node {step.node.name!r} (Pad): mode {mode!r} is not supported")
    step.bounds[step.node.outputs[0]] = int_range(yq)
    return [y.astype(x.dtype)]
