"""The integer executor: run a quantized Graph bit for bit as the runtime a policy names.

    run_integer(graph, feeds, policy, trace=False, acc_bits=None, overflow="wrap", impl="numba")
        -> SimResult(outputs, trace, stats)

Tensors hold integers where ``graph.quant_params`` gives an integer format (int8, uint8, int16, ...:
the stored codes, in the numpy type the runtime returns), fp32 real values where the format is
fp8 / MX (value emulation, see ``int_float``), fp32 where a tensor has no quantization.

Steps (as short as the ONNX reference evaluator's loop):
1. check the feeds; a float feed for a quantized input is quantized with the runtime's formula;
2. for each node in topological order: take the integer kernel from its op's registry entry
   (``qsim.ir.registry``); run it when every input (other than index inputs such as token ids)
   and output is an integer tensor, else (or when the kernel declines with ``Fallback``, or the op
   has no integer pipeline) run the node as a float island; count overflow events of the
   accumulator and outputs clamped at the low / high bound of their range;
3. return the outputs, every tensor with ``trace=True``, and per-node stats (``NodeStats``: columns
   kept as lists, a DataFrame only when ``SimResult.stats`` is read): node,
   op, mode ("integer" or "float" island), overflow_events (accumulator outputs that wrapped or
   clamped, see ``qsim.kernels.reference``), saturated_low / saturated_high (outputs at the low /
   high bound of their clamp range), elements.

``impl="numba"`` runs the compiled kernels (``qsim.kernels.jit``, ``elementwise_jit``, the numba
requantization); ``impl="numpy"`` the reference kernels: the same bits.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, NamedTuple

import numpy as np

from qsim.errors import GraphError, QsimError
from qsim.ir.graph import Graph
from qsim.ir.registry import Support, get_op, ops_running_on
from qsim.numerics.policies import Kernels, PolicyName
from qsim.numerics.quantize import quantize
from qsim.sim.executor import check_feeds
from qsim.sim.int_common import Fallback, Step
from qsim.sim.int_float import float_island, kind_of
from qsim.sim.int_runtime import get_runtime

if TYPE_CHECKING:
    import pandas as pd

STAT_COLUMNS = ["node", "op", "mode", "overflow_events", "saturated_low", "saturated_high", "elements"]


class NodeStats:
    """Per-node statistics of one run, kept as columns (lists of Python ints and names) and turned
    into a DataFrame only when read (``frame``): building a DataFrame costs more than running a
    small layer. Saturation columns are None when the run did not count them (``counts=False``)."""

    def __init__(self, graph: Graph):
        self.names = [n.name for n in graph.nodes()]
        self.ops = [n.op for n in graph.nodes()]
        self.modes: list[str] = []
        self.overflow: list[int] = []
        self.low: list[int | None] = []
        self.high: list[int | None] = []
        self.elements: list[int] = []

    def integer_nodes(self) -> int:
        return self.modes.count("integer")

    def __len__(self) -> int:
        return len(self.modes)

    def frame(self) -> pd.DataFrame:
        import pandas as pd  # on first read: a simulation that never reads its statistics does not load pandas

        cols = [self.names, self.ops, self.modes, self.overflow, self.low, self.high, self.elements]
        return pd.DataFrame(dict(zip(STAT_COLUMNS, cols)), columns=STAT_COLUMNS)


class SimResult(NamedTuple):
    outputs: dict
    trace: dict | None
    node_stats: NodeStats

    @property
    def stats(self) -> pd.DataFrame:
        """Per-node statistics as a DataFrame (see the module doc)."""
        return self.node_stats.frame()


def _kernels(impl: str):
    if impl == "numba":
        from qsim.kernels import jit
        return jit
    if impl == "numpy":
        from qsim.kernels import reference
        return reference
    raise QsimError(f"unknown impl {impl!r}; known: numba, numpy")


def _quantize_feed(value: np.ndarray, q, rt) -> np.ndarray:
    """The runtime's QuantizeLinear / QUANTIZE formula. LiteRT's optimized QUANTIZE (also XNNPACK's
    fallback for int16) treats its last ``size % 8`` elements apart, counted in the file's NHWC order."""
    variant = rt.quantize
    if variant is Kernels.XNNPACK and rt.policy is PolicyName.XNNPACK and q.fmt.name == "int16":
        variant = Kernels.TFLITE_OPTIMIZED  # XNNPACK delegates int8 only
    if variant is Kernels.TFLITE_OPTIMIZED and value.ndim == 4 and q.axis is None:
        return np.moveaxis(quantize(np.moveaxis(value, 1, -1), q, variant), -1, 1)
    return quantize(value, q, variant)


def _feed(graph: Graph, name: str, value, rt) -> np.ndarray:
    q = graph.quant_params.get(name)
    value = np.asarray(value)
    kind = kind_of(q)
    if kind == "int":
        if np.issubdtype(value.dtype, np.integer):
            return value
        return _quantize_feed(value, q, rt)
    if kind == "emulated":
        from qsim.sim.int_float import emulate
        return emulate(value, q)
    return value.astype(np.float32) if value.dtype != np.float64 else value


def integer_supported(op: str) -> bool:
    """Whether the integer executor runs ``op`` (with an integer kernel or as a float island)."""
    return get_op(op).int_kernel is not Support.UNSUPPORTED


def integer_kernel_applies(step: Step, float_nodes=frozenset()) -> bool:
    """Whether ``_run_node`` runs the node's integer kernel (else a float island): every value
    input (index inputs such as token ids aside) and output is an integer tensor, the node is not
    one to run in float, and its op has an integer kernel. A kernel may still decline (``Fallback``)."""
    node = step.node
    opdef = get_op(node.op)
    kernel = opdef.int_kernel
    if kernel is Support.UNSUPPORTED:
        raise GraphError(f"node {node.name!r} ({node.op}): op {node.op!r} is not supported by the integer "
                         f"executor; supported: {', '.join(ops_running_on('int_kernel'))}")
    if opdef.as_stored:
        return True
    tensors = list(node.inputs) + list(node.outputs) + list(node.weights.values())
    try:
        kinds = {t: kind_of(step.graph.quant_params.get(t)) for t in tensors}
    except GraphError as exc:
        raise step.fail(str(exc)) from None
    values = [t for i, t in enumerate(node.inputs) if i not in opdef.index_inputs] + list(node.outputs)
    integer = all(kinds[t] == "int" for t in values) and node.name not in float_nodes
    return kernel is not Support.FLOAT_ISLAND and integer


def _run_node(step: Step, float_nodes=frozenset()) -> tuple[list, str]:
    opdef = get_op(step.node.op)
    if integer_kernel_applies(step, float_nodes):
        if opdef.as_stored:  # parameters computed at run time (dynamic quantization): no float island
            return opdef.int_kernel.load()(step), "integer"
        try:
            return opdef.int_kernel.load()(step), "integer"
        except Fallback:
            pass
    return float_island(step, ort_unit=step.node.name in float_nodes), "float"


def run_integer(graph: Graph, feeds: Mapping[str, np.ndarray], policy: str, trace: bool = False,
                acc_bits: int | None = None, overflow: str = "wrap", impl: str = "numba",
                float_nodes=(), counts: bool = True) -> SimResult:
    """Execute ``graph`` with the integer arithmetic of ``policy`` (see the module doc).
    ``float_nodes``: nodes to run as float islands whatever their kernel (QDQ units onnxruntime
    leaves unfused, ``qsim.ir.onnx_s8_units``). ``counts=False`` skips counting saturated outputs
    (a pass over every output; those columns are then None)."""
    float_nodes = frozenset(float_nodes)
    names = {n.name for n in graph.nodes()}
    if not float_nodes <= names:
        raise QsimError(f"graph {graph.name!r} has no node {sorted(float_nodes - names)[0]!r} to run in float")
    rt = get_runtime(policy)
    kernels = _kernels(impl)
    acc_bits = 32 if acc_bits is None else int(acc_bits)
    if overflow not in ("wrap", "saturate"):
        raise QsimError(f"overflow must be 'wrap' or 'saturate', got {overflow!r}")
    check_feeds(graph, feeds)
    env = {t: _feed(graph, t, feeds[t], rt) for t in graph.inputs}
    stats = NodeStats(graph)
    for node in graph.nodes():
        step = Step(graph, node, [env[t] for t in node.inputs], rt, kernels, impl, acc_bits, overflow)
        outs, mode = _run_node(step, float_nodes)
        low = high = 0
        for t, value in zip(node.outputs, outs):
            env[t] = value
            if counts and t in step.bounds:
                lo, hi = step.bounds[t]
                low += int(np.count_nonzero(value == lo))
                high += int(np.count_nonzero(value == hi))
        stats.modes.append(mode)
        stats.overflow.append(step.overflow_events)
        stats.low.append(low if counts else None)
        stats.high.append(high if counts else None)
        stats.elements.append(int(sum(np.size(v) for v in outs)))
    outputs = {t: env[t] for t in graph.outputs}
    return SimResult(outputs, dict(env) if trace else None, stats)


__all__ = ["run_integer", "SimResult", "NodeStats", "integer_supported", "integer_kernel_applies"]
