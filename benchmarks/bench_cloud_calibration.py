"""qsim's cloud profile against measured H100 SXM GEMM latency (../shared/calibration).

For every GEMM row of the calibration file, build an M=N=K GEMM, estimate it with
hw_profiles/cloud.yaml at the row's precision, and print predicted vs measured latency with the
error; then the median and max absolute error per precision, fitted and held-out rows apart.
Fitted rows: the 8192^3 GEMM of each precision (its efficiency) and the fastest GEMM of each
precision (its kernel minimum latency), as hw_profiles/cloud.yaml notes; the other rows are held out.
The GEMMs are lone kernels timed by CUDA events, so they are costed with the pytorch-eager stack
and no host wait (the host queue runs ahead of a lone kernel); the int8 and fp8 rows feed
quantized operands straight to the GEMM, so no cast kernel is costed (quantize: epilogue).

    python benchmarks/bench_cloud_calibration.py [path/to/h100_sxm_microbench.csv]
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from qsim.cost import estimate_graph
from qsim.hw.profile import load_profile
from qsim.ir import Graph
from qsim.precision import PrecisionPlan

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "calibration" / "h100_sxm_microbench.csv"
if not DEFAULT_CSV.exists():
    DEFAULT_CSV = Path("/work/shared/calibration/h100_sxm_microbench.csv")
LONE_KERNEL = {"stack": "pytorch-eager", "stacks.pytorch-eager.host_us_per_kernel": 0,
               "stacks.pytorch-eager.quantize": "epilogue"}
PRECISION = {"fp32": "fp32", "tf32": "tf32", "fp16": "fp16", "bf16": "bf16", "int8": "int8", "fp8e4m3": "fp8"}


def gemm_graph(m: int, n: int, k: int) -> Graph:
    g = Graph(f"gemm{m}x{n}x{k}")
    g.add_input("a", (m, k))
    g.add_node("Gemm", "gemm", ["a"], {"out_features": n, "bias": False})
    g.mark_output("gemm")
    return g


def compare(csv_path: Path) -> pd.DataFrame:
    data = pd.read_csv(csv_path, comment="#")
    profile = load_profile(ROOT / "hw_profiles" / "cloud.yaml", LONE_KERNEL)
    gemms = data[data.op == "gemm"]
    fastest = set(gemms.loc[gemms.groupby("dtype").ms_median.idxmin(), "shape"].groupby(
        gemms.loc[gemms.groupby("dtype").ms_median.idxmin(), "dtype"]).first().items())
    rows = []
    for r in data[data.op == "gemm"].itertuples():
        m, n, k = (int(v) for v in r.shape.split("x"))
        est = estimate_graph(gemm_graph(m, n, k), PrecisionPlan.uniform(PRECISION[r.dtype]), profile)
        predicted = est.totals["latency_s"] * 1e3
        rows.append({"dtype": r.dtype, "shape": r.shape, "measured_ms": r.ms_median, "predicted_ms": predicted,
                     "error_pct": 100 * (predicted - r.ms_median) / r.ms_median,
                     "bound": est.layers.bound[0],
                     "role": "fitted" if r.shape == "8192x8192x8192" or (r.dtype, r.shape) in fastest else "held out"})
    return pd.DataFrame(rows)


def main() -> None:
    csv_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV
    table = compare(csv_path)
    pd.set_option("display.width", 120)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    table = table.assign(abs_error_pct=table.error_pct.abs())
    summary = table.groupby(["dtype", "role"], sort=False).abs_error_pct.agg(["median", "max"])
    print("\nabsolute latency error per precision (%), fitted and held-out rows apart:")
    print(summary.to_string(float_format=lambda v: f"{v:.1f}"))
    held = table[table.role == "held out"].abs_error_pct
    print(f"all held-out rows: median {held.median():.1f} %, worst {held.max():.1f} %")


if __name__ == "__main__":
    main()
