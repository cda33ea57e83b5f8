"""``qsim validate --data / --calib`` take the model's own inputs: the names, shapes (NHWC for a
.tflite image) and dtypes that LiteRT's ``get_input_details()`` and onnxruntime's ``get_inputs()``
report. Data built from those details matches the runtime; a wrong name, shape or dtype is a
one-line error naming the file, the array and the expected inputs (exit 2, no traceback)."""
from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from qsim.cli import main

_TESTS = Path(__file__).resolve().parents[1]
for _sub in ("unit", "sim"):
    if str(_TESTS / _sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / _sub))

pytest.importorskip("ai_edge_litert")
pytest.importorskip("onnxruntime")
logging.getLogger().setLevel(logging.ERROR)

import _model_files as M  # noqa: E402
from test_validate_integer_io import _ids_model, _model as qconv_onnx  # noqa: E402

ORT_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
             "tensor(int64)": np.int64}


def _litert_inputs(path) -> list[tuple[str, tuple, np.dtype]]:
    from ai_edge_litert.interpreter import Interpreter

    return [(d["name"], tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]))
            for d in Interpreter(model_path=str(path)).get_input_details()]


def _ort_inputs(path, batch: int) -> list[tuple[str, tuple, np.dtype]]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [(i.name, (batch, *i.shape[1:]), np.dtype(ORT_TYPES[i.type])) for i in sess.get_inputs()]


def _data(details, rng, path, **extra) -> Path:
    """An .npz of the runtime's own inputs: real values for float, codes for integers."""
    arrays = {}
    for name, shape, dtype in details:
        arrays[name] = (rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else
                        rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, shape).astype(dtype))
    np.savez(path, **arrays, **extra)
    return path


def _validate(capsys, model, *flags) -> tuple[int, dict | str]:
    code = main(["validate", str(model), "--format", "json", "--out", str(Path(model).with_suffix("")),
                 *map(str, flags)])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def _refused(capsys, model, message, *flags) -> None:
    code, err = _validate(capsys, model, *flags)
    assert code == 2, err
    assert err.startswith("qsim: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err


@pytest.fixture(scope="module")
def tfl(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfl")
    return M.tflite_int8_cnn(d / "m.tflite")  # float32 input 'x' [1, 8, 8, 3] (QUANTIZE inside)


@pytest.mark.parametrize("policy", ["tflite-reference", "xnnpack"])
def test_tflite_data_in_litert_own_names_layout_dtype(tfl, tmp_path, capsys, policy):
    details = _litert_inputs(tfl)
    assert details == [("x", (1, 8, 8, 3), np.dtype(np.float32))]
    data = _data(details, np.random.default_rng(0), tmp_path / "d.npz")
    code, report = _validate(capsys, tfl, "--data", data, "--against", "litert", "--policy", policy)
    assert code == 0, report
    (row,) = report["against"]["outputs"]
    assert row["mismatches"] == 0 and row["elements"] == 10


def test_tflite_wrong_names_shapes_dtypes(tfl, tmp_path, capsys):
    expected = "the model's inputs are 'x' float32 [1, 8, 8, 3] (NHWC)"
    rng = np.random.default_rng(1)
    cases = [({"image": rng.standard_normal((1, 8, 8, 3))}, "array 'image' names no model input; " + expected),
             ({"x": rng.standard_normal((1, 3, 8, 8))},
              "array 'x' has shape [1, 3, 8, 8] (that is NCHW; the model takes NHWC, the file's own layout: "
              "give np.transpose(x, (0, 2, 3, 1))); " + expected),
             ({"x": rng.standard_normal((2, 8, 8, 3))}, "array 'x' has shape [2, 8, 8, 3]; " + expected),
             ({"x": np.full((1, 8, 8, 3), "a")}, "array 'x' is <U1, not numeric; " + expected),
             ({"labels": np.zeros(1, np.int64)}, "no array 'x'; " + expected)]
    for i, (arrays, message) in enumerate(cases):
        np.savez(tmp_path / f"bad{i}.npz", **arrays)
        _refused(capsys, tfl, f"--data {tmp_path / f'bad{i}.npz'}: {message}", "--data", tmp_path / f"bad{i}.npz")


def test_tflite_integer_input_codes_and_range(tmp_path, capsys):
    """An int8-input .tflite: int8 codes as LiteRT reports; int16 codes out of int8's range are refused."""
    sys.path.insert(0, str(_TESTS / "golden"))
    from _tflite_models import conv2d

    w = np.random.default_rng(3).integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    path = tmp_path / "conv.tflite"
    path.write_bytes(conv2d((1, 6, 5, 3), w, np.zeros(4, np.int32), 0.25, 0, np.full(4, 0.01), 0.05, 0))
    details = _litert_inputs(path)
    assert details == [("x", (1, 6, 5, 3), np.dtype(np.int8))]
    code, report = _validate(capsys, path, "--data", _data(details, np.random.default_rng(4), tmp_path / "d.npz"),
                             "--against", "litert")
    assert code == 0 and report["against"]["outputs"][0]["mismatches"] == 0, report
    np.savez(tmp_path / "big.npz", x=np.full((1, 6, 5, 3), 300, np.int16))
    _refused(capsys, path, "input 'x' (int16): holds values the model's int8 input cannot (range 300..300)",
             "--data", tmp_path / "big.npz")


def test_onnx_data_in_onnxruntime_own_names(tmp_path, capsys):
    """ONNX names were already the model's own: data as onnxruntime reports its inputs still runs."""
    path = qconv_onnx(tmp_path / "q.onnx", "uint8")
    details = _ort_inputs(path, 4)  # the file's batch is 2: onnxruntime runs 2 chunks
    assert details == [("xq", (4, 2, 5, 5), np.dtype(np.uint8))]
    code, report = _validate(capsys, path, "--data", _data(details, np.random.default_rng(5), tmp_path / "d.npz"),
                             "--against", "onnxruntime")
    assert code == 0 and report["against"]["outputs"][0]["mismatches"] == 0, report
    np.savez(tmp_path / "c.npz", xq=np.zeros((4, 4, 5, 5), np.uint8))
    _refused(capsys, path, "array 'xq' has shape [4, 4, 5, 5]; the model's inputs are 'xq' uint8 [4, 2, 5, 5]",
             "--data", tmp_path / "c.npz")
    np.savez(tmp_path / "e.npz", xq=np.zeros((4, 2, 5, 5), np.uint8), extra=np.zeros(4))
    _refused(capsys, path, "array 'extra' names no model input", "--data", tmp_path / "e.npz")


def _float_tflite_conv(path) -> Path:
    """float32 x [1, 6, 5, 3] (NHWC) -> CONV_2D 3x3 SAME -> y [1, 6, 5, 4]: a float model for --plan."""
    return M.tflite_float_conv(path, "y", 4, (3, 3), True, 6)


def test_calib_in_model_layout_and_dtype(tmp_path, capsys):
    """--calib takes the model's names and NHWC, any number of samples; float64 calibration data is
    rounded to the model's float32 first (the same scales as float32 data), wrong names are refused."""
    path = _float_tflite_conv(tmp_path / "f.tflite")
    rng = np.random.default_rng(7)
    calib = rng.standard_normal((5, 6, 5, 3)) * 3
    np.savez(tmp_path / "c64.npz", x=calib)
    np.savez(tmp_path / "c32.npz", x=calib.astype(np.float32))
    data = _data(_litert_inputs(path), rng, tmp_path / "d.npz")
    reports = []
    for c in ("c64", "c32"):
        code, report = _validate(capsys, path, "--plan", "int8", "--calib", tmp_path / f"{c}.npz", "--data", data)
        assert code == 0, report
        reports.append(report)
    assert reports[0]["nodes"] == reports[1]["nodes"] and reports[0]["outputs"] == reports[1]["outputs"]
    np.savez(tmp_path / "nchw.npz", x=calib.transpose(0, 3, 1, 2))
    _refused(capsys, path, f"--calib {tmp_path / 'nchw.npz'}: array 'x' has shape [5, 3, 6, 5] (that is NCHW",
             "--plan", "int8", "--calib", tmp_path / "nchw.npz")


def test_calib_ids_cast_to_the_declared_int64(tmp_path, capsys):
    """int32 ids in --calib reach the graph as the model's int64, like --data's."""
    path = _ids_model(tmp_path / "g.onnx")
    np.savez(tmp_path / "c.npz", ids=np.random.default_rng(8).integers(0, 10, (4, 3)).astype(np.int32))
    np.savez(tmp_path / "d.npz", ids=np.array([[1, 2, 3], [4, 5, 9]], np.int32))
    code, report = _validate(capsys, path, "--plan", "int8", "--calib", tmp_path / "c.npz", "--data",
                             tmp_path / "d.npz", "--against", "onnxruntime")
    assert code == 0, report
    np.savez(tmp_path / "f.npz", ids=np.ones((4, 3)))
    _refused(capsys, path, "input 'ids' (float64): the model takes int64", "--plan", "int8", "--calib",
             tmp_path / "f.npz")


def test_evaluation_data_in_tflite_layout(tmp_path, capsys):
    """``qsim sensitivity / search --data`` and ``evaluation:`` blocks: a .tflite model's data is NHWC
    (its own layout); the fp32 reference then equals LiteRT's float run on the same samples."""
    from ai_edge_litert.interpreter import Interpreter

    from qsim.evaluation.data import load_evaluation
    from qsim.evaluation.measure import reference
    from qsim.ir.tflite_import import load_tflite

    path = _float_tflite_conv(tmp_path / "f.tflite")
    x = np.random.default_rng(9).standard_normal((6, 6, 5, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    ev = load_evaluation({"data": str(tmp_path / "d.npz"), "batch": 1, "metric": "cosine"}, "spec.yaml")
    graph = load_tflite(path)
    ev.check(graph)
    ours = reference(ev, graph)[0]  # samples of the model's output (NHWC) after the calibration split
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    theirs = []
    for sample in x[len(x) - len(ours):]:
        it.set_tensor(it.get_input_details()[0]["index"], sample[None])
        it.invoke()
        theirs.append(it.get_tensor(it.get_output_details()[0]["index"])[0])
    np.testing.assert_allclose(ours, np.stack(theirs), rtol=1e-5, atol=1e-5)
    np.savez(tmp_path / "nchw.npz", x=x.transpose(0, 3, 1, 2))
    code = main(["sensitivity", str(path), "--data", str(tmp_path / "nchw.npz"), "--batch", "1",
                 "--candidates", "int8", "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert ("input 'x': samples of shape (3, 6, 5); the model takes (6, 5, 3) per sample (its input is "
            "(1, 6, 5, 3) (NHWC, the file's own layout))") in err


def test_python_api_takes_tflite_names_layout_dtype(tmp_path):
    """qsim.compile / simulate: calibration and run inputs keyed by the .tflite's own name, NHWC, in
    its dtype (outputs NHWC too); NCHW, float64 or a wrong name are QsimErrors naming the input."""
    import qsim
    from qsim.errors import QsimError

    path = _float_tflite_conv(tmp_path / "f.tflite")
    x = np.random.default_rng(10).standard_normal((1, 6, 5, 3)).astype(np.float32)
    compiled = qsim.compile(str(path), plan="int8", calib=[{"x": x}])
    assert compiled.run({"x": x})["y"].shape == (1, 6, 5, 4)
    for bad, message in [({"x": x.transpose(0, 3, 1, 2)}, "input 'x' has shape [1, 3, 6, 5]; the model takes "
                          "[1, 6, 5, 3] (NHWC, the file's own layout)"),
                         ({"x": x.astype(np.float64)}, "input 'x' takes float32 (the model's own dtype), got float64"),
                         ({"image": x}, "no model input named 'image'; the inputs are ['x']")]:
        with pytest.raises(QsimError, match=re.escape(message)):
            qsim.compile(str(path), plan="int8", calib=[bad])
