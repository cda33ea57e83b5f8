"""LiteRT PAD and MEAN on quantized tensors against the three kernel sets (issue 11, T3): PAD is a
copy filled with the zero point; MEAN runs as a float island where that equals LiteRT."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from ai_edge_litert import schema_py_generated as fb  # noqa: E402

import _tflite_models as T  # noqa: E402
from qsim import simulate  # noqa: E402

KERNELS = ["reference", "optimized", "xnnpack"]
POLICY = {"reference": "tflite-reference", "optimized": "tflite-optimized", "xnnpack": "xnnpack"}


def _pad_model(shape, pads, dtype, scale, zp):
    bld = T._Builder()
    x = bld.tensor("x", shape, dtype, scale, zp)
    p = bld.tensor("pads", (len(shape), 2), np.int32, 1.0, 0, data=np.asarray(pads, np.int32))
    bld.tensors[p].quantization = None
    out = tuple(d + a + b for d, (a, b) in zip(shape, pads))
    y = bld.tensor("y", out, dtype, scale, zp)
    return bld.model(fb.BuiltinOperator.PAD, [x, p], [y], fb.BuiltinOptions.PadOptions, fb.PadOptionsT())


def _mean_model(shape, axes, keep, dtype, qin, qout):
    bld = T._Builder()
    x = bld.tensor("x", shape, dtype, *qin)
    a = bld.tensor("axes", (len(axes),), np.int32, 1.0, 0, data=np.asarray(axes, np.int32))
    bld.tensors[a].quantization = None
    out = tuple((1 if i in axes else d) for i, d in enumerate(shape) if keep or i not in axes)
    y = bld.tensor("y", out, dtype, *qout)
    opt = fb.ReducerOptionsT()
    opt.keepDims = keep
    return bld.model(fb.BuiltinOperator.MEAN, [x, a], [y], fb.BuiltinOptions.ReducerOptions, opt)


def _compare(tmp_path, model, x, kernels):
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    want = T.run(model, [x], kernels)
    got = simulate(path, {"x": x}, policy=POLICY[kernels])
    got = next(iter(got.values()))
    assert got.dtype == want.dtype and got.shape == want.shape
    return int(np.sum(got != want))


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("dtype,zp", [(np.int8, -37), (np.int8, 0), (np.int16, 0)])
def test_pad_fills_with_the_zero_point(tmp_path, kernels, dtype, zp):
    info = np.iinfo(dtype)
    x = np.random.default_rng(1).integers(info.min, info.max + 1, (1, 5, 4, 3)).astype(dtype)
    model = _pad_model(x.shape, [(0, 0), (2, 1), (0, 3), (1, 0)], dtype, 0.042, zp)
    assert _compare(tmp_path, model, x, kernels) == 0


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_quantized_mean_is_refused_before_running(tmp_path, kernels, dtype):
    """A float island differs from LiteRT's integer MEAN (measured: 1..22 elements of 14..60 per
    case), so the model is refused up front, naming the node and the op."""
    from qsim.errors import QsimError

    x = np.random.default_rng(2).integers(-100, 100, (1, 4, 5, 3)).astype(dtype)
    zp = -20 if dtype == np.int8 else 0
    model = _mean_model(x.shape, (1, 2), True, dtype, (0.0371, zp), (0.0123, zp))
    path = tmp_path / "mean.tflite"
    path.write_bytes(model)
    T.run(model, [x], kernels)  # the runtime runs it
    with pytest.raises(QsimError, match=r"ReduceMean.*quantized MEAN .* not modelled"):
        simulate(path, {"x": x}, policy=POLICY[kernels])
