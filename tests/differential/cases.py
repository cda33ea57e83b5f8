"""One differential case = (family, op, seed, runtime): build the model from the seed, write it, run
the runtime and qsim, compare. ``run_case`` is what the tests, the long mode and the repro share."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gen import Gen
from .runners import Diff, differential

ORT_RUNTIMES = ("ort-all", "ort-none")
LITERT_RUNTIMES = ("litert-reference", "litert-optimized", "litert-xnnpack")


def builders(family: str) -> dict:
    if family == "onnx":
        from .onnx_units import ONNX_UNITS
        return ONNX_UNITS
    if family == "qdq":
        from .qdq_units import QDQ_UNITS
        return QDQ_UNITS
    if family == "tflite":
        from .tflite_units import TFLITE_UNITS
        return TFLITE_UNITS
    raise ValueError(f"unknown family {family!r}")


def runtimes(family: str) -> tuple[str, ...]:
    return LITERT_RUNTIMES if family == "tflite" else ORT_RUNTIMES


@dataclass
class Outcome:
    family: str
    op: str
    seed: int
    runtime: str
    path: Path
    result: Diff | str  # a str: the runtime refused the model

    @property
    def refused(self) -> bool:
        return isinstance(self.result, str)

    @property
    def ok(self) -> bool:
        return self.refused or self.result.ok


def write_case(family: str, op: str, seed: int, workdir) -> tuple[Path, dict]:
    """The model file and feeds of case (family, op, seed)."""
    model = builders(family)[op](Gen(seed))
    suffix = ".tflite" if family == "tflite" else ".onnx"
    path = Path(workdir) / f"{family}_{op}_{seed}{suffix}"
    model.save(path)
    return path, model.feeds


def run_case(family: str, op: str, seed: int, workdir, runs=None) -> list[Outcome]:
    """Every runtime of the family (or ``runs``) on one generated model."""
    path, feeds = write_case(family, op, seed, workdir)
    return [Outcome(family, op, seed, rt, path, differential(path, feeds, rt)) for rt in (runs or runtimes(family))]


def save_feeds(path: Path, feeds: dict) -> Path:
    out = path.with_suffix(".npz")
    np.savez(out, **feeds)
    return out
