"""qsim's cloud profile against measured H100 SXM GEMM latency (../shared/calibration).

For every GEMM row of the calibration file, build an M=N=K GEMM, estimate it with
hw_profiles/cloud.yaml at the row's precision, and print predicted vs measured latency with the
error; then the median and max absolute error per precision.

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
PRECISION = {"fp32": "fp32", "tf32": "tf32", "fp16": "fp16", "bf16": "bf16", "int8": "int8", "fp8e4m3": "fp8"}


def gemm_graph(m: int, n: int, k: int) -> Graph:
    g = Graph(f"gemm{m}x{n}x{k}")
    g.add_input("a", (m, k))
    g.add_node("Gemm", "gemm", ["a"], {"out_features": n, "bias": False})
    g.mark_output("gemm")
    return g


def compare(csv_path: Path) -> pd.DataFrame:
    data = pd.read_csv(csv_path, comment="#")
    profile = load_profile(ROOT / "hw_profiles" / "cloud.yaml")
    rows = []
    for r in data[data.op == "gemm"].itertuples():
        m, n, k = (int(v) for v in r.shape.split("x"))
        est = estimate_graph(gemm_graph(m, n, k), PrecisionPlan.uniform(PRECISION[r.dtype]), profile)
        predicted = est.totals["latency_s"] * 1e3
        rows.append({"dtype": r.dtype, "shape": r.shape, "measured_ms": r.ms_median, "predicted_ms": predicted,
                     "error_pct": 100 * (predicted - r.ms_median) / r.ms_median,
                     "bound": est.layers.bound[0]})
    return pd.DataFrame(rows)


def main() -> None:
    csv_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV
    table = compare(csv_path)
    pd.set_option("display.width", 120)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    summary = table.assign(abs_error_pct=table.error_pct.abs()).groupby("dtype", sort=False).abs_error_pct.agg(
        ["median", "max"])
    print("\nabsolute latency error per precision (%):")
    print(summary.to_string(float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
