"""Values of the wrong type, non-finite or out of range in profiles and workloads are refused before
anything is built, each as ``file:line: key: problem`` and all at once, instead of a traceback or a
silently wrong answer (NaN efficiency once gave ResNet-50 35.7 ms instead of 10.3 s)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qsim.errors import ProfileError, WorkloadError
from qsim.hw.profile import PROFILE_DIR, load_profile
from qsim.workload import load_workload

IOT = (PROFILE_DIR / "iot.yaml").read_text()


def _line(text: str, marker: str) -> int:
    (number,) = [i for i, line in enumerate(text.splitlines(), 1) if marker in line]
    return number


@pytest.mark.parametrize("old,new,key,problem", [
    ("int8: 0.4184", "int8: .nan", "compute.efficiency.int8", "must be a finite number, got nan"),
    ("clock_mhz: 480", "clock_mhz: .nan", "clock_mhz", "must be a finite number, got nan"),
    ("clock_mhz: 480", "clock_mhz: .inf", "clock_mhz", "must be a finite number, got inf"),
    ("clock_mhz: 480", "clock_mhz: -.inf", "clock_mhz", "must be a finite number, got -inf"),
    ("clock_mhz: 480", "clock_mhz: 5.0e-324", "clock_mhz", "4.94066e-324 is too small (a nonzero value must be >= 1e-06)"),
    ("dispatch_overhead_us: 5", "dispatch_overhead_us: .nan", "dispatch_overhead_us", "must be a finite number"),
    ("read_pj_per_byte: 2.5", "read_pj_per_byte: .NaN", "memories.sram.read_pj_per_byte", "must be a finite number"),
    ("static_mw: 275", "static_mw: .inf", "energy.static_mw", "must be a finite number, got inf"),
    ("capacity_kib: 512", "capacity_kib: .inf", "memories.sram.capacity_kib", "must be a finite number, got inf"),
    ("capacity_kib: 512", "capacity_kib: 1.0e+308", "memories.sram.capacity_kib", "must be <= 1e+12, got 1e+308"),
    ("capacity_kib: 512", "capacity_kib: 1" + "0" * 400, "memories.sram.capacity_kib",
     "is out of range, got 1000000000... (401 digits)"),
    ("accumulator_bits: 32", "accumulator_bits: 32.5", "compute.accumulator_bits", "expected an integer, got 32.5"),
    ("name: iot", "name: [a, b]", "name", "expected a non-empty string, got ['a', 'b']"),
    ("  weights: flash", "  weights: [flash]", "placement.weights", "expected a non-empty string, got ['flash']"),
    ("    int8: 2  ", "    int8: [2]", "compute.macs_per_cycle.int8", "expected a number, got [2]"),
    ("process_nm: 40", "process_nm: .nan", "energy.process_nm", "must be a finite number, got nan"),
])
def test_profile_value_refused_with_file_line_and_key(tmp_path, old, new, key, problem):
    text = IOT.replace(old, new, 1)
    assert text != IOT
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert f"{path}:{_line(text, new.strip())}: {key}: {problem}" in str(exc.value).splitlines()[-1]


def test_every_bad_profile_value_reported_at_once(tmp_path):
    text = IOT.replace("clock_mhz: 480", "clock_mhz: .nan").replace("static_mw: 275", "static_mw: .inf")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert f"{path}:{_line(text, 'clock_mhz')}: clock_mhz: must be a finite number" in str(exc.value)
    assert f"{path}:{_line(text, 'static_mw')}: energy.static_mw: must be a finite number" in str(exc.value)


def test_profile_override_of_nan_refused():
    with pytest.raises(ProfileError, match=r"memories\.sram\.bandwidth_gbps: must be a finite number, got nan"):
        load_profile("iot", overrides={"memories.sram.bandwidth_gbps": float("nan")})


LAYERS = """name: tiny
model:
  inputs: [{name: x, shape: [1, 3, 8, 8]}]
  layers:
    - {name: c1, op: Conv, inputs: [x], out_channels: 4, kernel: 3, pad: 1}
    - {name: r1, op: Relu, inputs: [c1]}
  outputs: [r1]
precision: int8
"""
C1 = "{name: c1, op: Conv, inputs: [x], out_channels: 4, kernel: 3, pad: 1}"


def _conv(**change) -> str:
    return LAYERS.replace(C1, C1.replace("}", "").replace("out_channels: 4, kernel: 3, pad: 1", ", ".join(
        f"{k}: {v}" for k, v in ({"out_channels": 4, "kernel": 3, "pad": 1} | change).items())) + "}")


@pytest.mark.parametrize("text,marker,key,problem", [
    (_conv(out_channels=4.5), "c1", "model.layers[0].out_channels", "expected an integer, got 4.5"),
    (_conv(out_channels=".nan"), "c1", "model.layers[0].out_channels", "expected an integer, got nan"),
    (_conv(out_channels="four"), "c1", "model.layers[0].out_channels", "expected an integer, got 'four'"),
    (_conv(pad=-1), "c1", "model.layers[0].pad", "must be >= 0, got -1"),
    (_conv(pad="[1, -1]"), "c1", "model.layers[0].pad[1]", "must be >= 0, got -1"),
    (_conv(kernel=2.5), "c1", "model.layers[0].kernel", "expected an integer, got 2.5"),
    (_conv(stride=0), "c1", "model.layers[0].stride", "must be >= 1, got 0"),
    (_conv(groups="[1]"), "c1", "model.layers[0].groups", "expected an integer, got [1]"),
    (LAYERS.replace("{name: r1, op: Relu, inputs: [c1]}", "{name: c1, op: Relu, inputs: [x]}").replace(
        "outputs: [r1]", "outputs: [c1]"), "op: Relu", "model.layers", "name 'c1' is used twice (first at line 5)"),
    (LAYERS.replace("name: c1,", "name: [c1],"), "c1", "model.layers[0].name", "expected a non-empty string"),
    (LAYERS.replace("inputs: [x], out", "inputs: 5, out"), "c1", "model.layers[0].inputs", "expected a list, got 5"),
    (LAYERS.replace("op: Relu", "op: [Relu]"), "Relu", "model.layers[1].op", "expected a non-empty string"),
    (LAYERS.replace("op: Relu", "op: Reluu"), "Reluu", "model.layers[1].op", "unknown op 'Reluu'; known ops: Add,"),
    (LAYERS.replace("outputs: [r1]", "outputs: 5"), "outputs", "model.outputs", "expected a list, got 5"),
    # a scalar in a list carries no line of its own: the list's
    (LAYERS.replace("- {name: r1, op: Relu, inputs: [c1]}", "- hello"), "layers:", "model.layers[1]",
     "expected a layer (a mapping with name, op and inputs), got 'hello'"),
    (LAYERS + "seq: 4\n", "seq", "seq", "only a builder takes a sequence length"),
    ("name: t\nmodel: {builder: resnet18, layers: [{name: a, op: Relu, inputs: [x]}]}\n", "model", "model",
     "give exactly one of builder, onnx, tflite, layers or entry (builder and layers given)"),
    ("name: t\nmodel: {builder: resnet18, params: [1, 2]}\n", "model", "model.params", "expected a mapping, got list"),
    ("name: t\nmodel: {builder: resnet18, params: abc}\n", "model", "model.params", "expected a mapping, got str"),
    ("name: t\nmodel: {builder: [resnet18]}\n", "model", "model.builder", "['resnet18'] is not one of bert, llama"),
    ("name: t\nmodel: {onnx: 5}\n", "model", "model.onnx", "expected a non-empty string, got 5"),
    ("name: t\nmodel: {builder: resnet18, params: {image_size: .nan}}\n", "model", "model.params.image_size",
     "expected an integer, got nan"),
    ("name: t\nmodel: {builder: resnet18, params: {image_size: 224.5}}\n", "model", "model.params.image_size",
     "expected an integer, got 224.5"),
    ("name: t\nmodel: {builder: resnet18, params: {num_classes: -3}}\n", "model", "model.params.num_classes",
     "must be >= 1, got -3"),
    ("name: t\nmodel: {builder: mobilenet_v2, params: {width: .inf}}\n", "model", "model.params.width",
     "must be a finite number, got inf"),
    ("name: t\nmodel: {builder: bert}\nseq: 4096\n", "seq", "seq", "4096 is beyond the model's 512 positions"),
    ("name: t\nmodel:\n  builder: llama\n  params: {layers: 1, context: -1}\n", "params", "model.params.context",
     "must be >= 0, got -1"),
    ("name: t\nmodel: {builder: resnet18}\nbatch: 100000000000000000000\n", "batch", "batch",
     "must be <= 2147483647, got 100000000000000000000"),
    (LAYERS.replace("shape: [1, 3, 8, 8]", "shape: [1, 3, 8, 10000000000]"), "shape", "model.inputs[0].shape[3]",
     "must be <= 2147483647, got 10000000000"),
    ("name: t\nmodel: {builder: resnet18, params: {batch: 4}}\nbatch: 2\n", "model", "model.params.batch",
     "also given as batch (line 3); give it once, as the top-level batch"),
    ("name: t\nmodel: {builder: resnet18}\nprecision: {default: int8, overrides: 5}\n", "precision",
     "precision.overrides", "expected a list, got 5"),
    ("name: t\nmodel: {builder: resnet18}\nprecision: {default: int8, overrides: [{op: [Conv], precision: fp16}]}\n",
     "precision", "precision.overrides[0].op", "expected a non-empty string, got ['Conv']"),
])
def test_workload_value_refused_with_file_line_and_key(tmp_path, text, marker, key, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(WorkloadError) as exc:
        load_workload(path)
    line = [i for i, row in enumerate(text.splitlines(), 1) if marker in row][0]
    assert f"{path}:{line}: {key}: {problem}" in str(exc.value)


def test_valid_layers_and_zero_context_still_build(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(_conv(pad="[1, 1, 0, 0]", stride="[1, 2]"))
    assert load_workload(path).graph.tensor("c1").shape == (1, 4, 7, 4)
    path.write_text("name: t\nmodel: {builder: llama, params: {layers: 1, context: 0, kv_heads: 8}}\nseq: 2\n")
    assert load_workload(path).graph.name


def test_cli_refuses_a_nan_profile_in_one_line_exit_2_and_json_stays_json(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(IOT.replace("clock_mhz: 480", "clock_mhz: .nan"))
    run = [sys.executable, "-m", "qsim.cli", "run", "mlperf_tiny_kws", "--format", "json", "--hw"]
    proc = subprocess.run(run + [str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{bad}:{_line(IOT, 'clock_mhz')}: clock_mhz: must be a finite number, got nan" in proc.stderr
    good = subprocess.run(run + ["iot"], capture_output=True, text=True, timeout=120)
    assert good.returncode == 0
    json.loads(good.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))


def test_float_layer_with_an_integer_accumulator_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(LAYERS.replace("precision: int8", "precision: {weight: fp32, activation: fp32, accumulator: int2}"))
    with pytest.raises(WorkloadError, match=rf"{path}:8: accumulator 'int2': with weights fp32 and activations fp32 "
                                            r"the products are floats"):
        load_workload(path)
    path.write_text(LAYERS.replace("precision: int8", "precision: {weight: int8, activation: int8, accumulator: int16}"))
    assert load_workload(path).plan.default.accumulator.name == "int16"  # a narrow integer accumulator is a design choice
