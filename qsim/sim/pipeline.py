"""The one simulation flow behind ``qsim.simulate``, evaluation and ``qsim validate``:

1. ``prepare``: an already-quantized graph runs with its own parameters (a plan is refused); a
   float graph without a plan (or at fp32) stays float; a float graph with a plan is quantized by
   ``quantize_graph`` calibrated on the given batches;
2. ``run_model``: choose the executor (``EXECUTORS``): the integer executor (bit-accurate for the
   policy) where it models the graph, else fake quantization (float kernels with
   quantize-dequantize), or the float reference for an unquantized graph; run it; say which ran.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, NamedTuple

import numpy as np

from qsim.errors import QsimError
from qsim.ir.graph import Graph

if TYPE_CHECKING:
    import pandas as pd

EXECUTORS = ("auto", "integer", "fake")
DEFAULT_POLICY = {".onnx": "onnxruntime", ".tflite": "tflite-reference"}  # the runtime each file targets


class SimRun(NamedTuple):
    outputs: dict           # IR output tensor -> array (codes in the storage type where quantized)
    trace: dict | None      # IR tensor -> array, when asked
    stats: pd.DataFrame | None  # the integer executor's per-node statistics
    how: str                # which executor ran, for tables and reports
    executor: str           # "integer", "fake" or "float"


def is_fp32(plan) -> bool:
    """Whether ``plan`` (None, a name, a PrecisionPlan, a YAML-like dict) leaves the model in fp32;
    a plan naming a format the simulator cannot run is refused here (``check_simulable``)."""
    if plan is None:
        return True
    from qsim.numerics.formats import FP32
    from qsim.precision import check_simulable, parse_plan

    plan = check_simulable(parse_plan(plan))
    formats = {f for p in plan.precisions() for f in (p.weight, p.activation)}
    return not plan.overrides and formats == {FP32}


def plan_policy(plan) -> str:
    """The requantization policy a plan names (``check_simulable`` allows one), else onnxruntime."""
    from qsim.precision import parse_plan

    return next(iter(parse_plan(plan).policies), "onnxruntime")


def prepare(graph: Graph, plan, calib: list[Mapping[str, np.ndarray]], observer: str = "minmax",
            **options) -> Graph:
    """The graph to execute (step 1 of the module doc). ``options`` go to ``quantize_graph``."""
    if graph.quant_params:
        if plan is not None:
            raise QsimError(f"model {graph.name!r} is already quantized: its own scales and zero points are "
                            "used unchanged; a plan applies to float models only")
        return graph
    if is_fp32(plan):
        return graph
    from qsim.sim.dynamic_graph import dynamic_graph, has_dynamic

    if has_dynamic(plan):  # activations quantized at run time: nothing to calibrate
        return dynamic_graph(graph, plan)
    from qsim.sim.quantize_graph import quantize_graph

    return quantize_graph(graph, plan, calib, **{"observer": observer, **options})


def integer_ready(qgraph: Graph) -> bool:
    """Whether the integer executor models this graph: it has every op, and no activation is
    fp16/bf16 (the executor keeps unquantized tensors in fp32, while ``run_fake_quant`` rounds them
    to their format: w8a16 plans)."""
    from qsim.sim.integer import integer_supported

    half = any(s.kind == "activation" and s.dtype in ("float16", "bfloat16") for s in qgraph.tensors.values())
    return not half and all(integer_supported(n.op) for n in qgraph.nodes())


# LiteRT cases qsim does not reproduce bit for bit (measured by differential fuzzing, LiteRT 2.3):
# refused rather than answered differently. (IR op, stored type of its first input or output, why)
_LITERT_REFUSED = [
    ({"Sub", "SubConst"}, ("int8", "uint8", "int16"), "quantized SUB has no integer pipeline here"),
    ({"Sigmoid", "Tanh", "Softmax"}, ("int16",), "LiteRT's int16 LOGISTIC / TANH / SOFTMAX are not reproduced"),
    ({"Conv", "Gemm"}, ("int16",), "the int16x8 scheme (int16 activations, int64 bias) is not modelled"),
    ({"ReduceMean"}, ("int8", "uint8", "int16"), "LiteRT's quantized MEAN (an integer sum and its own "
     "requantization per kernel set) is not modelled"),
]


def refusal(graph: Graph, policy: str) -> str | None:
    """Why the integer executor would not equal the runtime ``policy`` names on ``graph``, or None."""
    from qsim.numerics.policies import Kernels
    from qsim.sim.int_runtime import get_runtime

    rt = get_runtime(policy)
    if rt.lut is not Kernels.TFLITE_REFERENCE:  # not LiteRT: its unmodelled ops are refused by the executor
        return None
    for node in graph.nodes():
        dtypes = {q.fmt.element_type for t in (node.inputs[:1] + node.outputs[:1]) if (q := graph.quant_params.get(t))}
        for ops, types, why in _LITERT_REFUSED:
            if node.op in ops and dtypes & set(types):
                return f"node {node.name!r} ({node.op}, {'/'.join(sorted(dtypes & set(types)))}): {why}"
        if rt.add is Kernels.XNNPACK and node.op in ("Add", "AddConst", "Mul", "MulConst") and "int16" in dtypes:
            return (f"node {node.name!r} ({node.op}, int16): XNNPACK delegates int8 only; the builtin int16 "
                    "kernel it falls back to is not modelled under this policy")
    return None


def run_model(graph: Graph, feeds: Mapping[str, np.ndarray], policy: str = "onnxruntime",
              executor: str = "auto", trace: bool = False, acc_bits: int | None = None,
              overflow: str = "wrap", impl: str = "numba", float_nodes=()) -> SimRun:
    """Run ``graph`` (step 2 of the module doc); ``acc_bits``, ``overflow`` and ``impl`` go to the
    integer executor."""
    if executor not in EXECUTORS:
        raise QsimError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    if not graph.quant_params:
        from qsim.sim.executor import run_float

        env = run_float(graph, feeds, trace=True)
        return SimRun({t: env[t] for t in graph.outputs}, env if trace else None, None, "float reference", "float")
    if executor == "integer" or executor == "auto" and integer_ready(graph):
        from qsim.sim.integer import run_integer

        why = refusal(graph, policy)
        if why is not None:
            raise QsimError(f"graph {graph.name!r} under policy {policy!r}: {why}; not simulated rather than "
                            "answered differently from the runtime")

        res = run_integer(graph, feeds, policy, trace=trace, acc_bits=acc_bits, overflow=overflow, impl=impl,
                          float_nodes=float_nodes)
        modes = res.stats["mode"].value_counts()
        how = f"integer executor ({policy}): {int(modes.get('integer', 0))}/{len(res.stats)} nodes integer"
        if any(q.fmt.element_type.startswith("float8") for q in graph.quant_params.values()):
            how += ", fp8 by value emulation"
        return SimRun(res.outputs, res.trace, res.stats, how, "integer")
    from qsim.sim.quantize_graph import run_fake_quant

    env = run_fake_quant(graph, feeds, trace=True)
    return SimRun({t: env[t] for t in graph.outputs}, env if trace else None, None,
                  "fake quantization (float kernels, QDQ)", "fake")
