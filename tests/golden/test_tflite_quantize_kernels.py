"""LiteRT QUANTIZE (float -> int8 / int16) and DEQUANTIZE (int8 -> float) per kernel set, on planted
ties (issue 11, T6 / T7): the optimized kernels run blocks of 8 and a scalar tail with different
arithmetic, XNNPACK quantizes int8 itself and leaves int16 to the optimized kernel."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from ai_edge_litert import schema_py_generated as fb  # noqa: E402

import _tflite_models as T  # noqa: E402
from qsim import simulate  # noqa: E402

POLICY = {"reference": "tflite-reference", "optimized": "tflite-optimized", "xnnpack": "xnnpack"}
F32 = np.float32


def _ties(rng, shape, scale):
    """Values on exact rounding ties (k + 0.5) * scale, and the fp32 neighbours of some."""
    k = rng.integers(-140, 140, shape).astype(np.float64)
    x = ((k + 0.5) * float(scale)).astype(F32)
    x.reshape(-1)[1::3] = np.nextafter(x.reshape(-1)[1::3], F32(np.inf))
    return x


def _dequantize_model(shape, dtype, scale, zp):
    bld = T._Builder()
    x = bld.tensor("x", shape, dtype, scale, zp)
    y = bld.tensor("y", shape, np.float32, None, None)
    return bld.model(fb.BuiltinOperator.DEQUANTIZE, [x], [y], 0, None, version=2)


def _run_both(tmp_path, model, x, kernels):
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    want = T.run(model, [x], kernels)
    got = next(iter(simulate(path, {"x": x}, policy=POLICY[kernels]).values()))
    assert got.dtype == want.dtype and got.shape == want.shape
    return got, want


@pytest.mark.parametrize("kernels", list(POLICY))
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("shape", [(1, 13), (3, 7), (1, 3, 5, 3), (2, 16)])
def test_quantize_ties_per_kernel_set(tmp_path, kernels, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    scale, zp = F32(0.032623291015625), (18 if dtype == np.int8 else 0)
    x = _ties(rng, shape, scale)
    got, want = _run_both(tmp_path, T.quantize(shape, scale, zp, dtype), x, kernels)
    assert int(np.sum(got != want)) == 0


@pytest.mark.parametrize("kernels", list(POLICY))
@pytest.mark.parametrize("shape", [(1, 378), (2, 13), (1, 3, 5, 3), (1, 2, 2, 8)])
def test_dequantize_per_kernel_set(tmp_path, kernels, shape):
    x = np.random.default_rng(len(shape)).integers(-128, 128, shape).astype(np.int8)
    got, want = _run_both(tmp_path, _dequantize_model(shape, np.int8, F32(0.0024356), -63), x, kernels)
    assert int(np.sum(got.view(np.int32) != want.view(np.int32))) == 0


def test_optimized_tail_is_what_differs():
    """The arithmetic the tests above pin: in a 13-element array the 5 tail elements of a tie round
    half away from zero, the first 8 half to even."""
    from qsim.numerics.quantize import quantize
    from qsim.numerics.tensor_quant import TensorQuant

    tq = TensorQuant(np.array(0.5, F32), np.array(0, np.int8), "int8")
    x = np.full(13, 1.25, F32)  # 2.5 codes: a tie
    y = quantize(x, tq, "tflite-optimized")
    assert y[:8].tolist() == [2] * 8 and y[8:].tolist() == [3] * 5


def _requantize_model(shape, din, qin, dout, qout):
    bld = T._Builder()
    x = bld.tensor("x", shape, din, *qin)
    y = bld.tensor("y", shape, dout, *qout)
    return bld.model(fb.BuiltinOperator.QUANTIZE, [x], [y], 0, None, version=2)


@pytest.mark.parametrize("kernels", list(POLICY))
@pytest.mark.parametrize("din,dout", [(np.int8, np.int8), (np.int16, np.int8), (np.int16, np.int16), (np.int8, np.int16)])
@pytest.mark.parametrize("shape", [(1, 31), (2, 16), (1, 3, 5, 3), (1, 2, 3, 9)])
def test_requantize_per_kernel_set(tmp_path, kernels, din, dout, shape):
    """QUANTIZE int -> int: the optimized int8 kernel's NEON blocks of 16 and reference tail, and
    XNNPACK's qs8-vcvt, on several scale ratios (both directions) and zero points."""
    rng = np.random.default_rng(len(shape) * 7 + shape[-1])
    info = np.iinfo(din)
    bad = 0
    for s_in, ratio in ((3.49e-5, 0.4993), (0.0054619, 0.04044), (0.0158, 0.25), (0.0371, 3.7)):
        zin = int(rng.integers(-40, 40)) if din == np.int8 else 0
        zout = 42 if dout == np.int8 else 0
        x = rng.integers(info.min, info.max + 1, shape).astype(din)
        model = _requantize_model(shape, din, (F32(s_in), zin), dout, (F32(s_in / ratio), zout))
        got, want = _run_both(tmp_path, model, x, kernels)
        bad += int(np.sum(got != want))
    assert bad == 0
