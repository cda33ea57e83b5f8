"""qsim's IoT profile against published MLPerf Tiny latencies.

Published: MLPerf Tiny v1.0 closed division, STMicroelectronics NUCLEO-H7A3ZI-Q (STM32H7A3,
Cortex-M7 at 280 MHz, X-CUBE-AI 7.3.0), mlcommons/tiny_results_v1.0 (commit abb8e49a),
closed/STMicroelectronics/results/NUCLEO-H7A3ZI-Q/*/performance/results.txt: latency = 1000 /
median inferences per second. hw_profiles/iot.yaml models the same core; here its clock is
overridden to the board's 280 MHz. Two efficiencies of the profile were fitted on two of these
rows (marked "fit"); the other rows are held out.

No published phone-NPU latency was found for a model qsim ships (MLPerf Mobile uses
MobileNetEdgeTPU/MobileNetV4), so the mobile profile has no such comparison yet.

    python benchmarks/bench_published.py
"""
from __future__ import annotations

import pandas as pd

import qsim
from qsim.hw.profile import load_profile

PUBLISHED_MS = {  # benchmark: (workload, latency ms, energy uJ, role)
    "KWS (DS-CNN)": ("mlperf_tiny_kws", 16.76, 2721.781, "fit: depthwise efficiency"),
    "VWW (MobileNetV1-0.25)": ("mlperf_tiny_vww", 50.70, 7978.465, "held out"),
    "IC (ResNet-8)": ("mlperf_tiny_ic", 54.35, 8707.284, "fit: int8 efficiency"),
    "AD (FC autoencoder)": ("mlperf_tiny_ad", 1.826, 266.486, "held out"),
}


def main() -> None:
    # the board: 280 MHz, and ~160 mW average power (published energy / latency, all four rows)
    profile = load_profile("iot", {"clock_mhz": 280, "energy.static_mw": 160})
    rows = []
    for bench, (workload, ms, uj, role) in PUBLISHED_MS.items():
        t = qsim.estimate(workload, profile).attrs["totals"]
        rows.append({"benchmark": bench, "role": role, "published_ms": ms, "qsim_ms": t["latency_s"] * 1e3,
                     "error_pct": 100 * (t["latency_s"] * 1e3 - ms) / ms,
                     "published_uJ": uj, "qsim_uJ": t["energy_j"] * 1e6})
    table = pd.DataFrame(rows)
    print("iot profile at 280 MHz vs MLPerf Tiny v1.0 (ST NUCLEO-H7A3ZI-Q, X-CUBE-AI 7.3.0)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    held = table[table.role == "held out"]
    print(f"held-out latency error: median {held.error_pct.abs().median():.1f} %, max {held.error_pct.abs().max():.1f} %")


if __name__ == "__main__":
    main()
