"""Slice, Split and one-index Gather of activations (ShuffleNetV2's channel split, ViT's q / k / v and class
token), and a constant concatenated with an activation (ViT's class token), against onnxruntime: the stored codes
move unchanged (QDQ, uint8 and int8, both graph optimization levels; QOperator-style uint8 tensors),
ONNX's slice semantics (negative starts / ends, out-of-range ends, negative steps, several axes),
and a Slice whose bounds are computed at run time is refused with the node's name."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402
from qsim.errors import QsimError  # noqa: E402

SHAPE = (2, 12, 5, 7)
LEVELS = {"enable_all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
          "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
# (starts, ends, axes, steps)
SLICES = [([0], [6], [1], [1]), ([6], [2 ** 62], [1], [1]), ([-3, 1], [-1, 100], [2, 3], [1, 2]),
          ([-1], [-(2 ** 62)], [1], [-1]), ([4, 6], [0, -9], [1, 3], [-2, -3]), ([1], [1], [0], [1])]


def _i64(name, v):
    return nh.from_array(np.array(v, np.int64), name)


def _model(tmp_path, body, inits, outs, dtype=None, name="m.onnx"):
    """x -> (Q -> DQ when dtype) -> body -> (Q -> DQ per output) -> outputs."""
    nodes, inits = list(body), list(inits)
    src = "x"
    if dtype is not None:
        inits += [nh.from_array(np.array(0.03, np.float32), "s"),
                  nh.from_array(np.array(3 if dtype == np.uint8 else -5, dtype), "z")]
        nodes[:0] = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), h.make_node("DequantizeLinear", ["q", "s", "z"], ["d"])]
        src = "d"
    graph_outs = []
    for i, o in enumerate(outs):
        if dtype is not None:
            nodes += [h.make_node("QuantizeLinear", [o, "s", "z"], [f"{o}_q"]),
                      h.make_node("DequantizeLinear", [f"{o}_q", "s", "z"], [f"y{i}"])]
        else:
            nodes.append(h.make_node("Identity", [o], [f"y{i}"]))
        graph_outs.append(h.make_tensor_value_info(f"y{i}", TP.FLOAT, []))
    for n in nodes:  # the body reads "in"
        n.input[:] = [src if i == "in" else i for i in n.input]
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, SHAPE)], graph_outs, inits),
                     opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, tmp_path / name)
    return tmp_path / name


def _same(path, level="enable_all", seed=0):
    x = (np.random.default_rng(seed).standard_normal(SHAPE) * 3).astype(np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = qsim.simulate(path, {"x": x}, ort_level=level)
    assert list(got) == [f"y{i}" for i in range(len(want))]
    for g, w in zip(got.values(), want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("level", sorted(LEVELS))
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, None], ids=["u8", "s8", "float"])
def test_slices(tmp_path, dtype, level):
    for k, (starts, ends, axes, steps) in enumerate(SLICES):
        inits = [_i64("st", starts), _i64("en", ends), _i64("ax", axes), _i64("sp", steps)]
        body = [h.make_node("Slice", ["in", "st", "en", "ax", "sp"], ["a"])]
        _same(_model(tmp_path, body, inits, ["a"], dtype, f"m{k}.onnx"), level, k)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_channel_split_and_shuffle(tmp_path, dtype):
    """ShuffleNetV2's pattern: split the channels (Split, then Slice), add a branch, concatenate,
    shuffle (Reshape -> Transpose -> Reshape)."""
    n, c, hh, w = SHAPE
    inits = [_i64("sizes", [5, 7]), _i64("st", [0]), _i64("en", [6]), _i64("ax", [1]),
             _i64("r1", [n, 2, c // 2, hh, w]), _i64("r2", [n, c, hh, w])]
    body = [h.make_node("Split", ["in", "sizes"], ["p", "r"], axis=1),
            h.make_node("Slice", ["in", "st", "en", "ax"], ["half"]),
            h.make_node("Relu", ["p"], ["pr"]),
            h.make_node("Concat", ["pr", "r"], ["cat"], axis=1),
            h.make_node("Reshape", ["cat", "r1"], ["g"]), h.make_node("Transpose", ["g"], ["t"], perm=[0, 2, 1, 3, 4]),
            h.make_node("Reshape", ["t", "r2"], ["shuffled"])]
    _same(_model(tmp_path, body, inits, ["shuffled", "half"], dtype))


def test_run_time_bounds_are_refused(tmp_path):
    inits = [_i64("st", [0]), _i64("ax", [1])]
    body = [h.make_node("Shape", ["in"], ["shp"]), h.make_node("ReduceMax", ["in"], ["m"], keepdims=0),
            h.make_node("Cast", ["m"], ["mi"], to=TP.INT64), h.make_node("Unsqueeze", ["mi", "st"], ["en"]),
            h.make_node("Slice", ["in", "st", "en", "ax"], ["a"], name="cut")]
    path = _model(tmp_path, body, inits, ["a"])
    with pytest.raises(QsimError, match="cut"):
        qsim.simulate(path, {"x": np.ones(SHAPE, np.float32)})


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, None], ids=["u8", "s8", "float"])
def test_constant_token_and_gathered_index(tmp_path, dtype):
    """ViT's pattern: a constant class token (quantized like an activation in a QDQ model) concatenated
    with the activation, then one index gathered out of it: a scalar index drops the axis (q / k / v
    out of a stacked projection, the class token at the end), a one-element index keeps it."""
    n, c, hh, w = SHAPE
    token = np.random.default_rng(3).standard_normal((n, 1, hh, w)).astype(np.float32)
    if dtype is None:
        inits, body = [nh.from_array(token, "tok")], []
        src = "tok"
    else:
        info = np.iinfo(dtype)
        codes = np.clip(np.round(token / 0.03), info.min, info.max).astype(dtype)
        inits = [nh.from_array(codes, "tok_q"), nh.from_array(np.float32(0.03), "tok_s"),
                 nh.from_array(np.array(0, dtype), "tok_z")]
        body = [h.make_node("DequantizeLinear", ["tok_q", "tok_s", "tok_z"], ["tok"])]
        src = "tok"
    inits += [_i64("i_scalar", 2), _i64("i_last", -1), _i64("i_one", [0])]
    body += [h.make_node("Concat", [src, "in"], ["cat"], axis=1),
             h.make_node("Gather", ["cat", "i_scalar"], ["g1"], axis=1),
             h.make_node("Gather", ["cat", "i_last"], ["g2"], axis=3),
             h.make_node("Gather", ["cat", "i_one"], ["g3"], axis=1)]
    _same(_model(tmp_path, body, inits, ["cat", "g1", "g2", "g3"], dtype))
    # the cost model takes the Constant node too (no kernel of its own; its bytes are a weight's)
    assert len(qsim.estimate(tmp_path / "m.onnx", "iot")) > 0
