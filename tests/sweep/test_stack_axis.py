"""The software stack as a sweep axis (a profile override), with each row's error band."""
import math

import pandas as pd

from qsim.sweep import run_sweep


def test_stack_is_a_sweep_axis_and_rows_carry_the_error_band():
    spec = {"name": "stacks", "workloads": ["mlperf_tiny_ic"], "precisions": ["fp16"], "profiles": ["cloud"],
            "overrides": {"stack": ["pytorch-eager", "pytorch-cudagraph", "tensorrt"]}}
    df = run_sweep(spec, workers=1).set_index("stack")
    assert list(df.index) == ["pytorch-eager", "pytorch-cudagraph", "tensorrt"]
    assert (df.loc["pytorch-eager", "error_median_pct"], df.loc["pytorch-eager", "error_worst_pct"]) == (12.9, 36.9)
    assert math.isnan(df.loc["tensorrt", "error_median_pct"])  # not validated: no band, never invented
    assert df.loc["pytorch-eager", "error_band_covers"] == True  # noqa: E712 (pandas' boolean): fp16 was validated
    assert df["error_band_covers"].dtype == "boolean" and df.loc["tensorrt", "error_band_covers"] is pd.NA
    # BatchNorm, ReLU and Add as kernels of their own, each launched: the fused engine is faster
    assert df.loc["tensorrt", "latency_s"] < df.loc["pytorch-cudagraph", "latency_s"] < df.loc["pytorch-eager",
                                                                                                "latency_s"]


def test_the_sweep_report_shows_each_points_stack_and_error_band(tmp_path):
    from qsim.sweep import write_report
    from qsim.sweep.plots import style_axes

    spec = {"name": "stacks", "workloads": ["mlperf_tiny_ic"], "precisions": ["fp16"], "profiles": ["cloud"],
            "overrides": {"stack": ["pytorch-eager", "tensorrt"]}}
    df = run_sweep(spec, workers=1)
    page = write_report(df, tmp_path).read_text()
    assert "Axes: workload, precision, profile, batch, stack." in page
    assert "<th class='t'>stack</th><th>error_median_pct</th><th>error_worst_pct</th>" in page
    # the eager row: its stack and its band, the fused row: its stack and no band
    assert "<td class='t'>pytorch-eager</td><td>12.9</td><td>36.9</td>" in page
    assert "<td class='t'>tensorrt</td><td>–</td><td>–</td>" in page
    assert style_axes(df) == ("stack", "profile")  # the figures tell the stacks apart
    # profiles with a stack each: the stack is no axis of its own; the SRAM size keeps the marker
    two = run_sweep({"name": "p", "workloads": ["mlperf_tiny_ic"], "precisions": ["int8"], "profiles": ["iot", "imx93"],
                     "overrides": {"memories.sram.capacity_kib": [256, 384]}}, workers=1)
    assert style_axes(two) == ("profile", "memories.sram.capacity_kib")
