"""A small float CNN with weights (the digits architecture, seeded random weights: nothing to train)
as a workload beside its evaluation data, for the sweep accuracy tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL = '''
import numpy as np
from qsim.evaluation.digits import digits_graph

SHAPES = {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (16, 8, 3, 3), "conv2.bias": (16,),
          "fc.weight": (10, 256), "fc.bias": (10,)}


def graph(batch=1):
    rng = np.random.default_rng(0)
    return digits_graph({k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in SHAPES.items()}, batch)
'''


def write_tiny(folder: Path, samples: int = 40) -> Path:
    """tinycnn.py, tiny.yaml (the workload) and data.npz (inputs x and labels) in ``folder``; written
    once (the data file's time is part of the accuracy key: rewriting it is new data)."""
    if (folder / "tiny.yaml").exists():
        return folder / "tiny.yaml"
    (folder / "tinycnn.py").write_text(MODEL)
    (folder / "tiny.yaml").write_text("name: tiny_cnn\nmodel: {entry: 'tinycnn:graph'}\nbatch: 1\n")
    rng = np.random.default_rng(1)
    np.savez(folder / "data.npz", x=rng.random((samples, 1, 8, 8)).astype(np.float32),
             labels=rng.integers(0, 10, samples))
    return folder / "tiny.yaml"


def spec(folder: Path, **changes) -> dict:
    """Two profiles that run int8 alike (iot, and iot with another clock and SRAM: same policy and
    accumulator) and fp32 / int8 / int4: 6 points, 3 distinct accuracy keys."""
    fast = (Path("hw_profiles/iot.yaml").read_text().replace("clock_mhz: 480", "clock_mhz: 960"))
    assert fast != Path("hw_profiles/iot.yaml").read_text()
    if not (folder / "iot_fast.yaml").exists():
        (folder / "iot_fast.yaml").write_text(fast)
    out = {"name": "acc", "workloads": [str(write_tiny(folder))], "precisions": ["fp32", "int8", "int4"],
           "profiles": ["iot", str(folder / "iot_fast.yaml")],
           "evaluation": {"data": str(folder / "data.npz"), "batch": 9}}
    out.update(changes)
    return out
