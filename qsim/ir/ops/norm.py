"""Normalisation and softmax.

* BatchNorm (inference): per-channel scale and shift on axis 1; weights scale, shift (running
  statistics folded, as deployed).
* LayerNorm / RMSNorm over the last axis (attribute eps, default 1e-5 / 1e-6); weights gamma (and
  beta for LayerNorm).
* Softmax over ``axis`` (default -1): max, subtract, exp, sum, divide.

The normalisations have no integer pipeline in the runtimes qsim models: the integer executor runs
them as float islands; their parameters stay float when a graph is quantized.
"""
from __future__ import annotations

from qsim.ir.registry import CostClass, Inferred, Support, per_output, register

_NORM = dict(cost_class=CostClass.NORMALISATION, int_kernel=Support.FLOAT_ISLAND)


@register("BatchNorm", **_NORM, float_kernel="float_ops.batchnorm", bias_roles=("shift",), vector_ops=per_output(2),
          attrs=())
def infer_batchnorm(inputs, attrs) -> Inferred:
    if len(inputs) != 1 or len(inputs[0]) < 2:
        raise ValueError("BatchNorm takes one input with a channel axis")
    c = inputs[0][1]
    return Inferred(outputs=(tuple(inputs[0]),), weights={"scale": (c,), "shift": (c,)})


@register("LayerNorm", **_NORM, float_kernel="float_ops.layernorm", bias_roles=("beta",), vector_ops=per_output(8),
          attrs=("eps",))
def infer_layernorm(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("LayerNorm takes one input")
    d = inputs[0][-1]
    return Inferred(outputs=(tuple(inputs[0]),), weights={"gamma": (d,), "beta": (d,)})


@register("RMSNorm", **_NORM, float_kernel="float_ops.rmsnorm", vector_ops=per_output(5), attrs=("eps",))
def infer_rmsnorm(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("RMSNorm takes one input")
    return Inferred(outputs=(tuple(inputs[0]),), weights={"gamma": (inputs[0][-1],)})


@register("Softmax", cost_class=CostClass.SOFTMAX, float_kernel="float_mlas.softmax",
          int_kernel="int_elementwise.softmax", vector_ops=per_output(5), attrs=("axis",))
def infer_softmax(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Softmax takes one input")
    axis = int(attrs.get("axis", -1))
    if not -len(inputs[0]) <= axis < len(inputs[0]):
        raise ValueError(f"axis {axis} out of range for rank {len(inputs[0])}")
    return Inferred(outputs=(tuple(inputs[0]),))
