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

if TYPE_CHECKING:  # annotations only: ``qsim --help`` imports this module for EXECUTORS
    import pandas as pd

    from qsim.ir.graph import Graph

EXECUTORS = ("auto", "integer", "fake")
DEFAULT_POLICY = {".onnx": "onnxruntime", ".tflite": "tflite-reference"}  # the runtime each file targets


class SimRun(NamedTuple):
    outputs: dict           # IR output tensor -> array (codes in the storage type where quantized)
    trace: dict | None      # IR tensor -> array, when asked
    node_stats: object      # the integer executor's per-node statistics (integer.NodeStats) or None
    how: str                # which executor ran, for tables and reports
    executor: str           # "integer", "fake" or "float"

    @property
    def stats(self) -> pd.DataFrame | None:
        """The per-node statistics as a DataFrame (built when read), None outside the integer executor."""
        return None if self.node_stats is None else self.node_stats.frame()


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
    if getattr(plan, "recipes", None) or isinstance(plan, Mapping) and plan.get("recipes"):
        return _with_recipes(graph, plan, calib, observer, **options)
    if is_fp32(plan):
        return graph
    from qsim.sim.dynamic_graph import dynamic_graph, has_dynamic

    if has_dynamic(plan):  # activations quantized at run time: nothing to calibrate
        return dynamic_graph(graph, plan)
    from qsim.sim.quantize_graph import quantize_graph

    return quantize_graph(graph, plan, calib, **{"observer": observer, **options})


def _with_recipes(graph: Graph, plan, calib, observer: str, **options) -> Graph:
    """A plan with ``recipes`` (``qsim.recipes``): the graph they produce, when it runs as a static
    quantized graph; recipes emulated at run time are refused here rather than dropped."""
    from qsim.recipes import apply

    applied = apply(graph, plan, calib, **{"observer": observer, **options})
    if applied.hooks:
        raise QsimError(f"model {graph.name!r}: the plan's recipes need value emulation at run time "
                        f"({applied.how}); run them with qsim.recipes.apply(graph, plan, calib).run(feeds)")
    return applied.graph


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
    ({"Mul", "MulConst"}, ("int16",), "LiteRT's int16 MUL rounds a few products (about 1 in 2,000) in a way "
     "not reproduced"),
    ({"HardSwish"}, ("int16",), "LiteRT's HARD_SWISH takes float32, uint8 and int8 only (int16 fails at invoke): "
     "no runtime answer"),
]


def _binary_quant(graph: Graph, node):
    """The quantization of the two operands and the output, or None unless all three are per-tensor
    integer quantizations (an operand may be a weight: AddConst / MulConst)."""
    ins = [*node.inputs[:2], *node.weights.values()][:2]
    qs = [graph.quant_params.get(t) for t in (*ins, node.outputs[0])]
    return None if any(v is None or v.scale.size != 1 or v.int_fmt is None for v in qs) else qs


def _litert_add_aborts(graph: Graph, node) -> str | None:
    """LiteRT's ADD Prepare checks its output multiplier 2 * max(s1, s2) / (2^left_shift * s_out) < 1
    (left_shift 20 for int8 and uint8, 15 for int16) and aborts the process otherwise (measured: s_in / s_out
    of 2^19 for int8 and uint8, 2^14 for int16, every kernel set): there is no runtime answer to reproduce.
    An int16 ADD on the power-of-two path (``pot_scale_int16`` and power-of-two scales) computes no such
    multiplier: its Prepare fails on an input shift > 0 instead, a RuntimeError at allocate_tensors and no
    abort (measured: s_in / s_out of 2 and 2^14, every kernel set); the int16 ADD kernel refuses those
    shifts with that reason (``int_elementwise._pot_int16_add``)."""
    if node.op not in ("Add", "AddConst"):
        return None
    qs = _binary_quant(graph, node)
    if qs is None or qs[2].fmt.name not in ("int8", "uint8", "int16"):
        return None
    from qsim.sim.int_elementwise import litert_pot_scale

    s1, s2, so = (float(v.scale.reshape(-1)[0]) for v in qs)
    if qs[2].fmt.name == "int16" and node.attrs.get("pot_scale_int16") and all(map(litert_pot_scale, (s1, s2, so))):
        return None
    shift = 15 if qs[2].fmt.name == "int16" else 20
    m = 2.0 * max(s1, s2) / ((1 << shift) * so)
    if m < 1.0:
        return None
    return (f"node {node.name!r} (Add, {qs[2].fmt.name}): output scale {so:.6g} is below 2 * max(input scales) / "
            f"2^{shift} (output multiplier {m:.6g} >= 1), where LiteRT's ADD aborts the process: no runtime answer")


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
        if why := _litert_add_aborts(graph, node):
            return why
    return None


def choose_executor(graph: Graph, policy: str = "onnxruntime", executor: str = "auto") -> str:
    """"integer", "fake" or "float": which executor ``run_model`` runs (the integer executor is
    refused, with the reason, where it would not equal the runtime ``policy`` names)."""
    if executor not in EXECUTORS:
        raise QsimError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    if not graph.quant_params:
        return "float"
    if executor == "integer" or executor == "auto" and integer_ready(graph):
        why = refusal(graph, policy)
        if why is not None:
            raise QsimError(f"graph {graph.name!r} under policy {policy!r}: {why}; not simulated rather than "
                            "answered differently from the runtime")
        return "integer"
    return "fake"


def run_model(graph: Graph, feeds: Mapping[str, np.ndarray], policy: str = "onnxruntime",
              executor: str = "auto", trace: bool = False, acc_bits: int | None = None,
              overflow: str = "wrap", impl: str = "numba", float_nodes=(), counts: bool = True,
              plan=None) -> SimRun:
    """Run ``graph`` (step 2 of the module doc); ``acc_bits``, ``overflow``, ``impl`` and ``counts``
    go to the integer executor. ``plan``: an ``plan.ExecutionPlan`` of this graph with these
    settings (``executor`` already chosen as "integer"), run instead of the per-node executor."""
    if plan is not None:
        res = plan.run(feeds, trace=trace, counts=counts)
        return SimRun(res.outputs, res.trace, res.node_stats, plan.how(res.node_stats), "integer")
    chosen = choose_executor(graph, policy, executor)
    if chosen == "float":
        from qsim.sim.executor import run_float

        env = run_float(graph, feeds, trace=True)
        return SimRun({t: env[t] for t in graph.outputs}, env if trace else None, None, "float reference", "float")
    if chosen == "integer":
        from qsim.sim.integer import run_integer

        res = run_integer(graph, feeds, policy, trace=trace, acc_bits=acc_bits, overflow=overflow, impl=impl,
                          float_nodes=float_nodes, counts=counts)
        how = f"integer executor ({policy}): {res.node_stats.integer_nodes()}/{len(res.node_stats)} nodes integer"
        if any(q.fmt.element_type.startswith("float8") for q in graph.quant_params.values()):
            how += ", fp8 by value emulation"
        return SimRun(res.outputs, res.trace, res.node_stats, how, "integer")
    from qsim.sim.quantize_graph import run_fake_quant

    env = run_fake_quant(graph, feeds, trace=True)
    return SimRun({t: env[t] for t in graph.outputs}, env if trace else None, None,
                  "fake quantization (float kernels, QDQ)", "fake")
