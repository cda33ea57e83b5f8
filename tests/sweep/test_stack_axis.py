"""The software stack as a sweep axis (a profile override), with each row's error band."""
import math

from qsim.sweep import run_sweep


def test_stack_is_a_sweep_axis_and_rows_carry_the_error_band():
    spec = {"name": "stacks", "workloads": ["mlperf_tiny_ic"], "precisions": ["fp16"], "profiles": ["cloud"],
            "overrides": {"stack": ["pytorch-eager", "pytorch-cudagraph", "tensorrt"]}}
    df = run_sweep(spec, workers=1).set_index("stack")
    assert list(df.index) == ["pytorch-eager", "pytorch-cudagraph", "tensorrt"]
    assert (df.loc["pytorch-eager", "error_median_pct"], df.loc["pytorch-eager", "error_worst_pct"]) == (11.8, 36.9)
    assert math.isnan(df.loc["tensorrt", "error_median_pct"])  # not validated: no band, never invented
    # BatchNorm, ReLU and Add as kernels of their own, each launched: the fused engine is faster
    assert df.loc["tensorrt", "latency_s"] < df.loc["pytorch-cudagraph", "latency_s"] < df.loc["pytorch-eager",
                                                                                                "latency_s"]
