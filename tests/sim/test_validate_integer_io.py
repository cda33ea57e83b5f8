"""``qsim validate --against`` on models with integer inputs and outputs: onnxruntime is fed the
dtype the file declares (uint8 / int8 codes, int64 ids), quantized outputs are compared as codes
(difference in LSB), and a simulation that differs is still reported as mismatches."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from onnx import TensorProto as T, helper as h, numpy_helper as nh

from qsim.cli import main

pytest.importorskip("onnxruntime")
logging.getLogger().setLevel(logging.ERROR)

CODES = {"uint8": (T.UINT8, 128), "int8": (T.INT8, 0)}


def _model(path, x_dtype="uint8", float_in=False, batch=2):
    """[x codes | float x -> QuantizeLinear] -> QLinearConv 3x3 pad 1 -> y codes (no DequantizeLinear).
    Weights span [-127, 127]: large uint8 x int8 pairs saturate int16 on avx2, which qsim models."""
    rng = np.random.default_rng(1)
    elem, zp = CODES[x_dtype]
    np_dtype = np.dtype(x_dtype)
    inits = [nh.from_array(np.array(0.05, np.float32), "xs"), nh.from_array(np.array(zp, np_dtype), "xz"),
             nh.from_array(rng.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8), "w"),
             nh.from_array(np.array(0.01, np.float32), "ws"), nh.from_array(np.array(0, np.int8), "wz"),
             nh.from_array(np.array(0.5, np.float32), "ys"), nh.from_array(np.array(zp - 28, np_dtype), "yz"),
             nh.from_array(rng.integers(-500, 500, 3).astype(np.int32), "b")]
    nodes = [h.make_node("QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                         pads=[1, 1, 1, 1], name="conv")]
    if float_in:
        nodes.insert(0, h.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="quant"))
        inp = h.make_tensor_value_info("x", T.FLOAT, [batch, 2, 5, 5])
    else:
        inp = h.make_tensor_value_info("xq", elem, [batch, 2, 5, 5])
    g = h.make_graph(nodes, "qconv", [inp], [h.make_tensor_value_info("y", elem, [batch, 3, 5, 5])], inits)
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def _validate(capsys, path, *flags) -> tuple[int, dict | str]:
    code = main(["validate", str(path), "--against", "onnxruntime", "--format", "json",
                 "--out", str(path.with_suffix("")), *map(str, flags)])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


@pytest.mark.parametrize("x_dtype", ["uint8", "int8"])
def test_integer_input_and_output_compared_as_codes(tmp_path, capsys, x_dtype):
    path = _model(tmp_path / "q.onnx", x_dtype)
    info = np.iinfo(x_dtype)
    codes = np.random.default_rng(2).integers(info.min, info.max + 1, (4, 2, 5, 5))  # int64 codes: cast to x_dtype
    codes[0, 0] = info.max  # saturating pairs on avx2
    np.savez(tmp_path / "codes.npz", xq=codes)
    np.savez(tmp_path / "real.npz", xq=np.random.default_rng(3).uniform(-8, 8, (4, 2, 5, 5)))  # quantized first
    for flags in ([], ["--data", tmp_path / "codes.npz"], ["--data", tmp_path / "real.npz"]):
        code, report = _validate(capsys, path, *flags)
        assert code == 0, report
        (row,) = report["against"]["outputs"]
        assert (row["compared"], row["dtype"]) == ("codes", x_dtype), flags
        batch = 4 if flags else 2  # --data's batch, else the file's
        assert row["mismatches"] == 0 and row["max_diff_lsb"] == 0 and row["elements"] == batch * 3 * 25


def test_float_input_quantized_output(tmp_path, capsys):
    path = _model(tmp_path / "f.onnx", float_in=True)
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(4).uniform(-7, 7, (6, 2, 5, 5)))  # float64: rounded once
    for flags in ([], ["--data", tmp_path / "d.npz"]):
        code, report = _validate(capsys, path, *flags)
        assert code == 0, report
        (row,) = report["against"]["outputs"]
        assert row["compared"] == "codes" and row["mismatches"] == 0, flags
    assert main(["validate", str(path), "--against", "onnxruntime", "--out", str(tmp_path / "t")]) == 0
    assert "y (uint8 codes): 0 of 150 elements differ (max diff 0 LSB)" in capsys.readouterr().out


def test_a_different_simulation_is_reported(tmp_path, capsys, monkeypatch):
    """The comparison can fail: two output codes moved by 1 and 3 LSB are two mismatches, 3 LSB."""
    import qsim.sim.validate as V

    real_run = V.run_model

    def off_by_some(*args, **kwargs):
        run = real_run(*args, **kwargs)
        y = run.trace["y"].copy()
        flat = y.reshape(-1)
        for i, step in [(0, 1), (7, 3)]:
            v = int(flat[i])
            flat[i] = v + step if v + step <= 255 else v - step
        run.trace["y"] = y
        return run

    monkeypatch.setattr(V, "run_model", off_by_some)
    code, report = _validate(capsys, _model(tmp_path / "q.onnx"))
    assert code == 0, report
    (row,) = report["against"]["outputs"]
    assert row["mismatches"] == 2 and row["max_diff_lsb"] == 3 and row["max_abs_diff"] == 1.5


def _ids_model(path):
    table = nh.from_array(np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32), "table")
    g = h.make_graph([h.make_node("Gather", ["table", "ids"], ["y"], name="g")], "ids",
                     [h.make_tensor_value_info("ids", T.INT64, [2, 3])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 3, 4])], [table])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def test_index_input_and_data_errors(tmp_path, capsys):
    """int64 ids reach onnxruntime as int64 (int32 data cast); float ids or codes out of range are
    user errors naming the input (exit 2), not onnxruntime's internal error."""
    path = _ids_model(tmp_path / "g.onnx")
    np.savez(tmp_path / "i32.npz", ids=np.array([[1, 2, 3], [4, 5, 9]], np.int32))
    for flags in ([], ["--data", tmp_path / "i32.npz"]):
        code, report = _validate(capsys, path, *flags)
        assert code == 0, report
        (row,) = report["against"]["outputs"]
        assert row["compared"] == "values" and row["mismatches"] == 0 and row["max_diff_lsb"] is None
    np.savez(tmp_path / "f.npz", ids=np.array([[1.0, 2, 3], [4, 5, 9]]))
    np.savez(tmp_path / "big.npz", xq=np.full((2, 2, 5, 5), 256))
    for model, data, message in [(path, "f.npz", "input 'ids' (float64): the model takes int64, and this input "
                                  "has no quantization parameters"),
                                 (_model(tmp_path / "q.onnx"), "big.npz", "input 'xq' (int64): holds values the "
                                  "model's uint8 input cannot (range 256..256)")]:
        code, err = _validate(capsys, model, "--data", tmp_path / data)
        assert code == 2 and message in err and "Traceback" not in err and "internal error" not in err
