"""Hardware-aware mixed-precision search.

    search(graph, profile, evaluation, max_drop, objective="latency", candidates=...) -> SearchResult

1. The chip decides what may be chosen: a candidate that the profile cannot run at all, or (with
   ``native_only``) that it would only emulate, is excluded for that layer (``excluded`` says why).
2. Per-layer sensitivity (``qsim.search.sensitivity``): one full simulation per layer and allowed
   candidate, and the cost model's single-layer cost change on the chip.
3. An integer program (``qsim.search.solver``) picks the cheapest per-layer choice whose estimated
   drop fits a budget, for a ladder of budgets around the headroom ``max_drop - base drop``.
4. Every plan it proposes is checked on the whole plan: the cost model (memories must fit, no newly
   emulated node under ``native_only``) and a full bit-exact simulation; a plan whose measured drop
   or overflow breaks the bound is cut off and the program solved again with a budget reduced by
   the excess. The reported accuracy is always measured, never the sum of estimates.
5. The uniform plans (base and each allowed candidate) are measured alongside: the result compares
   the best plan with uniform int8 and says plainly when no plan meets the budget or none beats it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.precision import PrecisionPlan, parse_plan, plan_spec
from qsim.search.measure import Measurement
from qsim.search.sensitivity import measurer_for, sensitivity
from qsim.search.solver import Option, solve
from qsim.search.space import (DEFAULT_CANDIDATES, OBJECTIVES, Coster, Cost, base_choice, check_layers, parse_base,
                               parse_candidates, plan_for)

BUDGET_LADDER = (0.25, 0.5, 0.75, 1.0, 2.0, 4.0)  # multiples of the headroom; <= 1 aim at the budget


@dataclass(frozen=True)
class Point:
    label: str
    plan: PrecisionPlan
    source: str  # "uniform", "base" or "search"
    measured: Measurement
    cost: Cost
    meets: bool  # drop, overflow, fit and native constraints all hold


@dataclass
class SearchResult:
    best: Point | None
    points: list[Point]
    reference: Point | None  # uniform int8, what a plan must beat
    sensitivity: pd.DataFrame
    excluded: dict
    message: str
    objective: str
    max_drop: float
    profile: str
    simulations: int = 0
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)
    hw: Any = None  # the Profile estimated on (its error band)

    @property
    def error_band(self) -> dict | None:
        """The profile's error band (``qsim.report.error_band``) for the compute classes of every
        plan in the table, so its note says when some plan runs at a precision no validated row covers."""
        if self.hw is None:
            return None
        from qsim.report import error_band

        return error_band(self.hw, sorted({u for p in self.points for u in p.cost.compute_units}))

    def table(self) -> pd.DataFrame:
        """One row per verified plan: measured accuracy, costs on the chip, constraints, front, and
        the error band of its cost estimate as the sweep rows give it (``qsim.report.band_columns``);
        the whole band in ``attrs["error_band"]``."""
        from qsim.report import band_columns

        rows = [{"plan": p.label, "source": p.source, "accuracy": p.measured.accuracy,
                 "accuracy_drop": p.measured.accuracy_drop, "sqnr_db": p.measured.sqnr_db,
                 "latency_s": p.cost.latency_s, "energy_j": p.cost.energy_j, "memory_bytes": p.cost.memory_bytes,
                 "overflow_events": p.measured.overflow_events, "fits": p.cost.fits, "meets": p.meets,
                 **(band_columns(self.hw, p.cost.compute_units) if self.hw is not None else {})}
                for p in self.points]
        df = pd.DataFrame(rows)
        if not df.empty:
            df["on_front"] = pareto(df, OBJECTIVES[self.objective])
            df["best"] = [self.best is not None and p is self.best for p in self.points]
        df.attrs["error_band"] = self.error_band
        return df


def pareto(df: pd.DataFrame, cost_column: str) -> list[bool]:
    """Rows not dominated in (accuracy higher, cost lower)."""
    acc, cost = df["accuracy"].tolist(), df[cost_column].tolist()
    return [not any((acc[j] >= acc[i] and cost[j] <= cost[i]) and (acc[j] > acc[i] or cost[j] < cost[i])
                    for j in range(len(df))) for i in range(len(df))]


def search(graph: Graph, profile, evaluation, max_drop: float, objective: str = "latency",
           candidates=DEFAULT_CANDIDATES, native_only: bool = True, max_overflow: int = 0, *, base_plan=None,
           layers=None, policy: str = "onnxruntime", overflow: str = "wrap", cache_dir=None,
           budgets=BUDGET_LADDER, max_rounds: int = 8, progress=None, cost_graph: Graph | None = None,
           ort_cpu: str | None = None) -> SearchResult:
    """See the module doc. ``max_drop``: accuracy drop against the float model (0.01 = 1 point of
    top-1); ``max_overflow``: accumulator overflow events allowed over the evaluation samples;
    ``cost_graph``: the model as deployed (batch 1, say) when ``graph`` is batched for evaluation
    (same node names); ``ort_cpu``: the CPU kind whose onnxruntime the onnxruntime policy reproduces
    ("host", "avx2", "vnni", "arm64"; None: ``QSIM_ORT_CPU``, else "host")."""
    if objective not in OBJECTIVES:
        raise QsimError(f"objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if not 0 <= max_drop < 1:
        raise QsimError(f"max drop {max_drop!r}: expected a fraction in [0, 1) (0.01 = 1 %)")
    if max_overflow < 0:
        raise QsimError(f"max overflow {max_overflow!r}: expected a count >= 0")
    start = time.perf_counter()
    base = parse_base(base_plan, graph)
    cands = parse_candidates(candidates)
    layers = check_layers(graph, layers)
    coster = Coster(cost_graph or graph, profile)
    measurer = measurer_for(graph, evaluation, coster.profile, policy, None, overflow, cache_dir, ort_cpu)
    try:
        base_cost = coster.cost(base)
    except QsimError as exc:
        raise QsimError(f"the base plan {base.name} cannot run on profile {coster.profile.name!r}: {exc}") from None
    at_base = base_choice(graph, base, layers)
    allowed, excluded = _allowed(graph, coster, base, base_cost, layers, at_base, cands, native_only)
    tried = [c for c in cands if any(c in a for a in allowed.values())]
    sens = sensitivity(graph, base, measurer, tried, None, layers=layers,
                       progress=progress) if tried else pd.DataFrame()
    base_drop = measurer.measure(base).accuracy_drop

    def point(label, plan, source):
        cost, m = coster.cost(plan), measurer.measure(plan)
        ok = (m.accuracy_drop <= max_drop + 1e-12 and m.overflow_events <= max_overflow and cost.fits
              and (not native_only or cost.emulated_nodes <= base_cost.emulated_nodes))
        return Point(label, plan, source, m, cost, ok)

    points: dict[str, Point] = {}
    points[_key(base)] = point(f"{base.name} (base)", base, "base")
    for prec in cands:
        plan = PrecisionPlan(prec)
        if _key(plan) in points or not _runnable(coster, plan, base_cost, native_only):
            continue
        points[_key(plan)] = point(f"uniform {prec.name}", plan, "uniform")
    reference = _reference(coster, measurer, points, base_cost, point)

    options = _options(graph, coster, base, base_cost, layers, at_base, allowed, sens, objective)
    headroom = max_drop - base_drop
    cuts: list[dict] = []
    for factor in budgets:
        budget = headroom * factor
        for _ in range(max_rounds if factor <= 1 else 1):
            choice = solve(options, budget, cuts)
            if choice is None:
                break
            plan = plan_for(graph, base, layers, choice)
            key = _key(plan)
            if key in points:
                if factor <= 1 and not points[key].meets:
                    cuts.append(choice)
                    continue
                break
            cost = coster.cost(plan)
            if not cost.fits or (native_only and cost.emulated_nodes > base_cost.emulated_nodes):
                cuts.append(choice)  # the whole plan is checked, not only its layers
                continue
            points[key] = p = point(_label(choice, at_base), plan, "search")
            if p.meets or factor > 1:
                break
            cuts.append(choice)
            budget -= max(p.measured.accuracy_drop - max_drop, 0.0) + 1e-9
    valid = [p for p in points.values() if p.meets]
    best = min(valid, key=lambda p: (p.cost.objective(objective), -p.measured.accuracy)) if valid else None
    result = SearchResult(best, list(points.values()), reference, sens, excluded, "", objective, max_drop,
                          coster.profile.name, measurer.simulations, time.perf_counter() - start,
                          {"simulation_seconds": measurer.seconds, "samples": measurer.samples,
                           "metric": measurer.metric, "base_drop": base_drop, "ort_cpu": measurer.ort_cpu_kind},
                          coster.profile)
    result.message = _verdict(result)
    return result


def _key(plan: PrecisionPlan) -> str:
    return repr(plan_spec(plan))


def _runnable(coster: Coster, plan, base_cost: Cost, native_only: bool) -> bool:
    try:
        cost = coster.cost(plan)
    except QsimError:
        return False
    return not native_only or cost.emulated_nodes <= base_cost.emulated_nodes


def _allowed(graph, coster, base, base_cost, layers, at_base, cands, native_only):
    """Per layer, the candidates the chip allows (the base precision always); why others are not."""
    allowed, excluded = {}, {}
    for layer, nodes in layers.items():
        allowed[layer] = [at_base[layer]]
        for prec in cands:
            if prec == at_base[layer]:
                continue
            plan = plan_for(graph, base, layers, {layer: prec})
            try:
                cost = coster.cost(plan)
            except QsimError as exc:
                excluded.setdefault(prec.name, f"cannot run on {coster.profile.name}: {exc}")
                continue
            if native_only and cost.emulated_nodes > base_cost.emulated_nodes:
                excluded.setdefault(prec.name, f"not native on {coster.profile.name} (emulated on a wider unit; "
                                               "allow with native_only=False / --allow-emulated)")
                continue
            allowed[layer].append(prec)
    return allowed, excluded


def _options(graph, coster, base, base_cost, layers, at_base, allowed, sens, objective):
    drops = {} if sens.empty else {(r.layer, r.candidate): r.drop_vs_base for r in sens.itertuples(index=False)}
    base_value = base_cost.objective(objective)
    options = {}
    for layer, precs in allowed.items():
        options[layer] = [Option(at_base[layer], 0.0, 0.0)]
        for prec in precs[1:]:
            cost = coster.cost(plan_for(graph, base, layers, {layer: prec}))
            options[layer].append(Option(prec, cost.objective(objective) - base_value, drops[(layer, prec.name)]))
    return options


def _reference(coster, measurer, points, base_cost, point) -> Point | None:
    """Uniform int8, measured (whether or not it was a candidate)."""
    plan = parse_plan("int8")
    if _key(plan) not in points:
        try:
            coster.cost(plan)
        except QsimError:
            return None
        points[_key(plan)] = point("uniform int8", plan, "uniform")
    return points[_key(plan)]


def _label(choice, at_base) -> str:
    changed = [f"{layer}={prec.name}" for layer, prec in choice.items() if prec != at_base[layer]]
    return "mixed: " + ", ".join(changed) if changed else "base"


def _verdict(r: SearchResult) -> str:
    obj = unit = r.objective
    if r.best is None:
        closest = min(r.points, key=lambda p: p.measured.accuracy_drop)
        return (f"no plan meets an accuracy drop of at most {r.max_drop:.4g} on {r.profile} (with memories that fit "
                f"and overflow within the bound): the smallest measured drop was {closest.measured.accuracy_drop:.4g} "
                f"({closest.label})")
    ref, best, value = r.reference, r.best, r.best.cost.objective(obj)
    found = (f"{best.label}: measured drop {best.measured.accuracy_drop:.4g} (limit {r.max_drop:.4g}), "
             f"{unit} {_fmt(obj, value)}")
    if ref is not None and value >= ref.cost.objective(obj) - 1e-15:
        if ref.meets:
            return f"no plan within a drop of {r.max_drop:.4g} has a lower {unit} than uniform int8 on {r.profile}; " \
                   f"the best is {found}"
        base = next(p for p in r.points if p.source == "base")
        return (f"no plan within a drop of {r.max_drop:.4g} has a lower {unit} than uniform int8 on {r.profile}, "
                f"which itself breaks the budget (drop {ref.measured.accuracy_drop:.4g}); the best plan within it "
                f"is {found}, {_below(value, base.cost.objective(obj))} the base plan's "
                f"{_fmt(obj, base.cost.objective(obj))}")
    gain = "" if ref is None else f", {_below(value, ref.cost.objective(obj))} uniform int8's " \
                                  f"{_fmt(obj, ref.cost.objective(obj))}"
    return f"best plan on {r.profile}: {found}{gain}"


def _below(value: float, other: float) -> str:
    return f"{100 * (1 - value / other):.1f} % below" if other else "level with"


def _fmt(objective: str, value: float) -> str:
    if objective == "latency":
        return f"{value * 1e6:.2f} us"
    if objective == "energy":
        return f"{value * 1e6:.3f} uJ"
    return f"{value / 1024:.2f} KiB"
