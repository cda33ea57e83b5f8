"""Malformed model files and bad simulate feeds: each is a one-line QsimError naming the file and
the op, tensor or input at fault (never ZeroDivisionError, IndexError, UnicodeDecodeError or an
allocation of a huge folded constant)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import qsim
from _model_files import TfliteWriter, small_cnn, tflite_int8_cnn
from qsim.errors import GraphError, QsimError
from qsim.ir.onnx_fold import FOLD_LIMIT_BYTES
from qsim.ir.onnx_import import load_onnx
from qsim.ir.tflite_import import load_tflite


def _one_line(exc: QsimError, *parts: str) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    for part in parts:
        assert part in text, (part, text)
    return text


def _conv_model(path, strides=(1, 1), pads=(0, 0, 0, 0), kernel=3, x_shape=(1, 3, 8, 8)):
    w = numpy_helper.from_array(np.ones((4, 3, kernel, kernel), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="the_conv", strides=list(strides), pads=list(pads))
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


# -- ONNX ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    ({"strides": (0, 1)}, "stride [0, 1] must be two integers >= 1"),
    ({"pads": (0, -1, 0, 0)}, "padding [0, -1, 0, 0] must be four integers >= 0"),
    ({"kernel": 5, "x_shape": (1, 3, 3, 3)}, "larger than the padded input (3 + 0 + 0)"),
])
def test_onnx_bad_windows_name_the_node(tmp_path, kwargs, words):
    path = _conv_model(tmp_path / "m.onnx", **kwargs)
    with pytest.raises(GraphError) as info:
        load_onnx(path)
    _one_line(info.value, path, "the_conv", words)


def test_onnx_input_without_shape_says_how_to_give_one(tmp_path):
    model = onnx.load(str(small_cnn(tmp_path / "m.onnx")))
    model.graph.input[0].type.tensor_type.ClearField("shape")
    onnx.save(model, str(tmp_path / "noshape.onnx"))
    with pytest.raises(GraphError) as info:
        load_onnx(tmp_path / "noshape.onnx")
    _one_line(info.value, "noshape.onnx", "input 'x' has no shape", "update_inputs_outputs_dims")


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand", "Range"])
def test_onnx_fold_to_149_gib_is_refused_before_allocating(tmp_path, op):
    n = 149 * 2 ** 30 // 4 // 1024  # rows of 1024 float32: 149 GiB
    inits = [numpy_helper.from_array(np.array([n, 1024], np.int64), "shape")]
    if op == "ConstantOfShape":
        nodes = [helper.make_node(op, ["shape"], ["big"], name="bomb", value=helper.make_tensor("v", 1, [1], [0.0]))]
    elif op == "Expand":
        inits.append(numpy_helper.from_array(np.ones(1, np.float32), "one"))
        nodes = [helper.make_node(op, ["one", "shape"], ["big"], name="bomb")]
    else:
        inits += [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in (("a", 0), ("b", n * 1024.0), ("d", 1))]
        nodes = [helper.make_node(op, ["a", "b", "d"], ["big"], name="bomb")]
    nodes += [helper.make_node("Shape", ["big"], ["s"]), helper.make_node("Cast", ["s"], ["sf"], to=1),
              helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Reshape", ["r", "s2"], ["y"])]
    inits.append(numpy_helper.from_array(np.array([1, 4], np.int64), "s2"))
    graph = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
                               helper.make_tensor_value_info("sf", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "bomb.onnx"))
    with pytest.raises(QsimError) as info:
        load_onnx(tmp_path / "bomb.onnx")
    text = _one_line(info.value, "bomb.onnx", op, "GiB bound on folded constants")
    assert f"{FOLD_LIMIT_BYTES // 2 ** 30} GiB" in text


@pytest.mark.parametrize("damage", ["truncate", "random"])
def test_onnx_truncated_or_random_bytes(tmp_path, damage):
    data = small_cnn(tmp_path / "m.onnx").read_bytes()
    data = data[:len(data) // 3] if damage == "truncate" else np.random.default_rng(0).bytes(2000)
    (tmp_path / "bad.onnx").write_bytes(data)
    with pytest.raises(QsimError) as info:
        load_onnx(tmp_path / "bad.onnx")
    _one_line(info.value, "bad.onnx")


# -- TFLite -------------------------------------------------------------------------------------------
def _edited_tflite(tmp_path, edit):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(tflite_int8_cnn(tmp_path / "cnn.tflite").read_bytes(), 0)
    edit(model, model.subgraphs[0])
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    (tmp_path / "bad.tflite").write_bytes(bytes(builder.Output()))
    return str(tmp_path / "bad.tflite")


def _set(obj, field, value):
    setattr(obj, field, value)


def _set_item(obj, field, index, value):
    items = list(getattr(obj, field))
    items[index] = value
    setattr(obj, field, items)


@pytest.mark.parametrize("edit, words", [
    (lambda m, g: _set(g.operators[1].builtinOptions, "strideH", 0), "operator 1 (CONV_2D"),
    (lambda m, g: _set(g.operators[2].builtinOptions, "strideW", 0), "stride [2, 0] must be two integers >= 1"),
    (lambda m, g: _set(g.operators[0], "opcodeIndex", 50), "operator 0: opcode index 50 out of range"),
    (lambda m, g: _set_item(g.operators[1], "inputs", 1, 999), "operator 1: input tensor index 999 out of range"),
    (lambda m, g: _set(g.operators[3], "outputs", [500]), "operator 3: output tensor index 500 out of range"),
    (lambda m, g: _set(g, "outputs", [77]), "subgraph output tensor index 77 out of range"),
    (lambda m, g: _set(g.tensors[2], "name", b"w\xff\xfe"), "tensor 2: name b'w\\xff\\xfe' is not UTF-8"),
    (lambda m, g: _set_item(g.tensors[4], "shape", 1, 0), "shape [1, 0, 8, 8] has a dimension below 1"),
    (lambda m, g: _set_item(g.tensors[4], "shape", 2, -4), "shape [1, 8, -4, 8] has a dimension below 1"),
    (lambda m, g: _set(g.tensors[2], "buffer", 4000), "tensor 2: buffer index 4000 out of range"),
    (lambda m, g: _set(g.tensors[1].quantization, "scale", [float("nan")]), "scales must be finite and > 0"),
    (lambda m, g: _set(g.operators[6].builtinOptions, "filterHeight", 9), "larger than the padded input"),
    # zero points outside the storage type's range, on any op (tests/golden/test_tflite_zero_point_range.py)
    (lambda m, g: _set(g.tensors[2].quantization, "zeroPoint", [0] * 7 + [200]),
     "operator 1 (CONV_2D) input tensor 'conv.w' (int8): zero point 200 is outside the int8 range [-128, 127]"),
    (lambda m, g: _set(g.tensors[3].quantization, "zeroPoint", [0] * 7 + [2 ** 31]),
     "operator 1 (CONV_2D) input tensor 'conv.b' (int32): zero point 2147483648 is outside the int32 range"),
    (lambda m, g: _set(g.tensors[18].quantization, "zeroPoint", [-129]),
     "operator 9 (SOFTMAX) output tensor 'softmax' (int8): zero point -129"),
])
def test_tflite_malformed_fields_name_the_operator_or_tensor(tmp_path, edit, words):
    path = _edited_tflite(tmp_path, edit)
    with pytest.raises(QsimError) as info:
        load_tflite(path)
    _one_line(info.value, "bad.tflite", words)


@pytest.mark.parametrize("damage", ["truncate", "random", "header"])
def test_tflite_truncated_or_random_bytes(tmp_path, damage):
    data = tflite_int8_cnn(tmp_path / "m.tflite").read_bytes()
    data = {"truncate": data[:len(data) // 2], "random": np.random.default_rng(1).bytes(3000),
            "header": data[:8] + np.random.default_rng(2).bytes(len(data) - 8)}[damage]
    (tmp_path / "bad.tflite").write_bytes(data)
    with pytest.raises(QsimError) as info:
        load_tflite(tmp_path / "bad.tflite")
    _one_line(info.value, "bad.tflite")


# -- simulate feeds -----------------------------------------------------------------------------------
@pytest.mark.parametrize("feed, words", [
    ("a string", "input 'x' takes float32 (the model's own dtype), got <U8"),
    (object(), "input 'x' takes float32 (the model's own dtype), got object"),
    (np.zeros((1, 3, 16, 16), np.int32), "got int32"),
    (np.zeros((1, 3, 16, 16), np.float64), "got float64"),
    (np.zeros((3, 16, 16), np.float32), "input 'x' has shape [3, 16, 16]; the model takes [1, 3, 16, 16]"),
    ([[1.0, 2.0], [3.0]], "input 'x' is not an array"),
    ({"x": np.zeros((1, 3, 16, 16), np.float32), 7: None}, "no model input named 7"),
    ({}, "no array given for input 'x'"),
])
def test_simulate_bad_feeds_name_the_input(tmp_path, feed, words):
    path = str(small_cnn(tmp_path / "m.onnx"))
    with pytest.raises(QsimError) as info:
        qsim.simulate(path, feed)
    _one_line(info.value, "m.onnx", words)


def test_simulate_nan_into_an_integer_input_is_refused(tmp_path):
    path = str(tflite_int8_cnn(tmp_path / "m.tflite"))
    with pytest.raises(QsimError) as info:
        qsim.simulate(path, np.full((1, 8, 8, 3), np.nan, np.float64))
    _one_line(info.value, "m.tflite", "input 'x' takes float32", "got float64")
