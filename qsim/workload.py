"""Workloads: a model, its batch / sequence length, and a precision plan, from YAML.

```yaml
name: resnet50
model: {builder: resnet50, params: {image_size: 224}}   # or {onnx: file.onnx} / {tflite: file.tflite}
batch: 1                                                 # or an explicit layer list (below)
precision: int8                                          # or {default: int8, overrides: [{op: Softmax, precision: fp16}]}
```

An explicit model lists ``inputs`` ({name, shape, dtype}), ``layers`` ({name, op, inputs, ...op
attributes}) in any order, and ``outputs``; a cycle among layers is an error naming its nodes.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import networkx as nx

from qsim.errors import GraphError, Problem, QsimError, WorkloadError
from qsim.files import path_exists
from qsim.ir.builders import BUILDERS, build
from qsim.ir.graph import Graph
from qsim.ir.registry import get_op
from qsim.precision import PrecisionPlan, parse_plan
from qsim.schema import Record, Str, problems
from qsim.shipped import shipped_dir
from qsim.workload_schema import DIM, INPUT_SCHEMA, model_problems
from qsim.yamlio import LocatedDict, line_of, load_yaml


class _Any:
    def check(self, value, path, line, errors):
        pass


WORKLOAD_SCHEMA = Record(
    required={"name": Str(), "model": _Any()},
    optional={"description": Str(), "batch": DIM, "seq": DIM, "precision": _Any(),
              "evaluation": _Any()},  # checked by qsim.evaluation.data.load_evaluation where it is used
)
MODEL_KEYS = {"builder", "params", "onnx", "tflite", "inputs", "layers", "outputs", "entry"}


@dataclass(frozen=True)
class Workload:
    name: str
    graph: Graph
    plan: PrecisionPlan
    source: str = ""
    description: str = ""


def _build_from_builder(model: Mapping, batch: int | None, seq: int | None, where: str) -> Graph:
    name = model["builder"]
    params = dict(model.get("params") or {})
    fn = BUILDERS.get(name)
    accepted = set(inspect.signature(fn).parameters) if fn else set()
    if batch is not None:
        params["batch"] = batch
    if seq is not None:
        if "seq" not in accepted:
            raise WorkloadError(f"builder {name!r} has no sequence length", file=where, key="seq")
        params["seq"] = seq
    unknown = set(params) - accepted if fn else set()
    if unknown:
        raise WorkloadError(f"builder {name!r} does not take {sorted(unknown)}; it takes {sorted(accepted)}",
                            file=where, key="model.params")
    return build(name, **params)


def _build_from_layers(model: Mapping, name: str, where: str) -> Graph:
    """Add layers in dependency order, so a file may list them in any order."""
    graph = Graph(name)
    inputs = model.get("inputs") or []
    errors = [] if isinstance(inputs, list) else [Problem("expected a list", line=line_of(model, "inputs"),
                                                          key="model.inputs")]
    for i, item in enumerate(inputs if not errors else []):
        INPUT_SCHEMA.check(item, f"model.inputs[{i}]", getattr(item, "line", line_of(model, "inputs")), errors)
    if errors:
        raise WorkloadError(file=where, problems=errors)
    for item in inputs:
        graph.add_input(item["name"], item["shape"], item.get("dtype", "float32"))
    layers = {}
    for i, layer in enumerate(model.get("layers") or []):
        if not isinstance(layer, Mapping) or not {"name", "op", "inputs"} <= set(layer):
            raise WorkloadError("each layer needs name, op and inputs", file=where, key=f"layers[{i}]",
                                line=line_of(model["layers"], i) or getattr(layer, "line", 0))
        layers[layer["name"]] = layer
    deps = nx.DiGraph()
    for lname, layer in layers.items():
        deps.add_node(lname)
        for t in layer["inputs"]:
            if t in layers:
                deps.add_edge(t, lname)
    try:
        order = list(nx.topological_sort(deps))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _ in nx.find_cycle(deps)]
        raise GraphError(f"layers form a cycle: {' -> '.join(cycle + cycle[:1])}", file=where) from None
    for lname in order:
        layer = layers[lname]
        attrs = {k: v for k, v in layer.items() if k not in ("name", "op", "inputs")}
        accepted = get_op(layer["op"]).attrs
        unknown = sorted(set(attrs) - set(accepted)) if accepted is not None else []
        if unknown:
            raise GraphError(f"layer {lname!r} ({layer['op']}): unknown attribute(s) {unknown}; {layer['op']} "
                             f"takes {', '.join(accepted) or 'none'}", file=where, line=getattr(layer, "line", 0))
        try:
            graph.add_node(layer["op"], lname, layer["inputs"], attrs)
        except GraphError as exc:
            raise GraphError(exc.message, file=where, line=getattr(layer, "line", 0), key=exc.key,
                             node=exc.node) from None
    for t in model.get("outputs") or []:
        graph.mark_output(t)
    return graph.validate()


def _build_from_entry(model: Mapping, batch: int | None, seq: int | None, base: Path, where: str) -> Graph:
    """``entry: package.module:function``: a Python function that returns the Graph (with its
    weights: a model trained or loaded in code), called with ``params`` and batch / seq when set."""
    from qsim.evaluation.entry import resolve_entry

    params = dict(model.get("params") or {})
    params.update({k: v for k, v in (("batch", batch), ("seq", seq)) if v is not None})
    try:
        graph = resolve_entry(model["entry"], base)(**params)
    except QsimError as exc:
        raise WorkloadError(exc.message, file=where, line=line_of(model, "entry"), key="model.entry") from None
    except TypeError as exc:
        raise WorkloadError(f"{model['entry']}: {exc}", file=where, line=line_of(model, "params"),
                            key="model.params") from None
    if not isinstance(graph, Graph):
        raise WorkloadError(f"{model['entry']} returned {type(graph).__name__}, not a qsim Graph", file=where,
                            line=line_of(model, "entry"), key="model.entry")
    return graph


def build_model(model: Any, name: str, base: Path, where: str, batch: int | None = None,
                seq: int | None = None) -> Graph:
    if not isinstance(model, Mapping):
        raise WorkloadError("expected a mapping with builder, onnx, tflite or layers", file=where, key="model")
    unknown = set(model) - MODEL_KEYS
    if unknown:
        raise WorkloadError(f"unknown keys {sorted(unknown)}; expected builder (+params), onnx, tflite, or "
                            "inputs/layers/outputs", file=where, line=line_of(model, sorted(unknown)[0]), key="model")
    if "builder" in model:
        return _build_from_builder(model, batch, seq, where)
    if "onnx" in model:
        from qsim.ir.onnx_import import load_onnx

        return load_onnx(base / model["onnx"], batch=batch)
    if "tflite" in model:
        from qsim.ir.tflite_import import load_tflite

        if batch not in (None, 1):
            raise WorkloadError(f"a .tflite model has a fixed batch; batch {batch} cannot be applied", file=where)
        return load_tflite(base / model["tflite"])
    if "layers" in model:
        return _build_from_layers(model, name, where)
    if "entry" in model:
        return _build_from_entry(model, batch, seq, base, where)
    raise WorkloadError("give builder, onnx, tflite, layers or entry", file=where, key="model")


TOP_LEVEL_PARAMS = ("batch", "seq")  # what ``--set`` changes at the top of a workload; other names are builder params


def set_params(data: Mapping, params: Mapping[str, Any], flag: str = "--set") -> tuple[Mapping, dict[str, str]]:
    """The workload ``data`` with ``params`` applied (``batch``, ``seq``, or a builder parameter by
    its name or as ``model.params.NAME``), and for each key path set, where it came from
    (``--set context=4096``), so that a problem with the value names the flag, not the file."""
    data = _located_copy(data)
    origins: dict[str, str] = {}
    for key, value in params.items():
        origin = f"{flag} {key}={_shown(value)}"
        name = key.removeprefix("model.params.")
        if name in TOP_LEVEL_PARAMS and name == key:
            data[name] = value
            origins[name] = origin
            continue
        model = data.get("model")
        if "." in name or not isinstance(model, Mapping) or "builder" not in model:
            raise WorkloadError(f"{origin}: only batch, seq and the parameters of a builder workload can be set "
                                "(NAME or model.params.NAME)")
        model = data["model"] = _located_copy(model)
        model["params"] = _located_copy(model.get("params") or {})
        model["params"][name] = value
        origins[f"model.params.{name}"] = origin
    return data, origins


def _located_copy(mapping: Mapping) -> LocatedDict:
    out = LocatedDict(mapping)
    out.line, out.key_lines = getattr(mapping, "line", 0), dict(getattr(mapping, "key_lines", {}))
    return out


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_workload(path: str | Path, batch: int | None = None, precision: Any = None,
                  params: Mapping[str, Any] | None = None, origin: str = "--set") -> Workload:
    """Read a workload YAML (or an .onnx / .tflite model file directly). ``params`` replace the
    file's ``batch``, ``seq`` or builder parameters (``--set``) and pass the same checks."""
    path = Path(path)
    params = dict(params or {})
    if path.suffix in (".onnx", ".tflite"):
        if set(params) - {"batch"}:
            raise WorkloadError(f"{origin} {sorted(set(params) - {'batch'})[0]}: a model file takes only batch",
                                file=path)
        return workload_from_model_file(path, params.get("batch", batch), precision)
    try:
        data = load_yaml(path, check=_workload_problems)  # duplicate keys and schema problems in one error
    except QsimError as exc:
        raise exc.retyped(WorkloadError) from None
    data, origins = set_params(data, params, origin) if params else (data, {})
    errors = [replace(p, file=origins[p.key], line=None) if p.key in origins else p for p in _workload_problems(data)]
    if errors:
        raise WorkloadError(file=path, problems=errors)
    where = str(path)
    graph = build_model(data["model"], data["name"], path.parent, where,
                        batch if batch is not None else data.get("batch"), data.get("seq"))
    if precision is not None:  # a flag or an argument: its errors are not the file's
        plan = parse_plan(precision, where="precision")
    else:
        try:
            plan = parse_plan(data.get("precision", _file_plan_or_fp32(graph)), where="precision")
        except WorkloadError as exc:
            raise WorkloadError(str(exc), file=where, line=line_of(data, "precision")) from None
    check_plan_matches(plan, graph, where)
    return Workload(data["name"], graph, plan, where, data.get("description", ""))


def _workload_problems(data: Any) -> list[Problem]:
    return problems(data, WORKLOAD_SCHEMA) + model_problems(data)


def check_plan_matches(plan: PrecisionPlan, graph: Graph, where: str) -> None:
    """An override that matches no node is a typo (a first conv named 'conv1' that is 'stem')."""
    for match, _ in plan.overrides:
        if not any(match.get("name", n.name) == n.name and match.get("op", n.op) == n.op for n in graph.nodes()):
            raise WorkloadError(f"precision override {dict(match)} matches no node of {graph.name!r}", file=where)


def _file_plan_or_fp32(graph: Graph):
    """A quantized model file carries its own precision; anything else defaults to fp32."""
    if graph.quant_params:
        from qsim.ir.onnx_import import plan_from_graph

        return plan_from_graph(graph)
    return "fp32"


def workload_from_model_file(path: Path, batch: int | None = None, precision: Any = None) -> Workload:
    if not path_exists(path):
        raise QsimError("no such file", file=path)
    graph = build_model({path.suffix[1:]: path.name}, path.stem, path.parent, str(path), batch)
    plan = parse_plan(precision if precision is not None else _file_plan_or_fp32(graph), where="precision")
    check_plan_matches(plan, graph, str(path))
    return Workload(path.stem, graph, plan, str(path))


WORKLOAD_DIR = shipped_dir("workloads")  # shipped workloads, and their sweep specs under sweeps/


def resolve_workload(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path_exists(path) or path.suffix:
        return path
    shipped = WORKLOAD_DIR / f"{name_or_path}.yaml"
    if path_exists(shipped):
        return shipped
    return path
