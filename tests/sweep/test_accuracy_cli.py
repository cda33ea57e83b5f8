"""``qsim sweep`` with an evaluation block, as a user meets it: each bad evaluation input is one
line naming file:line: key (exit status 2, no traceback, nothing run); the digits CNN end to end."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qsim.cli import main

from tests.sweep._eval_specs import write_tiny

SPEC = """name: acc
workloads: [{workload}]
precisions: [fp32, int8]
profiles: [iot]
evaluation:
{evaluation}"""


def _spec(tmp_path: Path, evaluation: str, workload: str = "tiny.yaml", extra: str = "") -> Path:
    write_tiny(tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(workload=workload, evaluation=evaluation) + extra)
    return path


def error_of(capsys, tmp_path, *args) -> str:
    assert main(["sweep", *map(str, args), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()  # refused before any work
    return err.strip()


BAD = {
    "missing file": ("  data: nothing.npz\n", "spec.yaml:6: evaluation.data: no such file 'nothing.npz'"),
    "unknown set": ("  data: imagenet\n", "spec.yaml:6: evaluation.data: no file 'imagenet' and no shipped set of "
                                          "that name (shipped: digits, minilm)"),
    "entry point": ("  data: no_such_module:batches\n",
                    "spec.yaml:6: evaluation.data: cannot import module 'no_such_module'"),
    "no attribute": ("  data: tinycnn:nothing\n", "spec.yaml:6: evaluation.data: module 'tinycnn' has no attribute "
                                                   "'nothing'"),
    "metric": ("  data: data.npz\n  metric: f1\n", "spec.yaml:7: evaluation.metric: unknown metric 'f1'"),
    "samples": ("  data: data.npz\n  samples: 1000\n",
                "spec.yaml:7: evaluation.samples: 1000 samples requested; the evaluation data has 36"),
    "input names": ("  data: renamed.npz\n", "spec.yaml:6: evaluation.data: workload 'tiny.yaml': the model's "
                                             "inputs are ['x']; the data has ['image'] (missing ['x'])"),
    "input shape": ("  data: flat.npz\n", "spec.yaml:6: evaluation.data: workload 'tiny.yaml': input 'x': samples "
                                          "of shape (64,); the model takes (1, 8, 8) per sample"),
    "labels": ("  data: short.npz\n", "spec.yaml:6: evaluation.data: short.npz: 39 labels for 40 samples"),
    "batch": ("  data: data.npz\n  batch: 0\n", "spec.yaml:7: evaluation.batch: must be >= 1, got 0"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_evaluation_input_is_one_line(capsys, tmp_path, case):
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "renamed.npz", image=x, labels=np.zeros(40, np.int64))
    np.savez(tmp_path / "flat.npz", x=x.reshape(40, 64), labels=np.zeros(40, np.int64))
    np.savez(tmp_path / "short.npz", x=x, labels=np.zeros(39, np.int64))
    evaluation, expected = BAD[case]
    err = error_of(capsys, tmp_path, _spec(tmp_path, evaluation))
    assert err.startswith("qsim: ") or err.startswith(str(tmp_path)), err
    assert expected in err.replace(str(tmp_path) + "/", ""), err


def test_weightless_workload_and_budget_without_evaluation(capsys, tmp_path):
    err = error_of(capsys, tmp_path, _spec(tmp_path, "  data: data.npz\n", workload="mlperf_tiny_ad"))
    assert "evaluation.data: workload 'mlperf_tiny_ad'" in err and "has no values" in err
    path = tmp_path / "budget.yaml"
    path.write_text("name: b\nworkloads: [mlperf_tiny_ad]\nprecisions: [int8]\nprofiles: [iot]\n"
                    "constraints: {max_accuracy_drop: 0.01}\n")
    assert "budget.yaml:5: constraints.max_accuracy_drop: needs an evaluation: block" in error_of(
        capsys, tmp_path, path)


def test_a_workload_file_carries_its_own_bad_block(capsys, tmp_path):
    write_tiny(tmp_path)
    (tmp_path / "own.yaml").write_text("name: own\nmodel: {entry: 'tinycnn:graph'}\nevaluation:\n  data: x.npz\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: s\nworkloads: [own.yaml]\nprecisions: [int8]\nprofiles: [iot]\n")
    err = error_of(capsys, tmp_path, spec)
    assert "spec.yaml:2: workloads[0]: workload 'own.yaml':" in err
    assert "own.yaml:4: evaluation.data: no such file" in err


def test_the_cli_exits_2_without_a_traceback(tmp_path):
    spec = _spec(tmp_path, "  data: data.npz\n  metric: f1\n")
    proc = subprocess.run([sys.executable, "-m", "qsim.cli", "sweep", str(spec), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "evaluation.metric: unknown metric 'f1'" in proc.stderr


def test_digits_sweep_end_to_end(tmp_path):
    """The trained digits CNN through the CLI: accuracy measured, the budget obeyed."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    spec = tmp_path / "digits.yaml"
    spec.write_text("name: digits\nworkloads: [digits_cnn]\nprecisions: [fp32, int8, int4]\nprofiles: [imx93]\n"
                    "overrides: {memories.sram.capacity_kib: [256, 512]}\n"
                    "evaluation: {data: digits, samples: 60, batch: 60}\n"
                    "constraints: {max_accuracy_drop: 0.0, native_only: true}\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "qsim.cli", "sweep", str(spec), "--out", str(out), "--workers", "1"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(out / "results.csv")
    ok = df[df["status"] == "ok"]
    assert ok["accuracy"].notna().all() and (ok["accuracy_metric"] == "top1").all()
    assert ok.groupby("precision")["accuracy_key"].nunique().eq(1).all()  # two SRAM sizes, one measurement
    assert "accuracy: 2 distinct measurement(s) for 4 points, 2 made by this run" in proc.stdout  # int8; fp32 refused
    allowed = ok[ok["meets_constraints"]]
    assert set(allowed["precision"]) <= {"int8"} and (allowed["accuracy_drop"] <= 0).all()
    assert "best digits_cnn: " in proc.stdout
    assert (out / "accuracy_cost.png").exists() and "Constraints: accuracy drop &lt;= 0" in (
        out / "report.html").read_text()
