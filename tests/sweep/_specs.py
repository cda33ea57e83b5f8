"""Small sweep specs shared by the sweep tests (cheap workloads: each point costs a few ms)."""
from __future__ import annotations

TINY = {
    "name": "tiny",
    "workloads": ["mlperf_tiny_kws", "mlperf_tiny_ad"],
    "precisions": ["int8", "fp32", {"label": "mixed", "default": "int8",
                                     "overrides": [{"op": "Gemm", "precision": "fp16"}]}],
    "profiles": ["iot", "mobile"],
    "overrides": {"memories.sram.capacity_kib": [256, 512]},
}  # 2 x 3 x 2 x 2 = 24 points; fp32 on mobile (4 points) is refused


def tiny(**changes) -> dict:
    spec = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    spec.update(changes)
    return spec
