"""Measuring a plan's accuracy on an ``Evaluation``'s data, through the simulator's one flow
(``qsim.sim.pipeline``: quantize for the plan calibrated on the calibration batches, then run each
evaluation batch on the integer executor where it models the graph, else fake quantization).

The data runs in batches of the graph's batch size; a last, partial batch is padded with copies of
its last sample and the padding's outputs are dropped, so every sample counts once. Calibration
uses whole batches only (one padded batch when there are fewer samples). The fp32 reference
(outputs and metric value) is computed once per graph (and MLAS float lane count, where its
softmax depends on it: ``float_mlas.lane_dependent``) and kept on the Evaluation. Nothing here
is random: the same inputs give the same numbers.
The data is keyed by the model's input names in the model file's own layout: a .tflite model's
rank-4 inputs are NHWC, moved to the IR's NCHW here (``Graph.model_io``). The metrics read the
model's first output as the runtime returns it (``ModelIO.model_outputs``, as ``qsim.simulate``):
in the file's layout (NHWC for a .tflite model) and dtype (float32, dequantized as the runtime's
DEQUANTIZE where the plan quantized it); a graph without ``model_io`` (.onnx, builders: the file's
layout is the IR's) reads its first IR output as real values.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from qsim.sim.metrics import real_value, sqnr_db
from qsim.sim.compiled import CompiledModel
from qsim.sim.pipeline import is_fp32, prepare

if TYPE_CHECKING:
    from qsim.evaluation.data import Evaluation
    from qsim.ir.graph import Graph


def _batch_of(graph: Graph) -> int:
    return graph.tensor(graph.inputs[0]).shape[0]


def _file_layouts(graph: Graph) -> dict:
    """IR input -> the model file's ``Port`` where the file's layout is not the IR's (a .tflite NHWC
    image): the data comes in the file's layout and is moved to the IR's here."""
    io = getattr(graph, "model_io", None)
    return {p.tensor: p for p in io.inputs if p.perm} if io is not None else {}


def _first_output(graph: Graph) -> tuple[str, tuple]:
    """(name, shape) of the output the metrics read, as the model file has them (``_run``)."""
    io = getattr(graph, "model_io", None)
    if io is not None and io.outputs:
        return io.outputs[0].name, tuple(io.outputs[0].shape)
    return graph.outputs[0], tuple(graph.tensor(graph.outputs[0]).shape)


def _check_set(ev: Evaluation, graph: Graph, dataset, key: str) -> None:
    offered = dataset.offers()
    missing = [n for n in graph.inputs if n not in offered]
    if missing:
        raise ev.error(key, f"the model's inputs are {list(graph.inputs)}; the data has {offered} "
                            f"(missing {missing})")
    arrays = dataset.for_inputs(graph.inputs)
    ports = _file_layouts(graph)
    for name in graph.inputs:
        spec, value = graph.tensor(name), arrays[name]
        shape, layout = (ports[name].shape, " (NHWC, the file's own layout)") if name in ports else (spec.shape, "")
        want = tuple(shape[1:])
        if tuple(value.shape[1:]) != want:
            raise ev.error(key, f"input {name!r}: samples of shape {tuple(value.shape[1:])}; the model takes "
                                f"{want} per sample (its input is {tuple(shape)}{layout})")
        integer = str(spec.dtype).startswith(("int", "uint"))
        if integer and value.dtype.kind not in "iu":
            raise ev.error(key, f"input {name!r}: the model takes {spec.dtype}; the data is {value.dtype}")
        if not integer and value.dtype.kind not in "fiu":
            raise ev.error(key, f"input {name!r}: the model takes {spec.dtype}; the data is {value.dtype}")


def check_graph(ev: Evaluation, graph: Graph) -> None:
    """``Evaluation.check``: a float model whose inputs the data and calibration data fit."""
    from qsim.evaluation.data import EvaluationError

    if graph.quant_params:
        raise EvaluationError(f"model {graph.name!r} is already quantized; accuracy is measured on a float model "
                              "at a precision plan", file=ev.where)
    if not graph.inputs or not graph.outputs:
        raise EvaluationError(f"model {graph.name!r} has no inputs or outputs to evaluate", file=ev.where)
    weightless = sorted(t for t, s in graph.tensors.items() if s.kind == "weight" and t not in graph.constants)
    if weightless:
        raise ev.error("data", f"model {graph.name!r} has no values for its weights ({', '.join(weightless[:3])}"
                               f"{', ...' if len(weightless) > 3 else ''}): a weightless model cannot be evaluated")
    batch = _batch_of(graph)
    if ev.batch is not None and ev.batch != batch:
        raise ev.error("batch", f"{ev.batch}, but the model {graph.name!r} is built at batch {batch}")
    if any(graph.tensor(n).shape[0] != batch for n in graph.inputs):
        raise ev.error("data", f"the inputs of model {graph.name!r} do not share one batch axis (axis 0)")
    _check_set(ev, graph, ev.data, "data")
    _check_set(ev, graph, ev.calibration, "calibration" if "calibration" in ev.lines else "data")
    if ev.metric.needs_labels:
        _check_labels(ev, graph)


def _check_labels(ev: Evaluation, graph: Graph) -> None:
    """Labels are class indices of the first output's last axis (in the model's own layout: a
    .tflite (N, 1, 1, C) output has C classes), one per sample; top-k needs k <= classes."""
    name, shape = _first_output(graph)
    classes, positions = shape[-1], int(np.prod(shape[1:-1], dtype=np.int64))
    if positions > 1:  # labels are one class per sample: which of the positions would it be?
        raise ev.error("metric", f"{ev.metric.label} needs one class score vector per sample; the model's output "
                                 f"{name!r} is {shape}, {positions} positions of {classes} classes each (use cosine, "
                                 "sqnr, mse or a package.module:function metric)")
    if ev.metric.k > classes:
        raise ev.error("k", f"{ev.metric.k}, but the model's output {name!r} has {classes} classes")
    labels = np.asarray(ev.data.labels)
    integral = labels.dtype.kind in "iu" or (labels.dtype.kind == "f" and np.all(np.mod(labels, 1) == 0))
    if not integral or labels.min() < 0 or labels.max() >= classes:
        shown = labels.dtype if not integral else f"{labels.min()}..{labels.max()}"
        raise ev.error("data", f"labels must be class indices 0..{classes - 1} of the output {name!r}; "
                               f"the data has {shown}")


def _feeds(graph: Graph, dataset, whole_only: bool) -> list[tuple[dict, int]]:
    """[(feeds of one batch, how many of its samples are real)]."""
    batch = _batch_of(graph)
    ports = _file_layouts(graph)
    arrays = {n: v.transpose(ports[n].perm) if n in ports else v for n, v in dataset.for_inputs(graph.inputs).items()}
    arrays = {n: np.ascontiguousarray(v, dtype=np.dtype(str(graph.tensor(n).dtype))
                                      if str(graph.tensor(n).dtype) in ("int64", "int32", "int8", "uint8")
                                      else np.float32) for n, v in arrays.items()}
    n = len(dataset)
    stops = range(batch, n + 1, batch) if whole_only and n >= batch else range(batch, n + batch, batch)
    out = []
    for stop in stops:
        start, real = stop - batch, min(stop, n) - (stop - batch)
        feeds = {}
        for name, value in arrays.items():
            part = value[start:start + real]
            if real < batch:
                part = np.concatenate([part, np.repeat(part[-1:], batch - real, axis=0)])
            feeds[name] = part
        out.append((feeds, real))
    return out


def _cached(ev: Evaluation, graph: Graph, name: str, whole_only: bool, dataset):
    store = ev._cache.setdefault(name, {})
    if id(graph) not in store:
        store[id(graph)] = (graph, _feeds(graph, dataset, whole_only))
    return store[id(graph)][1]


def _output_of(graph: Graph, qgraph: Graph, policy: str):
    """run -> the first output the metrics read (module doc): ``qgraph`` is ``graph`` prepared for
    a plan (same tensor names); ``graph.model_io`` maps its IR outputs onto the file's."""
    io = getattr(graph, "model_io", None)
    if io is None or not io.outputs:
        name = qgraph.outputs[0]
        return lambda run: real_value(qgraph, name, run.outputs[name])
    from qsim.sim.int_runtime import get_runtime

    first = replace(io, outputs=io.outputs[:1])  # the others are not read: not converted

    def read(run):  # as CompiledModel.run presents outputs (qsim.simulate)
        deq = get_runtime(policy).dequantize if run.executor == "integer" else None
        return first.model_outputs(qgraph, run.outputs, deq)[first.outputs[0].name]
    return read


def _run(graph: Graph, qgraph: Graph, batches, policy: str, acc_bits, overflow) -> tuple[np.ndarray, str, dict]:
    """``qgraph`` compiled once (``CompiledModel``: the planned executor, its buffers reused, on the
    process's share of the cores) and run on every batch."""
    output = _output_of(graph, qgraph, policy)
    model = CompiledModel(qgraph, policy=policy, acc_bits=acc_bits, overflow=overflow, counts=True, executor="auto")
    parts, how, counts = [], "", {"overflow_events": 0, "saturated": 0}
    for feeds, real in batches:
        model.run(feeds)
        run = model.last_run
        parts.append(output(run)[:real])
        how = run.how
        if run.stats is not None:
            stats = run.stats
            if "overflow_events" in stats:
                counts["overflow_events"] += int(stats["overflow_events"].sum())
            for column in ("saturated_low", "saturated_high"):
                if column in stats:
                    counts["saturated"] += int(stats[column].sum())
    return np.concatenate(parts), how, counts


def reference(ev: Evaluation, graph: Graph) -> tuple[np.ndarray, float]:
    """(fp32 values of the model's first output on the evaluation data, in its own layout and dtype
    (module doc), the metric's fp32 value)."""
    from qsim.sim.float_mlas import float_lanes_tag

    store = ev._cache.setdefault("reference", {})
    at = (id(graph), float_lanes_tag(graph))  # MLAS's softmax lanes (the ort_cpu_scope in force), where they matter
    if at not in store:
        ref = _run(graph, graph, _cached(ev, graph, "batches", False, ev.data), "onnxruntime", None, "wrap")[0]
        store[at] = (graph, ref, ev.metric.value(ref, ref, ev.data.labels))
    return store[at][1:]


def measure(ev: Evaluation, graph: Graph, plan, policy: str = "onnxruntime", acc_bits: int | None = None,
            overflow: str = "wrap", observer: str = "minmax", **options) -> dict[str, Any]:
    """``accuracy`` (the metric, higher is better), ``accuracy_drop`` (against fp32 on the same
    samples), ``sqnr_db`` (first output against fp32), ``accuracy_metric``, ``accuracy_fp32``,
    ``executed_by``, ``samples``, and the integer executor's ``overflow_events`` and ``saturated``
    counts summed over the evaluation (0 for float and fake-quantized runs)."""
    ev.check(graph)
    ref, ref_value = reference(ev, graph)
    if is_fp32(plan):
        out, how, counts = ref, "float reference", {"overflow_events": 0, "saturated": 0}
    else:
        calib = [feeds for feeds, _ in _cached(ev, graph, "calibration", True, ev.calibration)]
        qgraph = prepare(graph, plan, calib, observer, **options)
        batches = _cached(ev, graph, "batches", False, ev.data)
        out, how, counts = _run(graph, qgraph, batches, policy, acc_bits, overflow)
    value = ev.metric.value(ref, out, ev.data.labels)
    return {"accuracy": value, "accuracy_drop": ev.metric.drop(ref_value, value),
            "sqnr_db": float(sqnr_db(ref, out)),
            "accuracy_metric": ev.metric.label, "accuracy_fp32": ref_value, "executed_by": how,
            "samples": len(ev.data), **counts}
