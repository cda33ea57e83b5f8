"""The qsim command as a user runs it: output formats, files, and error paths without tracebacks."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from qsim.cli import main


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "qsim.cli", *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_run_table_reports_fit_verdicts(capsys):
    assert main(["run", "workloads/resnet50.yaml", "--hw", "hw_profiles/iot.yaml"]) == 0
    out = capsys.readouterr().out
    assert "flash: needs 24.43 MiB of 2.00 MiB: DOES NOT FIT" in out
    assert "layer4_2_conv3" in out


def test_run_json_has_the_documented_keys(capsys):
    assert main(["run", "mlperf_tiny_kws", "--hw", "iot", "--format", "json", "--precision", "w4a8"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"workload", "profile", "precision", "totals", "error_band", "layers"}
    assert report["error_band"]["validated"] and report["error_band"]["stack"] == "tflm-cmsis-nn"
    assert (report["error_band"]["held_out_median_pct"], report["error_band"]["held_out_worst_pct"]) == (7, 8)
    assert {"macs", "params", "weight_bytes", "peak_activation_bytes", "latency_s", "energy_j", "fits"} <= set(
        report["totals"])
    assert report["totals"]["fits"] == {"sram": True, "flash": True}
    assert {"name", "op", "macs", "latency_s", "energy_j"} <= set(report["layers"][0])
    assert report["layers"][0]["name"] == "conv1"


@pytest.mark.parametrize("ext", ["csv", "parquet", "json", "html"])
def test_run_writes_reports(tmp_path, capsys, ext):
    out = tmp_path / f"r.{ext}"
    assert main(["run", "mlperf_tiny_ad", "--hw", "mobile", "--out", str(out)]) == 0
    assert out.exists() and not out.with_name(out.name + ".tmp").exists()
    if ext == "csv":
        assert len(pd.read_csv(out)) == 19
    if ext == "parquet":
        assert len(pd.read_parquet(out)) == 19


def test_csv_format_and_batch(capsys):
    assert main(["run", "mlperf_tiny_ad", "--hw", "cloud", "--format", "csv", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("name,op,")
    assert f",{8 * 640 * 128}," in out


@pytest.mark.parametrize("args,message", [
    (["run", "nosuch.yaml", "--hw", "iot"], "nosuch.yaml: cannot read"),
    (["run", "resnet50", "--hw", "nosuch"], "no shipped profile of that name"),
    (["run", "resnet50", "--hw", "iot", "--precision", "int1"], "unknown precision 'int1'"),
    (["run", "resnet50", "--hw", "mobile", "--precision", "fp32"], "no unit for fp32"),
    (["run", "resnet50", "--hw", "iot", "--out", "reports/x.xlsx"], "unknown extension"),
    (["profiles", "show"], "needs a profile name"),
])
def test_user_errors_exit_2_without_traceback(args, message):
    code, out, err = run(*args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_bad_workload_file_names_file_and_line(tmp_path):
    bad = tmp_path / "w.yaml"
    bad.write_text("name: w\nmodel:\n  builder: resnet50\n  params: {depth: 3}\nbatchsize: 2\n")
    code, _, err = run("run", str(bad), "--hw", "iot")
    assert code == 2 and "w.yaml:5: batchsize: unknown key" in err and "Traceback" not in err
    bad.write_text("name: w\nmodel:\n  builder: resnet50\n  params: {depth: 3}\n")
    code, _, err = run("run", str(bad), "--hw", "iot")
    assert code == 2 and "does not take ['depth']" in err


def test_python_dash_m_qsim_is_the_qsim_command():
    proc = subprocess.run([sys.executable, "-m", "qsim", "run", "mlperf_tiny_ic", "--hw", "iot"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "latency 31.8 ms, held-out error on this profile: median 7 %" in proc.stdout


def test_profiles_subcommands(capsys, tmp_path):
    assert main(["profiles", "list"]) == 0
    assert "iot" in capsys.readouterr().out
    assert main(["profiles", "show", "cloud"]) == 0
    shown = capsys.readouterr().out
    assert "540672 MACs/cycle" in shown
    # every stack the profile lists: what it fuses, how it launches, its error band
    assert ("  stack tensorrt: TensorRT-like fused engine replayed from a CUDA graph (not measured on this profile)\n"
            "    folds BatchNorm yes, fuses activations yes, residual Add yes; attention fused; quantize epilogue; "
            "launch graph\n"
            "    no validation recorded for profile 'cloud' with stack 'tensorrt': error unknown") in shown
    assert "  stack pytorch-cudagraph (selected): " in shown and "median 4.9 %, worst 18.6 %" in shown
    assert main(["profiles", "check", "hw_profiles/systolic.yaml"]) == 0
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\n")
    code, _, err = run("profiles", "check", str(bad))
    assert code == 2 and "missing required key" in err


@pytest.mark.parametrize("sub", [[], ["run"], ["profiles"], ["import"], ["calibrate"], ["sweep"]])
def test_every_subcommand_has_help(sub):
    code, out, _ = run(*sub, "--help")
    assert code == 0 and "usage: qsim" in out


def test_readme_quickstart_output_is_what_the_command_prints(capsys):
    """The README shows the main job's totals; they must stay what `qsim run` prints."""
    from pathlib import Path

    readme = Path("README.md").read_text()
    block = readme.split("The first prints a per-layer table and totals")[1].split("```")[1]
    shown = [line for line in block.strip().splitlines()]
    assert main(["run", "workloads/resnet50.yaml", "--hw", "hw_profiles/iot.yaml"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-len(shown):] == shown


@pytest.mark.parametrize("args,message", [
    (["run", "resnet50", "--hw", "iot", "--batch", "0"], "must be >= 1"),
    (["run", "resnet50", "--hw", "iot", "--precision", "w5a8"], "unknown precision 'w5a8'"),
])
def test_bad_flags_are_blamed_on_the_flag(args, message):
    code, out, err = run(*args)
    assert code == 2 and message in err and "Traceback" not in err
    assert "resnet50.yaml" not in err


def test_out_extension_is_checked_before_the_work(capsys):
    assert main(["run", "resnet50", "--hw", "iot", "--out", "reports/x.xyz"]) == 2
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("inputs,message", [
    ("[{shape: [1, 4]}]", "model.inputs[0].name: missing required key"),
    ("[{name: x, shape: 5}]", "model.inputs[0].shape: expected a list"),
    ("[{name: x, shape: [1, -4]}]", "must be >= 1, got -4"),
    ("[{name: x, shape: [1, 4], dtype: foo}]", "'foo' is not one of"),
])
def test_explicit_inputs_are_validated(tmp_path, inputs, message):
    w = tmp_path / "w.yaml"
    w.write_text(f"name: w\nmodel:\n  inputs: {inputs}\n  layers: [{{name: r, op: Relu, inputs: [x]}}]\n"
                 "  outputs: [r]\n")
    code, _, err = run("run", str(w), "--hw", "iot")
    assert code == 2 and message in err and "Traceback" not in err


def test_missing_attribute_and_unmatched_override_are_named(tmp_path):
    w = tmp_path / "w.yaml"
    w.write_text("name: w\nmodel:\n  inputs: [{name: x, shape: [1, 3, 8, 8]}]\n"
                 "  layers: [{name: c, op: Conv, inputs: [x], kernel: 3}]\n  outputs: [c]\n")
    code, _, err = run("run", str(w), "--hw", "iot")
    assert code == 2 and "node 'c' (Conv): missing attribute 'out_channels'" in err
    code, _, err = run("run", "resnet50", "--hw", "iot", "--precision", "int8")
    assert code == 0
    w.write_text("name: w\nmodel: {builder: resnet50}\nprecision:\n  default: int8\n"
                 "  overrides: [{name: conv1, precision: fp16}]\n")
    code, _, err = run("run", str(w), "--hw", "iot")
    assert code == 2 and "matches no node of 'resnet50'" in err


def _crash(*args, **kwargs):
    raise ZeroDivisionError("float division by zero")


def test_a_bug_is_one_internal_error_line_without_traceback(monkeypatch, capsys):
    monkeypatch.setattr("qsim.api.run_estimate", _crash)
    assert main(["run", "resnet50", "--hw", "iot"]) == 1
    err = capsys.readouterr().err
    assert err == ("qsim: internal error, please report: ZeroDivisionError: float division by zero "
                   "(run with --debug for the traceback)\n")


@pytest.mark.parametrize("argv", [["--debug", "run", "resnet50", "--hw", "iot"],
                                  ["run", "resnet50", "--hw", "iot", "--debug"]])
def test_debug_shows_the_traceback_of_a_bug(monkeypatch, capsys, argv):
    monkeypatch.setattr("qsim.api.run_estimate", _crash)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in _crash" in err
    assert err.endswith("qsim: internal error, please report: ZeroDivisionError: float division by zero\n")


def test_debug_shows_the_traceback_of_a_user_error_and_keeps_status_2():
    code, _, err = run("--debug", "run", "resnet50", "--hw", "iot", "--precision", "int99")
    assert code == 2
    assert err.startswith("Traceback (most recent call last):") and "qsim.errors.WorkloadError" in err
    assert err.splitlines()[-1].startswith("qsim: error: unknown precision 'int99'")
    code, _, err = run("run", "resnet50", "--hw", "iot", "--precision", "int99")
    assert code == 2 and len(err.splitlines()) == 1


@pytest.mark.parametrize("sub", ["run", "profiles", "sweep", "import", "calibrate", "validate"])
def test_every_subcommand_accepts_debug(sub):
    code, out, _ = run(sub, "--help")
    assert code == 0 and "--debug" in out


def test_debug_after_a_subcommand_runs_it():
    code, out, err = run("profiles", "check", "iot", "--debug")
    assert code == 0 and out.endswith("iot.yaml: ok (iot)\n") and err == ""
