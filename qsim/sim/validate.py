"""The library behind ``qsim validate MODEL``: simulate a model, measure the accuracy cost of its precision per node,
and optionally check the simulation against the real runtime on the same inputs.

What runs: an already quantized model (QDQ / QOperator ONNX, int8 TFLite) with its own parameters;
a float model with ``--plan`` is quantized by ``quantize_graph`` (calibrated on ``--calib``, else on
the evaluation inputs); a float model without a plan at fp32. The quantized graph runs on the
integer executor under ``--policy`` (default: the ``--hw`` profile's requant_policy, else the
file type's runtime) with the profile's accumulator width, when the executor supports the graph;
otherwise with fake quantization, and the report says which. The float reference is the float
model, or for a quantized file the same graph with its weights dequantized and no activation
quantization. ``--against`` runs onnxruntime (.onnx) or LiteRT (.tflite) on the same inputs and
counts the output elements that differ from the simulation: integer codes against codes where the
model returns a quantized tensor (the difference in LSB), values where it returns floats.

Input files are ``.npz`` with one array per model input, keyed by the model's own input names, in its
own layout (NHWC for a rank-4 .tflite input) and optionally ``labels`` (``qsim.sim.validate_data``).
The simulation and the runtime get each input in the dtype the model file declares (``--calib``
data too): integer data is cast where it fits (else an error), float data for an integer
input with quantization parameters is quantized with the policy's formula (for an integer input
without them, such as token ids, an error), float64 data for a float32 input is rounded once.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qsim.errors import QsimError
from qsim.numerics.policies import PolicyName
from qsim.sim.against import AGAINST, compare_with_runtime, declared_feeds
from qsim.sim.int_runtime import get_runtime, host_ort_cpu, ort_cpu, ort_cpu_scope
from qsim.sim.pipeline import DEFAULT_POLICY, EXECUTORS, prepare, run_model
from qsim.sim.validate_data import LABELS, calibration_batches, model_arrays, read_npz

__all__ = ["validate", "random_inputs", "write_validate_report", "AGAINST", "EXECUTORS"]


def _load_model(path: Path, batch: int | None, executor: str):  # -> (Graph, ModelIO)
    if not path.is_file():
        raise QsimError(f"{path}: model file not found")
    if path.suffix not in (".onnx", ".tflite"):
        raise QsimError(f"{path}: qsim validate takes an .onnx or .tflite model")
    from qsim.sim.simulate import load_model

    graph, io = load_model(path, batch)
    if io.refusal and executor != "fake":
        raise QsimError(f"{path}: {io.refusal} (--executor fake runs it with fake quantization)")
    return graph, io


def random_inputs(graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs: uniform over a quantized input's representable range, standard normal for a
    float input, small integers for ids."""
    from qsim.numerics.formats import IntFormat

    rng = np.random.default_rng(seed)
    feeds = {}
    for t in graph.inputs:
        spec, q = graph.tensor(t), graph.quant_params.get(t)
        if q is not None and q.scale.size == 1 and isinstance(q.fmt, IntFormat):
            fmt = q.fmt
            zero, scale = float(q.zero_point.reshape(-1)[0]), float(q.scale.reshape(-1)[0])
            lo, hi = [(v - zero) * scale for v in (fmt.qmin, fmt.qmax)]
            feeds[t] = rng.uniform(lo, hi, spec.shape).astype(np.float32)
        elif spec.dtype.startswith(("int", "uint")) and q is None:
            feeds[t] = rng.integers(0, 10, spec.shape).astype(spec.dtype)
        else:
            feeds[t] = rng.standard_normal(spec.shape).astype(np.float32)
    return feeds


def _reference_feeds(graph, feeds: dict) -> dict:
    """Feeds of the float reference: integer codes of a quantized input are dequantized."""
    from qsim.sim.metrics import real_value

    out = {}
    for t, v in feeds.items():
        v = np.asarray(v)
        q = graph.quant_params.get(t)
        out[t] = real_value(graph, t, v) if q is not None else v.astype(np.float32) if v.dtype.kind == "f" else v
    return out


def _plan(spec: str | None):
    if spec is None:
        return None
    if spec.endswith((".yaml", ".yml")):
        from qsim.yamlio import load_yaml

        return load_yaml(spec)  # a missing or malformed file is a QsimError naming it
    return spec



def validate(model: str, hw: str | None = None, policy: str | None = None, plan: str | None = None,
             calib: str | None = None, data: str | None = None, against: str | None = None,
             executor: str = "auto", observer: str = "minmax", seed: int = 0, ort_cpu: str | None = None) -> dict:
    """The library form of ``qsim validate``: a dict with the per-node table (DataFrame) and the
    summary (JSON-ready). ``ort_cpu``: the CPU kind whose onnxruntime is simulated ("host", "avx2",
    "vnni", "arm64"; None: ``QSIM_ORT_CPU``, else "host"), as ``qsim.simulate``'s."""
    with ort_cpu_scope(ort_cpu):
        return _validate(model, hw, policy, plan, calib, data, against, executor, observer, seed)


def _validate(model, hw, policy, plan, calib, data, against, executor, observer, seed) -> dict:
    from qsim.sim.executor import run_float
    from qsim.sim.metrics import compare_traces, output_metrics
    from qsim.sim.quantize_graph import dequantized_graph

    path = Path(model)
    if against and path.suffix != AGAINST.get(against, path.suffix):
        raise QsimError(f"--against {against} needs a {AGAINST[against]} model, got {path.name}")
    if executor not in EXECUTORS:
        raise QsimError(f"unknown --executor {executor!r}; known: {', '.join(EXECUTORS)}")
    arrays = read_npz(data, "--data") if data else None
    batch = None
    if arrays is not None and path.suffix == ".onnx":  # the graph is built at the data's batch
        data_arrays = [v for k, v in arrays.items() if k != LABELS and v.ndim]
        if not data_arrays:
            raise QsimError(f"--data {data}: holds no input arrays (only {sorted(arrays)})")
        batch = len(data_arrays[0])
    graph, io = _load_model(path, batch, executor)
    raw = model_arrays(io, arrays, f"--data {data}") if arrays else random_inputs(graph, seed)
    labels = arrays.get(LABELS) if arrays else None
    acc_bits, profile_policy = None, None
    if hw:
        from qsim.hw.profile import load_profile
        prof = load_profile(hw)
        acc_bits, profile_policy = prof.compute.accumulator_bits, prof.requant_policy
    notes = []
    if graph.quant_params and plan:
        raise QsimError(f"{path.name} is already quantized: its own scales and zero points are used; "
                        "--plan applies to float models only")
    policy = policy or profile_policy or DEFAULT_POLICY.get(path.suffix, "onnxruntime")
    # The simulation and the runtime take the inputs in the model's own dtypes (quantized codes where it
    # takes integers); the float reference takes the data as given (real values keep their input error).
    feeds = declared_feeds(io, graph, raw, policy, f"--data {data}" if data else "random inputs")
    calib_feeds = [feeds]
    if plan and calib:
        what = f"--calib {calib}"
        calib_arrays = model_arrays(io, read_npz(calib, "--calib"), what, free_batch=True)
        calib_feeds = calibration_batches(declared_feeds(io, graph, calib_arrays, policy, what),
                                          graph.tensor(graph.inputs[0]).shape[0], what)
    elif plan:
        notes.append("calibrated on the evaluation inputs (no --calib)")
    elif not graph.quant_params:
        notes.append("float model without --plan: ran at fp32")
    qgraph = prepare(graph, _plan(plan), calib_feeds, observer=observer)
    reference = dequantized_graph(graph) if graph.quant_params else graph
    if policy == "onnxruntime":
        io.for_onnxruntime(qgraph)
    ref_trace = run_float(reference, _reference_feeds(graph, raw), trace=True)
    run = run_model(qgraph, feeds, policy, executor, trace=True, acc_bits=acc_bits)
    use_integer = run.executor == "integer"
    if run.executor == "fake":
        notes.append("the integer executor does not run this graph: fake quantization; --policy and "
                     "accumulator width not applied")
    if use_integer and get_runtime(policy).policy is PolicyName.ONNXRUNTIME:
        notes.append(f"onnxruntime as it computes on CPU kind {ort_cpu()!r} (--ort-cpu avx2|vnni|arm64 or "
                     "QSIM_ORT_CPU names another; without VNNI, uint8 x int8 products are summed in saturating "
                     "int16 pairs)")
        if against == "onnxruntime" and ort_cpu() != host_ort_cpu():
            notes.append(f"--against ran this machine's onnxruntime (CPU kind {host_ort_cpu()!r}), not the "
                         f"{ort_cpu()!r} one simulated: differences may be the CPUs'")
    trace, stats = run.trace, run.stats
    table = compare_traces(ref_trace, trace, qgraph, stats)
    summary = {"model": str(path), "graph": graph.name, "executed_by": run.how,
               "policy": policy if use_integer else None,
               "accumulator_bits": acc_bits or 32 if use_integer else None, "plan": str(plan) if plan else None,
               "inputs": "--data " + data if data else f"random (seed {seed})", "notes": notes,
               "outputs": output_metrics(ref_trace, trace, qgraph, labels)}
    if stats is not None:
        summary["overflow_events"] = int(stats["overflow_events"].sum())
        summary["saturated"] = int(stats["saturated_low"].sum() + stats["saturated_high"].sum())
    if against:
        if not graph.quant_params and plan:
            notes.append(f"--against {against} ran the float model: its differences are the quantization error")
        summary["against"] = {"runtime": against,
                              "outputs": compare_with_runtime(against, path, qgraph, io, feeds, trace, policy,
                                                              run.executor)}
    return {"nodes": table, "summary": summary}



def _json_default(v):
    return float(v) if isinstance(v, (np.floating, float)) else int(v) if isinstance(v, np.integer) else str(v)


def write_validate_report(result: dict, out: Path) -> list[Path]:
    """``out``.json (summary + nodes) and ``out``.csv (nodes); returns the paths written."""
    from qsim.files import atomic_write

    report = {**result["summary"], "nodes": json.loads(result["nodes"].to_json(orient="records"))}
    js, csv = out.with_suffix(".json"), out.with_suffix(".csv")
    atomic_write(js, lambda tmp: tmp.write_text(json.dumps(report, indent=1, default=_json_default)))
    atomic_write(csv, lambda tmp: result["nodes"].to_csv(tmp, index=False))
    return [js, csv]

