"""The Python API: ``load_workload``, ``load_profile``, ``estimate``, ``simulate``, ``compile``.

Each part loads on first use (the cost model and pandas on the first estimate, the workload and
profile machinery when a workload or profile is read, the simulator on the first simulate), so that
a simulation's cold start pays only for what it runs."""
from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qsim.errors import QsimError

if TYPE_CHECKING:
    import pandas as pd

    from qsim.cost.estimate import Estimate
    from qsim.hw.profile import Profile
    from qsim.ir.graph import Graph
    from qsim.precision import PrecisionPlan
    from qsim.workload import Workload

_LAZY = {"load_workload": "qsim.workload", "Workload": "qsim.workload", "resolve_workload": "qsim.workload",
         "load_profile": "qsim.hw.profile", "Profile": "qsim.hw.profile", "Graph": "qsim.ir.graph",
         "PrecisionPlan": "qsim.precision", "parse_plan": "qsim.precision"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qsim.api' has no attribute {name!r}")


def as_workload(workload: Workload | Graph | str | Path, precision: Any = None, batch: int | None = None,
                params: dict[str, Any] | None = None) -> Workload:
    """``params``: workload parameters (batch, seq, builder parameters) replacing the file's."""
    from qsim.ir.graph import Graph
    from qsim.precision import parse_plan
    from qsim.workload import Workload, load_workload, resolve_workload

    if params and isinstance(workload, (Workload, Graph)):
        raise QsimError("workload parameters apply when qsim builds the graph (a workload file)")
    if batch is not None and batch < 1:
        raise QsimError(f"batch must be >= 1, got {batch}")
    if batch is not None and isinstance(workload, (Workload, Graph)):
        raise QsimError("batch applies when qsim builds the graph (a workload file or a model file); "
                        "rebuild the Graph with the batch you want")
    if isinstance(workload, Workload):
        if precision is None:
            return workload
        return Workload(workload.name, workload.graph, parse_plan(precision), workload.source, workload.description)
    if isinstance(workload, Graph):
        return Workload(workload.name, workload, parse_plan(precision or "fp32"))
    return load_workload(resolve_workload(workload), batch=batch, precision=precision, params=params)


def as_profile(profile: Profile | str | Path, overrides: dict[str, Any] | None = None) -> Profile:
    """``overrides``: dotted profile keys replaced before validation (as sweeps' ``overrides``)."""
    from qsim.hw.profile import Profile, load_profile

    if isinstance(profile, Profile):
        if overrides:
            raise QsimError("profile overrides apply when qsim loads the profile (a name or a YAML file)")
        return profile
    return load_profile(profile, overrides)


def run_estimate(workload, profile, precision: Any = None, batch: int | None = None, params: dict | None = None,
                 hw_overrides: dict | None = None) -> tuple[Workload, Profile, Estimate]:
    from qsim.cost.estimate import estimate_graph

    wl, prof = as_workload(workload, precision, batch, params), as_profile(profile, hw_overrides)
    return wl, prof, estimate_graph(wl.graph, wl.plan, prof)


def estimate(workload, profile, precision: Any = None, batch: int | None = None, params: dict | None = None,
             hw_overrides: dict | None = None) -> pd.DataFrame:
    """Per-node cost estimate (one row per node); whole-model totals in ``df.attrs["totals"]``, the
    profile's error band (its held-out error, or that it has none) in ``df.attrs["error_band"]``.

    ``workload``: a Workload, a Graph, a workload YAML path or shipped name, or an .onnx/.tflite
    file. ``profile``: a Profile, a YAML path or a shipped profile name. ``precision`` overrides
    the workload's plan (``"int8"``, ``"w4a16"``, a PrecisionPlan ...). ``params`` set workload
    parameters (``{"context": 4096}``, as ``--set``); ``hw_overrides`` replace dotted profile keys
    (``{"memories.sram.capacity_kib": 1024}``, as ``--hw-set`` and sweep overrides)."""
    from qsim.report import error_band

    _, prof, est = run_estimate(workload, profile, precision, batch, params, hw_overrides)
    est.layers.attrs["error_band"] = error_band(prof, est.totals["compute_units"])
    return est.layers


__all__ = ["load_workload", "load_profile", "estimate", "run_estimate", "simulate", "compile", "PrecisionPlan"]


def simulate(model, inputs, policy=None, plan=None, trace=False, ort_cpu=None, **options):
    """Run a model bit-accurately (see ``qsim.sim.simulate.simulate``); imported lazily so that the
    cost model and the CLI do not pay for loading the numba kernels. ``ort_cpu``: the CPU kind whose
    onnxruntime to reproduce, "avx2", "vnni", "arm64" or "host" (None: ``QSIM_ORT_CPU``, else "host")."""
    from qsim.sim.simulate import simulate as _simulate

    return _simulate(model, inputs, policy=policy, plan=plan, trace=trace, ort_cpu=ort_cpu, **options)


def compile(model, inputs=None, policy=None, plan=None, ort_cpu=None, **options):  # noqa: A001 (as torch.compile)
    """Prepare a model once for many simulated batches: ``.run(inputs)`` returns what ``simulate``
    returns (see ``qsim.sim.compiled``); ``ort_cpu`` as ``simulate``'s, fixed at compile time."""
    from qsim.sim.compiled import compile_model

    return compile_model(model, inputs, policy=policy, plan=plan, ort_cpu=ort_cpu, **options)
