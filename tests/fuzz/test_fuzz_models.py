"""Fuzz the model importers with damaged copies of small valid files: structural edits (attributes,
dims, dtypes, initializers, indices, strides, names) and byte damage (flips, truncation, splices).
Each case imports cleanly (and then costs to finite numbers) or raises a QsimError, within the
time and memory bounds of ``_mutate.outcome``."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _mutate import mutated_bytes, outcome
from qsim.api import estimate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _model_files import small_cnn, tflite_int8_cnn, tflite_int16x8_mlp  # noqa: E402

from qsim.ir.onnx_import import load_onnx  # noqa: E402
from qsim.ir.tflite_import import load_tflite  # noqa: E402

HUGE = [0, -1, -7, 2 ** 31, 2 ** 40, 2 ** 62, 3, 64, 1]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    return {"onnx": [small_cnn(tmp / "cnn.onnx").read_bytes()],
            "tflite": [tflite_int8_cnn(tmp / "cnn.tflite").read_bytes(),
                       tflite_int16x8_mlp(tmp / "mlp.tflite").read_bytes()]}


def _import_and_cost(loader: str, load, path: Path) -> None:
    kind, graph = outcome(loader, lambda: load(str(path)), memory=True)
    if kind == "ok":
        outcome(f"{loader}+estimate", lambda: estimate(graph, "iot"))


# -- ONNX: structural edits with onnx's own protobuf classes ----------------------------------------
def _onnx_edit(model: onnx.ModelProto, data) -> onnx.ModelProto:
    g = model.graph
    edit = data.draw(st.sampled_from(["attr", "attr", "init_dims", "input_dims", "no_shape", "dtype",
                                      "drop_input", "rename", "big_fold", "init_data"]))
    if edit == "attr":
        node = data.draw(st.sampled_from(list(g.node)))
        ints = [a for a in node.attribute if a.type in (onnx.AttributeProto.INTS, onnx.AttributeProto.INT)]
        if ints:
            a = data.draw(st.sampled_from(ints))
            if a.type == onnx.AttributeProto.INT:
                a.i = data.draw(st.sampled_from(HUGE))
            elif a.ints:
                a.ints[data.draw(st.integers(0, len(a.ints) - 1))] = data.draw(st.sampled_from(HUGE))
    elif edit in ("init_dims", "init_data") and g.initializer:
        t = data.draw(st.sampled_from(list(g.initializer)))
        if edit == "init_dims" and t.dims:
            t.dims[data.draw(st.integers(0, len(t.dims) - 1))] = data.draw(st.sampled_from(HUGE))
        else:
            try:
                raw = onnx.numpy_helper.to_array(t).copy().reshape(-1)
            except ValueError:  # dims an earlier edit made inconsistent with the data
                return model
            extremes = [np.nan, np.inf, -np.inf, 1e38] if raw.dtype.kind == "f" else \
                [np.iinfo(raw.dtype).min, np.iinfo(raw.dtype).max, 0, -1] if raw.dtype.kind in "iu" else [0]
            raw[data.draw(st.integers(0, raw.size - 1))] = data.draw(st.sampled_from(extremes))
            t.CopyFrom(onnx.numpy_helper.from_array(raw.reshape(tuple(t.dims)), t.name))
    elif edit in ("input_dims", "no_shape"):
        vi = g.input[0].type.tensor_type
        if edit == "no_shape":
            vi.ClearField("shape")
        elif len(vi.shape.dim):
            d = vi.shape.dim[data.draw(st.integers(0, len(vi.shape.dim) - 1))]
            d.dim_value = data.draw(st.sampled_from(HUGE))
    elif edit == "dtype":
        vi = data.draw(st.sampled_from(list(g.input) + list(g.output)))
        vi.type.tensor_type.elem_type = data.draw(st.sampled_from([0, 2, 3, 6, 7, 8, 9, 10, 11, 16, 40]))
    elif edit == "drop_input":
        node = data.draw(st.sampled_from(list(g.node)))
        if node.input:
            node.input[data.draw(st.integers(0, len(node.input) - 1))] = data.draw(st.sampled_from(["", "nowhere"]))
    elif edit == "rename":
        node = data.draw(st.sampled_from(list(g.node)))
        node.op_type = data.draw(st.sampled_from(["Conv", "Relu", "Gemm", "MaxPool", "Reshape", "Concat", "Bogus"]))
    elif edit == "big_fold":
        # a constant sub-graph that folds to a huge array: ConstantOfShape / Expand / Range / Tile
        op = data.draw(st.sampled_from(["ConstantOfShape", "Expand", "Range"]))
        n = data.draw(st.sampled_from([2 ** 20, 2 ** 34, 10 ** 12, -5]))
        shape = onnx.numpy_helper.from_array(np.array([n, 4], np.int64), "big_shape")
        g.initializer.append(shape)
        if op == "ConstantOfShape":
            g.node.insert(0, onnx.helper.make_node(op, ["big_shape"], ["big"]))
        elif op == "Expand":
            g.initializer.append(onnx.numpy_helper.from_array(np.ones(1, np.float32), "one"))
            g.node.insert(0, onnx.helper.make_node(op, ["one", "big_shape"], ["big"]))
        else:
            for name, v in (("r0", 0), ("r1", n), ("r2", 1)):
                g.initializer.append(onnx.numpy_helper.from_array(np.array(v, np.int64), name))
            g.node.insert(0, onnx.helper.make_node(op, ["r0", "r1", "r2"], ["big"]))
        g.node.insert(1, onnx.helper.make_node("Shape", ["big"], ["big_s"]))
        last = g.node[-1]
        g.node.append(onnx.helper.make_node("Identity", [last.output[0]], ["y_fuzz"]))
        g.node.append(onnx.helper.make_node("Shape", ["big"], ["big_out"]))
        g.output.append(onnx.helper.make_tensor_value_info("big_out", onnx.TensorProto.INT64, [2]))
    return model


@given(data=st.data())
def _onnx_case(data, seed: bytes, tmp: Path):
    if data.draw(st.booleans()):
        model = onnx.load_from_string(seed)
        for _ in range(data.draw(st.integers(1, 2))):
            model = _onnx_edit(model, data)
        blob = model.SerializeToString()
    else:
        blob = data.draw(mutated_bytes(seed))
    path = tmp / "fuzz.onnx"
    path.write_bytes(blob)
    _import_and_cost("onnx", load_onnx, path)


def test_damaged_onnx_files_import_or_fail_cleanly(seeds, tmp_path):
    _onnx_case(seed=seeds["onnx"][0], tmp=tmp_path)


# -- TFLite: structural edits with LiteRT's schema object API ---------------------------------------
def _tflite_edit(model, data):
    from ai_edge_litert import schema_py_generated as s

    sub = model.subgraphs[0]
    n_tensors = len(sub.tensors)
    edit = data.draw(st.sampled_from(["opcode", "op_input", "op_output", "io", "stride", "dims", "name",
                                      "type", "buffer", "filter", "quant"]))
    op = data.draw(st.sampled_from(sub.operators))
    bad_index = data.draw(st.sampled_from([-1, n_tensors, n_tensors + 100, 2 ** 31 - 1, 0]))
    if edit == "opcode":
        op.opcodeIndex = data.draw(st.sampled_from([len(model.operatorCodes), 200, 0]))
    elif edit == "op_input" and op.inputs is not None and len(op.inputs):
        op.inputs = list(op.inputs)
        op.inputs[data.draw(st.integers(0, len(op.inputs) - 1))] = bad_index
    elif edit == "op_output":
        op.outputs = [bad_index]
    elif edit == "io":
        setattr(sub, data.draw(st.sampled_from(["inputs", "outputs"])), [bad_index])
    elif edit in ("stride", "filter") and op.builtinOptions is not None:
        fields = ["strideH", "strideW", "dilationHFactor", "dilationWFactor"] if edit == "stride" else \
            ["filterHeight", "filterWidth", "depthMultiplier"]
        present = [f for f in fields if hasattr(op.builtinOptions, f)]
        if present:
            setattr(op.builtinOptions, data.draw(st.sampled_from(present)), data.draw(st.sampled_from(HUGE[:5] + [0])))
    elif edit == "dims":
        t = data.draw(st.sampled_from(sub.tensors))
        if t.shape is not None and len(t.shape):
            t.shape = list(t.shape)
            t.shape[data.draw(st.integers(0, len(t.shape) - 1))] = data.draw(st.sampled_from([0, -1, 2 ** 31 - 1, 3]))
    elif edit == "name":
        data.draw(st.sampled_from(sub.tensors)).name = data.draw(st.sampled_from([b"\xff\xfe", b"", b"x" * 5000]))
    elif edit == "type":
        data.draw(st.sampled_from(sub.tensors)).type = data.draw(st.sampled_from([0, 2, 5, 8, 9, 11, 17, 99]))
    elif edit == "buffer":
        data.draw(st.sampled_from(sub.tensors)).buffer = data.draw(st.sampled_from([0, len(model.buffers), 10 ** 6]))
    elif edit == "quant":
        t = data.draw(st.sampled_from([t for t in sub.tensors if t.quantization is not None] or sub.tensors))
        if t.quantization is None:
            t.quantization = s.QuantizationParametersT()
        q = t.quantization
        q.scale = [data.draw(st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e-45]))] * \
            data.draw(st.sampled_from([1, 2, 1000]))
        q.quantizedDimension = data.draw(st.sampled_from([0, 3, 7, -1]))
    return model


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@given(data=st.data())
def _tflite_case(data, seeds: list, tmp: Path):
    from ai_edge_litert import schema_py_generated as s

    seed = data.draw(st.sampled_from(seeds))
    if data.draw(st.booleans()):
        model = s.ModelT.InitFromPackedBuf(seed, 0)
        for _ in range(data.draw(st.integers(1, 2))):
            model = _tflite_edit(model, data)
        try:
            blob = _pack(model)
        except Exception:  # an edit the writer itself cannot serialize (a negative unsigned index)
            return
    else:
        blob = data.draw(mutated_bytes(seed))
    path = tmp / "fuzz.tflite"
    path.write_bytes(blob)
    _import_and_cost("tflite", load_tflite, path)


def test_damaged_tflite_files_import_or_fail_cleanly(seeds, tmp_path):
    _tflite_case(seeds=seeds["tflite"], tmp=tmp_path)


def test_undamaged_models_import(seeds, tmp_path):
    for i, blob in enumerate(seeds["onnx"]):
        (tmp_path / f"{i}.onnx").write_bytes(blob)
        assert outcome("onnx", lambda: load_onnx(str(tmp_path / f"{i}.onnx")))[0] == "ok"
    for i, blob in enumerate(seeds["tflite"]):
        (tmp_path / f"{i}.tflite").write_bytes(blob)
        assert outcome("tflite", lambda: load_tflite(str(tmp_path / f"{i}.tflite")))[0] == "ok"
