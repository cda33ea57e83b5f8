"""Dynamic quantization ops (ONNX semantics, as onnxruntime's ``quantize_dynamic`` writes them) and
the tensor ops a transformer export brings along them.

* DynamicQuantizeLinear (per_token=False): a float tensor -> (codes uint8, scale float32 scalar,
  zero point uint8 scalar), the parameters computed from the tensor's own min and max at run time
  (``per_token``: one scale and zero point per row of the last axis, shapes (..., 1)). Costed as two
  passes: the min/max reduction (one extra read of the tensor, 2 compares per element) and the
  quantization (divide, round, add, clamp per element).
* MatMulIntegerDynamic: ``(a - a_zp) @ (W - w_zp)`` in int32 with a run-time ``a_zp`` (input 1,
  scalar or per row)
  and the stored weight ``weight`` (K, N) with its ``weight_zero_point`` (scalar or per column).
* ConvIntegerDynamic: ConvInteger with a run-time input zero point (input 1); padding holds the
  zero point, as onnxruntime pads.
* Cast (to: element type name): a real conversion (int32 accumulators -> float32, masks -> bool).
* OnnxEval (onnx_op, onnx_attrs, out_shape, out_dtype, slots): one ONNX op on tensors the IR has no op for
  (masks and index arithmetic: Where, Equal, And, Not, IsNaN, comparisons, Expand, GatherElements,
  ReduceSum, a Gather of data, Reshape of a bool tensor...), evaluated by ``qsim.sim.int_dynamic``.
  ``slots`` gives, per ONNX input, an int (index into the node's inputs) or a weight role name.

The integer executor runs all of them on the arrays as stored (``as_stored``): their parameters are
tensors computed at run time, not ``quant_params``.
"""
from __future__ import annotations

from qsim.ir.ops.conv import _conv_macs as conv_macs, _conv_matrix as conv_matrix, infer_conv
from qsim.ir.registry import CostClass, Inferred, MatrixView, numel, register

_AS_STORED = "int_dynamic.as_stored"


def _dql_ops(inputs, outputs, attrs) -> int:
    # min/max pass (2 compares per element), then divide, round, add zero point, clamp
    return 6 * numel(inputs[0])


@register("DynamicQuantizeLinear", cost_class=CostClass.ELEMENTWISE, float_kernel="int_dynamic.dynamic_quantize_linear",
          int_kernel=_AS_STORED, vector_ops=_dql_ops, as_stored=True, attrs=("per_token",))
def infer_dql(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("DynamicQuantizeLinear takes one input")
    if attrs.get("per_token", False):  # one scale and zero point per row of the last axis
        if not inputs[0]:
            raise ValueError("per-token quantization needs an input of rank >= 1")
        params = tuple(inputs[0][:-1]) + (1,)
        return Inferred(outputs=(tuple(inputs[0]), params, params))
    return Inferred(outputs=(tuple(inputs[0]), (), ()))


def _matmul_shape(inputs, attrs):
    if len(inputs) != 2 or len(inputs[0]) < 1 or inputs[1] not in ((), tuple(inputs[0][:-1]) + (1,)):
        raise ValueError("MatMulIntegerDynamic takes (a, a_zero_point: a scalar or one per row)")
    k, n = int(attrs["k"]), int(attrs["n"])
    if inputs[0][-1] != k:
        raise ValueError(f"a has {inputs[0][-1]} columns, the weight {k} rows")
    return k, n


def _matmul_view(inputs, outputs, attrs) -> MatrixView:
    k, n = _matmul_shape(inputs, attrs)
    return MatrixView(1, numel(inputs[0]) // k, n, k)


@register("MatMulIntegerDynamic", cost_class=CostClass.MATRIX, float_kernel="int_dynamic.matmul_integer",
          int_kernel=_AS_STORED, as_stored=True, matrix=_matmul_view, attrs=("k", "n", "zero_point_shape"),
          macs=lambda i, o, a: numel(o[0]) * int(a["k"]))
def infer_matmul_integer(inputs, attrs) -> Inferred:
    k, n = _matmul_shape(inputs, attrs)
    return Inferred(outputs=(tuple(inputs[0][:-1]) + (n,),),
                    weights={"weight": (k, n), "weight_zero_point": tuple(attrs["zero_point_shape"])})


def _plain(inputs, attrs):
    """The Conv the op computes: its data input and attributes without the zero point."""
    if len(inputs) != 2 or inputs[1] != ():
        raise ValueError("ConvIntegerDynamic takes (x NCHW, x_zero_point scalar)")
    return [inputs[0]], {**attrs, "bias": False}


@register("ConvIntegerDynamic", cost_class=CostClass.MATRIX, float_kernel="int_dynamic.conv_integer",
          int_kernel=_AS_STORED, as_stored=True, matrix=lambda i, o, a: conv_matrix(*_plain(i, a)[:1], o, a),
          attrs=("out_channels", "kernel", "stride", "pad", "dilation", "groups", "zero_point_shape"),
          macs=lambda i, o, a: conv_macs(_plain(i, a)[0], o, a))
def infer_conv_integer(inputs, attrs) -> Inferred:
    conv = infer_conv(*_plain(inputs, attrs))
    return Inferred(outputs=conv.outputs, weights={"weight": conv.weights["weight"],
                                                   "weight_zero_point": tuple(attrs["zero_point_shape"])})


@register("Cast", cost_class=CostClass.ELEMENTWISE, float_kernel="int_dynamic.cast", int_kernel=_AS_STORED,
          as_stored=True, vector_ops=lambda i, o, a: numel(o[0]), attrs=("to",))
def infer_cast(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Cast takes one input")
    return Inferred(outputs=(tuple(inputs[0]),))


@register("OnnxEval", cost_class=CostClass.ELEMENTWISE, float_kernel="int_dynamic.onnx_eval", int_kernel=_AS_STORED,
          as_stored=True, vector_ops=lambda i, o, a: max(numel(o[0]), sum(numel(s) for s in i)),
          attrs=("onnx_op", "onnx_attrs", "out_shape", "out_dtype", "slots", "weight_shapes"))
def infer_onnx_eval(inputs, attrs) -> Inferred:
    slots = attrs["slots"]
    acts = [s for s in slots if isinstance(s, int)]
    if sorted(acts) != list(range(len(inputs))):
        raise ValueError(f"slots {slots} do not cover the {len(inputs)} inputs")
    return Inferred(outputs=(tuple(attrs["out_shape"]),), weights=dict(attrs.get("weight_shapes", {})))
