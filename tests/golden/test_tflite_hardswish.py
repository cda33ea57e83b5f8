"""LiteRT's quantized HARD_SWISH (``qsim.kernels.hardswish``): every 8-bit input code against the
runtime under its three kernel sets (reference, optimized builtin, XNNPACK delegate), which
answer alike; ``qsim.simulate`` end to end; the parameters where LiteRT has no answer refused.

Before this kernel qsim ran the node as a float island (fp32 x * HardSigmoid(x), quantized): one
code off on 0-4 of the 256 codes in 4 of 5 parameter sets, under every kernel set. The planted
sets hold rounding ties of the final RoundingDivideByPOT (power-of-two scales, negative
products on a half: a ties-up shift differs there) and products where the truncating doubling
high multiply differs from a rounding one; zero points at both ends of int8; input scales from
1e-9 (reluish exponent -23, where gemmlowp's int16 mask is all ones) to 3e4 (saturating left
shifts); s_in / s_out up to 127.9 (output exponent 0)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from _tflite_models import _Builder, fb, run  # noqa: E402

import qsim.kernels.hardswish as hs  # noqa: E402
from qsim import simulate  # noqa: E402
from qsim.errors import QsimError  # noqa: E402

KERNELS = ("reference", "optimized", "xnnpack")
POLICIES = {"reference": "tflite-reference", "optimized": "tflite-optimized", "xnnpack": "xnnpack"}
X8 = np.arange(-128, 128, dtype=np.int8)
# (s_in, zp_in, s_out, zp_out)
TIES = [(0.0625, 0, 0.001953125, 0), (0.03125, 0, 0.0029296875, 0), (0.125, 0, 0.0078125, 0),
        (0.0625, 127, 0.001953125, 127), (0.09375, 127, 0.00390625, 127)]
PLANTED = TIES + [
    (0.05, 0, 0.03, -100), (0.0235, -5, 0.0211, -110), (0.02, 127, 0.01, 127), (0.1, -128, 0.05, -128),
    (1e-9, -128, 1e-9 / 3, 127), (3e-8, 127, 1e-8, -128), (2e-7, 0, 2e-7 / 3, 0),
    (0.05, -128, 0.05 / 100, 127), (0.05, 127, 0.05 / 127.9, -128), (0.05, 127, 0.05 / 64, 127),
    (3.0, -128, 1.5, 5), (1000.0, 127, 500.0, -128), (3e4, -128, 1.5e4, 127)]


def hard_swish(shape, s_in, zp_in, s_out, zp_out, dtype=np.int8) -> bytes:
    bld = _Builder()
    x = bld.tensor("x", shape, dtype, s_in, zp_in)
    y = bld.tensor("y", shape, dtype, s_out, zp_out)
    return bld.model(fb.BuiltinOperator.HARD_SWISH, [x], [y], 0, None, version=1)


def _runtime(params, x, kernels):
    return run(hard_swish(x.shape, *params, dtype=x.dtype), [x], kernels).astype(np.int64)


def _ties_up(v, e):
    v = np.asarray(v, np.int64)
    return v if e == 0 else (v + (1 << (e - 1))) >> e


def _rounding_sdhm(a, b):
    ab = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    v = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    return np.where(v >= 0, v >> 15, -((-v) >> 15))


def _variant(monkeypatch, name, fn, params):
    with monkeypatch.context() as m:
        m.setattr(hs, name, fn)
        return hs.hardswish_tflite(X8, *params)


@pytest.mark.parametrize("params", PLANTED)
def test_planted_every_code(params):
    want = hs.hardswish_tflite(X8, *params)
    for kernels in KERNELS:
        assert np.array_equal(_runtime(params, X8, kernels), want), kernels


def test_planted_sets_tell_the_roundings_apart(monkeypatch):
    """Each tie set fails a ties-up final shift; the ordinary sets fail a rounding doubling high
    multiply in the last product (LiteRT truncates there)."""
    for params in TIES:
        assert np.any(_variant(monkeypatch, "_rdbpot16", _ties_up, params) != hs.hardswish_tflite(X8, *params))
    ordinary = PLANTED[len(TIES):len(TIES) + 2]
    for params in ordinary:
        assert np.any(_variant(monkeypatch, "_sdhm16", _rounding_sdhm, params) != hs.hardswish_tflite(X8, *params))


def _random_sets(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        s_in = float(np.float32(10 ** rng.uniform(-9, 4)))
        s_out = float(np.float32(s_in * 10 ** rng.uniform(-3, 2.5)))
        zp = [int(rng.choice([-128, 127, int(rng.integers(-128, 128))])) for _ in range(2)]
        yield s_in, zp[0], s_out, zp[1]


def test_random_sets_and_where_litert_has_no_answer():
    """Random scales over 13 decades with s_in / s_out up to 1000: LiteRT's Prepare fails exactly
    where ``hardswish_tflite_params`` refuses (output exponent > 0), else every code is equal."""
    refused = answered = 0
    x = np.r_[X8, X8[:37]]  # 293 elements: full vectors and a tail
    for params in _random_sets(60, seed=5):
        try:
            want = hs.hardswish_tflite(x, *params)
        except ValueError:
            want = None
        for kernels in KERNELS:
            try:
                got = _runtime(params, x, kernels)
            except RuntimeError:
                got = None
            assert (got is None) == (want is None), (params, kernels)
            if want is not None:
                assert np.array_equal(got, want), (params, kernels)
        refused += want is None
        answered += want is not None
    assert refused >= 3 and answered >= 40


U8_WRAP = (0.05, 0, 0.05 / 127.9, 200)  # code 255: 32639 + 200 wraps in int16, LiteRT answers 0


@pytest.mark.parametrize("params", [(0.05, 128, 0.03, 0), (0.02, 0, 0.01, 255), (0.0625, 128, 0.001953125, 128),
                                    U8_WRAP, (0.05, 0, 0.05 / 127.99, 255)])
def test_uint8_every_code(params):
    x = np.arange(256, dtype=np.uint8)
    want = hs.hardswish_tflite(x, *params, qmin=0, qmax=255)
    for kernels in KERNELS:
        assert np.array_equal(_runtime(params, x, kernels), want), kernels


def test_uint8_output_zero_point_wraps_in_int16(monkeypatch):
    """The output zero point is added to an int16 (``output_value += output_zero_point``): near
    s_in / s_out = 128 a uint8 zero point of 200 takes the largest product past 32767, and the
    runtime answers 0 for the top code; an int32 sum would saturate to 255."""
    x = np.arange(256, dtype=np.uint8)
    want = _runtime(U8_WRAP, x, "reference")
    assert want[-1] == 0 and np.array_equal(hs.hardswish_tflite(x, *U8_WRAP, qmin=0, qmax=255), want)
    with monkeypatch.context() as m:
        m.setattr(hs, "_wrap16", lambda v: np.asarray(v, np.int64))
        assert hs.hardswish_tflite(x, *U8_WRAP, qmin=0, qmax=255)[-1] == 255


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("params", [PLANTED[0], PLANTED[4], PLANTED[6]])
def test_simulate(tmp_path, kernels, params):
    """End to end: an NHWC tensor holding every code, through the loader and the executor."""
    x = np.resize(X8, (2, 5, 7, 16))
    path = tmp_path / "hswish.tflite"
    path.write_bytes(hard_swish(x.shape, *params))
    got = next(iter(simulate(path, {"x": x}, policy=POLICIES[kernels]).values()))
    assert np.array_equal(got.astype(np.int64), _runtime(params, x, kernels))


@pytest.mark.parametrize("policy", list(POLICIES.values()))
def test_refused_where_litert_has_no_answer(tmp_path, policy):
    x = np.resize(X8, (1, 4, 4, 16))
    path = tmp_path / "hswish.tflite"
    path.write_bytes(hard_swish(x.shape, 0.05, 0, 0.05 / 200, 0))  # s_in / s_out >= 128
    with pytest.raises(QsimError, match=r"node 'y' \(HardSwish\).*HardSwishPrepare fails"):
        simulate(path, {"x": x}, policy=policy)
    with pytest.raises(RuntimeError):
        run(path.read_bytes(), [x], "reference")
    x16 = x.astype(np.int16)
    path.write_bytes(hard_swish(x.shape, 3e-4, 0, 2e-4, 0, dtype=np.int16))
    with pytest.raises(QsimError, match=r"node 'y' \(HardSwish, int16\).*HARD_SWISH takes float32, uint8 and int8"):
        simulate(path, {"x": x16}, policy=policy)


def test_simulate_uint8(tmp_path):
    x = np.resize(np.arange(256, dtype=np.uint8), (1, 4, 4, 16))
    path = tmp_path / "hswish_u8.tflite"
    path.write_bytes(hard_swish(x.shape, *U8_WRAP, dtype=np.uint8))
    for kernels, policy in POLICIES.items():
        got = next(iter(simulate(path, {"x": x}, policy=policy).values()))
        assert got.dtype == np.uint8 and np.array_equal(got.astype(np.int64), _runtime(U8_WRAP, x, kernels))


def _mobilenet_v3_block(path):
    """CONV_2D 1x1 -> HARD_SWISH -> DEPTHWISE_CONV_2D 3x3 -> HARD_SWISH, int8 NHWC, 24 channels:
    the activation between the matrix ops as MobileNetV3 places it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from _model_files import TfliteWriter

    rng = np.random.default_rng(11)
    w, c = TfliteWriter(), 24
    x = w.tensor("x", (1, 9, 9, c), np.int8, (0.04, -3))
    t = {n: w.tensor(n, (1, 9, 9, c), np.int8, q) for n, q in
         (("c1", (0.05, -20)), ("h1", (0.03, -110)), ("dw", (0.05, 5)), ("y", (0.025, -100)))}
    s_w = (0.01 * np.exp(rng.uniform(-0.5, 0.5, c))).astype(np.float32)
    zeros = np.zeros(c, int)
    w1 = w.tensor("w1", (c, 1, 1, c), np.int8, (s_w, zeros, 0), rng.integers(-127, 128, (c, 1, 1, c)))
    b1 = w.tensor("b1", (c,), np.int32, ((np.float32(0.04) * s_w).astype(np.float32), zeros, 0), rng.integers(-500, 500, c))
    w2 = w.tensor("w2", (1, 3, 3, c), np.int8, (s_w, zeros, 3), rng.integers(-127, 128, (1, 3, 3, c)))
    b2 = w.tensor("b2", (c,), np.int32, ((np.float32(0.03) * s_w).astype(np.float32), zeros, 0), rng.integers(-500, 500, c))
    same = dict(padding=w.s.Padding.SAME, strideH=1, strideW=1)
    w.op("CONV_2D", [x, w1, b1], [t["c1"]], w.options("Conv2DOptionsT", **same), "Conv2DOptions")
    w.op("HARD_SWISH", [t["c1"]], [t["h1"]])
    w.op("DEPTHWISE_CONV_2D", [t["h1"], w2, b2], [t["dw"]], w.options("DepthwiseConv2DOptionsT", depthMultiplier=1, **same),
         "DepthwiseConv2DOptions")
    w.op("HARD_SWISH", [t["dw"]], [t["y"]])
    return w.save(path, [x], [t["y"]])


@pytest.mark.parametrize("kernels", KERNELS)
def test_simulate_in_a_network(tmp_path, kernels):
    """The block end to end (the float island this kernel replaced differed on 5-6 of the 1,944
    outputs under each kernel set)."""
    path = _mobilenet_v3_block(tmp_path / "block.tflite")
    x = np.random.default_rng(3).integers(-128, 128, (1, 9, 9, 24)).astype(np.int8)
    want = run(path.read_bytes(), [x], kernels)
    got = next(iter(simulate(path, {"x": x}, policy=POLICIES[kernels]).values()))
    assert np.array_equal(got, want)
