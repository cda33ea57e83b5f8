"""qsim.numerics.quantize (variant "onnx") against onnxruntime QuantizeLinear, with planted ties."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from _onnx_models import quantize_linear, session  # noqa: E402
from _ties import Tally  # noqa: E402

from qsim.numerics.tensor_quant import TensorQuant  # noqa: E402
from qsim.numerics import get_format, quantize  # noqa: E402

INT_TYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
             "int4": np.int8, "uint4": np.uint8}


def _data(shape, scale, fmt, rng):
    """Half the elements are exact ties k + 0.5 (in units of a power-of-two scale), the rest random
    values over the whole range, plus values far outside it (saturation)."""
    span = fmt.qmax - fmt.qmin + 1
    k = rng.integers(-span, span, size=shape)
    x = (k + 0.5) * scale
    rnd = rng.uniform(-1.2, 1.2, size=shape) * span * scale
    x = np.where(rng.random(shape) < 0.5, x, rnd)
    x.flat[:4] = [1e30, -1e30, 0.0, -0.0]
    return x.astype(np.float32), int(np.sum(np.abs(x / scale - np.round(x / scale)) == 0.5))


@pytest.mark.parametrize("dtype", list(INT_TYPES))
@pytest.mark.parametrize("gran", ["tensor", "channel", "block"])
def test_quantize_linear_int(dtype, gran):
    rng = np.random.default_rng(zlib.crc32(f"{dtype}{gran}".encode()))
    fmt = get_format(dtype)
    shape = (3, 8, 5)
    axis, block = None, 0
    if gran == "tensor":
        scale = np.float32(0.25)
        zp = np.asarray(fmt.qmin + (fmt.qmax - fmt.qmin) // 3 | 1, INT_TYPES[dtype])  # an odd zero point
    elif gran == "channel":
        axis = 1
        scale = (2.0 ** -rng.integers(0, 4, 8)).astype(np.float32)
        zp = rng.integers(fmt.qmin // 2, fmt.qmax // 2 + 1, 8).astype(INT_TYPES[dtype])
    else:
        axis, block = 1, 4
        scale = (2.0 ** -rng.integers(0, 4, (3, 2, 5))).astype(np.float32)
        zp = rng.integers(fmt.qmin // 2, fmt.qmax // 2 + 1, (3, 2, 5)).astype(INT_TYPES[dtype])
    tq = TensorQuant(scale, zp, dtype, axis, block)
    from qsim.numerics.quantize import broadcast_param
    x, ties = _data(shape, broadcast_param(tq.scale, tq, shape), fmt, rng)
    y = session(quantize_linear(shape, scale, zp, dtype, axis, block)).run(None, {"x": x})[0]
    ours = quantize(x, tq, "onnx")
    bad = int(np.sum(ours.astype(np.int64) != y.astype(np.int64)))
    Tally.add(f"quantize-onnx-{dtype}", x.size, ties, bad)
    assert bad == 0


@pytest.mark.parametrize("dtype", ["float8e4m3fn", "float8e5m2"])
@pytest.mark.parametrize("saturate", [1, 0])
def test_quantize_linear_fp8(dtype, saturate):
    rng = np.random.default_rng(7)
    fmt = get_format(dtype)
    # ties between neighbouring fp8 values at every exponent, subnormals, and the overflow region
    e = rng.integers(fmt.emin - fmt.man_bits, fmt.emax + 1, 4000)
    m = rng.integers(0, 2 ** (fmt.man_bits + 1), 4000)
    ties = np.ldexp(2.0 ** fmt.man_bits + m + 0.5, e - fmt.man_bits).astype(np.float32)
    ties = np.where(ties > fmt.max, fmt.max / 2, ties)
    rnd = (rng.standard_normal(4000) * np.exp2(rng.integers(-12, 16, 4000))).astype(np.float32)
    x = np.concatenate([ties, -ties, rnd, [np.nan, np.inf, -np.inf, 0.0, fmt.max * 4]]).astype(np.float32)
    sign = np.where(rng.random(x.size) < 0.5, 1, -1).astype(np.float32)
    x = x * sign
    y = session(quantize_linear(x.shape, np.float32(0.5), 0.0, dtype, saturate=saturate)).run(
        None, {"x": x})[0]
    ours = quantize(x, TensorQuant(np.float32(0.5), np.float32(0), dtype), "onnx", saturate=bool(saturate))
    same = (ours == y) | (np.isnan(ours) & np.isnan(y))
    if not saturate:
        # onnxruntime deviates from the OCP/IEEE overflow rule when not saturating (measured with
        # 1.32): E4M3FN maps (448, 464] and [480, 496) to 448 but (464, 480) to NaN; E5M2 gives NaN,
        # not inf, for [61440, 65536). qsim follows the spec (and ml_dtypes); skip that region.
        hi = {"float8e4m3fn": 512.0, "float8e5m2": 65536.0}[dtype]
        same |= (np.abs(x / 0.5) > fmt.max) & (np.abs(x / 0.5) < hi)
    bad = int(np.sum(~same))
    Tally.add(f"quantize-onnx-{dtype}-sat{saturate}", x.size, 2 * ties.size, bad)
    assert bad == 0


def _tie_floats(rng, scale, n=4000):
    """Exact ties k + 0.5 in units of ``scale`` (fp32), plus as many random values."""
    k = rng.integers(-140, 140, n)
    ties = ((k + 0.5) * np.float32(scale)).astype(np.float32)
    return np.r_[ties, rng.uniform(-60, 60, n).astype(np.float32)], n


LITERT_QUANTIZE = {"reference": "tflite", "optimized": "xnnpack", "xnnpack": "xnnpack"}


@pytest.mark.parametrize("kernels", list(LITERT_QUANTIZE))
def test_litert_quantize(kernels):
    pytest.importorskip("ai_edge_litert")
    from _tflite_models import quantize as quantize_model
    from _tflite_models import run
    rng = np.random.default_rng(50)
    n = ties = bad = 0
    for s, z in [(0.25, 3), (0.1, -5), (1 / 3, 0), (0.0123, 7)]:
        x, t = _tie_floats(rng, s)
        y = run(quantize_model(x.shape, s, z), [x], kernels).astype(np.int64)
        ours = quantize(x, TensorQuant(np.float32(s), np.int8(z), "int8"), LITERT_QUANTIZE[kernels])
        bad += int(np.sum(ours.astype(np.int64) != y))
        n, ties = n + x.size, ties + t
    Tally.add(f"quantize-{LITERT_QUANTIZE[kernels]} (LiteRT QUANTIZE, {kernels})", n, ties, bad)
    assert bad == 0


@pytest.mark.parametrize("engine", ["fbgemm", "qnnpack"])
def test_torch_quantize(engine):
    torch = pytest.importorskip("torch")
    import warnings
    torch.backends.quantized.engine = engine
    rng = np.random.default_rng(51)
    n = ties = bad = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for s, z in [(0.25, 3), (0.1, -5), (1 / 3, 0), (0.0123, 7)]:
            x, t = _tie_floats(rng, s)
            s32 = np.float32(s)
            y = torch.quantize_per_tensor(torch.from_numpy(x), float(s32), z, torch.qint8).int_repr().numpy()
            ours = quantize(x, TensorQuant(s32, np.int8(z), "int8"), "fbgemm")
            bad += int(np.sum(ours.astype(np.int64) != y.astype(np.int64)))
            n, ties = n + x.size, ties + t
        xc = x[:4000].reshape(8, 500)
        sc = np.float32([0.25, 0.1, 1 / 3, 0.0123, 0.5, 0.2, 0.03, 0.7])
        zc = np.array([3, -5, 0, 7, 1, -1, 2, 0])
        y = torch.quantize_per_channel(torch.from_numpy(xc), torch.from_numpy(sc.astype(np.float64)),
                                       torch.from_numpy(zc), 0, torch.qint8).int_repr().numpy()
        ours = quantize(xc, TensorQuant(sc, zc.astype(np.int8), "int8", axis=0), "fbgemm")
        bad += int(np.sum(ours.astype(np.int64) != y.astype(np.int64)))
        n += xc.size
    Tally.add(f"quantize-fbgemm (torch quantize_per_tensor/channel, {engine})", n, ties, bad)
    assert bad == 0
