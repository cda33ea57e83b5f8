"""User data files of ``qsim validate`` (``--data``, ``--calib``): read, checked against the model
file's own inputs and moved into the simulator's IR at this boundary.

A file is an ``.npz`` with one array per model input, keyed by the model's own input name and in its
own layout: the names, shapes and dtypes that onnxruntime's ``InferenceSession.get_inputs()`` or
LiteRT's ``Interpreter.get_input_details()`` report (NHWC for a rank-4 .tflite input), plus an
optional ``labels`` array. Any other key, a missing input, a rank or dimension that differs, or a
dtype that is not numeric is a QsimError naming the file, the array and every expected input; an
NCHW array for an NHWC input is told how to transpose it (qsim's internal layout is no longer
accepted: for a square image with as many channels as rows it could not be told apart). The
arrays then reach the IR as transposed views; ``against.declared_feeds`` casts or quantizes them
to each input's declared dtype (for ``--calib`` too, so that calibration sees the values the
runtime would).
"""
from __future__ import annotations

import numpy as np

from qsim.errors import QsimError

LABELS = "labels"


def read_npz(path: str, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise QsimError(f"{what} {path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise QsimError(f"{what} {path}: not a readable .npz file ({exc})") from None


def _dims(shape, free_batch: bool) -> list:
    """The model's shape with symbolic axes (and the sample axis where any count is taken) as None."""
    return [None if d is None or (i == 0 and free_batch) else int(d) for i, d in enumerate(shape)]


def expected_inputs(io, free_batch: bool = False) -> str:
    """``'x' float32 [1, 8, 8, 3] (NHWC), ...``: what the runtimes' input details report."""
    def one(p) -> str:
        dims = ", ".join("N" if d is None else str(d) for d in _dims(p.shape, free_batch))
        return f"{p.name!r} {p.dtype} [{dims}]" + (" (NHWC)" if p.perm else "")
    return "; ".join(one(p) for p in io.inputs)


def _fits(shape, dims) -> bool:
    return len(shape) == len(dims) and all(d is None or d == s for d, s in zip(dims, shape))


def model_arrays(io, arrays: dict, what: str, free_batch: bool = False) -> dict[str, np.ndarray]:
    """``arrays`` (keyed by the model's input names, in its layout; ``labels`` ignored) keyed by IR
    tensor, in the IR layout (views). ``free_batch``: any number of samples on axis 0 (calibration
    data, cut into batches later)."""
    expect = f"the model's inputs are {expected_inputs(io, free_batch)} (plus an optional 'labels' array)"
    names = {p.name for p in io.inputs}
    unknown = sorted(k for k in arrays if k not in names and k != LABELS)
    if unknown:
        raise QsimError(f"{what}: array {unknown[0]!r} names no model input; {expect}")
    out = {}
    for p in io.inputs:
        if p.name not in arrays:
            raise QsimError(f"{what}: no array {p.name!r}; {expect}")
        v = arrays[p.name]
        if v.dtype.kind not in "iufb":
            raise QsimError(f"{what}: array {p.name!r} is {v.dtype}, not numeric; {expect}")
        dims = _dims(p.shape, free_batch)
        if not _fits(v.shape, dims):
            hint = ""
            if p.perm and _fits(v.shape, [dims[a] for a in p.perm]):
                back = tuple(int(a) for a in np.argsort(p.perm))
                hint = (f" (that is NCHW; the model takes NHWC, the file's own layout: give "
                        f"np.transpose(x, {back}))")
            raise QsimError(f"{what}: array {p.name!r} has shape {list(v.shape)}{hint}; {expect}")
        out[p.tensor] = v.transpose(p.perm) if p.perm else v
    return out


def calibration_batches(feeds: dict[str, np.ndarray], batch: int, what: str) -> list[dict]:
    """Calibration arrays (any number of samples) cut into batches of the graph's batch size (the
    remainder is dropped)."""
    n = min(len(v) for v in feeds.values())
    if n < batch:
        raise QsimError(f"{what} has {n} samples; the graph's batch is {batch}: give at least that many")
    return [{t: v[i:i + batch] for t, v in feeds.items()} for i in range(0, n - batch + 1, batch)]
