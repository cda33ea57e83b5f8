"""Elementwise ops.

Binary (numpy broadcasting): Add, Sub, Mul. Unary activations: Relu, Relu6, Clip (attrs min, max),
Sigmoid, Tanh, GELU, HardSwish, SiLU. Vector-op counts per element follow the usual formulas
(sigmoid: exp, add, divide; GELU tanh form ~ 8; HardSwish: add, clamp, multiply, scale).
"""
from __future__ import annotations

import numpy as np

from qsim.ir.registry import Inferred, per_output, register


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


for _name in ("Add", "Sub", "Mul"):
    register(_name, vector_ops=per_output(1), attrs=())(_binary)

for _name, _ops in {"Relu": 1, "Relu6": 2, "Clip": 2, "Sigmoid": 3, "Tanh": 5, "GELU": 8,
                    "HardSwish": 4, "SiLU": 4}.items():
    register(_name, vector_ops=per_output(_ops), fusable=True,
             attrs=("min", "max") if _name == "Clip" else ("approximate",) if _name == "GELU" else ())(_unary)
