"""The HTML report and the ``qsim sweep`` command."""
import re
import subprocess
import sys

import pandas as pd

from qsim.cli import main
from qsim.sweep import run_sweep, write_report

from tests.sweep._specs import tiny


def test_html_report_references_existing_pngs(tmp_path):
    df = run_sweep(tiny(), workers=1)
    html = write_report(df, tmp_path / "r", tiny())
    text = html.read_text()
    images = re.findall(r"<img src='([^']+)'", text)
    assert {"latency_energy.png", "memory_need.png", "layers_0.png"} <= set(images)
    for name in images:
        assert (html.parent / name).stat().st_size > 1000
    assert "Refused points" in text and "no unit for fp32" in text
    assert "Accuracy: not measured (add an evaluation: block" in text
    assert len(pd.read_csv(html.parent / "results.csv")) == 24
    pd.testing.assert_frame_equal(pd.read_parquet(html.parent / "results.parquet"), df)


SPEC = """\
name: cli_tiny
workloads: [mlperf_tiny_kws]
precisions: [int8, fp32]
profiles: [iot, mobile]
"""


def test_cli_sweep_runs_and_resumes(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "sweep cli_tiny: 4 points (3 evaluated, 1 refused)" in capsys.readouterr().out
    assert (out / "report.html").exists() and (out / "results.parquet").exists()
    assert main(["sweep", str(spec), "--out", str(out), "--no-progress"]) == 0  # all stored: nothing to redo


def test_cli_bad_spec_exits_2_without_traceback(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC.replace("int8, fp32", "int8, int99") + "colour: red\n")
    proc = subprocess.run([sys.executable, "-m", "qsim.cli", "sweep", str(spec), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{spec}:5: colour: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_workload_parameter_axes_are_columns_of_the_report_and_the_figures(tmp_path):
    from qsim.sweep.plots import style_axes

    spec = {"name": "seqs", "workloads": ["bert_base"], "precisions": ["fp16"], "profiles": ["cloud"],
            "params": {"seq": [128, 384]}}
    df = run_sweep(spec, workers=1)
    text = write_report(df, tmp_path / "r").read_text()  # from the frame alone, as from Python
    assert "Axes: workload, precision, profile, batch, seq." in text
    assert "<th>batch</th><th>seq</th>" in text
    assert style_axes(df) == ("seq", "profile")
