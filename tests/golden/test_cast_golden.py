"""ONNX Cast against onnxruntime itself (``qsim.sim.ort_cast``): float32 / float64 to float16 and
bfloat16 round (to nearest even, overflow to inf, subnormals, NaN made quiet), float <-> integer for
every integer type, float16 graph inputs and outputs keep their type, and float16 arithmetic (which
onnxruntime runs in float32, dropping the model's Casts around it) is refused."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402
from qsim.errors import QsimError  # noqa: E402
from qsim.ir.onnx_import import load_onnx  # noqa: E402

ODD32 = np.array([300.7, 1e30, -1e30, np.nan, -np.nan, np.inf, -np.inf, 6e-8, 3e-8, 2.9802322e-08, 1e-5, 65504,
                  65520, 65519.99, -0.0, 1.00048828125, 3.4e38], np.float32)
SNAN32 = np.array([0x7F800001, 0xFF815466, 0x7FBF12F2, 0x7FC00001], np.uint32).view(np.float32)
INTS = [(TP.INT8, np.int8), (TP.UINT8, np.uint8), (TP.INT16, np.int16), (TP.UINT16, np.uint16),
        (TP.INT32, np.int32), (TP.UINT32, np.uint32), (TP.INT64, np.int64), (TP.UINT64, np.uint64)]


def _casts(tmp_path, src, chain, n, between=None):
    nodes, cur = [], "x"
    for i, t in enumerate(chain):
        nodes.append(h.make_node("Cast", [cur], [f"c{i}"], to=t))
        cur = f"c{i}"
    nodes.append(h.make_node("Identity", [cur], ["y"]))
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", src, [n])],
                                  [h.make_tensor_value_info("y", chain[-1], [n])]),
                     opset_imports=[h.make_opsetid("", 19)])
    m.ir_version = 9
    onnx.save(m, tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def _check(path, x):
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = qsim.simulate(path, {"x": x}, ort_cpu="host")["y"]
    assert got.dtype == want.dtype
    bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[want.dtype.itemsize]
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(bits), want.view(bits))


def _floats32(seed=0, n=20000):
    rng = np.random.default_rng(seed)
    odd = np.concatenate([ODD32, SNAN32])
    x = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([odd, x, odd])  # the odd values in the blocks and in the tail


@pytest.mark.parametrize("chain", [[TP.FLOAT16, TP.FLOAT], [TP.BFLOAT16, TP.FLOAT], [TP.FLOAT16],
                                   [TP.FLOAT16, TP.DOUBLE], [TP.BFLOAT16, TP.FLOAT16],
                                   [TP.DOUBLE, TP.FLOAT16], [TP.DOUBLE, TP.FLOAT], [TP.DOUBLE, TP.FLOAT16, TP.FLOAT]])
@pytest.mark.parametrize("n", [20000, 20003])  # MLAS converts blocks of 8 and a tail
def test_float32_to_narrow_floats(tmp_path, chain, n):
    x = _floats32(n=n)
    _check(_casts(tmp_path, TP.FLOAT, chain, len(x)), x)


def test_hand_checked_roundings(tmp_path):
    x = np.array([300.7, 1e30, 3e-8, 65520], np.float32)
    path = _casts(tmp_path, TP.FLOAT, [TP.FLOAT16, TP.FLOAT], len(x))
    got = qsim.simulate(path, {"x": x}, ort_cpu="host")["y"]
    assert got.tolist() == [300.75, np.inf, 2.0 ** -24, np.inf]
    path = _casts(tmp_path, TP.FLOAT, [TP.BFLOAT16, TP.FLOAT], 1)
    assert qsim.simulate(path, {"x": np.array([1e30], np.float32)}, ort_cpu="host")["y"][0] == np.float32(1.00025555e30)


def test_float64_to_float16_rounds_twice(tmp_path):
    nans = np.array([0x7FF0000000000001, 0xFFF4000000000000, 0x7FF8000000000123], np.uint64).view(np.float64)
    x = np.concatenate([[1 + 2**-11 + 2**-40, -(1 + 2**-11 + 2**-40), 2**-25 + 2**-60, 65520 - 2**-30, 1e300,
                         16777217.4, 2147483647.7],
                        nans, np.random.default_rng(1).standard_normal(2000) * 1e3])
    for chain in ([TP.FLOAT16], [TP.FLOAT, TP.FLOAT16], [TP.FLOAT, TP.BFLOAT16, TP.FLOAT], [TP.FLOAT, TP.INT32]):
        _check(_casts(tmp_path, TP.DOUBLE, chain, len(x)), x)


@pytest.mark.parametrize("n", [65536, 65536 - 9])  # MLAS converts blocks of 16 and a tail
def test_float16_input_every_value(tmp_path, n):
    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)[-n:]
    for chain in ([TP.FLOAT], [TP.DOUBLE], [TP.BFLOAT16, TP.FLOAT], [TP.FLOAT, TP.FLOAT16], [TP.FLOAT16]):
        _check(_casts(tmp_path, TP.FLOAT16, chain, len(x)), x)
    _check(_casts(tmp_path, TP.FLOAT16, [TP.INT32], len(x)), x)


@pytest.mark.parametrize("to", INTS, ids=lambda t: np.dtype(t[1]).name)
@pytest.mark.parametrize("src", [(TP.FLOAT, np.float32), (TP.DOUBLE, np.float64), (TP.FLOAT16, np.float16)],
                         ids=lambda t: np.dtype(t[1]).name)
def test_float_to_int(tmp_path, src, to):
    x = np.array([0, 0.5, -0.5, 1.5, -2.7, 127.9, 128.5, -128.9, -129, 255.9, 256, -300, 32767.5, 32768, 65535.9,
                  65536, -70000, 2147483520, 2147483648, -2147483904, 4.3e9, -4.3e9, 9.3e18, -9.3e18, 1e30,
                  np.inf, -np.inf, np.nan, 1e-40], np.float64).astype(src[1])
    _check(_casts(tmp_path, src[0], [to[0]], len(x)), x)


@pytest.mark.parametrize("src", INTS, ids=lambda t: np.dtype(t[1]).name)
def test_int_to_float(tmp_path, src):
    ii, rng = np.iinfo(src[1]), np.random.default_rng(2)
    x = np.concatenate([rng.integers(ii.min, ii.max, 3000, dtype=src[1], endpoint=True),
                        np.array([c for c in (ii.min, ii.max, 0, 65519, 65520, 2**24 + 1, 2**53 + 1)
                                  if ii.min <= c <= ii.max], dtype=object).astype(src[1])])
    for to in (TP.FLOAT, TP.DOUBLE, TP.FLOAT16):
        _check(_casts(tmp_path, src[0], [to], len(x)), x)


def test_float16_arithmetic_is_refused(tmp_path):
    # onnxruntime drops the model's own Casts around a float16 node: 1e30 passes unrounded
    m = h.make_model(h.make_graph([h.make_node("Cast", ["x"], ["a"], to=TP.FLOAT16), h.make_node("Relu", ["a"], ["b"]),
                                   h.make_node("Cast", ["b"], ["y"], to=TP.FLOAT)], "g",
                                  [h.make_tensor_value_info("x", TP.FLOAT, [2])], [h.make_tensor_value_info("y", TP.FLOAT, [2])]),
                     opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "r.onnx")
    x = np.array([1e30, 300.7], np.float32)
    want = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert want.tolist() == x.tolist()
    with pytest.raises(QsimError, match=r"b \(Relu on float16\).*InsertCastTransformer"):
        qsim.simulate(tmp_path / "r.onnx", {"x": x}, ort_cpu="host")
    assert len(list(load_onnx(tmp_path / "r.onnx").nodes())) == 3  # imported all the same (cost model)
