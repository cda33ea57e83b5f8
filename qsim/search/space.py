"""The search space: which layers choose a precision, which formats each may take, and what a
choice costs on a chip.

A *layer* is a group of nodes that take one precision together: by default every node that does
matrix work (MACs > 0: Conv, Gemm, MatMul), one group each; a caller may group nodes (all
attention projections of a block) to keep the space small. A *choice* maps each layer to a
candidate precision; the plan it makes is the base plan with one ``name`` override per node whose
layer left the base. Costs come from the analytical cost model (``qsim.cost.estimate_graph``);
"memory" is weights plus peak activations plus state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from qsim.errors import QsimError
from qsim.ir.counts import node_counts
from qsim.ir.graph import Graph
from qsim.precision import LayerPrecision, PrecisionPlan, check_simulable, parse_plan, parse_precision

OBJECTIVES = {"latency": "latency_s", "energy": "energy_j", "memory": "memory_bytes"}
DEFAULT_CANDIDATES = ("int8", "w4a8", "int4", "fp8")


def parse_candidates(text: str | Sequence) -> list[LayerPrecision]:
    """``"int8,int4,fp8"`` (or a list) -> precisions, each one the simulator can run."""
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    if not items or any(not str(s).strip() for s in items):
        raise QsimError(f"--candidates {text!r}: expected a comma-separated list of precisions (int8,int4,fp8)")
    out = []
    for item in items:
        prec = parse_precision(item)
        check_simulable(PrecisionPlan(prec))
        if prec not in out:
            out.append(prec)
    return out


def default_layers(graph: Graph) -> dict[str, tuple[str, ...]]:
    """One layer per node with matrix work, in topological order."""
    layers = {n.name: (n.name,) for n in graph.nodes() if node_counts(graph, n).macs > 0}
    if not layers:
        raise QsimError(f"model {graph.name!r} has no node with matrix work (Conv, Gemm, MatMul) to choose a "
                        "precision for")
    return layers


def check_layers(graph: Graph, layers: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    if layers is None:
        return default_layers(graph)
    names, seen = {n.name for n in graph.nodes()}, set()
    out = {}
    for layer, nodes in layers.items():
        nodes = (nodes,) if isinstance(nodes, str) else tuple(nodes)
        unknown = [n for n in nodes if n not in names]
        if unknown or not nodes:
            raise QsimError(f"layer {layer!r}: model {graph.name!r} has no node {unknown[0] if unknown else '(none)'!r}")
        if seen & set(nodes):
            raise QsimError(f"layer {layer!r}: node {sorted(seen & set(nodes))[0]!r} is in two layers")
        seen |= set(nodes)
        out[str(layer)] = nodes
    return out


def make_plan(base: PrecisionPlan, layers: Mapping[str, Sequence[str]], choice: Mapping[str, LayerPrecision]) -> PrecisionPlan:
    """The base plan with each chosen layer's nodes overridden by name (layers left at the base
    precision add nothing, so equal plans have equal keys)."""
    overrides = list(base.overrides)
    for layer, prec in choice.items():
        for node in layers[layer]:
            overrides.append(({"name": node}, prec))
    return PrecisionPlan(base.default, tuple(overrides))


def base_choice(graph: Graph, base: PrecisionPlan, layers: Mapping[str, Sequence[str]]) -> dict[str, LayerPrecision]:
    """Each layer's precision under the base plan (its first node's)."""
    return {layer: base.for_node(graph.node(nodes[0])) for layer, nodes in layers.items()}


def plan_for(graph: Graph, base: PrecisionPlan, layers, choice: Mapping[str, LayerPrecision]) -> PrecisionPlan:
    """``make_plan`` with only the layers whose choice differs from the base."""
    at_base = base_choice(graph, base, layers)
    return make_plan(base, layers, {k: v for k, v in choice.items() if v != at_base[k]})


@dataclass(frozen=True)
class Cost:
    latency_s: float
    energy_j: float
    memory_bytes: int
    weight_bytes: int
    fits: bool
    emulated_nodes: int
    compute_units: tuple[str, ...] = ()  # the compute classes the estimate ran at (what its error band covers)

    def objective(self, name: str) -> float:
        return float(getattr(self, OBJECTIVES[name]))


class Coster:
    """The cost model's figures for plans of one graph on one profile, memoized."""

    def __init__(self, graph: Graph, profile):
        from qsim.api import as_profile

        self.graph, self.profile = graph, as_profile(profile)
        self._memo: dict = {}

    def cost(self, plan: PrecisionPlan) -> Cost:
        """Raises QsimError where the profile cannot run a format at all (not even emulated)."""
        from qsim.cost.estimate import estimate_graph
        from qsim.precision import plan_spec

        key = repr(plan_spec(plan))
        if key not in self._memo:
            t = estimate_graph(self.graph, plan, self.profile).totals
            memory = int(t["weight_bytes"] + t["peak_activation_bytes"] + t["state_bytes"])
            self._memo[key] = Cost(float(t["latency_s"]), float(t["energy_j"]), memory, int(t["weight_bytes"]),
                                   all(t["fits"].values()), int(t["emulated_nodes"]), tuple(t["compute_units"]))
        return self._memo[key]


def parse_base(base, graph: Graph) -> PrecisionPlan:
    plan = check_simulable(parse_plan(base if base is not None else "int8"))
    from qsim.workload import check_plan_matches

    check_plan_matches(plan, graph, "base plan")
    return plan
