"""Cost-model speed: one ResNet-50 estimate, and 1,000 (model x precision x profile) points.

Prints the median time of one estimate after warm-up (target: well under 10 ms) and the
wall time of 1,000 points over 2 worker processes (target: under 10 s on 2 cores).

    python benchmarks/bench_cost.py
"""
from __future__ import annotations

import itertools
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from qsim.cost import estimate_graph
from qsim.errors import QsimError
from qsim.hw.profile import load_profile
from qsim.ir.builders import build
from qsim.precision import PrecisionPlan

MODELS = {"resnet50": {}, "resnet18": {}, "mobilenet_v2": {}, "mlperf_tiny_kws": {}, "mlperf_tiny_vww": {},
          "mlperf_tiny_ic": {}, "mlperf_tiny_ad": {}, "bert": {}, "llama": {"seq": 1, "context": 1023}}
PRECISIONS = ["fp32", "fp16", "bf16", "fp8", "int8", "int4", "w8a8", "w4a8", "w8a16", "w4a16", "int16", "tf32"]
PROFILES = ["iot", "mobile", "cloud", "systolic"]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def _points(worker: int, workers: int, n: int) -> tuple[int, int]:
    profiles = {p: load_profile(p) for p in PROFILES}
    graphs: dict = {}
    grid = list(itertools.product(MODELS, PRECISIONS, PROFILES, BATCHES))
    done = refused = 0
    for i, (model, prec, prof, batch) in enumerate(grid[:n]):
        if i % workers != worker:
            continue
        key = (model, batch)
        if key not in graphs:
            graphs[key] = build(model, batch=batch, **MODELS[model])
        try:
            estimate_graph(graphs[key], PrecisionPlan.uniform(prec), profiles[prof])
            done += 1
        except QsimError:  # e.g. fp32 on an int8-only NPU: refused, still a point evaluated
            refused += 1
    return done, refused


def main() -> None:
    graph, profile, plan = build("resnet50"), load_profile("cloud"), PrecisionPlan.uniform("int8")
    estimate_graph(graph, plan, profile)
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        estimate_graph(graph, plan, profile)
        times.append(time.perf_counter() - t0)
    print(f"ResNet-50 x cloud x int8: median {statistics.median(times) * 1e3:.2f} ms per estimate (target < 10 ms)")

    n, workers = 1000, 2
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_points, range(workers), [workers] * workers, [n] * workers))
    wall = time.perf_counter() - t0
    done, refused = (sum(r[i] for r in results) for i in (0, 1))
    print(f"{n} points (models x precisions x profiles x batch; graphs built once per worker) on {workers} "
          f"processes: {wall:.2f} s wall ({done} estimated, {refused} refused as unsupported) (target < 10 s)")


if __name__ == "__main__":
    main()
