"""Sensitivity and mixed-precision search on the digits CNN (trained here; 100 held-out images,
calibrated on 64 training images). One Measurer and one cache folder serve every test, as they
serve a resumed search: a plan measured once is not simulated again."""
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qsim.cli import main
from qsim.evaluation.data import load_evaluation
from qsim.search import Measurer, search, sensitivity
from qsim.search.models import load_search_model

SAMPLES = 100


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from qsim.evaluation.digits import load_digits_split

    folder = tmp_path_factory.mktemp("digits")
    calib = folder / "calib.npz"
    np.savez(calib, x=load_digits_split()[0][:64])
    model = load_search_model("digits")
    block = {"data": "digits", "samples": SAMPLES, "calibration": str(calib)}
    graph = model.build(SAMPLES)
    measurer = Measurer(graph, load_evaluation(block, "test"), cache_dir=folder / "cache")
    return model, graph, model.build(1), measurer, block, folder


def test_sensitivity_has_one_finite_row_per_layer_and_candidate(digits):
    model, graph, deployed, ev, block, folder = digits
    df = sensitivity(graph, "int8", ev, "w4a8,int4", profile="iot", cost_graph=deployed)
    assert sorted(zip(df["layer"], df["candidate"])) == sorted(
        (layer, c) for layer in ("conv1", "conv2", "fc") for c in ("w:int4/a:int8", "int4"))
    for column in ("accuracy", "accuracy_drop", "drop_vs_base", "sqnr_db", "latency_saved_s", "energy_saved_j",
                   "memory_saved_bytes", "overflow_events", "saturated"):
        assert all(math.isfinite(v) for v in df[column]), column
    # int4 weights of conv2 save exactly half its int8 weight bytes: 16*8*3*3 / 2 (biases stay int32)
    row = df[(df["layer"] == "conv2") & (df["candidate"] == "w:int4/a:int8")].iloc[0]
    assert row["memory_saved_bytes"] == 16 * 8 * 3 * 3 // 2
    assert row["native"] and not df[df["candidate"] == "int4"]["native"].any()  # iot emulates int4 on int8
    assert df.attrs["samples"] == SAMPLES and df.attrs["metric"] == "top1"


def test_search_plan_is_measured_within_budget_and_remeasures_equal(digits, tmp_path):
    model, graph, deployed, ev, block, folder = digits
    result = search(graph, "iot", ev, 0.01, "latency", "int8,w4a8,w2a8", cost_graph=deployed)
    best = result.best
    assert best is not None and best.meets and best.measured.accuracy_drop <= 0.01
    assert best.measured.overflow_events == 0 and best.cost.fits
    assert best.cost.latency_s < result.reference.cost.latency_s  # cheaper than uniform int8 on iot
    fresh = Measurer(graph, load_evaluation(block, "test")).measure(best.plan)  # no cache: simulated again
    assert fresh == best.measured  # the reported accuracy is a measurement, not an estimate
    # resuming: a new search (new Measurer) on the same cache folder runs no simulation again
    again = search(graph, "iot", load_evaluation(block, "test"), 0.01, "latency", "int8,w4a8,w2a8",
                   cost_graph=deployed, cache_dir=folder / "cache")
    assert again.simulations == 0 and again.best.plan == best.plan


def test_no_plan_meets_a_zero_budget_and_says_so(digits):
    model, graph, deployed, _, block, folder = digits
    ev = load_evaluation({**block, "metric": "sqnr"}, "test")  # any rounding is a drop
    result = search(graph, "iot", ev, 0.0, "latency", "int8", cost_graph=deployed)
    assert result.best is None
    assert result.message.startswith("no plan meets an accuracy drop of at most 0 on iot")


def test_native_only_excludes_what_the_chip_lacks(digits):
    model, graph, deployed, ev, block, folder = digits
    result = search(graph, "imx93", ev, 0.01, "memory", "int8,fp8", cost_graph=deployed)
    assert "fp8_e4m3" in result.excluded and "no unit for fp8" in result.excluded["fp8_e4m3"]
    assert not any("fp8" in p.plan.name or "fp8" in p.label for p in result.points)
    emulated = search(graph, "iot", ev, 0.01, "memory", "int8,int4", cost_graph=deployed)
    assert "not native on iot" in emulated.excluded["int4"]
    assert set(emulated.sensitivity["candidate"]) <= {"int8"}
    allowed = search(graph, "iot", ev, 0.01, "memory", "int8,int4", native_only=False, cost_graph=deployed)
    assert "int4" in set(allowed.sensitivity["candidate"]) and not allowed.excluded


@pytest.mark.parametrize("args, expected", [
    (["--hw", "nosuch_chip"], "nosuch_chip"),
    (["--hw", "iot", "--candidates", "int8,int99"], "int99"),
    (["--hw", "iot", "--candidates", "mxfp8"], "MX"),
    (["--hw", "iot", "--data", "missing.npz"], "missing.npz"),
    (["--hw", "iot", "--out", "plan.txt"], "--out plan.txt: expected a workload .yaml file"),
    (["--hw", "iot", "--max-overflow", "-1"], "--max-overflow -1: expected a count >= 0"),
])
def test_bad_inputs_are_one_line(capsys, args, expected):
    assert main(["search", "digits", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and expected in err, err


def test_bad_budget_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["search", "digits", "--hw", "iot", "--max-drop", "2"])
    assert exc.value.code == 2 and "expected a drop in [0, 1)" in capsys.readouterr().err


def test_cli_writes_a_plan_that_qsim_run_takes(digits, tmp_path, capsys):
    model, graph, deployed, ev, block, folder = digits
    out = tmp_path / "plan.yaml"
    assert main(["search", "digits", "--hw", "iot", "--samples", str(SAMPLES), "--calibration", block["calibration"],
                 "--candidates", "int8,w4a8,w2a8", "--objective", "memory", "--out", str(out),
                 "--cache", str(folder / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "best plan on iot" in printed and out.is_file() and (tmp_path / "plan.onnx").is_file()
    proc = subprocess.run([sys.executable, "-m", "qsim.cli", "run", str(out), "--hw", "iot"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "digits_cnn_searched on iot" in proc.stdout
    import qsim
    from qsim.evaluation.digits import load_digits_split
    from qsim.workload import load_workload

    codes = qsim.simulate(str(out), {"x": load_digits_split()[2][:1]})["fc"]  # the file, as qsim.simulate takes it
    assert codes.shape == (1, 10) and codes.dtype.kind == "i"
    written = load_workload(out, batch=SAMPLES)  # the ONNX it names, at the evaluation batch
    again = Measurer(written.graph, ev.evaluation).measure(written.plan)  # re-measured, not read back
    assert f"{again.accuracy:.4f} (drop {again.accuracy_drop:.4g})" in out.read_text()


def test_sensitivity_cli_writes_table_and_plot(digits, tmp_path, capsys):
    model, graph, deployed, ev, block, folder = digits
    table, plot = tmp_path / "sens.csv", tmp_path / "sens.png"
    assert main(["sensitivity", "digits", "--samples", str(SAMPLES), "--calibration", block["calibration"],
                 "--candidates", "w4a8", "--hw", "iot", "--out", str(table), "--plot", str(plot),
                 "--cache", str(folder / "cache")]) == 0
    import pandas as pd

    df = pd.read_csv(table)
    assert list(df["layer"]) == ["conv1", "conv2", "fc"] and set(df["candidate"]) == {"w:int4/a:int8"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "savings on iot" in capsys.readouterr().out


def test_a_workload_brings_its_own_evaluation_block(digits):
    from qsim.search.inputs import load_inputs

    inp = load_inputs("digits_cnn", None, samples=20)  # workloads/digits_cnn.yaml: data digits, batch 60
    assert len(inp.evaluation) == 20 and inp.graph.tensor("x").shape[0] == 60
    assert inp.cost_graph.tensor("x").shape[0] == 1 and inp.base.name == "int8"  # the workload's own plan


def _band_figures(line: str) -> tuple[float, float]:
    import re

    found = re.search(r"median ([0-9.]+) %, worst ([0-9.]+) %", line)
    assert found, line
    return float(found.group(1)), float(found.group(2))


def test_search_prints_and_writes_the_profiles_error_band(digits, tmp_path, capsys):
    import pandas as pd

    import qsim

    model, graph, deployed, ev, block, folder = digits
    band = qsim.estimate(deployed, "iot", "int8").attrs["error_band"]  # what `qsim run` prints for this chip
    assert band["validated"]
    common = ["--samples", str(SAMPLES), "--calibration", block["calibration"], "--cache", str(folder / "cache")]
    table = tmp_path / "front.csv"
    assert main(["search", "digits", "--hw", "iot", "--candidates", "int8,w4a8", *common, "--table", str(table)]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = [line for line in lines if "latency and energy estimates" in line]
    assert len(shown) == 1 and band["text"] in shown[0]
    assert _band_figures(shown[0]) == (band["held_out_median_pct"], band["held_out_worst_pct"])
    df = pd.read_csv(table)  # every plan's row carries the band, as sweep rows do
    assert set(df["error_median_pct"]) == {band["held_out_median_pct"]}
    assert set(df["error_worst_pct"]) == {band["held_out_worst_pct"]} and set(df["stack"]) == {band["stack"]}
    html = tmp_path / "front.html"
    assert main(["search", "digits", "--hw", "iot", "--candidates", "int8", *common, "--table", str(html)]) == 0
    capsys.readouterr()
    assert f"<li>error band: {band['text']}</li>" in html.read_text()
    # a profile validated at float precisions only: its band comes with the run report's note
    cloud = qsim.estimate(deployed, "cloud", "int8").attrs["error_band"]
    assert cloud["covers_precision"] is False
    assert main(["search", "digits", "--hw", "cloud", "--candidates", "int8", *common]) == 0
    out = capsys.readouterr().out
    assert f"  latency and energy estimates: {cloud['text']}\n  note: {cloud['note']}\n" in out


def test_sensitivity_prints_the_band_of_its_savings(digits, tmp_path, capsys):
    import qsim

    model, graph, deployed, ev, block, folder = digits
    band = qsim.estimate(deployed, "iot", "int8").attrs["error_band"]
    assert main(["sensitivity", "digits", "--samples", str(SAMPLES), "--calibration", block["calibration"],
                 "--candidates", "w4a8", "--hw", "iot", "--cache", str(folder / "cache")]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if "latency and energy estimates" in line]
    assert len(shown) == 1 and _band_figures(shown[0]) == (band["held_out_median_pct"], band["held_out_worst_pct"])


@pytest.mark.parametrize("command, cpu, candidates", [("sensitivity", "avx2", "w4a8"), ("search", "vnni", "int8")])
def test_ort_cpu_reaches_every_simulation(digits, tmp_path, capsys, monkeypatch, command, cpu, candidates):
    from qsim.evaluation.data import Evaluation
    from qsim.sim import int_runtime

    model, graph, deployed, ev, block, folder = digits
    seen, measure = [], Evaluation.measure

    def spy(self, *args, **kwargs):
        seen.append(int_runtime.ort_cpu())  # the kind every kernel of this simulation follows
        return measure(self, *args, **kwargs)

    monkeypatch.setattr(Evaluation, "measure", spy)
    monkeypatch.setenv("QSIM_ORT_CPU", "arm64")  # the flag wins over the environment
    assert main([command, "digits", "--hw", "iot", "--samples", "20", "--calibration", block["calibration"],
                 "--candidates", candidates, "--ort-cpu", cpu.upper(), "--cache", str(tmp_path / "cache")]) == 0
    assert seen and set(seen) == {cpu}
    assert f"onnxruntime as on CPU kind {cpu!r}" in capsys.readouterr().out
    assert int_runtime.ort_cpu() == "arm64"  # nothing global changed


def test_the_cpu_kind_enters_the_measurement_key(digits):
    model, graph, deployed, ev, block, folder = digits
    keys = {cpu: Measurer(graph, ev.evaluation, ort_cpu=cpu).key("int8") for cpu in ("avx2", "vnni", "arm64")}
    assert len(set(keys.values())) == 3  # a cache filled for one kind never answers for another
    tflite = {Measurer(graph, ev.evaluation, "tflite-reference", ort_cpu=cpu).key("int8") for cpu in ("avx2", "vnni")}
    assert len(tflite) == 1  # only the onnxruntime policy depends on the kind


@pytest.mark.parametrize("command", ["search", "sensitivity"])
def test_bad_ort_cpu_is_a_usage_error(capsys, monkeypatch, command):
    with pytest.raises(SystemExit) as exc:
        main([command, "digits", "--hw", "iot", "--ort-cpu", "sparc"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "argument --ort-cpu: invalid choice: 'sparc'" in err and "Traceback" not in err
    monkeypatch.setenv("QSIM_ORT_CPU", "sparc")  # a bad environment is refused before the model is trained
    assert main([command, "digits", "--hw", "iot"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "QSIM_ORT_CPU='sparc'" in err and "Traceback" not in err


def test_help_documents_ort_cpu(capsys):
    for command in ("search", "sensitivity"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--ort-cpu {host,avx2,vnni,arm64}" in capsys.readouterr().out
