"""Slice, Split and Gather of constant indices out of activations (ShuffleNetV2's channel split, ViT's q / k / v
and class token), and a constant concatenated with an activation (ViT's class token), against onnxruntime: the
stored codes move unchanged (QDQ, uint8 and int8, both graph optimization levels; QOperator models, which gather
the codes themselves), ONNX's slice semantics (negative starts / ends, out-of-range ends, negative steps, several
axes) and gather semantics (several, repeated, negative indices, index arrays of any rank, any axis); a Slice
whose bounds, or a Gather of a quantized activation whose indices, are computed at run time is refused with the
node's name, as is an index out of range."""
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


# (indices, axis): several, repeated and negative indices, 2-D and (1, 1) index arrays, a negative axis
GATHERS = [([0, 2, 5], 1), ([[1, -1], [3, 0]], 3), ([-1, 0, 0, 4], 2), ([[2]], 1), ([1, 0], 0), ([6, -7], -1)]


def _data(dtype):
    """The body's head: a float model's input read only as Gather's data is an embedding table given by
    shape (a weightless export, ``classify_inputs``); a Relu first makes it data. QDQ models read "in"."""
    return ("in", []) if dtype is not None else ("r", [h.make_node("Relu", ["in"], ["r"])])


@pytest.mark.parametrize("level", sorted(LEVELS))
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, None], ids=["u8", "s8", "float"])
def test_gathered_indices(tmp_path, dtype, level):
    """DQ -> Gather -> Q of equal parameters is data movement on the codes (onnxruntime's QDQ rules drop
    the pair at enable_all; at disable_all the float Gather returns the same codes); the gathered
    tensors then feed an integer Add (a Concat at disable_all); a Gather between other parameters requantizes
    (onnxruntime keeps the pair: DQ -> float Gather -> Q)."""
    src, head = _data(dtype)
    for k, (index, axis) in enumerate(GATHERS):
        body = head + [h.make_node("Gather", [src, "ix"], ["g"], axis=axis)]
        _same(_model(tmp_path, body, [_i64("ix", index)], ["g"], dtype, f"g{k}.onnx"), level, k)
    inits = [_i64("ia", [3, 0, -2]), _i64("ib", [-1, 1, 1])]
    body = head + [h.make_node("Gather", [src, "ia"], ["a"], axis=1), h.make_node("Gather", [src, "ib"], ["b"], axis=1)]
    outs = ["a", "b"]
    if dtype is not None:  # a quantized Add of the gathered codes
        for t in ("a", "b"):
            body += [h.make_node("QuantizeLinear", [t, "s", "z"], [f"{t}q"]),
                     h.make_node("DequantizeLinear", [f"{t}q", "s", "z"], [f"{t}d"])]
        # onnxruntime runs an Add in float at disable_all (qsim refuses that): a quantized Concat there
        body.append(h.make_node("Add", ["ad", "bd"], ["sum"]) if level == "enable_all"
                    else h.make_node("Concat", ["ad", "bd"], ["sum"], axis=0))
        outs = ["sum"]
    _same(_model(tmp_path, body, inits, outs, dtype, "mixed.onnx"), level, 9)
    assert len(qsim.estimate(tmp_path / "mixed.onnx", "iot")) > 0  # the cost model takes Gather as data movement
    if dtype is not None:  # x quantized at other parameters, gathered, requantized at the outputs' "s", "z"
        inits = [_i64("ix", [[3, 0], [-2, 4]]), nh.from_array(np.float32(0.05), "s2"),
                 nh.from_array(np.array(7 if dtype == np.uint8 else 2, dtype), "z2")]
        body = [h.make_node("QuantizeLinear", ["x", "s2", "z2"], ["xq2"]),
                h.make_node("DequantizeLinear", ["xq2", "s2", "z2"], ["xd2"]),
                h.make_node("Gather", ["xd2", "ix"], ["c"], axis=2)]
        _same(_model(tmp_path, body, inits, ["c"], dtype, "requant.onnx"), level, 10)


@pytest.mark.parametrize("level", sorted(LEVELS))
@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["u8", "s8"])
def test_qoperator_gather(tmp_path, dtype, level):
    """QOperator form (onnxruntime's GatherQuant): the Gather reads the QuantizeLinear's codes itself."""
    zp = 3 if dtype == np.uint8 else -5
    inits = [nh.from_array(np.float32(0.03), "s"), nh.from_array(np.array(zp, dtype), "z"), _i64("ix", [[4, -1, 0]])]
    nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             h.make_node("Gather", ["q", "ix"], ["gq"], axis=1),
             h.make_node("DequantizeLinear", ["gq", "s", "z"], ["y0"])]
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, SHAPE)],
                                  [h.make_tensor_value_info("y0", TP.FLOAT, [])], inits),
                     opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, tmp_path / "qop.onnx")
    _same(tmp_path / "qop.onnx", level)


@pytest.mark.parametrize("dtype", [np.uint8, None], ids=["u8", "float"])
def test_gather_index_out_of_range_is_refused(tmp_path, dtype):
    src, head = _data(dtype)
    body = head + [h.make_node("Gather", [src, "ix"], ["g"], axis=2, name="pick")]
    path = _model(tmp_path, body, [_i64("ix", [0, 5])], ["g"], dtype)
    with pytest.raises(QsimError, match="pick.*index 5 out of range"):
        qsim.simulate(path, {"x": np.ones(SHAPE, np.float32)})


def test_run_time_indices_of_quantized_activation_are_refused(tmp_path):
    """OnnxEval runs on arrays as stored: on a quantized activation it would return the codes as floats."""
    inits = [_i64("axes", [0]), _i64("lo", 0), _i64("hi", SHAPE[0] - 1)]  # the index from the float input
    body = [h.make_node("ReduceMax", ["x"], ["m"], keepdims=0), h.make_node("Cast", ["m"], ["mi"], to=TP.INT64),
            h.make_node("Clip", ["mi", "lo", "hi"], ["ci"]), h.make_node("Unsqueeze", ["ci", "axes"], ["ix"]),
            h.make_node("Gather", ["in", "ix"], ["g"], axis=0, name="pick")]
    path = _model(tmp_path, body, inits, ["g"], np.uint8)
    with pytest.raises(QsimError, match="pick.*run time"):
        qsim.simulate(path, {"x": np.ones(SHAPE, np.float32)})


@pytest.mark.parametrize("level", sorted(LEVELS))
@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["u8", "s8"])
def test_quantized_table_gather(tmp_path, dtype, level):
    """DQ(table) -> Gather(ids) -> Q, at the table's parameters (the codes move) and at others (a float
    island); with Gather among the exact-in-float units it is no longer refused at disable_all."""
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    for k, (s2, z2) in enumerate([(0.03, 3), (0.05, 1)]):
        inits = [nh.from_array(rng.integers(info.min, info.max + 1, (10, 7)).astype(dtype), "tq"),
                 nh.from_array(np.float32(0.03), "s"), nh.from_array(np.array(3, dtype), "z"),
                 nh.from_array(np.float32(s2), "s2"), nh.from_array(np.array(z2, dtype), "z2")]
        nodes = [h.make_node("DequantizeLinear", ["tq", "s", "z"], ["t"]), h.make_node("Gather", ["t", "ids"], ["g"]),
                 h.make_node("QuantizeLinear", ["g", "s2", "z2"], ["gq"]),
                 h.make_node("DequantizeLinear", ["gq", "s2", "z2"], ["y0"])]
        m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("ids", TP.INT64, (2, 5))],
                                      [h.make_tensor_value_info("y0", TP.FLOAT, [])], inits),
                         opset_imports=[h.make_opsetid("", 17)])
        m.ir_version = 8
        path = tmp_path / f"t{k}.onnx"
        onnx.save(m, path)
        ids = rng.integers(-10, 10, (2, 5)).astype(np.int64)  # negative ids count from the end
        so = ort.SessionOptions()
        so.graph_optimization_level = LEVELS[level]
        want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
        np.testing.assert_array_equal(qsim.simulate(path, {"ids": ids}, ort_level=level)["y0"], want)
