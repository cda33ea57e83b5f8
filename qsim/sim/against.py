"""Run the real runtime on the inputs a simulation got, and count the output elements that differ:
onnxruntime for .onnx files, LiteRT (under the kernel set the policy models) for .tflite files.
Where a LiteRT model takes integer codes and the inputs are real values, they are quantized with the
policy's own quantize formula (ties as the runtime rounds them), the one the simulation applied."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import QsimError

AGAINST = {"onnxruntime": ".onnx", "litert": ".tflite"}


def compare_with_runtime(kind: str, path: Path, graph, feeds: dict, outputs: dict, policy: str) -> list[dict]:
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

    from qsim.numerics.quantize import quantize
    from qsim.sim.int_runtime import get_runtime

    if policy not in LITERT_RESOLVERS:
        raise QsimError(f"--against litert: policy {policy!r} names no LiteRT kernel set; use one of "
                        f"{', '.join(LITERT_RESOLVERS)}")
    it = Interpreter(model_path=str(path), num_threads=1,
                     experimental_op_resolver_type=getattr(OpResolverType, LITERT_RESOLVERS[policy]))
    it.allocate_tensors()
    for d, t in zip(it.get_input_details(), graph.inputs):
        x = np.asarray(feeds[t])
        if np.dtype(d["dtype"]).kind in "iu" and x.dtype.kind == "f":
            x = quantize(x, graph.quant_params[t], get_runtime(policy).quantize)
        x = np.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else x
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

