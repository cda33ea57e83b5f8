"""A mismatch found and fixed, reduced: a float GlobalAveragePool feeding a QuantizeLinear (the squeeze-excitation
pool of MobileNetV3-small through quantize_static's QOperator format, which leaves the pool in float
after the float HardSwish). qsim's float pool was numpy's mean (pairwise sums); onnxruntime's differs
in the last bit, and where the mean sits on a .5 boundary of the codes (power-of-two scales) the codes
differ by one. Found by the differential long run: ``onnx:mobilenet_v3_small:qoperator:uint8:tensor:
224:ties`` seed 100000, 380 of 1000 logits; the first differing tensor is features.5.se.pool.

What onnxruntime 1.32 computes, measured on this AVX2 host (``_mlas_global`` and ``_nchwc`` below equal
it bit for bit on every shape tried):
* MLAS's ``MlasPoolGlobalKernel`` (ORT_DISABLE_ALL, and ORT_ENABLE_ALL where the NCHWc transformer
  leaves the pool alone): four fp32 lanes over the flattened window, ``(l0 + l2) + (l1 + l3)``, the
  remainder added one by one, then divided by the window size;
* the NCHWc GlobalAveragePool (ORT_ENABLE_ALL, channels a multiple of the NCHWc block, 8 on AVX2):
  each channel summed in pixel order, then divided.
qsim now computes both (``qsim.sim.float_mlas.global_avgpool``, the order chosen by ``ort_level`` and
the channel count)."""
from __future__ import annotations

import platform

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402

C, H, SCALE = 240, 14, 2.0 ** -4
f32 = np.float32


def _mlas_global(x):
    v = np.ascontiguousarray(x, f32).reshape(-1, x.shape[-1] * x.shape[-2])
    full = v.shape[1] // 4 * 4
    acc = np.zeros((v.shape[0], 4), f32)
    for k in range(0, full, 4):
        acc = (acc + v[:, k:k + 4]).astype(f32)
    s = ((acc[:, 0] + acc[:, 2]).astype(f32) + (acc[:, 1] + acc[:, 3]).astype(f32)).astype(f32)
    for k in range(full, v.shape[1]):
        s = (s + v[:, k]).astype(f32)
    return (s / f32(v.shape[1])).astype(f32)


def _nchwc(x):
    v = np.ascontiguousarray(x, f32).reshape(-1, x.shape[-1] * x.shape[-2])
    s = np.zeros(v.shape[0], f32)
    for k in range(v.shape[1]):
        s = (s + v[:, k]).astype(f32)
    return (s / f32(v.shape[1])).astype(f32)


def _model(tmp_path, quantize: bool, c: int = C, hh: int = H, behind_mul: bool = False):
    """x -> GlobalAveragePool [-> QuantizeLinear(2^-4, 128)], with each channel's exact mean on a
    .5 boundary of the codes (the last pixel set so)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, c, hh, hh)).astype(f32)
    flat = x.reshape(c, -1).astype(np.float64)
    head = flat[:, :-1].sum(1)
    x.reshape(c, -1)[:, -1] = ((np.floor(head / (hh * hh) / SCALE) + 0.5) * SCALE * hh * hh - head).astype(f32)
    # behind a Mul (by one: the same values) the NCHWc transformer leaves the pool to MLAS's kernel
    nodes = [helper.make_node("Mul", ["x", "one"], ["m"])] if behind_mul else []
    nodes.append(helper.make_node("GlobalAveragePool", ["m" if behind_mul else "x"], ["p" if quantize else "y"]))
    inits = [numpy_helper.from_array(f32(1), "one")] if behind_mul else []
    if quantize:
        nodes.append(helper.make_node("QuantizeLinear", ["p", "s", "z"], ["y"]))
        inits += [numpy_helper.from_array(f32(SCALE), "s"), numpy_helper.from_array(np.uint8(128), "z")]
    g = helper.make_graph(nodes, "gap", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8 if quantize else TensorProto.FLOAT,
                                                         (1, c, 1, 1))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "gap.onnx"
    onnx.save(m, path)
    return path, x


def _ort(path, x, level):
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="measured on x86-64 (SSE lanes, NCHWc)")
@pytest.mark.parametrize("level", ["ORT_DISABLE_ALL", "ORT_ENABLE_ALL"])
def test_the_measured_orders(tmp_path, level):
    """The reference functions above against onnxruntime's float pool (documents the finding)."""
    path, x = _model(tmp_path, quantize=False)
    want = _ort(path, x, level).ravel()
    got = _mlas_global(x) if level == "ORT_DISABLE_ALL" else _nchwc(x)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


# 36: no NCHWc block; 49 pixels: a lane remainder; behind a Mul: MLAS's kernel at every level
@pytest.mark.parametrize("c, hh, behind_mul", [(C, H, False), (36, 7, False), (C, 7, False), (C, H, True)])
@pytest.mark.parametrize("level", ["disable_all", "enable_all"])
def test_float_pool_then_quantize_equals_onnxruntime(tmp_path, level, c, hh, behind_mul):
    path, x = _model(tmp_path, quantize=True, c=c, hh=hh, behind_mul=behind_mul)
    want = _ort(path, x, {"disable_all": "ORT_DISABLE_ALL", "enable_all": "ORT_ENABLE_ALL"}[level])
    np.testing.assert_array_equal(qsim.simulate(str(path), {"x": x}, ort_level=level)["y"], want)
