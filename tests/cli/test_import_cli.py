"""Real model files through the command line: qsim run FILE and qsim import."""
from pathlib import Path

import onnx
import pytest
import yaml

from qsim.cli import main

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = sorted(LIGHT.glob("light_*.onnx"))


def test_the_light_models_are_there():
    assert len(MODELS) == 9


@pytest.mark.parametrize("profile", ["iot", "mobile", "cloud", "systolic"])
@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_every_light_model_runs_on_every_profile(model, profile, capsys):
    assert main(["run", str(model), "--hw", profile, "--precision", "int8", "--format", "json"]) == 0
    assert '"latency_s"' in capsys.readouterr().out


def test_float_model_on_an_int_only_profile_is_refused_clearly(capsys):
    assert main(["run", str(LIGHT / "light_squeezenet.onnx"), "--hw", "systolic"]) == 2
    assert "has no unit for fp32" in capsys.readouterr().err


def test_import_writes_a_workload_that_runs(tmp_path, capsys):
    out = tmp_path / "workloads" / "rn50.yaml"
    assert main(["import", str(LIGHT / "light_resnet50.onnx"), "-o", str(out), "--batch", "2"]) == 0
    data = yaml.safe_load(out.read_text())
    assert data["model"]["onnx"].endswith("light_resnet50.onnx") and data["batch"] == 2
    capsys.readouterr()
    assert main(["run", str(out), "--hw", "cloud", "--format", "json"]) == 0
    assert '"macs": 8178368512' in capsys.readouterr().out  # 2 x the builder's 4,089,184,256


def test_import_errors_write_nothing(tmp_path, capsys):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes((LIGHT / "light_squeezenet.onnx").read_bytes()[:500])
    out = tmp_path / "w.yaml"
    assert main(["import", str(bad), "-o", str(out)]) == 2
    assert not out.exists()
    assert "broken.onnx" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "model.pb"), "-o", str(out)]) == 2
