"""Per-layer sensitivity: lower one layer at a time from the base plan and measure what it costs.

    sensitivity(graph, base_plan, evaluation, candidates, profile=None) -> DataFrame

One row per layer x candidate precision: the measured accuracy and its drop against the float
model (``accuracy_drop``) and against the base plan (``drop_vs_base``), the output SQNR, the integer
executor's overflow events and saturated outputs (whole graph, all samples), how it
ran; with a profile, the latency, energy and memory saved on that chip against the base plan (the
cost model), whether the layer runs natively there (``native``: no node newly emulated) and
whether everything still fits in the chip's memories, and the error band of those estimates
(``qsim.report.band_columns``; the whole band in ``attrs["error_band"]``). Every accuracy is a full bit-exact
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
COST_COLUMNS = ["native", "fits", "latency_saved_s", "energy_saved_j", "memory_saved_bytes", "compute_units",
                "stack", "error_median_pct", "error_worst_pct", "error_band_covers"]


def measurer_for(graph: Graph, evaluation, profile=None, policy: str = "onnxruntime", acc_bits: int | None = None,
                 overflow: str = "wrap", cache_dir=None, ort_cpu: str | None = None) -> Measurer:
    """A Measurer; the accumulator width defaults to the profile's (32 bits without one). ``ort_cpu``:
    the CPU kind whose onnxruntime the onnxruntime policy reproduces (None: ``QSIM_ORT_CPU``, else
    "host"); a ready Measurer keeps its own, and naming another is an error."""
    if isinstance(evaluation, Measurer):
        if ort_cpu is not None and _ort_kind(ort_cpu) != evaluation.ort_cpu_kind:
            raise QsimError(f"ort_cpu={ort_cpu!r}: the Measurer given simulates CPU kind "
                            f"{evaluation.ort_cpu_kind!r}; make it with Measurer(..., ort_cpu={ort_cpu!r})")
        return evaluation
    if acc_bits is None:
        acc_bits = 32 if profile is None else _profile(profile).compute.accumulator_bits
    return Measurer(graph, evaluation, policy, acc_bits, overflow, cache_dir, ort_cpu)


def _ort_kind(cpu: str) -> str:
    from qsim.sim.int_runtime import ort_cpu

    return ort_cpu(cpu)


def _profile(profile):
    from qsim.api import as_profile

    return as_profile(profile)


def sensitivity(graph: Graph, base_plan, evaluation, candidates, profile=None, *, layers=None,
                policy: str = "onnxruntime", acc_bits: int | None = None, overflow: str = "wrap",
                cache_dir=None, progress=None, cost_graph: Graph | None = None,
                ort_cpu: str | None = None) -> pd.DataFrame:
    """See the module doc. ``evaluation``: a ``qsim.evaluation.data.Evaluation`` (or a ``Measurer``);
    ``layers``: {layer: [node, ...]} (default: each node with matrix work);
    ``progress(done, total)`` is called after each measurement; ``cost_graph``: the model as
    deployed (batch 1) when ``graph`` is batched for evaluation (same node names); ``ort_cpu``: the CPU
    kind whose onnxruntime is reproduced ("host", "avx2", "vnni", "arm64"; None: ``QSIM_ORT_CPU``)."""
    base = parse_base(base_plan, graph)
    cands = parse_candidates(candidates)
    layers = check_layers(graph, layers)
    measurer = measurer_for(graph, evaluation, profile, policy, acc_bits, overflow, cache_dir, ort_cpu)
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
                     "profile": coster.profile.name if coster else None, "ort_cpu": measurer.ort_cpu_kind,
                     "error_band": _band(coster, base_cost, df) if coster else None})
    return df


def _band(coster: Coster, base_cost, df: pd.DataFrame) -> dict:
    """The profile's error band for the compute classes of every estimate in the table (the base
    plan's and each lowering's), so its note says when one runs at a precision no validated row covers."""
    from qsim.report import error_band

    units = set(base_cost.compute_units)
    for text in df["compute_units"].dropna():
        units.update(text.split(","))
    return error_band(coster.profile, sorted(units))


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
                "memory_saved_bytes": math.nan, "compute_units": None}
    # the error band of the estimates behind the savings (the base plan's and this one's), as sweep rows give it
    from qsim.report import band_columns

    units = sorted(set(cost.compute_units) | set(base_cost.compute_units))
    return {"native": cost.emulated_nodes <= base_cost.emulated_nodes, "fits": cost.fits,
            "latency_saved_s": base_cost.latency_s - cost.latency_s,
            "energy_saved_j": base_cost.energy_j - cost.energy_j,
            "memory_saved_bytes": base_cost.memory_bytes - cost.memory_bytes,
            "compute_units": ",".join(units), **band_columns(coster.profile, units)}
