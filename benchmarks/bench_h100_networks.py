"""The cloud profile's software stacks against measured H100 whole-network and convolution latency.

Data: ../shared/calibration/h100_resnet18.csv (torchvision ResNet-18, PyTorch eager and CUDA graph)
and h100_conv.csv (three conv shapes x two batches x four dtypes). ``fit`` derives every stack
parameter of hw_profiles/cloud.yaml from the rows named in the profile (conv efficiencies and the
depthwise bandwidth fraction from the batch-32 conv rows, the CUDA-graph launch cost and the
eager host cost per kernel from the batch-1 ResNet-18 rows) and prints them; the evaluation then
prints the fitted and the held-out rows apart, with the median and worst absolute error of each,
and the shipped transformer workloads' predicted latency and kernel count on each stack (no
transformer measurement is in the given files).

    python benchmarks/bench_h100_networks.py [calibration folder]
"""
from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

import pandas as pd

from qsim.cost import estimate_graph
from qsim.hw.profile import load_profile
from qsim.ir import Graph
from qsim.ir.builders import build
from qsim.precision import PrecisionPlan
from qsim.workload import load_workload

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = Path("/work/shared/calibration") if Path("/work/shared/calibration").exists() else \
    ROOT.parent / "shared" / "calibration"
CONV_CLASS = {"n{}c3h224k64r7s2p3g1": "conv_stem", "n{}c64h56k64r3s1p1g1": "conv3x3",
              "n{}c144h56k144r3s1p1g144": "depthwise"}


def conv_graph(shape: str) -> Graph:
    n, c, h, k, r, s, p, g = (int(v) for v in re.fullmatch(r"n(\d+)c(\d+)h(\d+)k(\d+)r(\d+)s(\d+)p(\d+)g(\d+)",
                                                          shape).groups())
    graph = Graph(shape)
    graph.add_input("x", (n, c, h, h))
    graph.add_node("Conv", "conv", ["x"], {"out_channels": k, "kernel": r, "stride": s, "pad": p, "groups": g,
                                           "bias": False})
    graph.mark_output("conv")
    return graph


def _layers(graph, dtype: str, profile):
    return estimate_graph(graph, PrecisionPlan.uniform(dtype), profile)


def fit(folder: Path) -> dict[str, float]:
    """Every fitted stack parameter, as dotted profile keys, from the rows the profile names."""
    conv = pd.read_csv(folder / "h100_conv.csv", comment="#")
    net = pd.read_csv(folder / "h100_resnet18.csv", comment="#")
    base = load_profile("cloud", {"stack": "pytorch-eager"})
    launch = base.stack.kernel_launch_s if base.stack.kernel_launch_s is not None else base.dispatch_s
    out: dict[str, float] = {}
    for r in conv[conv["shape"].str.startswith("n32")].itertuples():
        cls = CONV_CLASS[re.sub(r"^n\d+", "n{}", r.shape)]
        row = _layers(conv_graph(r.shape), r.dtype, base).layers.iloc[0]
        busy = r.ms_median * 1e-3 - launch
        if cls == "depthwise":  # memory time at full bandwidth / measured busy time
            out[f"bandwidth_fraction.depthwise.{r.dtype}"] = row.memory_s * base.stack.bandwidth_fraction[
                "depthwise"][r.dtype] / busy
        else:  # compute time at the present efficiency, rescaled to the measured busy time
            out[f"conv_efficiency.{cls}.{r.dtype}"] = row.compute_s * base.stack.conv_efficiency[cls][r.dtype] / busy
    overrides = {f"stacks.pytorch-eager.{k}": round(v, 4) for k, v in out.items()}
    overrides.update({f"stacks.pytorch-cudagraph.{k}": round(v, 4) for k, v in out.items()})
    graph_stack = load_profile("cloud", {**overrides, "stack": "pytorch-cudagraph",
                                         "stacks.pytorch-cudagraph.kernel_launch_us": 0})
    eager_stack = load_profile("cloud", {**overrides, "stack": "pytorch-eager"})
    per_kernel_graph, per_kernel_host = [], []
    for r in net[net.batch == 1].itertuples():
        g = build("resnet18", batch=1)
        est = _layers(g, r.dtype, graph_stack)
        per_kernel_graph.append((r.ms_graph * 1e-3 - est.totals["latency_s"]) / est.totals["kernels"])
        est = _layers(g, r.dtype, eager_stack)
        per_kernel_host.append(r.ms_eager * 1e-3 / est.totals["kernels"])
    out["kernel_launch_us"] = statistics.median(per_kernel_graph) * 1e6
    out["host_us_per_kernel"] = statistics.median(per_kernel_host) * 1e6
    return out


def evaluate(folder: Path) -> pd.DataFrame:
    """One row per measurement and stack: predicted, measured, error, fitted or held out."""
    conv = pd.read_csv(folder / "h100_conv.csv", comment="#")
    net = pd.read_csv(folder / "h100_resnet18.csv", comment="#")
    rows = []
    for stack, column in (("pytorch-cudagraph", "ms_graph"), ("pytorch-eager", "ms_eager")):
        profile = load_profile("cloud", {"stack": stack})
        for r in net.itertuples():
            ms = _layers(build("resnet18", batch=r.batch), r.dtype, profile).totals["latency_s"] * 1e3
            rows.append({"stack": stack, "data": "resnet18", "dtype": r.dtype, "case": f"batch {r.batch}",
                         "measured_ms": getattr(r, column), "predicted_ms": ms,
                         "role": "fitted" if r.batch == 1 else "held out"})
    # lone kernels timed on the device by events, the host queue ahead: launch cost, no host wait
    eager = load_profile("cloud", {"stack": "pytorch-eager", "stacks.pytorch-eager.host_us_per_kernel": 0})
    for r in conv.itertuples():
        ms = _layers(conv_graph(r.shape), r.dtype, eager).totals["latency_s"] * 1e3
        rows.append({"stack": "pytorch-eager", "data": "conv", "dtype": r.dtype, "case": r.shape,
                     "measured_ms": r.ms_median, "predicted_ms": ms,
                     "role": "fitted" if r.shape.startswith("n32") else "held out"})
    table = pd.DataFrame(rows)
    table["error_pct"] = 100 * (table.predicted_ms - table.measured_ms) / table.measured_ms
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(abs_error_pct=table.error_pct.abs()).groupby(["data", "stack", "role"]).abs_error_pct.agg(
        ["count", "median", "max"])


def validation_figures(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The figures each stack's ``validation:`` in hw_profiles/cloud.yaml quotes: its own ResNet-18
    column, plus the batch-32 conv rows its conv efficiencies were read from (fitted), plus, for the
    eager stack only, the batch-1 conv rows held out: they are lone kernels issued from the host,
    predicted with the eager stack (its lone-op minimum, which a captured graph never charges), so
    they measure the eager stack's predictions, not the graph stack's."""
    err = table.error_pct.abs()
    conv = table.data == "conv"
    out = {}
    for stack in ("pytorch-cudagraph", "pytorch-eager"):
        own = (table["stack"] == stack) & ~conv
        fitted = err[(own | conv) & (table.role == "fitted")]
        held = err[(own | (conv if stack == "pytorch-eager" else False)) & (table.role == "held out")]
        out[stack] = {"rows_fitted": len(fitted), "fitted_median_pct": fitted.median(),
                      "fitted_worst_pct": fitted.max(), "rows_held_out": len(held),
                      "held_out_median_pct": held.median(), "held_out_worst_pct": held.max()}
    return out


def transformers() -> pd.DataFrame:
    """The shipped transformer workloads on each cloud stack (no measurement of them is in the given
    files: these rows are predictions to check against held-out data, with their kernel counts)."""
    rows = []
    for workload in ("bert_base", "llama7b_decode", "llama7b_prefill"):
        w = load_workload(ROOT / "workloads" / f"{workload}.yaml")
        for stack in ("pytorch-eager", "pytorch-cudagraph", "tensorrt"):
            profile = load_profile("cloud", {"stack": stack})
            for precision in ("workload", "fp16", "fp8"):
                plan = w.plan if precision == "workload" else PrecisionPlan.uniform(precision)
                est = estimate_graph(w.graph, plan, profile)
                device = float(est.layers.latency_s.sum())
                rows.append({"workload": workload, "stack": stack, "precision": precision,
                             "kernels": est.totals["kernels"], "ms": est.totals["latency_s"] * 1e3,
                             "device_ms": device * 1e3, "host_bound": est.totals["latency_s"] > device * (1 + 1e-9)})
    return pd.DataFrame(rows)


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    print("stack parameters fitted from the rows named in hw_profiles/cloud.yaml:")
    for key, value in fit(folder).items():
        print(f"  {key}: {value:.4g}")
    table = evaluate(folder)
    pd.set_option("display.width", 140)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nabsolute latency error (%), fitted and held-out rows apart:")
    print(summary(table).to_string(float_format=lambda v: f"{v:.1f}"))
    print("\ntransformer workloads (predictions only; workload = the precision its yaml names):")
    print(transformers().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nthe validation figures of hw_profiles/cloud.yaml, per stack:")
    for stack, figures in validation_figures(table).items():
        print(f"  {stack}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in figures.items()))


if __name__ == "__main__":
    main()
