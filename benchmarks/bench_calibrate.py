"""`qsim calibrate` vs onnxruntime on this machine.

Calibrates a profile for this machine (or takes one with --profile), then, for the classic models
that the onnx package ships (onnx/backend/test/data/light), prints qsim's predicted fp32 latency
with that profile next to onnxruntime's measured latency (median of repeated runs), and the error.

    python benchmarks/bench_calibrate.py [--profile hw_profiles/local.yaml] [--models resnet50,squeezenet]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from qsim.hw.calibrate import write_profile
from qsim.cost import estimate_graph
from qsim.hw.profile import load_profile
from qsim.ir.onnx_import import load_onnx
from qsim.precision import PrecisionPlan

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = ["squeezenet", "shufflenet", "bvlc_alexnet", "inception_v1", "resnet50", "densenet121", "vgg19"]


def measure_ort(path: Path, repeats: int = 30) -> float:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds[inp.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess.run(None, feeds)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", help="use this profile instead of calibrating now")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    if args.profile:
        profile = load_profile(args.profile)
    else:
        path = Path(tempfile.mkdtemp()) / "local.yaml"
        write_profile(path)
        profile = load_profile(path)
        print(f"calibrated: {path}")
    print(f"profile {profile.name}: fp32 {profile.compute.macs_per_cycle['fp32']} MACs/cycle x "
          f"{profile.clock_hz / 1e9:.2f} GHz x {profile.compute.efficiency['fp32']}, "
          f"DRAM {profile.memories['dram'].bandwidth_bytes_per_s / 1e9:.1f} GB/s, dispatch {profile.dispatch_s * 1e6:.2f} us")
    rows = []
    for name in args.models.split(","):
        path = LIGHT / f"light_{name}.onnx"
        graph = load_onnx(path)
        predicted = estimate_graph(graph, PrecisionPlan.uniform("fp32"), profile).totals["latency_s"]
        measured = measure_ort(path)
        rows.append({"model": name, "GMACs": graph.summary()["macs"] / 1e9, "measured_ms": measured * 1e3,
                     "predicted_ms": predicted * 1e3, "error_pct": 100 * (predicted - measured) / measured})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"median |error| {table.error_pct.abs().median():.1f} %, max {table.error_pct.abs().max():.1f} %")


if __name__ == "__main__":
    main()
