"""Per-layer sensitivity: lower one layer at a time from the base plan and measure what it costs.

    sensitivity(graph, base_plan, evaluation, candidates, profile=None) -> DataFrame

One row per layer x candidate precision: the measured accuracy and its drop against the float
model (``accuracy_drop``) and against the base plan (``drop_vs_base``), the output SQNR, the integer
executor's overflow events and saturated outputs (whole graph, all samples), how it
ran; with a profile, the latency, energy and memory saved on that chip against the base plan (the
cost model), whether the layer runs natively there (``native``: no node newly emulated) and
whether everything still fits in the chip's memories. Every accuracy is a full bit-exact
simulation (cached when a cache folder is given).
"""
from __future__ import annotations

import math

import pandas as pd

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.search.measure import Measurer
from qsim.search.space import Coster, check_layers, parse_base, parse_candidates, plan_for

COLUMNS = ["layer", "nodes", "op", "candidate", "accuracy", "accuracy_drop", "drop_vs_base", "sqnr_db",
           "overflow_events", "saturated", "executed_by"]
COST_COLUMNS = ["native", "fits", "latency_saved_s", "energy_saved_j", "memory_saved_bytes"]


def measurer_for(graph: Graph, evaluation, profile=None, policy: str = "onnxruntime", acc_bits: int | None = None,
                 overflow: str = "wrap", cache_dir=None) -> Measurer:
    """A Measurer; the accumulator width defaults to the profile's (32 bits without one)."""
    if isinstance(evaluation, Measurer):
        return evaluation
    if acc_bits is None:
        acc_bits = 32 if profile is None else _profile(profile).compute.accumulator_bits
    return Measurer(graph, evaluation, policy, acc_bits, overflow, cache_dir)


def _profile(profile):
    from qsim.api import as_profile

    return as_profile(profile)


def sensitivity(graph: Graph, base_plan, evaluation, candidates, profile=None, *, layers=None,
                policy: str = "onnxruntime", acc_bits: int | None = None, overflow: str = "wrap",
                cache_dir=None, progress=None, cost_graph: Graph | None = None) -> pd.DataFrame:
    """See the module doc. ``evaluation``: a ``qsim.evaluation.data.Evaluation`` (or a ``Measurer``);
    ``layers``: {layer: [node, ...]} (default: each node with matrix work);
    ``progress(done, total)`` is called after each measurement; ``cost_graph``: the model as
    deployed (batch 1) when ``graph`` is batched for evaluation (same node names)."""
    base = parse_base(base_plan, graph)
    cands = parse_candidates(candidates)
    layers = check_layers(graph, layers)
    measurer = measurer_for(graph, evaluation, profile, policy, acc_bits, overflow, cache_dir)
    coster = Coster(cost_graph or graph, profile) if profile is not None else None
    base_m = measurer.measure(base)
    base_cost = _cost_or_none(coster, base) if coster else None
    if coster and base_cost is None:
        raise QsimError(f"the base plan {base.name} cannot run on profile {coster.profile.name!r}: "
                        f"{_why(coster, base)}")
    rows, total = [], len(layers) * len(cands)
    for layer, nodes in layers.items():
        for prec in cands:
            plan = plan_for(graph, base, {layer: nodes}, {layer: prec})
            m = measurer.measure(plan)
            row = {"layer": layer, "nodes": ",".join(nodes), "op": graph.node(nodes[0]).op, "candidate": prec.name,
                   "accuracy": m.accuracy, "accuracy_drop": m.accuracy_drop,
                   "drop_vs_base": m.accuracy_drop - base_m.accuracy_drop, "sqnr_db": m.sqnr_db,
                   "overflow_events": m.overflow_events, "saturated": m.saturated, "executed_by": m.executed_by}
            if coster:
                row.update(_savings(coster, plan, base_cost))
            rows.append(row)
            if progress:
                progress(len(rows), total)
    df = pd.DataFrame(rows, columns=COLUMNS + (COST_COLUMNS if coster else []))
    df.attrs.update({"base_plan": base.name, "base_accuracy": base_m.accuracy, "base_drop": base_m.accuracy_drop,
                     "reference_accuracy": measurer.reference_accuracy(), "metric": measurer.metric,
                     "samples": measurer.samples, "simulations": measurer.simulations,
                     "profile": coster.profile.name if coster else None})
    return df


def _cost_or_none(coster: Coster, plan):
    try:
        return coster.cost(plan)
    except QsimError:
        return None


def _why(coster: Coster, plan) -> str:
    try:
        coster.cost(plan)
    except QsimError as exc:
        return str(exc)
    return ""


def _savings(coster: Coster, plan, base_cost) -> dict:
    cost = _cost_or_none(coster, plan)
    if cost is None:  # the chip has no unit that can even emulate this format
        return {"native": False, "fits": False, "latency_saved_s": math.nan, "energy_saved_j": math.nan,
                "memory_saved_bytes": math.nan}
    return {"native": cost.emulated_nodes <= base_cost.emulated_nodes, "fits": cost.fits,
            "latency_saved_s": base_cost.latency_s - cost.latency_s,
            "energy_saved_j": base_cost.energy_j - cost.energy_j,
            "memory_saved_bytes": base_cost.memory_bytes - cost.memory_bytes}
