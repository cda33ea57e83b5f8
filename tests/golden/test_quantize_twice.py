"""One float tensor quantized by two QuantizeLinear nodes with different parameters (two branches
reading the same float at their own scales), against onnxruntime: each QuantizeLinear rounds the float
values itself. qsim used to keep one set of parameters for the float tensor, the last one read, and
quantize both branches with it (41 of 210 elements wrong in the model that found it). Inputs carry
planted ties (half steps of either scale); uint8 and int8, both graph optimization levels; the same
parameters on both branches (the tensor quantized in place) checked as well."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402

SHAPE = (2, 6, 5, 7)
LEVELS = {"enable_all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
          "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


def _model(tmp_path, dtype, scales, zeros, join):
    """x -> Q/DQ at (scales[i], zeros[i]) -> Relu -> Q/DQ at the same -> y_i, for two branches; ``join``:
    the branches are added (one output at the first branch's parameters) instead of output apart."""
    inits, nodes, outs = [], [], []
    for i, (s, z) in enumerate(zip(scales, zeros)):
        inits += [nh.from_array(np.array(s, np.float32), f"s{i}"), nh.from_array(np.array(z, dtype), f"z{i}")]
        nodes += [h.make_node("QuantizeLinear", ["x", f"s{i}", f"z{i}"], [f"q{i}"]),
                  h.make_node("DequantizeLinear", [f"q{i}", f"s{i}", f"z{i}"], [f"d{i}"]),
                  h.make_node("Relu", [f"d{i}"], [f"r{i}"])]
        outs.append(f"r{i}")
    if join:
        nodes.append(h.make_node("Add", outs, ["sum"]))
        outs = ["sum"]
    graph_outs = []
    for i, o in enumerate(outs):
        nodes += [h.make_node("QuantizeLinear", [o, f"s{i}", f"z{i}"], [f"{o}_q"]),
                  h.make_node("DequantizeLinear", [f"{o}_q", f"s{i}", f"z{i}"], [f"y{i}"])]
        graph_outs.append(h.make_tensor_value_info(f"y{i}", TP.FLOAT, []))
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, SHAPE)], graph_outs, inits),
                     opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    path = tmp_path / "twice.onnx"
    onnx.save(m, path)
    return path


def _input(scales, seed):
    """Gaussian values with a third of them on exact half steps of one scale or the other."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(SHAPE) * 3).astype(np.float32)
    ties = rng.integers(-80, 80, SHAPE).astype(np.float32) + np.float32(0.5)
    pick = rng.integers(0, 3, SHAPE)
    for i, s in enumerate(scales):
        x = np.where(pick == i, ties * np.float32(s), x).astype(np.float32)
    return x


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("join", [False, True], ids=["apart", "added"])
@pytest.mark.parametrize("dtype,scales,zeros", [
    (np.uint8, (0.03, 0.05), (3, 7)), (np.int8, (0.03, 0.05), (-5, 4)), (np.uint8, (0.04, 0.04), (2, 200)),
    (np.uint8, (0.03, 0.03), (3, 3))], ids=["u8", "s8", "u8-same-scale", "u8-same-params"])
def test_each_quantize_rounds_the_float_itself(tmp_path, level, join, dtype, scales, zeros):
    path = _model(tmp_path, dtype, scales, zeros, join)
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = _input(scales, seed=len(scales) + join)
    want = sess.run(None, {"x": x})
    got = qsim.simulate(path, {"x": x}, ort_level=level)
    assert list(got) == [o.name for o in sess.get_outputs()]
    for (name, g), w in zip(got.items(), want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert np.array_equal(g, w), f"{name}: {int((g != w).sum())} of {w.size} differ"


def _chain(tmp_path, name, params, nodes):
    """A model of ``nodes`` (x in, y out) with the scale / zero point initializers s<i> / z<i> of ``params``
    ((scale, zero point) pairs, numpy arrays or scalars; zero points uint8)."""
    inits = []
    for i, (scale, zero) in enumerate(params):
        inits += [nh.from_array(np.asarray(scale, np.float32), f"s{i}"), nh.from_array(np.asarray(zero, np.uint8), f"z{i}")]
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, SHAPE)],
                                  [h.make_tensor_value_info("y", TP.FLOAT, [])], inits),
                     opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / name)
    return tmp_path / name


def test_codes_read_at_other_parameters_are_refused(tmp_path):
    """Q at one scale, DQ at another: onnxruntime reads the codes at the DQ's parameters; qsim, which keeps
    one set of parameters per integer tensor, refuses naming the node instead of reading them at the Q's."""
    path = _chain(tmp_path, "rescale.onnx", [(0.03, 3), (0.05, 3)],
                  [h.make_node("QuantizeLinear", ["x", "s0", "z0"], ["q"]),
                   h.make_node("DequantizeLinear", ["q", "s1", "z1"], ["y"], name="rescale")])
    with pytest.raises(qsim.QsimError, match="rescale.*other parameters"):
        qsim.simulate(path, {"x": np.ones(SHAPE, np.float32)})


def test_a_scalar_and_a_one_element_scale_are_the_same_parameters(tmp_path):
    """ONNX allows a per-tensor scale / zero point as a scalar or a 1-element array: Q with one form and DQ
    with the other read the same parameters (simulated, equal to onnxruntime, not refused)."""
    path = _chain(tmp_path, "forms.onnx", [(0.03, 3), ([0.03], [3])],
                  [h.make_node("QuantizeLinear", ["x", "s0", "z0"], ["q"]),
                   h.make_node("DequantizeLinear", ["q", "s1", "z1"], ["d"]), h.make_node("Relu", ["d"], ["r"]),
                   h.make_node("QuantizeLinear", ["r", "s1", "z1"], ["rq"]),
                   h.make_node("DequantizeLinear", ["rq", "s0", "z0"], ["y"])])
    x = _input((0.03,), seed=5)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.array_equal(qsim.simulate(path, {"x": x})["y"], want)


def test_codes_requantized_at_other_parameters_are_refused(tmp_path):
    """DQ at one scale, then Q at another (a requantization written as Q/DQ): onnxruntime rounds the
    dequantized values again; qsim, which keeps one set of parameters per integer tensor, used to relabel
    the codes with the second parameters (380 of 420 values wrong); it refuses naming the node."""
    path = _chain(tmp_path, "requant.onnx", [(0.03, 3), (0.05, 3)],
                  [h.make_node("QuantizeLinear", ["x", "s0", "z0"], ["q"]),
                   h.make_node("DequantizeLinear", ["q", "s0", "z0"], ["d"]),
                   h.make_node("QuantizeLinear", ["d", "s1", "z1"], ["q2"], name="requantize"),
                   h.make_node("DequantizeLinear", ["q2", "s1", "z1"], ["y"])])
    with pytest.raises(qsim.QsimError, match="requantize.*other parameters"):
        qsim.simulate(path, {"x": np.ones(SHAPE, np.float32)})
