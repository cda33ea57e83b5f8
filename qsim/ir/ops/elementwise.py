"""Elementwise ops.

Binary (numpy broadcasting): Add, Sub, Mul. Unary activations: Relu, Relu6, Clip (attrs min, max),
Sigmoid, Tanh, GELU, HardSwish, SiLU. Vector-op counts per element follow the usual formulas
(sigmoid: exp, add, divide; GELU tanh form ~ 8; HardSwish: add, clamp, multiply, scale).
"""
from __future__ import annotations

import numpy as np

from qsim.ir.registry import CostClass, Inferred, Support, per_output, register

ISLAND = Support.FLOAT_ISLAND


def _binary(inputs, attrs) -> Inferred:
    if len(inputs) != 2:
        raise ValueError("takes two inputs")
    try:
        shape = np.broadcast_shapes(inputs[0], inputs[1])
    except ValueError:
        raise ValueError(f"shapes {inputs[0]} and {inputs[1]} do not broadcast") from None
    return Inferred(outputs=(tuple(int(d) for d in shape),))


def _unary(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("takes one input")
    return Inferred(outputs=(tuple(inputs[0]),))


# name: (float kernel, integer kernel), both in qsim.sim (integer: the runtimes' quantized add and
# mul; Sub has no integer pipeline in them).
_BINARY = {"Add": ("float_ops.add", "int_elementwise.add"), "Sub": ("float_ops.sub", ISLAND),
           "Mul": ("float_ops.mul", "int_elementwise.mul")}
for _name, (_float, _int) in _BINARY.items():
    register(_name, cost_class=CostClass.ELEMENTWISE, float_kernel=_float, int_kernel=_int,
             vector_ops=per_output(1), attrs=())(_binary)

# name: (vector ops per element, float kernel, integer kernel). Integer: a clamp at the quantized
# bounds (Relu, Relu6, Clip), LiteRT's lookup tables (Sigmoid, Tanh, GELU), LiteRT's fixed-point
# HARD_SWISH (a float island under onnxruntime: int_hardswish), else a float island.
_ACTIVATIONS = {"Relu": (1, "float_ops.relu", "int_ops.relu"),
                "Relu6": (2, "float_ops.relu6", "int_ops.relu6"),
                "Clip": (2, "float_ops.clip", "int_ops.clip"),
                "Sigmoid": (3, "float_ops.sigmoid", "int_elementwise.lut"),
                "Tanh": (5, "float_ops.tanh", "int_elementwise.lut"),
                "GELU": (8, "float_ops.gelu", "int_elementwise.lut"),
                "HardSwish": (4, "float_ops.hardswish", "int_hardswish.hardswish"),
                "SiLU": (4, "float_ops.silu", ISLAND)}
_ATTRS = {"Clip": ("min", "max"), "GELU": ("approximate",)}
for _name, (_ops, _float, _int) in _ACTIVATIONS.items():
    register(_name, cost_class=CostClass.ELEMENTWISE, float_kernel=_float, int_kernel=_int,
             vector_ops=per_output(_ops), fusable=True, attrs=_ATTRS.get(_name, ()))(_unary)
