"""Every shipped profile, under every stack it lists, carries an error band or says it has none: in the
text `qsim run` prints, in its JSON and in the sweep columns. The edge profiles' recorded bands are the
ones their benchmark measures."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import bench_published
from qsim.cost import estimate_graph
from qsim.hw.profile import load_profile
from qsim.ir.builders import build
from qsim.precision import PrecisionPlan
from qsim.report import band_columns, report_dict, totals_lines
from qsim.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (ROOT / "hw_profiles").glob("*.yaml"))
CASES = [(name, stack) for name in SHIPPED
         for stack in (list(load_yaml(ROOT / "hw_profiles" / f"{name}.yaml").get("stacks") or {}) or [None])]


@pytest.mark.parametrize("name, stack", CASES)
def test_run_output_json_and_sweep_columns_carry_the_band(name, stack):
    profile = load_profile(name, {"stack": stack} if stack else None)
    precision = "int8" if "int8" in profile.compute.macs_per_cycle else next(iter(profile.compute.macs_per_cycle))
    totals = estimate_graph(build("mlperf_tiny_ic"), PrecisionPlan.uniform(precision), profile).totals
    latency_line = totals_lines("mlperf_tiny_ic", profile, precision, totals)[2]
    band = report_dict("mlperf_tiny_ic", name, precision, pd.DataFrame(), totals, profile)["error_band"]
    columns = band_columns(profile)
    v = profile.stack.validation if profile.stack else None
    if v is None:
        assert "no validation recorded for profile" in latency_line and "error unknown" in latency_line
        assert band["validated"] is False
        assert math.isnan(columns["error_median_pct"]) and math.isnan(columns["error_worst_pct"])
    else:
        assert (f"held-out error on this profile: median {v.held_out_median_pct:g} %, "
                f"worst {v.held_out_worst_pct:g} %") in latency_line
        assert band["validated"] is True and band["held_out_worst_pct"] == v.held_out_worst_pct
        assert (columns["error_median_pct"], columns["error_worst_pct"]) == (v.held_out_median_pct,
                                                                            v.held_out_worst_pct)
        assert v.held_out_median_pct <= v.held_out_worst_pct
    assert columns["stack"] == (stack or "")


def test_html_report_and_python_api_carry_the_band(tmp_path):
    import json

    from qsim.api import estimate
    from qsim.report import write_report

    df = estimate("mlperf_tiny_ic", "iot")
    assert df.attrs["error_band"]["text"] == "held-out error on this profile: median 7 %, worst 8 %"
    report = report_dict("mlperf_tiny_ic", "iot", "int8", df, df.attrs["totals"], load_profile("iot"))
    assert (report["error_band"]["rows_fitted"], report["error_band"]["rows_held_out"]) == (2, 2)
    write_report(tmp_path / "r.html", df, report)
    assert "<li>error band: held-out error on this profile: median 7 %, worst 8 %</li>" in (
        tmp_path / "r.html").read_text()
    write_report(tmp_path / "r.json", df, report)
    assert json.loads((tmp_path / "r.json").read_text())["error_band"]["text"] == df.attrs["error_band"]["text"]
    assert "error unknown" in estimate("mlperf_tiny_ic", "mobile").attrs["error_band"]["text"]


def test_the_band_says_when_it_does_not_cover_the_precision_an_estimate_runs_at(tmp_path):
    from qsim.api import estimate
    from qsim.report import error_band, write_report

    cloud = load_profile("cloud")  # validated on fp32 / tf32 / fp16 / bf16 networks and convs only
    graph = build("mlperf_tiny_ic")
    int8 = estimate_graph(graph, PrecisionPlan.uniform("int8"), cloud).totals
    fp16 = estimate_graph(graph, PrecisionPlan.uniform("fp16"), cloud).totals
    assert (int8["compute_units"], fp16["compute_units"]) == (["int8"], ["fp16"])
    assert "  note: the error band was measured at fp32, tf32, fp16, bf16 only; this estimate runs int8, which it " \
           "does not cover" in totals_lines("ic", cloud, "int8", int8)
    assert not any("does not cover" in line for line in totals_lines("ic", cloud, "fp16", fp16))
    report = report_dict("ic", "cloud", "int8", pd.DataFrame(), int8, cloud)
    assert report["error_band"]["covers_precision"] is False
    write_report(tmp_path / "r.html", pd.DataFrame(), report)
    assert "<li>note: the error band was measured at fp32, tf32, fp16, bf16 only;" in (tmp_path / "r.html").read_text()
    assert band_columns(cloud, fp16["compute_units"])["error_band_covers"] is True
    assert band_columns(load_profile("mobile"), ["int8"])["error_band_covers"] is None  # no validation at all
    assert estimate("mlperf_tiny_ic", "iot").attrs["error_band"]["covers_precision"] is True
    assert "note" not in error_band(cloud)  # no estimate given: nothing to compare


def test_a_validated_precision_must_be_a_compute_class(tmp_path):
    from qsim.errors import ProfileError

    text = (ROOT / "hw_profiles" / "iot.yaml").read_text().replace("precisions: [int8]", "precisions: [int9]")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ProfileError, match=r"p.yaml:\d+: stacks.tflm-cmsis-nn.validation.precisions\[0\]: 'int9' "
                                           r"is not one of"):
        load_profile(tmp_path / "p.yaml")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_names_its_stack_and_what_it_fuses(name):
    profile = load_profile(name)
    assert profile.stack is not None and profile.stack.runtime
    assert isinstance(profile.stack.fold_batchnorm, bool) and isinstance(profile.stack.fuse_residual_add, bool)
    assert f"  stack {profile.stack.name}: {profile.stack.runtime}" in totals_lines(
        "w", profile, "int8", estimate_graph(build("mlperf_tiny_ad"), PrecisionPlan.uniform("int8"), profile).totals)


def test_the_h100_ships_an_eager_and_a_fully_fused_stack():
    stacks = [load_profile("cloud", {"stack": s}).stack for s in load_yaml(ROOT / "hw_profiles" / "cloud.yaml")["stacks"]]
    fuses = {s.name: (s.fold_batchnorm, s.fuse_activation, s.fuse_residual_add, s.launch) for s in stacks}
    assert fuses["pytorch-eager"] == (False, False, False, "per_kernel")
    assert fuses["tensorrt"] == (True, True, True, "graph")


def test_recorded_cloud_bands_are_what_the_benchmark_measures():
    from benchmarks import bench_h100_networks

    if not (bench_h100_networks.DEFAULT_DIR / "h100_resnet18.csv").exists():
        pytest.skip("the H100 calibration files (../shared/calibration) are not in this checkout")
    figures = bench_h100_networks.validation_figures(bench_h100_networks.evaluate(bench_h100_networks.DEFAULT_DIR))
    for stack, f in figures.items():
        v = load_profile("cloud", {"stack": stack}).stack.validation
        assert (v.rows_fitted, v.rows_held_out) == (f["rows_fitted"], f["rows_held_out"])
        assert (v.fitted_median_pct, v.fitted_worst_pct) == (round(f["fitted_median_pct"], 1),
                                                            round(f["fitted_worst_pct"], 1))
        assert (v.held_out_median_pct, v.held_out_worst_pct) == (round(f["held_out_median_pct"], 1),
                                                                round(f["held_out_worst_pct"], 1))


@pytest.mark.parametrize("profile, table", [("iot", bench_published.mlperf_tiny), ("imx93", bench_published.imx93_npu)])
def test_recorded_edge_bands_are_what_the_benchmark_measures(profile, table):
    rows = table()
    err = rows.error_pct.abs()
    held, fitted = err[rows.role == "held out"], err[rows.role.str.startswith("fit")]
    v = load_profile(profile).stack.validation
    assert (v.rows_held_out, v.rows_fitted) == (len(held), len(fitted))
    assert v.held_out_median_pct == round(held.median()) and v.held_out_worst_pct == round(held.max())
    assert v.fitted_worst_pct == round(fitted.max())
