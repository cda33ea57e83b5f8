"""Sweep throughput: 10,000 cost-model points on local processes and on a Dask LocalCluster.

Prints points per second for the local process executor (1 and N workers) and the Dask
LocalCluster speedup of N workers over 1. The points: 5 workloads (MLPerf Tiny and MobileNetV2)
x 10 precisions x 4 profiles x 50 clock frequencies; refused points (e.g. fp32 on the int-only
NPU) count as points, as in any sweep. Figures are wall times on a shared machine: noisy.

    python benchmarks/bench_sweep.py [--points 10000] [--workers 2] [--no-dask]
"""
from __future__ import annotations

import argparse
import os
import resource
import time

from qsim.sweep import generate_points, load_spec, run_sweep

WORKLOADS = ["mlperf_tiny_kws", "mlperf_tiny_vww", "mlperf_tiny_ic", "mlperf_tiny_ad", "mobilenet_v2"]
PRECISIONS = ["fp32", "fp16", "bf16", "fp8", "int8", "int4", "w8a8", "w4a8", "w8a16", "w4a16"]
PROFILES = ["iot", "mobile", "cloud", "systolic"]


def spec(points: int) -> dict:
    clocks = max(1, points // (len(WORKLOADS) * len(PRECISIONS) * len(PROFILES)))
    return {"name": "bench", "workloads": WORKLOADS, "precisions": PRECISIONS, "profiles": PROFILES,
            "overrides": {"clock_mhz": [100 + 10 * i for i in range(clocks)]}}


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the pool's and the cluster's workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(label: str, n: int, **kwargs) -> float:
    """Wall time of one sweep. The CPU seconds it got show how contended the machine was: on a
    shared 2-core machine, 2 workers that get ~1 core's worth cannot be faster than 1."""
    t0, c0 = time.perf_counter(), _cpu()
    df = run_sweep(SPEC, progress=False, **kwargs)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    assert len(df) == n
    print(f"  {label:34s} {wall:7.2f} s  {n / wall:6.0f} points/s   CPU {cpu:6.1f} s ({cpu / wall:4.2f} cores busy, "
          f"{n / cpu:4.0f} points per CPU-s)")
    return wall


def main() -> None:
    global SPEC
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    SPEC = load_spec(spec(args.points))
    n = len(generate_points(SPEC))
    print(f"{n} points; spec validated and expanded in {time.perf_counter() - t0:.2f} s "
          f"(wall times include starting the workers; machine has {os.cpu_count()} cores)")
    one = timed("local, 1 process (in-process)", n, workers=1)
    many = timed(f"local, {args.workers} processes", n, workers=args.workers)
    print(f"  local speedup {args.workers} processes / 1: {one / many:.2f}x")
    if args.no_dask:
        return
    try:
        import distributed  # noqa: F401
    except ImportError:
        print('  Dask: not installed (pip install "dask[distributed]")')
        return
    d1 = timed("Dask LocalCluster, 1 worker", n, dask_local=True, workers=1)
    dn = timed(f"Dask LocalCluster, {args.workers} workers", n, dask_local=True, workers=args.workers)
    print(f"  Dask speedup {args.workers} workers / 1: {d1 / dn:.2f}x")


if __name__ == "__main__":
    main()
