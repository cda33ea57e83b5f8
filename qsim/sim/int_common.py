"""Shared pieces of the integer executor: the per-node ``Step`` (inputs, parameters, settings and
the counters a kernel fills) and the helpers every op module uses to read quantization."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from qsim.errors import GraphError
from qsim.ir.graph import Graph, Node
from qsim.numerics.tensor_quant import TensorQuant
from qsim.numerics.formats import Rounding
from qsim.numerics.quantize import dequantize, quantize
from qsim.numerics.rounding import round_to_int
from qsim.sim.int_runtime import Runtime


class Fallback(Exception):
    """The integer kernel does not apply to this node; run it as a float island."""


@dataclass
class Step:
    """One node being executed: what a kernel reads, and the counters it fills."""
    graph: Graph
    node: Node
    args: list  # input arrays (integers for quantized tensors, float otherwise)
    rt: Runtime
    kernels: ModuleType  # qsim.kernels.jit or qsim.kernels.reference
    impl: str  # "numba" | "numpy" (requantization and elementwise kernels)
    acc_bits: int
    overflow: str
    overflow_events: int = 0
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)  # output -> clamp range

    def fail(self, message: str) -> GraphError:
        return GraphError(f"node {self.node.name!r} ({self.node.op}): {message}")

    def quant(self, tensor: str) -> TensorQuant:
        q = self.graph.quant_params.get(tensor)
        if q is None:
            raise self.fail(f"tensor {tensor!r} has no quantization parameters (scale, zero point); "
                            "the integer executor needs them on every tensor of an integer op")
        return q

    def int_quant(self, tensor: str) -> TensorQuant:
        q = self.quant(tensor)
        if q.int_fmt is None or q.int_fmt.bits > 32:
            raise self.fail(f"tensor {tensor!r} has element type {q.fmt.name!r}; integer ops take "
                            "int2..int32 and uint2..uint32")
        return q

    def in_q(self, i: int = 0) -> TensorQuant:
        return self.int_quant(self.node.inputs[i])

    def out_q(self, i: int = 0) -> TensorQuant:
        return self.int_quant(self.node.outputs[i])

    def weight(self, role: str) -> np.ndarray:
        t = self.node.weights[role]
        if t not in self.graph.constants:
            raise self.fail(f"weight {t!r} has no values (a weightless model cannot be simulated)")
        return np.asarray(self.graph.constants[t])

    def weight_quant(self, role: str) -> TensorQuant | None:
        return self.graph.quant_params.get(self.node.weights[role])

    def attr(self, key: str, default: Any = None) -> Any:
        return self.node.attrs.get(key, default)


def int_range(q: TensorQuant) -> tuple[int, int]:
    return q.fmt.qmin, q.fmt.qmax


def storage(q: TensorQuant) -> type:
    """The numpy type that holds the tensor's codes (sub-byte codes in int8 / uint8)."""
    return q.fmt.storage_dtype.type


def scalar_zp(step: Step, q: TensorQuant, what: str) -> int:
    if q.zero_point.size != 1:
        raise step.fail(f"{what} needs a per-tensor zero point, got {q.zero_point.size} values")
    return int(q.zero_point.reshape(-1)[0])


def scalar_scale(step: Step, q: TensorQuant, what: str) -> np.float32:
    if q.scale.size != 1:
        raise step.fail(f"{what} needs a per-tensor scale, got {q.scale.size} values")
    return np.float32(q.scale.reshape(-1)[0])


def same_params(a: TensorQuant, b: TensorQuant) -> bool:
    return (a.fmt == b.fmt and a.scale.size == 1 and b.scale.size == 1
            and np.float32(a.scale.reshape(-1)[0]) == np.float32(b.scale.reshape(-1)[0])
            and int(a.zero_point.reshape(-1)[0]) == int(b.zero_point.reshape(-1)[0]))


def activation_range(step: Step, q: TensorQuant) -> tuple[int, int]:
    """[qmin, qmax] of the output, narrowed by a fused activation (TFLite
    ``CalculateActivationRangeQuantized``: ``zp + round_half_away(fp32(v / scale))``)."""
    lo, hi = int_range(q)
    act = step.attr("activation")
    if act is None:
        return lo, hi
    scale, zp = scalar_scale(step, q, "a fused activation"), scalar_zp(step, q, "a fused activation")

    def at(v: float) -> int:
        return zp + int(round_to_int(np.float32(np.float32(v) / scale), Rounding.HALF_AWAY))

    if act == "RELU":
        return max(lo, zp), hi
    if act == "RELU6":
        return max(lo, zp), min(hi, at(6.0))
    if act == "RELU_N1_TO_1":
        return max(lo, at(-1.0)), min(hi, at(1.0))
    raise step.fail(f"fused activation {act!r} is not supported by the integer executor")


def to_storage(values: np.ndarray, q: TensorQuant) -> np.ndarray:
    """Integer results (already clamped) in the numpy type the runtime returns."""
    return np.asarray(values).astype(storage(q), copy=False)


def quantize_as(step: Step, x: np.ndarray, q: TensorQuant) -> np.ndarray:
    """A float value quantized at a tensor, with the runtime's quantize formula."""
    return quantize(x, q, step.rt.quantize)


def dequantize_as(x: np.ndarray, q: TensorQuant) -> np.ndarray:
    return dequantize(x, q)
