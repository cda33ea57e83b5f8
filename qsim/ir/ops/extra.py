"""Ops that imported models need beyond the builders' set (ONNX semantics).

* LRN (size, alpha, beta, bias): local response normalisation across channels (AlexNet, GoogLeNet).
* Pad (pads: begin values then end values per axis, ONNX order; mode): explicit padding.
* ReduceMean (axes, keepdims=1): mean over axes.
* Split (axis, split: sizes): one tensor into several along an axis.
* Div, Pow: binary with numpy broadcasting. Erf, Sqrt, LeakyRelu (alpha), HardSigmoid (alpha, beta):
  unary elementwise.
* GlobalMaxPool: max over the spatial axes, kept as 1x1.
* Requantize: an integer tensor rescaled to new quantization parameters (TFLite QUANTIZE int -> int).
* Quantize: a float tensor quantized to its output's parameters, kept as a node where the float
  tensor is needed as well (QuantizeLinear whose input also feeds a float op).
* AddConst, SubConst, MulConst, DivConst, PowConst (operand_shape, reversed=False): ``x op c`` (``c op x``
  when reversed) with a constant ``c`` held as the node's weight ``operand`` (numpy broadcasting).

The simulator has no kernels for LRN and GlobalMaxPool (the cost model costs
them); Pad's integer kernel fills with the zero point; the integer executor runs the other
arithmetic here as float islands except Requantize and the quantized AddConst / MulConst.
"""
from __future__ import annotations

import numpy as np

from qsim.ir.ops.elementwise import _binary, _unary
from qsim.ir.registry import CostClass, Inferred, QuantRule, Support, numel, per_output, register

NONE, ISLAND = Support.UNSUPPORTED, Support.FLOAT_ISLAND
_SHARED = QuantRule(shares_input_params=True)  # the output is a copy or a selection of the input's values


def _lrn_ops(inputs, outputs, attrs) -> int:
    # square, window sum (size adds), scale and bias, power (~ exp + log), divide
    return numel(outputs[0]) * (int(attrs.get("size", 5)) + 5)


@register("LRN", cost_class=CostClass.NORMALISATION, float_kernel=NONE, int_kernel=NONE, vector_ops=_lrn_ops)
def infer_lrn(inputs, attrs) -> Inferred:
    if len(inputs) != 1 or len(inputs[0]) < 2:
        raise ValueError("LRN takes one input with a channel axis")
    if int(attrs.get("size", 5)) <= 0:
        raise ValueError("size must be positive")
    return Inferred(outputs=(tuple(inputs[0]),))


@register("Pad", cost_class=CostClass.DATA_MOVEMENT, float_kernel="float_ops.pad", int_kernel="int_ops.pad", quant=_SHARED,
          vector_ops=lambda i, o, a: numel(o[0]))  # a copy: one move per output element
def infer_pad(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Pad takes one input")
    rank = len(inputs[0])
    pads = [int(p) for p in attrs["pads"]]
    if len(pads) != 2 * rank:
        raise ValueError(f"pads needs {2 * rank} values for rank {rank}, got {len(pads)}")
    out = tuple(d + pads[i] + pads[i + rank] for i, d in enumerate(inputs[0]))
    if min(out) < 0:
        raise ValueError(f"pads {pads} remove more than the input {inputs[0]}")
    return Inferred(outputs=(out,))


def reduce_axes(shape, attrs) -> list[int]:
    axes = attrs.get("axes")
    if axes is None:
        return list(range(len(shape)))
    norm = sorted({int(a) % len(shape) for a in axes})
    if any(not -len(shape) <= int(a) < len(shape) for a in axes):
        raise ValueError(f"axes {list(axes)} out of range for rank {len(shape)}")
    return norm


@register("ReduceMean", cost_class=CostClass.REDUCTION, float_kernel="float_ops.reduce_mean", int_kernel=ISLAND,
          vector_ops=lambda i, o, a: numel(i[0]))
def infer_reduce_mean(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("ReduceMean takes one input")
    shape = inputs[0]
    axes = reduce_axes(shape, attrs)
    if int(attrs.get("keepdims", 1)):
        out = tuple(1 if i in axes else d for i, d in enumerate(shape))
    else:
        out = tuple(d for i, d in enumerate(shape) if i not in axes)
    return Inferred(outputs=(out,))


@register("Split", cost_class=CostClass.DATA_MOVEMENT, float_kernel="float_ops.split", int_kernel="int_ops.move",
          quant=_SHARED)
def infer_split(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Split takes one input")
    shape = inputs[0]
    axis = int(attrs.get("axis", 0)) % len(shape)
    sizes = [int(s) for s in attrs["split"]]
    if sum(sizes) != shape[axis] or min(sizes) < 0:
        raise ValueError(f"split sizes {sizes} do not add up to axis {axis} of {shape}")
    return Inferred(outputs=tuple(shape[:axis] + (s,) + shape[axis + 1:] for s in sizes))


_ELEMENTWISE = CostClass.ELEMENTWISE
register("Div", cost_class=_ELEMENTWISE, float_kernel="float_ops.div", int_kernel=ISLAND,
         vector_ops=per_output(1))(_binary)
register("Pow", cost_class=_ELEMENTWISE, float_kernel="float_ops.power", int_kernel=ISLAND,
         vector_ops=per_output(2))(_binary)  # exp(b * log(a))
register("Erf", cost_class=_ELEMENTWISE, float_kernel="float_mlas.erf", int_kernel=ISLAND,
         vector_ops=per_output(8))(_unary)
register("Sqrt", cost_class=_ELEMENTWISE, float_kernel="float_ops.sqrt", int_kernel=ISLAND,
         vector_ops=per_output(1))(_unary)
# LeakyRelu: a float island (onnxruntime's QLinearLeakyRelu is a table of the float function).
register("LeakyRelu", cost_class=_ELEMENTWISE, float_kernel="float_ops.leaky_relu", int_kernel=ISLAND,
         vector_ops=per_output(2), fusable=True)(_unary)
register("HardSigmoid", cost_class=_ELEMENTWISE, float_kernel="float_ops.hardsigmoid", int_kernel=ISLAND,
         vector_ops=per_output(3), fusable=True)(_unary)


@register("GlobalMaxPool", cost_class=CostClass.REDUCTION, float_kernel=NONE, int_kernel=NONE, quant=_SHARED,
          vector_ops=lambda i, o, a: numel(i[0]))
def infer_global_max_pool(inputs, attrs) -> Inferred:
    if len(inputs) != 1 or len(inputs[0]) < 3:
        raise ValueError("GlobalMaxPool takes one N,C,spatial... input")
    return Inferred(outputs=(tuple(inputs[0][:2]) + (1,) * (len(inputs[0]) - 2),))


# Requantize and Quantize are identities on real values (their float kernel): quantization happens
# where tensors are stored. Requantize: a quantized tensor rescaled to other parameters or another
# integer width (TFLite QUANTIZE of an integer input): one multiply, shift and clamp per element.
register("Requantize", cost_class=_ELEMENTWISE, float_kernel="float_ops.identity", int_kernel="int_ops.requantize",
         vector_ops=per_output(3))(_unary)
# Quantize: float -> quantized; the float island's store applies the runtime's quantize formula.
register("Quantize", cost_class=_ELEMENTWISE, float_kernel="float_ops.identity", int_kernel=ISLAND,
         vector_ops=per_output(2))(_unary)  # divide (or multiply) and round per element


def _const_binary(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("takes one activation input; the constant operand is the weight 'operand'")
    operand = tuple(int(d) for d in attrs["operand_shape"])
    try:
        shape = np.broadcast_shapes(inputs[0], operand)
    except ValueError:
        raise ValueError(f"shapes {inputs[0]} and {operand} do not broadcast") from None
    return Inferred(outputs=(tuple(int(d) for d in shape),), weights={"operand": operand})


# x op c with a constant c (imported models: a bias Add after MatMul, a scale Mul, a Div by
# sqrt(d)); c is the node's weight "operand", so its bytes are counted like any parameter. A
# quantized graph quantizes c like an activation (as onnxruntime quantizes an initializer of Add).
# name: (vector ops per element, float kernel, integer kernel)
_CONST_OPS = {"AddConst": (1, "float_ops.add_const", "int_elementwise.add"),
              "SubConst": (1, "float_ops.sub_const", ISLAND),
              "MulConst": (1, "float_ops.mul_const", "int_elementwise.mul"),
              "DivConst": (1, "float_ops.div_const", ISLAND),
              "PowConst": (2, "float_ops.power_const", ISLAND)}
for _name, (_ops, _float, _int) in _CONST_OPS.items():
    register(_name, cost_class=_ELEMENTWISE, float_kernel=_float, int_kernel=_int,
             quant=QuantRule(activation_weights=("operand",)), vector_ops=per_output(_ops))(_const_binary)
