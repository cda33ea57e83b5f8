"""Run one model file through a real runtime and through ``qsim.simulate``, and compare the two
element for element under the runtime's I/O contract: outputs keyed by the model's own output
names, each with the runtime's dtype and shape (NHWC for .tflite).

A missing runtime is an ImportError here, never a skip: these tests exist to compare against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort  # noqa: F401  (imported at module load: a missing runtime fails collection)
from ai_edge_litert.interpreter import Interpreter, OpResolverType

import qsim
from qsim.errors import QsimError

ort.set_default_logger_severity(3)  # no warnings from the sessions quantize_static opens
ORT_LEVELS = {"all": "ORT_ENABLE_ALL", "none": "ORT_DISABLE_ALL"}
# LiteRT kernel set -> (its op resolver, the qsim policy that claims to equal it)
LITERT_KERNELS = {"reference": ("BUILTIN_REF", "tflite-reference"),
                  "optimized": ("BUILTIN_WITHOUT_DEFAULT_DELEGATES", "tflite-optimized"),
                  "xnnpack": ("BUILTIN", "xnnpack")}


class RuntimeRefused(Exception):
    """The runtime itself rejects the model (an op/type/attribute combination it does not
    implement): no reference to compare with, the case is counted apart."""


def run_onnxruntime(path, feeds: dict, level: str) -> dict[str, np.ndarray]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVELS[level])
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        values = sess.run(None, feeds)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidArgument / NotImplemented
        raise RuntimeRefused(f"onnxruntime: {str(exc).splitlines()[0][:300]}") from None
    return {o.name: v for o, v in zip(sess.get_outputs(), values)}


def run_litert(path, feeds: dict, kernels: str) -> dict[str, np.ndarray]:
    try:
        it = Interpreter(model_path=str(path), num_threads=1,
                         experimental_op_resolver_type=getattr(OpResolverType, LITERT_KERNELS[kernels][0]))
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], feeds[d["name"]])
        it.invoke()
    except (RuntimeError, ValueError) as exc:
        raise RuntimeRefused(f"LiteRT: {str(exc).splitlines()[0][:300]}") from None
    return {d["name"]: it.get_tensor(d["index"]).copy() for d in it.get_output_details()}


def run_reference(path, feeds: dict, runtime: str) -> dict[str, np.ndarray]:
    """``runtime``: "ort-all", "ort-none", "litert-reference", "litert-optimized", "litert-xnnpack"."""
    family, variant = runtime.split("-", 1)
    return run_onnxruntime(path, feeds, variant) if family == "ort" else run_litert(path, feeds, variant)


def policy_of(runtime: str) -> str:
    family, variant = runtime.split("-", 1)
    return "onnxruntime" if family == "ort" else LITERT_KERNELS[variant][1]


def run_qsim(path, feeds: dict, runtime: str) -> dict[str, np.ndarray]:
    """qsim under the policy that claims ``runtime``, fed and answered as the runtime is."""
    level = {"ort-none": "disable_all"}.get(runtime, "enable_all")  # the session the answer must equal
    return qsim.simulate(str(path), dict(feeds), policy=policy_of(runtime), ort_level=level)


@dataclass
class Diff:
    """The comparison of one case: ``elements`` compared, ``differing`` elements, and per output
    what differed (dtype, shape, missing name or the count of differing elements)."""
    elements: int = 0
    differing: int = 0
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return "; ".join(self.problems) if self.problems else f"0 of {self.elements} differ"


def compare(ref: dict, got: dict) -> Diff:
    d = Diff()
    for name, want in ref.items():
        if name not in got:
            d.problems.append(f"output {name!r} missing (qsim returned {sorted(got)})")
            continue
        have = np.asarray(got[name])
        d.elements += want.size
        if have.dtype != want.dtype:
            d.problems.append(f"{name}: dtype {have.dtype}, runtime {want.dtype}")
        if have.shape != want.shape:
            d.problems.append(f"{name}: shape {have.shape}, runtime {want.shape}")
            d.differing += want.size
            continue
        a, b = want.view(np.uint8) if want.dtype.kind == "V" else want, have
        same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" and b.dtype.kind == "f" else a == b
        n = int(want.size - np.count_nonzero(same))
        if n:
            d.differing += n
            d.problems.append(f"{name}: {n} of {want.size} elements differ (max |diff| "
                              f"{np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))):.6g})")
    return d


def differential(path, feeds: dict, runtime: str) -> Diff | str:
    """Compare qsim with ``runtime`` on one model file. Returns the Diff, or the runtime's refusal
    message (a str) when the runtime cannot run the model. qsim refusing a model the runtime runs
    is a problem of its own ("qsim refused: ...")."""
    try:
        ref = run_reference(path, feeds, runtime)
    except RuntimeRefused as exc:
        return str(exc)
    try:
        got = run_qsim(path, feeds, runtime)
    except QsimError as exc:
        d = Diff(elements=sum(v.size for v in ref.values()))
        d.differing = d.elements
        d.problems.append(f"qsim refused: {type(exc).__name__}: {exc}")
        return d
    except Exception as exc:  # anything but a QsimError is a crash: a defect whatever the input
        d = Diff(elements=sum(v.size for v in ref.values()))
        d.differing = d.elements
        d.problems.append(f"qsim crashed: {type(exc).__name__}: {exc}")
        return d
    return compare(ref, got)


def repro_command(path: Path, feeds_path: Path, runtime: str) -> str:
    return f"python -m tests.differential.repro {path} {feeds_path} {runtime}"
