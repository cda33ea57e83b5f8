"""``qsim validate``: quantized ONNX against onnxruntime, a float model with a plan, int8 TFLite
against LiteRT, reports, and user errors (exit 2, one line, no traceback)."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from qsim.cli import main
import _acc_models as A  # tests/sim is on sys.path (pytest rootdir-relative import)

logging.getLogger().setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pytest.importorskip("onnxruntime.quantization")
    d = tmp_path_factory.mktemp("validate")
    src = A.conv_pool_fc(d / "f.onnx", batch=2)
    A.ort_quantize(src, d / "q.onnx", A.random_batches((2, 2, 4, 4), 3))
    rng = np.random.default_rng(0)
    np.savez(d / "data.npz", x=rng.standard_normal((6, 2, 4, 4)).astype(np.float32), labels=rng.integers(0, 5, 6))
    np.savez(d / "calib.npz", x=rng.standard_normal((12, 2, 4, 4)).astype(np.float32))
    np.savez(d / "wrong.npz", image=np.zeros((2, 2, 4, 4), np.float32))
    (d / "plan.yaml").write_text("default: int8\noverrides:\n  - {name: fc, precision: fp32}\n")
    return d


def _json(capsys, argv) -> dict:
    assert main(["validate", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_quantized_onnx_against_onnxruntime(files, capsys):
    out = files / "r_q"
    report = _json(capsys, [str(files / "q.onnx"), "--against", "onnxruntime", "--out", str(out)])
    assert report["against"]["runtime"] == "onnxruntime"
    (row,) = report["against"]["outputs"]
    assert row["mismatches"] == 0 and row["elements"] == 10  # bit-exact with the runtime
    assert [n["node"] for n in report["nodes"]] == ["conv", "pool", "flat", "fc"]
    if report["executed_by"].startswith("integer"):
        assert {"overflow_events", "saturated_low", "mode"} <= set(report["nodes"][0])
    assert json.loads((out.with_suffix(".json")).read_text())["graph"] == report["graph"]
    assert out.with_suffix(".csv").read_text().startswith("node,op,tensor,format,sqnr_db")


def test_float_model_with_plan_calib_data_labels(files, capsys):
    argv = [str(files / "f.onnx"), "--plan", "int8", "--calib", str(files / "calib.npz"), "--data",
            str(files / "data.npz"), "--out", str(files / "r_f")]
    report = _json(capsys, argv)
    (metrics,) = report["outputs"].values()
    assert {"accuracy_float", "accuracy_quant", "top1_agreement", "sqnr_db"} <= set(metrics)
    assert metrics["sqnr_db"] > 10 and report["inputs"].startswith("--data")
    assert all(n["format"] == "int8" for n in report["nodes"])
    assert main(["validate", *argv]) == 0  # the table form
    text = capsys.readouterr().out
    assert "conv" in text and "accuracy_quant" in text


def test_plan_yaml_with_float_node(files, capsys):
    report = _json(capsys, [str(files / "f.onnx"), "--plan", str(files / "plan.yaml"), "--executor", "fake",
                            "--out", str(files / "r_y")])
    formats = {n["node"]: n["format"] for n in report["nodes"]}
    assert formats["fc"] == "float32" and formats["conv"] == "int8"
    assert report["executed_by"].startswith("fake quantization")
    assert any("calibrated on the evaluation inputs" in n for n in report["notes"])


def test_tflite_against_litert(tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    import _model_files as M

    path = M.tflite_int8_cnn(tmp_path / "m.tflite")
    for policy in ("tflite-reference", "xnnpack"):
        report = _json(capsys, [str(path), "--against", "litert", "--policy", policy, "--out", str(tmp_path / "r")])
        assert report["against"]["outputs"][0]["mismatches"] == 0, policy
    from qsim.hw.profile import load_profile

    mobile = load_profile("mobile")
    report = _json(capsys, [str(path), "--hw", "mobile", "--out", str(tmp_path / "r")])
    assert report["policy"] == mobile.requant_policy
    assert report["accumulator_bits"] == mobile.compute.accumulator_bits


@pytest.mark.parametrize("argv,message", [
    (["missing.onnx"], "not found"),
    (["{d}/f.onnx", "--data", "{d}/wrong.npz"], "array 'image' names no model input; the model's inputs are "
                                               "'x' float32 [2, 2, 4, 4]"),
    (["{d}/q.onnx", "--plan", "int8"], "already quantized"),
    (["{d}/f.onnx", "--against", "litert"], "needs a .tflite model"),
    (["{d}/f.onnx", "--plan", "int8", "--calib", "{d}/missing.npz"], "file not found"),
    (["{d}/f.onnx", "--plan", "int1"], "unknown precision"),
    (["{d}/data.npz"], "takes an .onnx or .tflite model"),
])
def test_user_errors(files, capsys, argv, message):
    argv = [a.format(d=files) for a in argv]
    assert main(["validate", *argv, "--out", str(files / "r_err")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("qsim: error:")


def test_litert_inputs_quantized_with_the_policys_ties(tmp_path):
    """An int8-input model fed real values at exact ties (x / scale = k + 0.5): LiteRT receives the
    codes of the policy's quantize (TFLite: half away from zero), the ones the simulation used."""
    pytest.importorskip("ai_edge_litert")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
    from _tflite_models import conv2d

    from qsim.sim.validate import validate

    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    path = tmp_path / "conv.tflite"
    path.write_bytes(conv2d((1, 6, 6, 3), w, np.zeros(4, np.int32), 0.25, 0, np.full(4, 0.01), 0.05, 0))
    x = (rng.integers(-20, 20, (1, 6, 6, 3)) + 0.5).astype(np.float32) * np.float32(0.25)  # all ties (NHWC)
    np.savez(tmp_path / "ties.npz", x=x)
    for policy in ("tflite-reference", "xnnpack"):
        result = validate(str(path), policy=policy, data=str(tmp_path / "ties.npz"), against="litert")
        (row,) = result["summary"]["against"]["outputs"]
        assert row["mismatches"] == 0 and (row["compared"], row["dtype"]) == ("codes", "int8"), policy
