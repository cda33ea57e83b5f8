"""Named, composable quantization recipes: what deployment toolchains do beyond plain min/max PTQ.

A recipe list lives in the precision section of a workload or sweep spec::

    precision: {plan: w8a8, recipes: [{name: smoothquant, alpha: 0.5}, {name: gptq, group: 128}]}

or is given from Python: ``qsim.recipes.apply(graph, plan, calib, recipes)`` returns an ``Applied``
(the quantized graph, how it runs, and ``Applied.run(feeds)`` -> real-valued outputs).

**Stages.** Every recipe belongs to one stage; ``apply`` runs the stages in this order (recipes of
one stage in the order given) and quantizes the graph between ``float`` and ``quantized``:

1. ``settings``: change the plan or the quantizer's options (``keep``: names / op types stay in
   higher precision; ``rtn``: the weight group size);
2. ``float``: rewrite the float graph so that it quantizes better, outputs unchanged (SmoothQuant,
   AWQ, cross-layer equalization);
3. ``runtime``: value emulation at run time of what no static TensorQuant describes (per-token
   dynamic activations, KV-cache quantization): hooks on node inputs / output tensors, and the
   plan's activations they replace set to float for the quantizer;
4. ``quantizer``: quantize the graph in place of ``qsim.sim.quantize_graph.quantize_graph`` with the
   plan and options (entropy calibration); without one, ``quantize_graph`` runs (a recipe module may
   contribute its options before any stage runs: ``quantizer_options(**params) -> dict``);
5. ``quantized``: rewrite the quantized graph (GPTQ's weight codes).

**Registering a recipe is one line** in ``RECIPES``: ``"name": Recipe("qsim.recipes.module")`` (or
``Recipe("qsim.recipes.module", stage="float")`` when its METADATA names no stage). A module
exposes ``METADATA`` (a ``RecipeMetadata``, or a dict with any of its keys: ``stage``, ``params`` =
{name: default} (else taken from ``apply``'s signature), ``extra_scale_bytes``,
``extra_inference_passes`` (extra passes over each affected tensor at run time),
``calibration_passes``, ``reference``, ``executed_by``; other keys are kept in ``extra``) and either

* ``apply(graph, calib, **params) -> graph`` (a *plain* recipe: stage ``float`` returns a float
  graph; ``quantizer`` is given ``plan=`` and the quantizer's options and returns the quantized
  graph; ``quantized`` rewrites the quantized graph and is given the float graph as keyword
  ``reference`` when it declares it), or
* ``run(state, **params) -> state`` on a ``RecipeState`` (every stage; the LLM recipes here).

Parameters are checked against the metadata's ``params`` (and the module's ``check_params`` when it
has one): an unknown recipe or parameter is a one-line ``WorkloadError`` naming the recipe and the
known names; a recipe that cannot apply to a graph raises naming the node.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import import_module
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from qsim.errors import QsimError, WorkloadError
from qsim.ir.graph import Graph

STAGES = ("settings", "float", "runtime", "quantizer", "quantized")


@dataclass(frozen=True)
class RecipeMetadata:
    stage: str
    params: Mapping[str, Any] = field(default_factory=dict)  # name -> default
    extra_scale_bytes: Any = "none"  # bytes, or a sentence saying which scales are added
    extra_inference_passes: int = 0
    calibration_passes: int = 0
    reference: str = ""
    executed_by: str = "as the plan runs (integer executor where it models the graph)"
    extra: Mapping[str, Any] = field(default_factory=dict)  # a module's other keys (cost-model details)


@dataclass(frozen=True)
class Hook:
    """A value-emulation step at run time: ``fn(array) -> array`` on input ``index`` of node
    ``target`` (``kind="input"``) or on the tensor ``target`` when produced (``kind="output"``)."""
    kind: str
    target: str
    fn: Callable[[np.ndarray], np.ndarray]
    index: int = 0


@dataclass(frozen=True)
class RecipeState:
    graph: Graph  # the float graph (rewritten by float-stage recipes)
    calib: tuple  # calibration batches (dicts of graph inputs)
    plan: Any  # PrecisionPlan
    options: Mapping[str, Any] = field(default_factory=dict)  # quantize_graph keyword options
    qgraph: Graph | None = None  # after quantization
    hooks: tuple[Hook, ...] = ()
    notes: tuple[str, ...] = ()  # how the run is executed, for tables


_NOT_PARAMS = ("graph", "model", "calib", "plan", "reference")


@dataclass(frozen=True)
class Recipe:
    """A registered recipe: the module that implements it (imported on first use)."""
    module: str
    stage: str | None = None  # for a module whose METADATA names none

    @cached_property
    def impl(self):
        return import_module(self.module)

    @property
    def metadata(self) -> RecipeMetadata:
        meta = self.impl.METADATA
        if isinstance(meta, RecipeMetadata):
            return meta
        import inspect

        known = set(RecipeMetadata.__dataclass_fields__) - {"extra"}
        fields = {k: v for k, v in meta.items() if k in known}
        fields.setdefault("stage", self.stage)
        if "params" not in fields:
            signature = inspect.signature(self.impl.apply).parameters.values()
            fields["params"] = {p.name: p.default for p in signature if p.name not in _NOT_PARAMS
                                and p.default is not inspect.Parameter.empty}
        if fields["stage"] not in STAGES:
            raise QsimError(f"recipe module {self.module}: stage {fields['stage']!r}; give one of {', '.join(STAGES)}")
        return RecipeMetadata(**fields, extra={k: v for k, v in meta.items() if k not in known})

    def run(self, state: RecipeState, params: Mapping[str, Any]) -> RecipeState:
        if hasattr(self.impl, "run"):
            return self.impl.run(state, **params)
        stage = self.metadata.stage
        if stage == "float":
            return replace(state, graph=self.impl.apply(state.graph, list(state.calib), **params))
        if stage == "quantizer":
            plan = replace(state.plan, recipes=())
            return replace(state, qgraph=self.impl.apply(state.graph, list(state.calib), plan=plan,
                                                         **{**state.options, **params}))
        if stage == "quantized":
            import inspect

            extra = {"reference": state.graph} if "reference" in inspect.signature(self.impl.apply).parameters else {}
            return replace(state, qgraph=self.impl.apply(state.qgraph, list(state.calib), **params, **extra))
        raise QsimError(f"recipe module {self.module}: a plain apply(graph, calib) recipe is of stage float or "
                        f"quantized, not {stage!r}")


# The registry: one line per recipe.
RECIPES: dict[str, Recipe] = {
    "keep": Recipe("qsim.recipes.keep"),
    "rtn": Recipe("qsim.recipes.rtn"),
    "smoothquant": Recipe("qsim.recipes.smoothquant"),
    "awq": Recipe("qsim.recipes.awq"),
    "gptq": Recipe("qsim.recipes.gptq"),
    "dynamic": Recipe("qsim.recipes.dynamic_tokens"),
    "kv_cache": Recipe("qsim.recipes.kv_cache"),
    "entropy": Recipe("qsim.recipes.entropy", stage="quantizer"),
    "bias_correction": Recipe("qsim.recipes.bias_correction", stage="float"),
    "equalization": Recipe("qsim.recipes.equalization", stage="float"),
}


@dataclass(frozen=True)
class RecipeCall:
    name: str
    params: Mapping[str, Any]

    @property
    def recipe(self) -> Recipe:
        return RECIPES[self.name]

    def spec(self) -> dict:
        return {"name": self.name, **self.params}


def parse_recipe(item: Any, where: str = "recipes[0]") -> RecipeCall:
    """``"gptq"``, ``{name: gptq, group: 128}`` or a RecipeCall -> a checked RecipeCall. Errors are
    one-line ``WorkloadError``s whose ``key`` is the recipe's place (``where``, ``where.name``,
    ``where.PARAM``)."""
    if isinstance(item, RecipeCall):
        return item
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise WorkloadError(f"expected a recipe name or {{name: ..., params}}, got {item!r}", key=where)
    name = item["name"]
    if name not in RECIPES:
        raise WorkloadError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}",
                            key=f"{where}.name")
    meta = RECIPES[name].metadata
    params = {k: v for k, v in item.items() if k != "name"}
    unknown = sorted(set(params) - set(meta.params))
    if unknown:
        raise WorkloadError(f"recipe {name!r} has no parameter {unknown[0]!r}; its parameters: "
                            f"{', '.join(sorted(meta.params)) or 'none'}", key=f"{where}.{unknown[0]}")
    checker = getattr(RECIPES[name].impl, "check_params", None)
    if checker is not None:
        try:
            checker(**params)
        except (WorkloadError, ValueError, TypeError) as exc:
            message = exc.message if isinstance(exc, WorkloadError) else str(exc)
            param, _, text = message.partition(": ")
            key = f"{where}.{param}" if param in params else where
            raise WorkloadError(f"recipe {name!r}: {text if param in params else message}", key=key) from None
    return RecipeCall(name, {**meta.params, **params})


def parse_recipes(items: Any, where: str = "recipes") -> tuple[RecipeCall, ...]:
    if items is None:
        return ()
    if not isinstance(items, (list, tuple)):
        raise WorkloadError(f"{where}: expected a list of recipes, got {items!r}")
    return tuple(parse_recipe(item, f"{where}[{i}]") for i, item in enumerate(items))


@dataclass(frozen=True)
class Applied:
    """A graph after its recipes: ``graph`` is what runs (quantized unless the plan is fp32)."""
    graph: Graph
    hooks: tuple[Hook, ...]
    how: str

    def run(self, feeds: Mapping[str, np.ndarray], policy: str = "onnxruntime") -> dict[str, np.ndarray]:
        """Real-valued outputs: the simulator's own flow when no hook applies, else value emulation."""
        from qsim.sim.metrics import real_value

        if self.hooks:
            from qsim.sim.quantize_graph import run_fake_quant

            outs = run_fake_quant(self.graph, feeds, hooks=self.hooks)
        else:
            from qsim.sim.pipeline import run_model

            outs = run_model(self.graph, feeds, policy).outputs
        return {t: real_value(self.graph, t, v) for t, v in outs.items()}


def apply(graph: Graph, plan, calib: Sequence[Mapping[str, np.ndarray]], recipes=(),
          **options) -> Applied:
    """Run ``recipes`` (names, ``{name: ..., params}`` mappings or RecipeCalls) on a float graph
    for ``plan`` (anything ``parse_plan`` takes; a plan's own ``recipes`` come first), calibrated
    on ``calib``. ``options`` go to ``quantize_graph`` (a recipe may change them)."""
    from qsim.precision import parse_plan
    from qsim.sim.pipeline import is_fp32

    plan = parse_plan(plan)
    calls = tuple(getattr(plan, "recipes", ())) + parse_recipes(list(recipes))
    state = RecipeState(graph, tuple(calib), plan, dict(options))
    for call in calls:
        early = getattr(call.recipe.impl, "quantizer_options", None)
        if early is not None:
            state = replace(state, options={**state.options, **early(**call.params)})
    ordered = sorted(calls, key=lambda c: STAGES.index(c.recipe.metadata.stage))
    for call in ordered:
        if call.recipe.metadata.stage == "quantized" and state.qgraph is None:  # no quantizer recipe ran
            state = _quantize(state, is_fp32(state.plan))
        state = call.recipe.run(state, call.params)
    if state.qgraph is None:
        state = _quantize(state, is_fp32(state.plan))
    executor = ("value emulation (float kernels; weights and static activations on their grids; "
                + "; ".join(state.notes) + ")") if state.hooks else _static_how(state.qgraph)
    return Applied(state.qgraph, state.hooks, executor)


def _quantize(state: RecipeState, fp32: bool) -> RecipeState:
    from qsim.sim.quantize_graph import quantize_graph

    if fp32:
        return replace(state, qgraph=state.graph)
    plan = replace(state.plan, recipes=())  # the recipes are running around this call
    return replace(state, qgraph=quantize_graph(state.graph, plan, list(state.calib), **state.options))


def _static_how(qgraph: Graph) -> str:
    from qsim.sim.pipeline import integer_ready

    if not qgraph.quant_params:
        return "float reference"
    if integer_ready(qgraph):
        fp8 = any(q.fmt.element_type.startswith("float8") for q in qgraph.quant_params.values())
        return "integer executor" + (", fp8 by value emulation" if fp8 else " (bit-exact for the policy)")
    return "value emulation (fake quantization: float kernels, QDQ)"


def metadata_table():
    """One row per registered recipe: stage, parameters, extra scale bytes, extra passes, execution."""
    import pandas as pd

    rows = []
    for name, recipe in sorted(RECIPES.items()):
        m = recipe.metadata
        rows.append({"recipe": name, "stage": m.stage, "params": ", ".join(f"{k}={v}" for k, v in m.params.items()),
                     "extra_scale_bytes": m.extra_scale_bytes,
                     "extra_inference_passes": m.extra_inference_passes,
                     "executed_by": m.executed_by})
    return pd.DataFrame(rows)
