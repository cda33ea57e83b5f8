"""NaN, infinities, huge values and denormals against the runtimes themselves, beyond QuantizeLinear
(test_quantize_nan.py): onnxruntime's DynamicQuantizeLinear (its run-time min / max, scale and zero
point: ``qsim.sim.mlas_minmax``) and the dynamic-quantization models around it, LiteRT's QUANTIZE
per kernel set (``quantize._litert_x86_int32``, XNNPACK's NaN to the maximum), and float nodes ahead
of the quantization (a float MaxPool fed NaN is refused: its kernels keep or drop a NaN by position).
Measured on an x86 (AVX2) host, as the runtimes installed here run."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402
from qsim.errors import GraphError  # noqa: E402
from qsim.sim.int_dynamic import dynamic_quantize_linear  # noqa: E402
from qsim.sim.int_runtime import ort_cpu_scope  # noqa: E402
from qsim.sim.mlas_minmax import SINGLE_RANGE_ELEMENTS  # noqa: E402

F32 = np.float32
ODD = np.array([np.nan, -np.nan, np.inf, -np.inf, 1e30, -1e30, 3e9, -3e9, 1e-40, -1e-45, 3e38], F32)


def _bits(a) -> np.ndarray:
    return np.ascontiguousarray(a, F32).view(np.uint32)


def _session(model: onnx.ModelProto, threads: int = 1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _graph(nodes, inputs, outputs, inits=(), opsets=(("", 17),)) -> onnx.ModelProto:
    m = h.make_model(h.make_graph(nodes, "g", inputs, outputs, list(inits)),
                     opset_imports=[h.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = 8
    return m


def _dql() -> onnx.ModelProto:
    return _graph([h.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])],
                  [h.make_tensor_value_info("x", TP.FLOAT, None)],
                  [h.make_tensor_value_info("y", TP.UINT8, None), h.make_tensor_value_info("s", TP.FLOAT, None),
                   h.make_tensor_value_info("z", TP.UINT8, None)])


def _assert_dql(session, x):
    want = session.run(None, {"x": x})
    got = dynamic_quantize_linear([x], {}, {})
    np.testing.assert_array_equal(got[0], want[0])
    assert _bits(got[1]).tolist() == _bits(want[1]).tolist() and int(got[2]) == int(want[2])


# -- DynamicQuantizeLinear ------------------------------------------------------------------------
def test_dql_nan_at_every_position():
    session = _session(_dql())
    rng = np.random.default_rng(0)
    for n in range(1, 101):
        for p in range(n):
            x = (rng.standard_normal(n) * 3).astype(F32)
            x[p] = np.nan
            _assert_dql(session, x)


@pytest.mark.parametrize("n", [1, 3, 8, 13, 32, 37, 64, 100, 1000, 4097, SINGLE_RANGE_ELEMENTS])
def test_dql_odd_values_planted(n):
    session = _session(_dql(), threads=2)  # at most SINGLE_RANGE_ELEMENTS: one range whatever the threads
    rng = np.random.default_rng(n)
    for _ in range(12):
        x = (rng.standard_normal(n) * rng.choice([1e-3, 1.0, 100.0])).astype(F32)
        if rng.random() < 0.3:  # all of one sign: a zero point at either end
            x = (np.abs(x) * rng.choice([-1, 1])).astype(F32)
        k = int(rng.integers(1, 5))
        x[rng.integers(0, n, k)] = rng.choice(ODD, k)
        _assert_dql(session, x)


def test_dql_hand_checked_runtime_behaviour():
    session = _session(_dql())
    # 32 values, then a NaN opening the last vector of 8: maxps(5, NaN) makes lane 0 NaN, and the
    # halves' maxps(NaN, 0.5) drops it: the 5 is hidden, max 0.5, and codes of 5 clamp to 255
    x = np.array([5.0] + [0.5] * 31 + [np.nan] + [0.25] * 7, F32)
    y, s, z = session.run(None, {"x": x})
    assert s == F32(0.5) / F32(255) and z == 0 and y[0] == 255 and y[32] == 0
    _assert_dql(session, x)
    # a NaN as the last value of the vector part sticks: scale NaN, zero point 255, every code 0
    x = np.array([1.0] * 7 + [np.nan], F32)
    y, s, z = session.run(None, {"x": x})
    assert np.isnan(s) and z == 255 and not y.any()
    _assert_dql(session, x)
    # -inf: scale inf, initial zero point -(-inf / inf) = NaN, and std::min(255.f, NaN) = 255
    y, s, z = session.run(None, {"x": np.array([-np.inf, 1.0, -1.0], F32)})
    assert s == np.inf and z == 255 and y.tolist() == [0, 255, 255]
    # a denormal range: scale 1e-45 / 255 = 0, initial zero point 0 / 0 = NaN: zero point 255
    _assert_dql(session, np.array([1e-45], F32))


def test_dql_nan_past_one_range_is_refused():
    """Past SINGLE_RANGE_ELEMENTS onnxruntime splits the min / max among its threads: a NaN at the
    end survives with one thread and not with two, so qsim refuses rather than guess."""
    n = SINGLE_RANGE_ELEMENTS + 8
    x = np.random.default_rng(1).standard_normal(n).astype(F32)
    x[-1] = np.nan
    one, two = (_session(_dql(), threads=t).run(None, {"x": x})[1] for t in (1, 2))
    assert np.isnan(one) and not np.isnan(two)
    with pytest.raises(ValueError, match="DynamicQuantizeLinear"):
        dynamic_quantize_linear([x], {}, {})
    x[-1] = np.inf  # without a NaN the thread count does not matter
    _assert_dql(_session(_dql(), threads=2), x)


def test_dql_arm64_refuses_nan():
    with ort_cpu_scope("arm64"), pytest.raises(ValueError, match="DynamicQuantizeLinear.*arm64"):
        dynamic_quantize_linear([np.array([np.nan, 1.0], F32)], {}, {})


def _dqmm_model(k=64, n=24) -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    init = [nh.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), "w"), nh.from_array(F32(0.0123), "ws"),
            nh.from_array(np.int8(0), "wz"), nh.from_array(rng.standard_normal(n).astype(F32), "b")]
    node = h.make_node("DynamicQuantizeMatMul", ["x", "w", "ws", "wz", "b"], ["y"], domain="com.microsoft")
    return _graph([node], [h.make_tensor_value_info("x", TP.FLOAT, [2, 5, k])],
                  [h.make_tensor_value_info("y", TP.FLOAT, None)], init, (("", 17), ("com.microsoft", 1)))


def _dynamic_chain_model() -> onnx.ModelProto:
    """DQL -> MatMulInteger -> Cast -> Mul -> Relu -> DQL -> MatMulInteger -> Cast -> Mul: a NaN or an
    infinity in the first scale becomes NaN products, which the second DQL's min / max then meets."""
    rng = np.random.default_rng(3)
    init = [nh.from_array(rng.integers(-127, 128, (16, 24)).astype(np.int8), "w1"),
            nh.from_array(rng.integers(-127, 128, (24, 8)).astype(np.int8), "w2"),
            nh.from_array(np.int8(0), "wz"), nh.from_array(F32(0.01), "ws")]
    nodes = []
    for i, src in ((1, "x"), (2, "r")):
        nodes += [h.make_node("DynamicQuantizeLinear", [src], [f"q{i}", f"s{i}", f"z{i}"]),
                  h.make_node("MatMulInteger", [f"q{i}", f"w{i}", f"z{i}", "wz"], [f"a{i}"]),
                  h.make_node("Cast", [f"a{i}"], [f"c{i}"], to=TP.FLOAT),
                  h.make_node("Mul", [f"s{i}", "ws"], [f"m{i}"]),
                  h.make_node("Mul", [f"c{i}", f"m{i}"], ["h1" if i == 1 else "y"])]
        if i == 1:
            nodes.append(h.make_node("Relu", ["h1"], ["r"]))
    return _graph(nodes, [h.make_tensor_value_info("x", TP.FLOAT, [3, 16])],
                  [h.make_tensor_value_info("y", TP.FLOAT, None)], init)


@pytest.mark.parametrize("build,shape", [(_dqmm_model, (2, 5, 64)), (_dynamic_chain_model, (3, 16))])
def test_dynamic_models_fed_odd_values(tmp_path, build, shape):
    path = tmp_path / "m.onnx"
    onnx.save(build(), str(path))
    session = _session(build())
    rng = np.random.default_rng(sum(shape))
    size = int(np.prod(shape))
    for v in ODD:
        for p in (0, size // 2, size - 1, size - 3):
            x = rng.standard_normal(shape).astype(F32)
            x.reshape(-1)[p] = v
            want = session.run(None, {"x": x})[0]
            got = qsim.simulate(path, {"x": x}, ort_cpu="host")["y"]
            assert got.shape == want.shape and _bits(got).tolist() == _bits(want).tolist(), (v, p)


# -- LiteRT QUANTIZE -------------------------------------------------------------------------------
LITERT = {"reference": "tflite-reference", "optimized": "tflite-optimized", "xnnpack": "xnnpack"}


def _litert(tmp_path, shape, scale, zp, dtype, x, kernels):
    T = pytest.importorskip("_tflite_models")
    model = T.quantize(shape, scale, zp, dtype)
    path = tmp_path / "q.tflite"
    path.write_bytes(model)
    want = T.run(model, [x], kernels)
    got = next(iter(qsim.simulate(path, {"x": x}, policy=LITERT[kernels]).values()))
    assert got.dtype == want.dtype
    return got, want


@pytest.mark.parametrize("kernels", list(LITERT))
@pytest.mark.parametrize("dtype,zp", [(np.int8, 5), (np.int8, -128), (np.int8, 127), (np.uint8, 0),
                                      (np.uint8, 128), (np.uint8, 255), (np.int16, 0)])
def test_litert_quantize_odd_values(tmp_path, kernels, dtype, zp):
    pytest.importorskip("ai_edge_litert")
    rng = np.random.default_rng(abs(zp) + len(kernels))
    extra = np.array([2147483520.0, -2147483648.0, 4294967296.0], F32)  # int32's edges, in codes (scale 1)
    for shape in [(1, 1), (1, 7), (1, 13), (1, 16), (1, 37), (1, 100), (1, 3, 5, 3), (2, 2, 2, 8)]:
        for scale in (F32(0.02), F32(1.0)):
            x = (rng.standard_normal(shape) * 3).astype(F32)
            odd = np.concatenate([ODD, extra])
            k = min(x.size, int(rng.integers(1, 8)))
            x.reshape(-1)[rng.choice(x.size, k, replace=False)] = rng.choice(odd, k)
            got, want = _litert(tmp_path, shape, scale, zp, dtype, x, kernels)
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} {scale} {x.reshape(-1).tolist()}")


def test_litert_quantize_runtime_behaviour(tmp_path):
    """What the runtimes do, hand-checked: the builtin kernels convert with INT32_MIN for a NaN or an
    out-of-range value and add the zero point wrapping (so a negative zero point gives the maximum);
    XNNPACK clamps a NaN to the maximum and saturates the rest."""
    pytest.importorskip("ai_edge_litert")
    x = np.array([[np.nan, 1e30, -1e30, np.inf, 0.0]], F32)
    for kernels in ("reference", "optimized"):
        assert _litert(tmp_path, (1, 5), F32(0.02), 5, np.int8, x, kernels)[1].tolist() == [[-128] * 4 + [5]]
        assert _litert(tmp_path, (1, 5), F32(0.02), -3, np.int8, x, kernels)[1].tolist() == [[127] * 4 + [-3]]
        assert _litert(tmp_path, (1, 5), F32(0.02), 0, np.uint8, x, kernels)[1].tolist() == [[0] * 5]
    want = _litert(tmp_path, (1, 5), F32(0.02), 5, np.int8, x, "xnnpack")[1]
    assert want.tolist() == [[127, 127, -128, 127, 5]]


# -- float nodes ahead of the quantization ---------------------------------------------------------
def _float_then_q(nodes, inits=()) -> onnx.ModelProto:
    inits = [nh.from_array(F32(0.02), "s"), nh.from_array(np.uint8(128), "z")] + list(inits)
    nodes = nodes + [h.make_node("QuantizeLinear", ["f", "s", "z"], ["q"]), h.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    return _graph(nodes, [h.make_tensor_value_info("x", TP.FLOAT, [1, 4, 6, 6])],
                  [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)


def _c(name, v):
    return nh.from_array(np.asarray(v, F32), name)


FLOAT_OPS = {
    "Relu": ([h.make_node("Relu", ["x"], ["f"])], []),
    "Sigmoid": ([h.make_node("Sigmoid", ["x"], ["f"])], []),
    "Clip": ([h.make_node("Clip", ["x", "lo", "hi"], ["f"])], [_c("lo", -1.0), _c("hi", 1.0)]),
    "AveragePool": ([h.make_node("AveragePool", ["x"], ["f"], kernel_shape=[2, 2], strides=[2, 2])], []),
    "Softmax": ([h.make_node("Softmax", ["x"], ["f"], axis=-1)], []),
    "Erf": ([h.make_node("Erf", ["x"], ["f"])], []),
    "LayerNormalization": ([h.make_node("LayerNormalization", ["x", "g", "b"], ["f"], axis=-1)],
                           [_c("g", np.ones(6)), _c("b", np.zeros(6))]),
    "Conv": ([h.make_node("Conv", ["x", "w"], ["f"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
             [_c("w", np.random.default_rng(0).standard_normal((4, 4, 3, 3)) * 0.1)]),
}


@pytest.mark.parametrize("op", list(FLOAT_OPS))
def test_float_op_fed_odd_values_then_quantized(tmp_path, op):
    model = _float_then_q(*FLOAT_OPS[op])
    onnx.save(model, str(tmp_path / "m.onnx"))
    session = _session(model)
    for v in ODD:
        for pos in [(0, 0, 0, 0), (0, 1, 2, 3), (0, 3, 5, 5)]:
            x = np.random.default_rng(1).standard_normal((1, 4, 6, 6)).astype(F32)
            x[pos] = v
            got = qsim.simulate(tmp_path / "m.onnx", {"x": x}, ort_cpu="host")["y"]
            assert _bits(got).tolist() == _bits(session.run(None, {"x": x})[0]).tolist(), (v, pos)


def test_float_maxpool_fed_nan_is_refused(tmp_path):
    pool = h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    small = _session(_graph([pool], [h.make_tensor_value_info("x", TP.FLOAT, [1, 1, 2, 2])],
                            [h.make_tensor_value_info("y", TP.FLOAT, None)]))
    run = lambda v: small.run(None, {"x": np.array(v, F32).reshape(1, 1, 2, 2)})[0].item()  # noqa: E731
    assert np.isnan(run([1, np.nan, 9, 2])) and run([9, 1, np.nan, 2]) == 9  # kept or dropped by its place
    model = _float_then_q([h.make_node("MaxPool", ["x"], ["f"], kernel_shape=[2, 2], strides=[2, 2])])
    onnx.save(model, str(tmp_path / "m.onnx"))
    session = _session(model)
    window = lambda v: np.tile(np.array(v, F32).reshape(1, 1, 2, 2), (1, 4, 3, 3)) * F32(0.1)  # noqa: E731
    assert session.run(None, {"x": window([1, np.nan, 9, 2])})[0][0, 0, 0, 0] == F32(0.9)  # a 6 x 6 input: dropped
    for v in ([1, np.nan, 9, 2], [9, 1, np.nan, 2]):
        with pytest.raises(GraphError, match=r"\(MaxPool\): MaxPool: a NaN input"):
            qsim.simulate(tmp_path / "m.onnx", {"x": window(v)}, ort_cpu="host")
    x = window([9, 1, np.inf, -np.inf])  # no NaN: the max is exact
    got = qsim.simulate(tmp_path / "m.onnx", {"x": x}, ort_cpu="host")["y"]
    assert _bits(got).tolist() == _bits(session.run(None, {"x": x})[0]).tolist()
