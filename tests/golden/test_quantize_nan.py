"""onnxruntime's QuantizeLinear of NaN, infinities and huge values, against the runtime itself: the
spec (``quantize``, policy onnxruntime), the planned feed quantizer (``plan.fast_quantizer``, its
one-pass kernel and its numpy passes) and a whole QOperator network fed NaN. MLAS turns a NaN into
the output type's minimum on x86 and, from its source, arm64 (``int_runtime.ort_nan_to_min``)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T, helper as h, numpy_helper as nh

import qsim
from qsim.numerics.policies import Kernels
from qsim.numerics.quantize import quantize
from qsim.numerics.tensor_quant import TensorQuant
from qsim.sim.int_runtime import get_runtime, ort_cpu_scope
from qsim.sim.plan import fast_quantizer

ODD = [np.nan, -np.nan, np.inf, -np.inf, 1e30, -1e30, 3e9, -3e9, 2.5, 0.01]


def _model(n: int, dtype, zp) -> bytes:
    elem = T.UINT8 if dtype == "uint8" else T.INT8
    node = h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    g = h.make_graph([node], "g", [h.make_tensor_value_info("x", T.FLOAT, [n])], [h.make_tensor_value_info("y", elem, [n])],
                     [nh.from_array(np.array(0.02, np.float32), "s"), nh.from_array(np.array(zp, dtype), "z")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


@pytest.mark.parametrize("n", [1, 7, 16, 37, 100])
@pytest.mark.parametrize("dtype,zp", [("uint8", 128), ("uint8", 0), ("int8", 3), ("int8", -128)])
def test_nan_and_edges_as_onnxruntime(n, dtype, zp):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    pos = rng.choice(n, min(n, len(ODD)), replace=False)
    x[pos] = np.array(ODD, np.float32)[:pos.size]   # planted at random positions: vector body and tail
    want = ort.InferenceSession(_model(n, dtype, zp), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.isnan(x).any() and (want[np.isnan(x)] == np.iinfo(dtype).min).all()  # the runtime's own answer
    q = TensorQuant(np.float32(0.02), np.array(zp, dtype), dtype)
    with ort_cpu_scope("host"):
        assert np.array_equal(quantize(x, q, Kernels.ONNXRUNTIME), want)
        fast = fast_quantizer(q, get_runtime("onnxruntime"))
        assert np.array_equal(fast(x), want)                 # the one-pass kernel
        assert np.array_equal(fast(np.repeat(x, 2)[::2]), want)   # strided: the numpy passes


def test_nan_is_the_minimum_on_arm64_too():
    # from MLAS's NEON source (vmaxnmq_f32 returns the clamp bound for a NaN), not measured
    x = np.array([np.nan, 1.0], np.float32)
    q = TensorQuant(np.float32(0.5), np.array(7, np.int8), "int8")
    with ort_cpu_scope("arm64"):
        assert quantize(x, q, Kernels.ONNXRUNTIME).tolist() == [-128, 9]
        assert fast_quantizer(q, get_runtime("onnxruntime"))(x).tolist() == [-128, 9]


def test_network_fed_nan_and_infinities(tmp_path):
    from differential.networks import build

    path, feeds = build("onnx:resnet18:qoperator:uint8:channel:32", tmp_path)
    x = np.array(feeds["x"], np.float32)
    x[0, 0, :5, :5], x[0, 1, 0, :3], x[0, 2, 0, :3], x[0, 0, 10, 10] = np.nan, np.inf, -np.inf, 1e30
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = qsim.simulate(path, {"x": x}, ort_cpu="host")
    assert np.array_equal(next(iter(got.values())), want)
