"""Run the real runtime on the inputs a simulation got, and count the output elements that differ:
onnxruntime for .onnx files, LiteRT (under the kernel set the policy models) for .tflite files.

Both sides see the same inputs, in the dtype the model file declares (``declared_feeds``): the
runtimes refuse any other, and a simulation fed other values would not be the runtime's. Where a
model takes integer codes and the inputs are real values, they are quantized with the policy's own
quantize formula (ties as the runtime rounds them), the one the simulation would apply.

Outputs are compared as the runtime returns them (``ModelIO.model_outputs``, as ``qsim.simulate``
answers): integer codes against codes where the model returns a quantized tensor (max diff in LSB,
exact), float32 values against values where it returns floats."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import QsimError

AGAINST = {"onnxruntime": ".onnx", "litert": ".tflite"}


def declared_feeds(io, graph, feeds: dict, policy: str, what: str) -> dict[str, np.ndarray]:
    """``feeds`` (keyed by IR input, IR layout) in each model input's declared dtype. Float data for
    an integer input is quantized with its TensorQuant under ``policy``'s formula; data the dtype
    cannot hold (out of range, fractional, float without quantization parameters) is a QsimError."""
    from qsim.numerics.quantize import quantize
    from qsim.sim.int_runtime import get_runtime

    out = dict(feeds)
    for p in io.inputs:
        x, want = np.asarray(feeds[p.tensor]), np.dtype(p.dtype)
        where = f"{what}: input {p.name!r} ({x.dtype})"
        if want.kind in "iu" and x.dtype.kind == "f":
            q = graph.quant_params.get(p.tensor)
            if q is None or q.int_fmt is None:
                raise QsimError(f"{where}: the model takes {want}, and this input has no quantization parameters "
                                f"to quantize real values with: give integer data")
            x = quantize(x, q, get_runtime(policy).quantize)
        if x.dtype.kind not in "iufb" or want.kind not in "iufb":
            raise QsimError(f"{where}: cannot feed a {want} model input")
        y = x.astype(want)
        lossy = x.dtype != want and not (want.kind == "f" and x.dtype.kind == "f") and not np.array_equal(y, x)
        if lossy:  # out of range or inexact (float64 data is rounded to the model's float32, once, for both sides)
            raise QsimError(f"{where}: holds values the model's {want} input cannot "
                            f"(range {x.min()}..{x.max()})")
        out[p.tensor] = y
    return out


def compare_with_runtime(kind: str, path: Path, graph, io, feeds: dict, outputs: dict, policy: str,
                         executor: str) -> list[dict]:
    """Run the real runtime on ``declared_feeds``; per output: elements, mismatching elements, max
    abs diff (real units), max diff in LSB (None for a float output without quantization)."""
    from qsim.numerics.quantize import quantize
    from qsim.sim.int_runtime import get_runtime

    package = {"onnxruntime": "onnxruntime", "litert": "ai-edge-litert"}[kind]
    model_feeds = {p.name: _to_model_layout(feeds[p.tensor], p) for p in io.inputs}
    try:
        theirs = _run_onnxruntime(path, io, model_feeds) if kind == "onnxruntime" else \
            _run_litert(path, io, model_feeds, policy)
    except ImportError:
        raise QsimError(f"--against {kind} runs the real runtime: pip install {package}") from None
    ours = dict(outputs)
    for p in io.outputs:  # fake-quantized real values of a quantized output: back to their codes
        v, q = np.asarray(ours[p.tensor]), graph.quant_params.get(p.tensor)
        if np.dtype(p.dtype).kind in "iu" and v.dtype.kind == "f" and q is not None and q.int_fmt is not None:
            ours[p.tensor] = quantize(v, q)
    ours = io.model_outputs(graph, ours, get_runtime(policy).dequantize if executor == "integer" else None)
    rows = []
    for p in io.outputs:
        got, want = ours[p.name], np.asarray(theirs[p.name])
        if want.dtype != got.dtype or want.size != got.size:
            raise QsimError(f"{kind} returned {want.dtype} {list(want.shape)} for output {p.name!r}; the "
                            f"simulation answers {got.dtype} {list(got.shape)}")
        want = want.reshape(got.shape)
        q = graph.quant_params.get(p.tensor)
        scale = float(np.max(q.scale)) if q is not None else None
        if got.dtype.kind in "iu":  # codes: the difference is in LSB, exactly
            codes = int(np.abs(got.astype(np.int64) - want.astype(np.int64)).max()) if got.size else 0
            lsb = codes if scale is not None else None  # None: integers without a scale (indices)
            max_abs = codes * scale if scale is not None else float(codes)  # per channel: the largest scale's
            same = got == want
        else:
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            max_abs = float(np.nanmax(diff)) if diff.size and not np.isnan(diff).all() else 0.0
            lsb = max_abs / scale if scale is not None else None
            same = (got == want) | (np.isnan(got) & np.isnan(want))
        rows.append({"output": p.tensor, "compared": "codes" if got.dtype.kind in "iu" else "values",
                     "dtype": got.dtype.name, "elements": int(got.size), "mismatches": int(np.count_nonzero(~same)),
                     "max_abs_diff": float(max_abs), "max_diff_lsb": lsb})
    return rows


def _to_model_layout(x: np.ndarray, port) -> np.ndarray:
    """IR layout (NCHW) -> the file's (``Port.perm``: IR axis i holds model axis perm[i])."""
    return np.ascontiguousarray(x.transpose(np.argsort(port.perm))) if port.perm else x


def _run_onnxruntime(path: Path, io, feeds: dict) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [p.name for p in io.outputs]
    first = sess.get_inputs()[0].shape[0]
    n = len(next(iter(feeds.values())))
    if not isinstance(first, int) or first == n:
        return dict(zip(names, sess.run(names, feeds)))
    if n % first:  # a batch baked into the file: run the data in chunks of it
        raise QsimError(f"{path.name} has a fixed batch of {first}; --data has {n} samples (not a multiple)")
    parts = [sess.run(names, {k: v[i:i + first] for k, v in feeds.items()}) for i in range(0, n, first)]
    return {name: np.concatenate(outs) for name, outs in zip(names, zip(*parts))}


# The LiteRT kernel set each policy models (tests/golden/test_policy_litert.py measured them).
LITERT_RESOLVERS = {"tflite-reference": "BUILTIN_REF", "litert-fc-reference": "BUILTIN_REF",
                    "tflite-optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "xnnpack": "BUILTIN"}


def _run_litert(path: Path, io, feeds: dict, policy: str) -> dict[str, np.ndarray]:
    """LiteRT on the file's own (NHWC) layout; its tensors are matched to the model's ports by name."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if policy not in LITERT_RESOLVERS:
        raise QsimError(f"--against litert: policy {policy!r} names no LiteRT kernel set; use one of "
                        f"{', '.join(LITERT_RESOLVERS)}")
    it = Interpreter(model_path=str(path), num_threads=1,
                     experimental_op_resolver_type=getattr(OpResolverType, LITERT_RESOLVERS[policy]))
    it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()
    ins_by_name, outs_by_name = {d["name"]: d for d in ins}, {d["name"]: d for d in outs}
    for d, p in zip(ins, io.inputs):
        it.set_tensor(ins_by_name.get(p.name, d)["index"], feeds[p.name])
    it.invoke()
    return {p.name: it.get_tensor(outs_by_name.get(p.name, d)["index"]) for d, p in zip(outs, io.outputs)}
