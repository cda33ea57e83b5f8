"""The integer executor: run a quantized Graph bit for bit as the runtime a policy names.

    run_integer(graph, feeds, policy, trace=False, acc_bits=None, overflow="wrap", impl="numba")
        -> SimResult(outputs, trace, stats)

Tensors hold integers where ``graph.quant_params`` gives an integer format (int8, uint8, int16, ...:
the stored codes, in the numpy type the runtime returns), fp32 real values where the format is
fp8 / MX (value emulation, see ``int_float``), fp32 where a tensor has no quantization.

Steps (as short as the ONNX reference evaluator's loop):
1. check the feeds; a float feed for a quantized input is quantized with the runtime's formula;
2. for each node in topological order: look its op up in ``INT_OPS`` (the one dispatch table);
   run the integer kernel when every input and output is an integer tensor, else (or when the
   kernel declines with ``Fallback``) run the node as a float island; count overflow events of the
   accumulator and outputs clamped at the low / high bound of their range;
3. return the outputs, every tensor with ``trace=True``, and per-node stats as a DataFrame: node,
   op, mode ("integer" or "float" island), overflow_events (accumulator outputs that wrapped or
   clamped, see ``qsim.kernels.reference``), saturated_low / saturated_high (outputs at the low /
   high bound of their clamp range), elements.

``impl="numba"`` runs the compiled kernels (``qsim.kernels.jit``, ``elementwise_jit``, the numba
requantization); ``impl="numpy"`` the reference kernels: the same bits.
"""
from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import numpy as np
import pandas as pd

from qsim.errors import GraphError, QsimError
from qsim.ir.graph import Graph
from qsim.numerics.quantize import quantize
from qsim.sim import int_elementwise as E
from qsim.sim import int_ops as O
from qsim.sim.executor import check_feeds
from qsim.sim.int_common import Step
from qsim.sim.int_float import float_island, kind_of
from qsim.sim.int_runtime import get_runtime

# op -> integer kernel, or None for ops that always run as float islands (no integer pipeline in
# any runtime qsim models: normalisation, divisions, transcendental functions without a table).
INT_OPS: dict[str, Callable | None] = {
    "Conv": O.conv, "Gemm": O.gemm, "MatMul": O.matmul,
    "MaxPool": O.maxpool, "AvgPool": O.avgpool, "GlobalAvgPool": O.global_avgpool,
    "Add": E.add, "AddConst": E.add, "Mul": E.mul, "MulConst": E.mul,
    "Softmax": E.softmax, "Sigmoid": E.lut, "Tanh": E.lut, "GELU": E.lut,
    "Relu": O.relu_like, "Relu6": O.relu_like, "Clip": O.relu_like,
    "Concat": O.concat, "Reshape": O.move, "Flatten": O.move, "Transpose": O.move,
    "Requantize": O.requantize, "Embedding": O.embedding,
    "LayerNorm": None, "RMSNorm": None, "BatchNorm": None, "Sub": None, "SubConst": None, "Div": None,
    "DivConst": None, "Pow": None, "PowConst": None, "Erf": None, "Sqrt": None, "HardSwish": None,
    "SiLU": None, "ReduceMean": None, "LeakyRelu": None,
    "Quantize": None,  # float -> quantized: the island's store applies the runtime's quantize formula
}


class SimResult(NamedTuple):
    outputs: dict
    trace: dict | None
    stats: pd.DataFrame


def _kernels(impl: str):
    if impl == "numba":
        from qsim.kernels import jit
        return jit
    if impl == "numpy":
        from qsim.kernels import reference
        return reference
    raise QsimError(f"unknown impl {impl!r}; known: numba, numpy")


def _feed(graph: Graph, name: str, value, rt) -> np.ndarray:
    q = graph.quant_params.get(name)
    value = np.asarray(value)
    kind = kind_of(q)
    if kind == "int":
        if np.issubdtype(value.dtype, np.integer):
            return value
        return quantize(value, q, rt.quantize)  # the runtime's QuantizeLinear / QUANTIZE formula
    if kind == "emulated":
        from qsim.sim.int_float import emulate
        return emulate(value, q)
    return value.astype(np.float32) if value.dtype != np.float64 else value


def _run_node(step: Step) -> tuple[list, str]:
    node = step.node
    if node.op not in INT_OPS:
        raise GraphError(f"node {node.name!r} ({node.op}): op {node.op!r} is not supported by the integer "
                         f"executor; supported: {', '.join(sorted(INT_OPS))}")
    kernel = INT_OPS[node.op]
    tensors = list(node.inputs) + list(node.outputs) + list(node.weights.values())
    try:
        kinds = [kind_of(step.graph.quant_params.get(t)) for t in tensors]
    except GraphError as exc:
        raise step.fail(str(exc)) from None
    skip = 1 if node.op == "Embedding" else 0  # its ids are plain integers, not quantized values
    integer = all(k == "int" for k in kinds[skip:len(node.inputs) + len(node.outputs)])
    if kernel is not None and integer:
        try:
            return kernel(step), "integer"
        except O.Fallback:
            pass
    return float_island(step), "float"


def run_integer(graph: Graph, feeds: Mapping[str, np.ndarray], policy: str, trace: bool = False,
                acc_bits: int | None = None, overflow: str = "wrap", impl: str = "numba") -> SimResult:
    """Execute ``graph`` with the integer arithmetic of ``policy`` (see the module doc)."""
    rt = get_runtime(policy)
    kernels = _kernels(impl)
    acc_bits = 32 if acc_bits is None else int(acc_bits)
    if overflow not in ("wrap", "saturate"):
        raise QsimError(f"overflow must be 'wrap' or 'saturate', got {overflow!r}")
    check_feeds(graph, feeds)
    env = {t: _feed(graph, t, feeds[t], rt) for t in graph.inputs}
    rows = []
    for node in graph.nodes():
        step = Step(graph, node, [env[t] for t in node.inputs], rt, kernels, impl, acc_bits, overflow)
        outs, mode = _run_node(step)
        low = high = 0
        for t, value in zip(node.outputs, outs):
            env[t] = value
            if t in step.bounds:
                lo, hi = step.bounds[t]
                low += int(np.count_nonzero(value == lo))
                high += int(np.count_nonzero(value == hi))
        rows.append({"node": node.name, "op": node.op, "mode": mode, "overflow_events": step.overflow_events,
                     "saturated_low": low, "saturated_high": high,
                     "elements": int(sum(np.size(v) for v in outs))})
    stats = pd.DataFrame(rows, columns=["node", "op", "mode", "overflow_events", "saturated_low",
                                        "saturated_high", "elements"])
    outputs = {t: env[t] for t in graph.outputs}
    return SimResult(outputs, dict(env) if trace else None, stats)


__all__ = ["run_integer", "SimResult", "INT_OPS"]
