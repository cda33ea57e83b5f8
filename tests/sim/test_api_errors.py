"""Inputs users get wrong in the simulator and the API: clear errors or a working fallback, never a traceback."""
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import qsim
from qsim.errors import QsimError


@pytest.fixture
def small_onnx(tmp_path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "w"),
             numpy_helper.from_array((rng.standard_normal((10, 512)) * 0.05).astype(np.float32), "fw")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]), helper.make_node("Gemm", ["f", "fw"], ["g"], transB=1),
             helper.make_node("Softmax", ["g"], ["y"])]
    g = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    path = tmp_path / "small.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_int16_plan_runs_softmax_as_a_float_island(small_onnx):
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    out = qsim.simulate(small_onnx, {"x": x}, plan="int16")
    (y,) = out.values()
    assert y.shape == (1, 10)


def test_tf32_plan_is_refused_not_silently_fp32(small_onnx):
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(QsimError, match="does not model tf32"):
        qsim.simulate(small_onnx, {"x": x}, plan="tf32")


def test_batch_cannot_be_applied_to_a_built_graph():
    from qsim.ir.builders import build

    with pytest.raises(QsimError, match="batch applies when qsim builds the graph"):
        qsim.estimate(build("mlperf_tiny_ad"), "iot", batch=8)
    with pytest.raises(QsimError, match="batch must be >= 1"):
        qsim.estimate("mlperf_tiny_ad", "iot", batch=0)


def test_validate_data_without_inputs_is_a_clear_error(small_onnx, tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, labels=np.zeros(4, np.int64))
    proc = subprocess.run([sys.executable, "-m", "qsim.cli", "validate", str(small_onnx), "--plan", "int8",
                           "--data", str(data)], capture_output=True, text=True)
    assert proc.returncode == 2 and "holds no input arrays" in proc.stderr and "Traceback" not in proc.stderr


def test_against_a_missing_runtime_says_what_to_install(small_onnx, monkeypatch, capsys):
    from qsim.cli import main

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on an install without the test extra
    assert main(["validate", str(small_onnx), "--plan", "int8", "--against", "onnxruntime"]) == 2
    assert "pip install onnxruntime" in capsys.readouterr().err
