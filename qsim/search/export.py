"""Write a chosen plan as a workload file that ``qsim run`` and ``qsim.simulate`` take unchanged.

The workload names the model the search measured and carries the plan as its ``precision:``:

* a model file (.onnx / .tflite): ``model: {onnx: path}``, the path relative to the new file;
* a workload YAML: its ``model:`` block (file paths re-based), ``batch`` and ``seq``;
* the digits CNN: its trained weights written as an ONNX file beside the workload (``Conv``,
  ``Relu``, ``MaxPool``, ``Flatten``, ``Gemm`` with the graph's own node names, so the plan's
  overrides match the imported graph), which ``qsim.simulate`` runs with weights;
* MiniLM: the encoder as an explicit layer list (the IR has no ONNX export for GELU / LayerNorm
  graphs): ``qsim run`` costs it; simulating it needs the weights, which the layer list does not hold.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import QsimError
from qsim.files import atomic_write
from qsim.ir.graph import Graph
from qsim.precision import PrecisionPlan, plan_spec
from qsim.search.models import SearchModel


def write_plan(path: str | Path, model: SearchModel, graph: Graph, plan: PrecisionPlan, description: str) -> Path:
    """Write the workload (and, for the digits CNN, its ONNX file); ``graph``: the model at its
    deployment batch. Returns the workload path."""
    import yaml

    path = Path(path)
    data: dict[str, Any] = {"name": f"{model.name}_searched", "description": description}
    if model.kind == "digits":
        onnx_path = path.with_name(f"{path.stem}.onnx")
        atomic_write(onnx_path, lambda tmp: _save_digits_onnx(graph, tmp))
        data["model"] = {"onnx": onnx_path.name}
    elif model.kind == "minilm":
        data["model"] = layer_list(graph)
    else:
        data.update(_from_file(model.source, path))
    data["precision"] = plan_spec(plan)
    atomic_write(path, lambda tmp: tmp.write_text(yaml.safe_dump(_plain(data), sort_keys=False)))
    return path


def _from_file(source: Path, target: Path) -> dict:
    def rel(p: Path) -> str:
        return os.path.relpath(p.resolve(), target.resolve().parent)

    if source.suffix in (".onnx", ".tflite"):
        return {"model": {source.suffix[1:]: rel(source)}}
    from qsim.yamlio import load_yaml

    data = load_yaml(source)
    model = dict(data["model"])
    for key in ("onnx", "tflite"):
        if key in model:
            model[key] = rel(source.parent / model[key])
    return {"model": model, **{k: data[k] for k in ("batch", "seq") if k in data}}


def layer_list(graph: Graph) -> dict:
    """The graph as a workload's explicit ``inputs`` / ``layers`` / ``outputs`` (no weights)."""
    inputs = [{"name": t, "shape": list(graph.tensor(t).shape), "dtype": str(graph.tensor(t).dtype)}
              for t in graph.inputs]
    layers = [{"name": n.name, "op": n.op, "inputs": list(n.inputs), **n.attrs} for n in graph.nodes()]
    return {"inputs": inputs, "layers": layers, "outputs": list(graph.outputs)}


def _plain(value):
    """YAML-safe Python values (tuples -> lists, numpy scalars -> numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _save_digits_onnx(graph: Graph, tmp: Path) -> None:
    """The digits CNN as ONNX (opset 13), node names and tensor names as in ``graph``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    kinds = [(n.op, n.name) for n in graph.nodes()]
    if [op for op, _ in kinds] != ["Conv", "Relu", "Conv", "Relu", "MaxPool", "Flatten", "Gemm"]:
        raise QsimError(f"model {graph.name!r} is not the digits CNN; it cannot be written as ONNX here")
    nodes, inits = [], []
    for node in graph.nodes():
        attrs: dict[str, Any] = {}
        inputs = list(node.inputs)
        for role in ("weight", "bias"):
            if role in node.weights:
                name = node.weights[role]
                inits.append(numpy_helper.from_array(np.asarray(graph.constants[name], np.float32), name))
                inputs.append(name)
        if node.op == "Conv":
            k, p = int(node.attrs["kernel"]), int(node.attrs.get("pad", 0))
            attrs = {"kernel_shape": [k, k], "pads": [p] * 4, "strides": [1, 1]}
        elif node.op == "MaxPool":
            k = int(node.attrs["kernel"])
            attrs = {"kernel_shape": [k, k], "strides": [k, k]}
        elif node.op == "Gemm":
            attrs = {"transB": 1}
        nodes.append(helper.make_node(node.op, inputs, list(node.outputs), name=node.name, **attrs))
    x = graph.inputs[0]
    out = graph.outputs[0]
    model = helper.make_model(
        helper.make_graph(nodes, graph.name, [helper.make_tensor_value_info(x, TensorProto.FLOAT,
                                                                            list(graph.tensor(x).shape))],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, list(graph.tensor(out).shape))],
                          inits),
        opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))
