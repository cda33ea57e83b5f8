"""``qsim validate MODEL``: simulate a model, measure the accuracy cost of its precision per node,
and optionally check the simulation against the real runtime on the same inputs.

What runs: an already quantized model (QDQ / QOperator ONNX, int8 TFLite) with its own parameters;
a float model with ``--plan`` is quantized by ``quantize_graph`` (calibrated on ``--calib``, else on
the evaluation inputs); a float model without a plan at fp32. The quantized graph runs on the
integer executor under ``--policy`` (default: the ``--hw`` profile's requant_policy, else the
file type's runtime) with the profile's accumulator width, when the executor supports the graph;
otherwise with fake quantization, and the report says which. The float reference is the float
model, or for a quantized file the same graph with its weights dequantized and no activation
quantization. ``--against`` runs onnxruntime (.onnx) or LiteRT (.tflite) on the same inputs and
counts the output elements that differ from the simulation.

Input files are ``.npz`` with one array per graph input (named like the inputs) and optionally
``labels`` (task accuracy). Without ``--data``, seeded random inputs of the graph's shapes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from qsim.errors import QsimError

# The simulator modules are imported by ``validate`` itself: ``qsim --help`` and the other
# subcommands build this parser and should not pay for them.

EXECUTORS = ("auto", "integer", "fake")
AGAINST = {"onnxruntime": ".onnx", "litert": ".tflite"}


def _default_policy(suffix: str, fallback: str) -> str:
    from qsim.sim.simulate import DEFAULT_POLICY

    return DEFAULT_POLICY.get(suffix, fallback)
TABLE_COLUMNS = ["node", "op", "format", "sqnr_db", "cosine", "max_abs_error", "mode", "overflow_events",
                 "saturated_low", "saturated_high"]


def _load_model(path: Path, batch: int | None):
    if not path.is_file():
        raise QsimError(f"{path}: model file not found")
    if path.suffix == ".onnx":
        from qsim.ir.onnx_import import load_onnx
        return load_onnx(path, batch=batch)
    if path.suffix == ".tflite":
        from qsim.ir.tflite_import import load_tflite
        return load_tflite(path)
    raise QsimError(f"{path}: qsim validate takes an .onnx or .tflite model")


def _read_npz(path: str, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise QsimError(f"{what} {path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise QsimError(f"{what} {path}: not a readable .npz file ({exc})") from None


def _check_inputs(graph, arrays: dict, what: str) -> dict[str, np.ndarray]:
    missing = [t for t in graph.inputs if t not in arrays]
    if missing:
        raise QsimError(f"{what}: no array for graph input(s) {missing}; the file has {sorted(arrays)} "
                        f"(name arrays like the graph inputs {graph.inputs}, plus optional 'labels')")
    return {t: arrays[t] for t in graph.inputs}


def random_inputs(graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs: uniform over a quantized input's representable range, standard normal for a
    float input, small integers for ids."""
    from qsim.numerics.formats import IntFormat, get_format

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


def _chunks(arrays: dict[str, np.ndarray], graph) -> list[dict]:
    """Calibration arrays cut into batches of the graph's batch size (the remainder is dropped)."""
    batch = graph.tensor(graph.inputs[0]).shape[0]
    n = min(len(v) for v in arrays.values())
    if n < batch:
        raise QsimError(f"--calib has {n} samples; the graph's batch is {batch}: give at least that many")
    return [{t: v[i:i + batch] for t, v in arrays.items()} for i in range(0, n - batch + 1, batch)]


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


def _against(kind: str, path: Path, graph, feeds: dict, outputs: dict, policy: str) -> list[dict]:
    """Run the real runtime; per output: elements, mismatching elements, max abs diff."""
    from qsim.sim.metrics import real_value

    package = {"onnxruntime": "onnxruntime", "litert": "ai-edge-litert"}[kind]
    try:
        theirs = _run_onnxruntime(path, feeds) if kind == "onnxruntime" else _run_litert(path, graph, feeds, policy)
    except ImportError:
        raise QsimError(f"--against {kind} runs the real runtime: pip install {package}") from None
    if len(theirs) != len(graph.outputs):
        raise QsimError(f"{kind} returned {len(theirs)} outputs, the graph has {len(graph.outputs)}")
    rows = []
    for t, want in zip(graph.outputs, theirs):
        got = real_value(graph, t, outputs[t]).astype(np.float32)
        want = np.asarray(want, np.float32).reshape(got.shape)
        q = graph.quant_params.get(t)
        diff = np.abs(got.astype(np.float64) - want)
        lsb = float(diff.max() / float(np.max(q.scale))) if q is not None and diff.size else None
        rows.append({"output": t, "elements": int(got.size), "mismatches": int(np.count_nonzero(got != want)),
                     "max_abs_diff": float(diff.max()) if diff.size else 0.0, "max_diff_lsb": lsb})
    return rows


def _run_onnxruntime(path: Path, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: np.asarray(feeds[i.name], np.float32) for i in sess.get_inputs() if i.name in feeds}
    first = sess.get_inputs()[0].shape[0]
    n = len(next(iter(inputs.values())))
    if not isinstance(first, int) or first == n:
        return sess.run(None, inputs)
    if n % first:  # a batch baked into the file: run the data in chunks of it
        raise QsimError(f"{path.name} has a fixed batch of {first}; --data has {n} samples (not a multiple)")
    parts = [sess.run(None, {k: v[i:i + first] for k, v in inputs.items()}) for i in range(0, n, first)]
    return [np.concatenate(outs) for outs in zip(*parts)]


# The LiteRT kernel set each policy models (tests/golden/test_policy_litert.py measured them).
LITERT_RESOLVERS = {"tflite-reference": "BUILTIN_REF", "litert-fc-reference": "BUILTIN_REF",
                    "tflite-optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "xnnpack": "BUILTIN"}


def _run_litert(path: Path, graph, feeds: dict, policy: str) -> list[np.ndarray]:
    """LiteRT on NHWC data: qsim's TFLite graphs are NCHW, so rank-4 tensors are transposed."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if policy not in LITERT_RESOLVERS:
        raise QsimError(f"--against litert: policy {policy!r} names no LiteRT kernel set; use one of "
                        f"{', '.join(LITERT_RESOLVERS)}")
    it = Interpreter(model_path=str(path), num_threads=1,
                     experimental_op_resolver_type=getattr(OpResolverType, LITERT_RESOLVERS[policy]))
    it.allocate_tensors()
    for d, t in zip(it.get_input_details(), graph.inputs):
        x = np.asarray(feeds[t])
        x = np.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else x
        if d["dtype"] != np.float32 and x.dtype.kind == "f":
            scale, zero = d["quantization"]
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(x / scale) + zero, info.min, info.max)
        it.set_tensor(d["index"], x.astype(d["dtype"]))
    it.invoke()
    outs = []
    for d in it.get_output_details():
        y = it.get_tensor(d["index"])
        if d["dtype"] != np.float32:
            scale, zero = d["quantization"]
            y = (y.astype(np.float32) - zero) * np.float32(scale)
        outs.append(np.transpose(y, (0, 3, 1, 2)) if y.ndim == 4 else y)
    return outs


def validate(model: str, hw: str | None = None, policy: str | None = None, plan: str | None = None,
             calib: str | None = None, data: str | None = None, against: str | None = None,
             executor: str = "auto", observer: str = "minmax", seed: int = 0) -> dict:
    """The library form of ``qsim validate``: a dict with the per-node table (DataFrame) and the
    summary (JSON-ready)."""
    from qsim.sim.executor import run_float
    from qsim.sim.metrics import compare_traces, output_metrics
    from qsim.sim.models.evaluate import integer_available, integer_ready
    from qsim.sim.quantize_graph import dequantized_graph, quantize_graph, run_fake_quant

    path = Path(model)
    if against and path.suffix != AGAINST.get(against, path.suffix):
        raise QsimError(f"--against {against} needs a {AGAINST[against]} model, got {path.name}")
    arrays = _read_npz(data, "--data") if data else None
    batch = None
    if arrays is not None and path.suffix == ".onnx":
        data_arrays = [v for k, v in arrays.items() if k != "labels"]
        if not data_arrays:
            raise QsimError(f"--data {data}: holds no input arrays (only {sorted(arrays)})")
        batch = len(data_arrays[0])
    graph = _load_model(path, batch)
    feeds = _check_inputs(graph, arrays, f"--data {data}") if arrays else random_inputs(graph, seed)
    labels = arrays.get("labels") if arrays else None
    acc_bits, profile_policy = None, None
    if hw:
        from qsim.hw.profile import load_profile
        prof = load_profile(hw)
        acc_bits, profile_policy = prof.compute.accumulator_bits, prof.requant_policy
    notes = []
    if graph.quant_params:
        if plan:
            raise QsimError(f"{path.name} is already quantized: its own scales and zero points are used; "
                            "--plan applies to float models only")
        qgraph, reference = graph, dequantized_graph(graph)
    elif plan:
        calib_feeds = _chunks(_check_inputs(graph, _read_npz(calib, "--calib"), f"--calib {calib}"), graph) \
            if calib else [feeds]
        if not calib:
            notes.append("calibrated on the evaluation inputs (no --calib)")
        qgraph, reference = quantize_graph(graph, _plan(plan), calib_feeds, observer=observer), graph
    else:
        qgraph, reference = graph, graph
        notes.append("float model without --plan: ran at fp32")
    policy = policy or profile_policy or _default_policy(path.suffix, "onnxruntime")
    ref_trace = run_float(reference, _reference_feeds(graph, feeds), trace=True)
    stats = None
    if executor not in EXECUTORS:
        raise QsimError(f"unknown --executor {executor!r}; known: {', '.join(EXECUTORS)}")
    use_integer = bool(qgraph.quant_params) and (executor == "integer" or executor == "auto"
                                                 and integer_available() and integer_ready(qgraph))
    if use_integer:
        from qsim.sim.integer import run_integer
        res = run_integer(qgraph, feeds, policy, trace=True, acc_bits=acc_bits)
        trace, stats, how = res.trace, res.stats, f"integer executor ({policy})"
    elif qgraph.quant_params:
        trace, how = run_fake_quant(qgraph, feeds, trace=True), "fake quantization (float kernels, QDQ)"
        notes.append("the integer executor does not run this graph: fake quantization; --policy and "
                     "accumulator width not applied")
    else:
        trace, how = ref_trace, "float reference"
    table = compare_traces(ref_trace, trace, qgraph, stats)
    summary = {"model": str(path), "graph": graph.name, "executed_by": how, "policy": policy if use_integer else None,
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
                              "outputs": _against(against, path, qgraph, feeds,
                                                  {t: trace[t] for t in qgraph.outputs}, policy)}
    return {"nodes": table, "summary": summary}


def _text(result: dict) -> str:
    table, s = result["nodes"], result["summary"]
    cols = [c for c in TABLE_COLUMNS if c in table.columns]
    lines = [table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"), "",
             f"{s['graph']}: {s['executed_by']}; plan {s['plan'] or '(file)'}; inputs {s['inputs']}"]
    for t, m in s["outputs"].items():
        lines.append(f"  output {t}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.items()))
    if "overflow_events" in s:
        lines.append(f"  accumulator overflow events {s['overflow_events']}, saturated outputs {s['saturated']}")
    for row in s.get("against", {}).get("outputs", []):
        lines.append(f"  vs {s['against']['runtime']} {row['output']}: {row['mismatches']} of {row['elements']} "
                     f"elements differ (max abs diff {row['max_abs_diff']:.4g})")
    lines += [f"  note: {n}" for n in s["notes"]]
    return "\n".join(lines)


def _json_default(v):
    return float(v) if isinstance(v, (np.floating, float)) else int(v) if isinstance(v, np.integer) else str(v)


def write_validate_report(result: dict, out: Path) -> list[Path]:
    """``out``.json (summary + nodes) and ``out``.csv (nodes); returns the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {**result["summary"], "nodes": json.loads(result["nodes"].to_json(orient="records"))}
    js, csv = out.with_suffix(".json"), out.with_suffix(".csv")
    js.write_text(json.dumps(report, indent=1, default=_json_default))
    result["nodes"].to_csv(csv, index=False)
    return [js, csv]


def _cmd_validate(args) -> int:
    result = validate(args.model, args.hw, args.policy, args.plan, args.calib, args.data, args.against,
                      args.executor, args.observer, args.seed)
    if args.format == "json":
        report = {**result["summary"], "nodes": json.loads(result["nodes"].to_json(orient="records"))}
        print(json.dumps(report, indent=1, default=_json_default))
    else:
        print(_text(result))
    out = Path(args.out) if args.out else Path("reports") / f"validate_{Path(args.model).stem}"
    paths = write_validate_report(result, out)
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def add_validate_parser(subparsers) -> None:
    p = subparsers.add_parser("validate", help="simulate a model: per-node accuracy and overflow, optionally "
                              "checked against onnxruntime or LiteRT")
    p.add_argument("model", help=".onnx or .tflite model (float, or already quantized)")
    p.add_argument("--hw", help="hardware profile: its requant_policy and accumulator width")
    p.add_argument("--policy", help="requantization policy of the integer executor (onnxruntime, "
                   "tflite-reference, xnnpack, ...); default from --hw or the file type")
    p.add_argument("--plan", help="precision plan for a float model (int8, w4a8, fp8, w8a16, ...) or a YAML file "
                   "{default: ..., overrides: [{name|op: ..., precision: ...}]}")
    p.add_argument("--calib", help=".npz calibration inputs (arrays named like the graph inputs)")
    p.add_argument("--data", help=".npz evaluation inputs (named like the graph inputs, optional 'labels')")
    p.add_argument("--against", choices=tuple(AGAINST), help="also run this runtime and count mismatches")
    p.add_argument("--executor", choices=EXECUTORS, default="auto",
                   help="integer executor, fake quantization, or auto (integer where supported)")
    p.add_argument("--observer", choices=("minmax", "percentile", "mse"), default="minmax",
                   help="activation calibration for --plan")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs without --data")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--out", help="report path without extension (default reports/validate_MODEL)")
    p.set_defaults(func=_cmd_validate)


__all__ = ["add_validate_parser", "validate", "random_inputs", "write_validate_report"]
