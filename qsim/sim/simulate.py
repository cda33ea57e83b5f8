"""Top-level simulation API:

    simulate(model, inputs, policy=None, plan=None, trace=False)

``model`` is a Graph, a Workload, or a path (.onnx, .tflite, workload .yaml). What runs:

* an already-quantized model (its tensors carry quantization parameters): the integer executor
  with the file's parameters unchanged, under ``policy``; the default policy follows the file type
  (ONNX: ``onnxruntime``; TFLite: ``tflite-reference``);
* a float model without a plan: the float reference executor;
* a float model with a plan (or a Workload whose plan is not fp32): the graph is quantized by
  ``qsim.sim.quantize_graph.quantize_graph`` calibrated on ``inputs``, then run by the integer
  executor (default policy ``onnxruntime``: quantize_graph produces onnxruntime's QDQ
  representation). fp8 / MX tensors are value-emulated (see ``qsim.sim.int_float``).

``inputs``: a dict input name -> array, or one array for a single-input model, in the graph's
layout (the TFLite importer's graphs are NCHW). A float array for a quantized input is quantized
with the runtime's formula; an integer array is taken as the stored codes. Returns a dict output
name -> array (integer codes in the runtime's storage type for quantized outputs), or
``(outputs, trace)`` when ``trace`` is true.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.sim.executor import run_float
from qsim.sim.integer import run_integer

DEFAULT_POLICY = {".onnx": "onnxruntime", ".tflite": "tflite-reference"}  # the runtime each file targets


def _load(model) -> tuple[Graph, Any, str]:
    """(graph, plan or None, file suffix or '')."""
    from qsim.workload import Workload, load_workload

    if isinstance(model, Graph):
        tflite = any("tflite_layout" in n.attrs for n in model.nodes())
        return model, None, ".tflite" if tflite else ""
    if isinstance(model, Workload):
        return model.graph, model.plan, Path(model.source).suffix if model.source else ""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.suffix == ".onnx":
            from qsim.ir.onnx_import import load_onnx
            return load_onnx(path), None, ".onnx"
        if path.suffix == ".tflite":
            from qsim.ir.tflite_import import load_tflite
            return load_tflite(path), None, ".tflite"
        if path.suffix in (".yaml", ".yml"):
            w = load_workload(path)
            return w.graph, w.plan, Path(w.source).suffix
        raise QsimError(f"{path}: simulate takes an .onnx, .tflite or workload .yaml file")
    raise QsimError(f"simulate: model must be a Graph, a Workload or a file path, got {type(model).__name__}")


def _feeds(graph: Graph, inputs) -> dict[str, np.ndarray]:
    if isinstance(inputs, Mapping):
        return dict(inputs)
    if len(graph.inputs) != 1:
        raise QsimError(f"graph {graph.name!r} has inputs {graph.inputs}; give a dict name -> array")
    return {graph.inputs[0]: np.asarray(inputs)}


def _is_fp32(plan) -> bool:
    if plan is None:
        return True
    from qsim.numerics.formats import FP32
    from qsim.precision import check_simulable, parse_plan

    plan = check_simulable(parse_plan(plan))
    formats = {f for p in plan.precisions() for f in (p.weight, p.activation)}
    return not plan.overrides and formats == {FP32}


def _plan_policy(plan) -> str:
    """The requantization policy a plan names (``check_simulable`` allows one), else onnxruntime."""
    from qsim.precision import parse_plan

    return next(iter(parse_plan(plan).policies), "onnxruntime")


def _quantize(graph: Graph, plan, feeds) -> Graph:
    try:
        from qsim.sim.quantize_graph import quantize_graph
    except ImportError as exc:
        raise QsimError(f"quantizing a float model for a plan needs qsim.sim.quantize_graph ({exc}); "
                        "give an already-quantized model or no plan") from None
    return quantize_graph(graph, plan, [feeds])


def simulate(model, inputs, policy: str | None = None, plan=None, trace: bool = False,
             acc_bits: int | None = None, overflow: str = "wrap", impl: str = "numba"):
    """Run ``model`` on ``inputs`` (see the module doc). ``acc_bits``, ``overflow`` and ``impl`` are
    passed to the integer executor."""
    graph, own_plan, suffix = _load(model)
    feeds = _feeds(graph, inputs)
    if graph.quant_params:
        if plan is not None:
            raise QsimError(f"model {graph.name!r} is already quantized: its own scales and zero points are "
                            "used unchanged; a plan applies to float models only")
        policy = policy or DEFAULT_POLICY.get(suffix, "onnxruntime")
    else:
        plan = plan if plan is not None else own_plan
        if _is_fp32(plan):
            env = run_float(graph, feeds, trace=True)
            outputs = {t: env[t] for t in graph.outputs}
            return (outputs, env) if trace else outputs
        graph = _quantize(graph, plan, feeds)
        policy = policy or _plan_policy(plan)
    result = run_integer(graph, feeds, policy, trace=trace, acc_bits=acc_bits, overflow=overflow, impl=impl)
    return (result.outputs, result.trace) if trace else result.outputs
