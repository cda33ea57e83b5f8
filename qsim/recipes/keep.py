"""Keep named layers or op types in higher precision (mixed-precision fallback, as every deployment
toolchain offers: onnxruntime's ``nodes_to_exclude`` / ``op_types_to_quantize``, TensorRT's layer
precision, llm.int8's skipped modules).

``{name: keep, names: [lm_head], ops: [Softmax, LayerNorm], precision: fp32}`` appends plan
overrides (the last matching override wins, so a keep placed after a plan's overrides wins).
A name or op type that matches no node of the graph is an error naming it.
"""
from __future__ import annotations

from dataclasses import replace

from qsim.errors import QsimError, WorkloadError
from qsim.recipes import RecipeMetadata, RecipeState

METADATA = RecipeMetadata(stage="settings", params={"names": [], "ops": [], "precision": "fp32"},
                          extra_scale_bytes="none (kept layers store their weights at the kept precision)")


def check_params(names=(), ops=(), precision="fp32"):
    from qsim.precision import parse_precision

    for key, value in (("names", names), ("ops", ops)):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise WorkloadError(f"{key}: expected a list of strings, got {value!r}")
    parse_precision(precision)


def keep_plan(plan, graph, names=(), ops=(), precision="fp32"):
    """``plan`` with ``names`` and op types ``ops`` overridden to ``precision``."""
    from qsim.precision import PrecisionPlan, parse_precision

    nodes = graph.nodes()
    for name in names:
        if not any(n.name == name for n in nodes):
            raise QsimError(f"keep: no node named {name!r} in graph {graph.name!r}")
    for op in ops:
        if not any(n.op == op for n in nodes):
            raise QsimError(f"keep: no {op} node in graph {graph.name!r}")
    prec = parse_precision(precision)
    extra = tuple(({"name": n}, prec) for n in names) + tuple(({"op": o}, prec) for o in ops)
    return replace(plan, overrides=plan.overrides + extra) if isinstance(plan, PrecisionPlan) else plan


def run(state: RecipeState, names=(), ops=(), precision="fp32") -> RecipeState:
    return replace(state, plan=keep_plan(state.plan, state.graph, names, ops, precision))
