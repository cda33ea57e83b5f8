"""What a plan's recipes change in the cost model: the plan as the deployed graph runs it.

``keep`` stores and runs the named layers / op types at the kept precision (the same overrides the
simulator applies, ``qsim.recipes.keep.keep_plan``). ``dynamic`` quantizes matrix-op inputs at run
time, so every layer with integer activations pays the min/max pass of ``qsim.cost.dynamic``
(per token or per tensor). The other recipes (SmoothQuant, AWQ, GPTQ, RTN, equalization, bias
correction, entropy) change values, not formats or passes (their METADATA says
``extra_inference_passes: 0``), so they cost what the plan costs. ``kv_cache`` is not costed yet:
the KV state is charged at the owner's activation format.
"""
from __future__ import annotations

from dataclasses import replace

from qsim.numerics.formats import IntFormat
from qsim.precision import Dynamic, LayerPrecision, PrecisionPlan

_GRANULARITY = {"token": Dynamic.PER_TOKEN, "tensor": Dynamic.PER_TENSOR}


def cost_plan(graph, plan: PrecisionPlan) -> PrecisionPlan:
    """``plan`` with its ``keep`` and ``dynamic`` recipes folded into the layer precisions."""
    if not plan.recipes:
        return plan
    from qsim.recipes.keep import keep_plan

    calls = {r.name: r.params for r in plan.recipes}
    if "keep" in calls:
        plan = keep_plan(plan, graph, **calls["keep"])
    if "dynamic" in calls:
        dyn = _GRANULARITY[calls["dynamic"].get("granularity", "token")]

        def dynamic(prec: LayerPrecision) -> LayerPrecision:
            return replace(prec, dynamic=dyn) if isinstance(prec.activation, IntFormat) else prec

        plan = replace(plan, default=dynamic(plan.default),
                       overrides=tuple((m, dynamic(p)) for m, p in plan.overrides))
    return plan
