"""Start-up cost: what ``import qsim``, ``qsim --help`` and a first ``qsim.simulate`` of a quantized
.onnx file load in a fresh interpreter, and the reader that lets the simulation skip the onnx package.

``import onnx`` alone costs about a second (ml_dtypes registering its ufunc loops), pandas a quarter
of one, scipy and matplotlib more: a cold start under a second has room for none of them. The ONNX
file is read by ``qsim.ir.onnx_proto`` (onnx's protobuf messages declared in qsim); these tests check
that it reads what onnx reads, value for value, and that the import it feeds builds the same graph."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qsim.ir import onnx_context, onnx_import, onnx_proto

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"pandas", "scipy", "matplotlib", "onnx", "ml_dtypes", "numba", "networkx", "torch", "onnxruntime",
         "sklearn", "dask"}
_LOADED = "import sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"


def _fresh(code: str) -> list[str]:
    """Top-level packages loaded by ``code`` in a fresh interpreter (its last stdout line is the list)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code + "\n" + _LOADED], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_qsim_loads_no_heavy_package():
    assert HEAVY.isdisjoint(_fresh("import qsim")), "import qsim must stay light (its names load on first use)"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["validate", "--help"], ["sweep", "--help"],
                                  ["search", "--help"], ["sensitivity", "--help"]])
def test_cli_help_loads_no_heavy_package(argv):
    code = (f"import runpy, sys; sys.argv = ['qsim'] + {argv!r}\n"
            "try:\n    runpy.run_module('qsim.cli', run_name='__main__')\nexcept SystemExit:\n    pass")
    assert HEAVY.isdisjoint(_fresh(code))


@pytest.fixture(scope="module")
def qoperator_model(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(ROOT / "tests" / "sim"))
    import _int_onnx as M

    d = tmp_path_factory.mktemp("light")
    return M.quantize(M.resnet_cnn(d / "float.onnx", batch=1), d / "quant.onnx", "qoperator", True)


def test_first_simulate_of_a_quantized_onnx_file_skips_onnx_and_pandas(qoperator_model, tmp_path):
    import onnxruntime as ort

    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = (f"import numpy as np, qsim\n"
            f"out = qsim.simulate({str(qoperator_model)!r}, {{'x': np.load({str(tmp_path / 'x.npy')!r})}})\n"
            f"np.savez({str(tmp_path / 'out.npz')!r}, **out)")
    loaded = _fresh(code)
    assert {"onnx", "ml_dtypes", "pandas", "matplotlib", "sklearn"}.isdisjoint(loaded)
    assert "numba" in loaded  # the kernels did run
    sess = ort.InferenceSession(str(qoperator_model), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))
    got = np.load(tmp_path / "out.npz")
    assert sorted(got.files) == sorted(want)
    for name, w in want.items():
        assert got[name].dtype == w.dtype and np.array_equal(got[name], w), name


def test_reader_reads_what_onnx_reads(qoperator_model):
    data = qoperator_model.read_bytes()
    ours, theirs = onnx_proto.parse_model(data), onnx.load(str(qoperator_model))
    assert onnx.ModelProto.FromString(ours.SerializeToString()) == theirs
    for a, b in zip(ours.graph.initializer, theirs.graph.initializer, strict=True):
        x, y = onnx_proto.to_array(a), numpy_helper.to_array(b)
        assert a.name == b.name and x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), a.name
    for n, m in zip(ours.graph.node, theirs.graph.node, strict=True):
        for a, b in zip(n.attribute, m.attribute, strict=True):
            assert onnx_proto.attribute_value(a) == helper.get_attribute_value(b), (n.name, a.name)


@pytest.mark.parametrize("elem", sorted(onnx_proto.NUMPY_TYPES))
@pytest.mark.parametrize("raw", [True, False])
def test_to_array_equals_numpy_helper(elem, raw):
    """Every element type numpy holds, stored as raw bytes and in the typed fields."""
    dtype = np.dtype(onnx_proto.NUMPY_TYPES[elem])
    values = np.array([[0, 1, 2], [3, 100, 7]]).astype(dtype)
    if dtype.kind in "iu":
        values[1, 1] = np.iinfo(dtype).max
        if dtype.kind == "i":
            values[0, 0] = np.iinfo(dtype).min
    elif dtype.kind == "f":
        values[0, 0], values[1, 2] = -0.5, np.finfo(dtype).max
    t = helper.make_tensor("t", elem, values.shape, values.tobytes() if raw else values.reshape(-1).tolist(), raw=raw)
    ours = onnx_proto.to_array(onnx_proto.parse_model(helper.make_model(helper.make_graph(
        [], "g", [], [], [t])).SerializeToString()).graph.initializer[0])
    want = numpy_helper.to_array(t)
    assert ours.dtype == want.dtype == dtype and ours.shape == want.shape and np.array_equal(ours, want)


def test_types_numpy_lacks_go_through_onnx():
    t = helper.make_tensor("t", TensorProto.FLOAT8E4M3FN, [3], [0.5, -2.0, 448.0])
    light = onnx_proto.parse_model(helper.make_model(helper.make_graph([], "g", [], [], [t])).SerializeToString())
    got, want = onnx_proto.to_array(light.graph.initializer[0]), numpy_helper.to_array(t)
    assert got.dtype == want.dtype and np.array_equal(got.astype(np.float32), want.astype(np.float32))


def _graph_facts(g) -> tuple:
    nodes = [(n.name, n.op, tuple(n.inputs), tuple(n.outputs), repr(sorted(n.attrs.items()))) for n in g.nodes()]
    tensors = sorted((k, tuple(v.shape), v.dtype) for k, v in g.tensors.items())
    consts = sorted((k, v.dtype.str, v.tobytes()) for k, v in g.constants.items())
    return nodes, tensors, consts, sorted((k, repr(v)) for k, v in g.quant_params.items()), g.inputs, g.outputs


@pytest.mark.parametrize("fmt", ["qoperator", "qdq"])
def test_import_without_eager_shape_inference_builds_the_same_graph(tmp_path, monkeypatch, fmt):
    """A quantized model is imported without ONNX shape inference unless a handler asks for a shape
    or type the file lacks; the graph must be the one the inferred model gives."""
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(ROOT / "tests" / "sim"))
    import _int_onnx as M

    for build in (M.resnet_cnn, M.encoder_block):
        path = M.quantize(build(tmp_path / f"{build.__name__}.onnx"), tmp_path / f"{build.__name__}_q.onnx",
                          fmt, True)
        inferred = []
        monkeypatch.setattr(onnx_context.Context, "_infer", lambda self, f=onnx_context.Context._infer:
                            (inferred.append(1), f(self))[1])
        lazy = _graph_facts(onnx_import.load_onnx(path))
        monkeypatch.undo()
        read = onnx_import._read
        monkeypatch.setattr(onnx_import, "_read", lambda p: onnx_import._infer(read(p), p))
        eager = _graph_facts(onnx_import.load_onnx(path))
        monkeypatch.undo()
        assert lazy == eager, build.__name__
        if build is M.resnet_cnn and fmt == "qoperator":
            assert not inferred, "a QOperator CNN should import without shape inference"


def test_a_type_the_file_lacks_is_inferred_on_demand(tmp_path, monkeypatch):
    """QDQ in float16 with a float op between two others: the file does not give the intermediate's
    element type; the import infers it when the handler asks (float16, not the float32 default)."""
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["x", "s", "z"], ["q"]), n("DequantizeLinear", ["q", "s", "z"], ["d"]),
             n("Sigmoid", ["d"], ["h"]), n("Tanh", ["h"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4])],
                              [numpy_helper.from_array(np.array(0.1, np.float16), "s"),
                               numpy_helper.from_array(np.array(3, np.uint8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "m.onnx"))
    inferred = []
    monkeypatch.setattr(onnx_context.Context, "_infer", lambda self, f=onnx_context.Context._infer:
                        (inferred.append(1), f(self))[1])
    g = onnx_import.load_onnx(tmp_path / "m.onnx")
    assert inferred == [1] and g.tensor("h").dtype == "float16" and g.tensor("y").dtype == "float16"


def test_weights_in_an_external_data_file_are_read(qoperator_model, tmp_path):
    model = onnx.load(str(qoperator_model))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.bin", size_threshold=0)
    assert (tmp_path / "ext.bin").stat().st_size > 1000
    inline, external = onnx_import.load_onnx(qoperator_model), onnx_import.load_onnx(tmp_path / "ext.onnx")
    assert _graph_facts(inline)[2] == _graph_facts(external)[2] and len(external.constants) > 10
    (tmp_path / "ext.bin").unlink()
    with pytest.raises(onnx_import.QsimError, match="ext.onnx.*cannot be read"):
        onnx_import.load_onnx(tmp_path / "ext.onnx")
