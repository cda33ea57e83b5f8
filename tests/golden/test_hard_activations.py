"""HardSigmoid and HardSwish against onnxruntime (``qsim.sim.float_ops``): the float kernels bit for bit
(fp32 product, then the sum, no fused multiply-add; HardSwish is x * HardSigmoid(x, 1/6, 0.5)), and
the QDQ units MobileNetV3 is made of, which onnxruntime runs as float islands (it has no quantized
HardSwish): DQ -> HardSwish -> Q and the form onnxruntime's pre-processing inlines, DQ -> HardSigmoid
-> Mul -> Q, over every input code."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402

SPECIAL = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 3.0, -3.0, 2.5, -2.5, 1e30, -1e30, 3.4e38,
                    -3.4e38, 1e-45, -1e-45], np.float32)


def _values(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.standard_normal(20000) * 4, rng.uniform(-3.1, 3.1, 20000),
                        np.arange(-4000, 4000) / 1024]).astype(np.float32)
    return np.concatenate([SPECIAL, x, -x])


def _save(tmp_path, nodes, inits, n: int, name: str = "m.onnx"):
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [n])],
                                  [h.make_tensor_value_info("y", TP.FLOAT, [n])], inits),
                     opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, tmp_path / name)
    return tmp_path / name


LEVELS = {"enable_all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
          "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


def _same(path, x, level: str = "enable_all"):
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = qsim.simulate(path, {"x": x}, ort_level=level)["y"]
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("alpha, beta", [(0.2, 0.5), (1 / 6, 0.5), (0.3, 0.7), (0.01, -0.25)])
def test_float_hard_sigmoid(tmp_path, alpha, beta):
    x = _values()
    _same(_save(tmp_path, [h.make_node("HardSigmoid", ["x"], ["y"], alpha=alpha, beta=beta)], [], x.size), x)


def test_float_hard_swish(tmp_path):
    x = _values(1)
    _same(_save(tmp_path, [h.make_node("HardSwish", ["x"], ["y"])], [], x.size), x)


def _qdq(act, s_x: float, z_x: int, s_y: float, z_y: int, dtype):
    """x -> Q -> DQ -> act -> Q -> DQ -> y, ``act`` the nodes from "d" to "a"."""
    inits = [numpy_helper.from_array(np.array(s_x, np.float32), "sx"), numpy_helper.from_array(np.array(z_x, dtype), "zx"),
             numpy_helper.from_array(np.array(s_y, np.float32), "sy"), numpy_helper.from_array(np.array(z_y, dtype), "zy")]
    nodes = [h.make_node("QuantizeLinear", ["x", "sx", "zx"], ["q"]), h.make_node("DequantizeLinear", ["q", "sx", "zx"], ["d"]),
             *act, h.make_node("QuantizeLinear", ["a", "sy", "zy"], ["qy"]),
             h.make_node("DequantizeLinear", ["qy", "sy", "zy"], ["y"])]
    return nodes, inits


SWISH = [h.make_node("HardSwish", ["d"], ["a"])]


def _gated(alpha: float):
    return [h.make_node("HardSigmoid", ["d"], ["hs"], alpha=alpha, beta=0.5), h.make_node("Mul", ["d", "hs"], ["a"])]


INLINED = _gated(1 / 6)


# (the inlined form's Mul is a QLinearMul unit that onnxruntime fuses; at disable_all it runs in
# float and qsim refuses the model, as for every unfused Mul)
@pytest.mark.parametrize("act, level", [(SWISH, "enable_all"), (SWISH, "disable_all"), (INLINED, "enable_all")],
                         ids=["HardSwish", "HardSwish-disable_all", "HardSigmoid-Mul"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qdq_hard_swish_every_code(tmp_path, act, level, dtype):
    """Every input code at scales drawn at random (log-uniform) and at power-of-two ones."""
    rng = np.random.default_rng(7)
    _every_code(tmp_path, act, level, dtype, [(1 / 8, 1 / 16)] + [tuple(10 ** rng.uniform(-3, 0, 2)) for _ in range(6)])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qdq_gate_planted_ties(tmp_path, dtype):
    """x * HardSigmoid(x, 1/4, 1/2) at power-of-two scales: every product is exact, so the quotients
    (k^2 / 32 + 2k for x = k / 32, s_y = 1 / 128) land on .5 for many codes and the output
    QuantizeLinear's ties-to-even decides them."""
    k = np.arange(-256, 256)
    x = k / 32
    assert np.sum((x * np.clip(x / 4 + 0.5, 0, 1) * 128) % 1 == 0.5) == 16  # k = 4 (mod 8), |x| < 2
    _every_code(tmp_path, _gated(0.25), "enable_all", dtype, [(1 / 32, 1 / 128), (1 / 32, 1 / 256)])


def _every_code(tmp_path, act, level: str, dtype, scales) -> None:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(11)
    for i, (s_x, s_y) in enumerate(scales):
        z_x, z_y = (int(v) for v in rng.choice([info.min, info.max, 0, (info.min + info.max) // 2], 2))
        if i == 0:  # the first scale pair around the middle code: the codes span x = -4..4
            z_x = z_y = (info.min + info.max + 1) // 2
        codes = np.arange(info.min, info.max + 1)
        x = ((codes - z_x) * np.float32(s_x)).astype(np.float32)
        path = _save(tmp_path, *_qdq(act, s_x, z_x, s_y, z_y, dtype), x.size, f"m{i}.onnx")
        _same(path, x, level)
