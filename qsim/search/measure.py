"""Full bit-exact measurement of one precision plan, with an on-disk cache.

``Measurer.measure(plan)`` runs ``Evaluation.measure`` (``qsim.evaluation.data``: the plan
quantized and calibrated on the evaluation's calibration data, every evaluation batch run through
the simulator's one flow, the compiled integer executor where it models the graph) and keeps the
metric, its drop against the float model on the same samples, the output SQNR, and the integer
executor's overflow and saturation counts.

Each measurement is keyed by the plan's accuracy key (``Evaluation.key``: the model's weights, the
data, the plan, the requantization policy, the accumulator width and overflow mode, and under the
onnxruntime policy the CPU kind whose onnxruntime is reproduced; never the chip's clocks) and, with a
cache folder, stored there as one small JSON file written atomically, so an interrupted search or
sensitivity run resumes without redoing finished evaluations.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qsim.files import atomic_write
from qsim.ir.graph import Graph
from qsim.precision import check_simulable, parse_plan, plan_spec

CACHE_VERSION = 1


@dataclass(frozen=True)
class Measurement:
    accuracy: float
    accuracy_drop: float  # against the float model on the same samples
    sqnr_db: float        # of the model output against the float model's
    overflow_events: int  # accumulator outputs that wrapped or clamped, whole graph, all samples
    saturated: int        # outputs clamped at their range's low or high bound, whole graph
    executed_by: str
    metric: str


def graph_key(graph: Graph) -> str:
    """A digest of the model: its nodes, attributes and weights."""
    digest = hashlib.sha256(graph.name.encode())
    for node in graph.nodes():
        digest.update(f"{node.name}|{node.op}|{node.inputs}|{sorted(node.attrs.items(), key=str)}".encode())
    for name in sorted(graph.constants):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(graph.constants[name]).tobytes())
    return digest.hexdigest()[:20]


class Measurer:
    """Measures plans of one float graph on one ``Evaluation`` (see the module doc)."""

    def __init__(self, graph: Graph, evaluation, policy: str = "onnxruntime", acc_bits: int = 32,
                 overflow: str = "wrap", cache_dir: str | Path | None = None, ort_cpu: str | None = None):
        from qsim.sim.float_mlas import float_lanes_tag
        from qsim.sim.int_runtime import ort_cpu_name

        evaluation.check(graph)  # every data problem before the first simulation
        self.ort_cpu = ort_cpu_name(ort_cpu)  # checked, and QSIM_ORT_CPU read, once: before any simulation
        self.graph, self.evaluation = graph, evaluation
        self.policy, self.acc_bits, self.overflow = policy, int(acc_bits), overflow
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._graph_id = graph_key(graph)
        self._float_lanes = float_lanes_tag(graph, self.ort_cpu)  # the fp32 reference's softmax lanes, if they matter
        self._memo: dict[str, Measurement] = {}
        self.simulations = 0  # full simulations of quantized plans run (cache hits excluded)
        self.seconds = 0.0    # time spent in them

    @property
    def samples(self) -> int:
        return len(self.evaluation)

    @property
    def metric(self) -> str:
        return self.evaluation.metric.label

    def key(self, plan) -> str:
        """The plan's accuracy key (``Evaluation.key``); under the onnxruntime policy it names the CPU
        kind and MLAS float lanes too (an avx2 onnxruntime sums u8 x s8 products differently from a
        vnni one), under every policy the float lanes where the model's float softmax depends on them
        (the fp32 reference and calibration), so a cache filled for one kind never answers for another."""
        key = self.evaluation.key(self._graph_id, plan, self.policy, self.acc_bits, self.overflow,
                                  ort_cpu=self.ort_cpu, float_lanes=self._float_lanes)
        return f"{key}-v{CACHE_VERSION}"

    @property
    def ort_cpu_kind(self) -> str:
        """The CPU kind whose onnxruntime the onnxruntime policy reproduces here ("host" resolved)."""
        from qsim.sim.int_runtime import ort_cpu

        return ort_cpu(self.ort_cpu)

    def measure(self, plan) -> Measurement:
        from qsim.sim.int_runtime import ort_cpu_scope

        plan = check_simulable(parse_plan(plan))
        key = self.key(plan)
        if key not in self._memo:
            found = self._load(key)
            if found is None:
                start = time.perf_counter()
                with ort_cpu_scope(self.ort_cpu):  # every kernel of the run follows the kind asked for
                    r = self.evaluation.measure(self.graph, plan, self.policy, self.acc_bits, self.overflow)
                if plan.overrides or plan.default.name != "fp32":  # fp32 is the float reference, run once
                    self.seconds += time.perf_counter() - start
                    self.simulations += 1
                found = Measurement(float(r["accuracy"]), float(r["accuracy_drop"]), float(r["sqnr_db"]),
                                    int(r["overflow_events"]), int(r["saturated"]), str(r["executed_by"]),
                                    str(r["accuracy_metric"]))
                self._store(key, plan, found)
            self._memo[key] = found
        return self._memo[key]

    def reference_accuracy(self) -> float:
        return self.measure("fp32").accuracy

    def _path(self, key: str) -> Path | None:
        return self.cache_dir / f"{key}.json" if self.cache_dir else None

    def _load(self, key: str) -> Measurement | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return Measurement(**{k: _from_json(data[k]) for k in Measurement.__dataclass_fields__})
        except (OSError, ValueError, TypeError, KeyError):  # a damaged entry is measured again, not trusted
            return None

    def _store(self, key: str, plan, m: Measurement) -> None:
        path = self._path(key)
        if path is not None:
            data = {"plan": plan_spec(plan), **{k: _to_json(v) for k, v in asdict(m).items()}}
            atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, sort_keys=True)))


def _to_json(value):
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}  # an identical output's SQNR is inf: JSON has no infinity
    return value


def _from_json(value):
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value
