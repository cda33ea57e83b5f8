"""Accuracy in sweeps: measured once per distinct accuracy key, joined to every point sharing it.

A point's accuracy depends on its workload (and workload parameters), its precision plan, the
requantization policy (the plan's own, else the profile's ``requant_policy``, else onnxruntime),
the profile's accumulator width (``compute.accumulator_bits``; accumulators wrap, as the runtimes'
do), the evaluation's data, calibration and metric, and under the onnxruntime policy the CPU kind
whose onnxruntime is reproduced (``SweepSpec.ort_cpu``: an avx2 onnxruntime sums u8 x s8 products
differently from a vnni one), and under every policy MLAS's float lane count where the model's
float softmax depends on it (``float_mlas.float_lanes_tag``: the fp32 reference and the calibration
run it); not on clocks, bandwidths, memories or the batch being costed.
``Evaluation.key`` hashes exactly those, so the points of a sweep over profiles or memory sizes
share a handful of measurements, and a store filled for one CPU kind is measured again for another.

Each distinct key is a job; jobs run on the sweep's executors (``measure_chunk``, one job per
chunk) and each result is stored at once in ``OUT/accuracy/`` (the same append-only, self-healing
part store as the points), so a resumed sweep measures only the keys it lacks. The columns
``accuracy``, ``accuracy_drop``, ``sqnr_db``, ``accuracy_metric`` and ``evaluated_by`` (how it ran,
or why it was not measured) are then joined to the points by key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from qsim.errors import QsimError, SweepError
from qsim.sweep.model import Point, SweepSpec, get_key

JOINED = ("accuracy", "accuracy_drop", "sqnr_db", "accuracy_metric", "evaluated_by")
STORED = ("key", "workload", "precision", "status")  # the accuracy store's required columns (id first)
OVERFLOW = "wrap"  # the runtimes' int32 accumulators wrap; a narrower accumulator is the profile's width


@dataclass(frozen=True)
class AccuracyJob:
    key: str
    workload: str
    precision: str  # the plan's label in the spec
    params: tuple   # sorted (name, value) workload parameters
    policy: str
    acc_bits: int
    ort_cpu: str = "host"  # the CPU kind's name, resolved on the client: workers get it here, not from
    cpu_tag: str = ""      # their environment; cpu_tag: what the key holds of the CPU (``_cpu_tag``)


def _cpu_tag(fp32: bool, policy: str, cpu: str, float_lanes: int | None) -> str:
    """What an accuracy key holds of the CPU, as ``accuracy_key`` puts it there: onnxruntime's
    "KIND/LANES" for an integer plan under the onnxruntime policy, else "lanes/N" where the model's
    float softmax depends on MLAS's lanes (``float_mlas.float_lanes_tag``), else ""."""
    from qsim.sim.int_runtime import ort_cpu_tag

    tag = None if fp32 else ort_cpu_tag(policy, cpu)
    return tag or ("" if float_lanes is None else f"lanes/{float_lanes}")


def _policy_and_width(spec: SweepSpec, point: Point, plan) -> tuple[str, int]:
    data = spec.profiles[point.axes["profile"]][1]
    own = sorted(str(p) for p in plan.policies)
    policy = own[0] if own else point.overrides.get("requant_policy", get_key(data, "requant_policy"))
    bits = point.overrides.get("compute.accumulator_bits", get_key(data, "compute.accumulator_bits", 32))
    return str(policy or "onnxruntime"), int(bits)


def point_jobs(spec: SweepSpec, points: Iterable[Point]) -> tuple[dict[str, str], dict[str, AccuracyJob],
                                                                     dict[str, str]]:
    """(point id -> accuracy key, key -> job, point id -> why it has no key) for the points of
    workloads with an evaluation."""
    from qsim.precision import parse_plan
    from qsim.sim.float_mlas import float_lanes_tag
    from qsim.sim.int_runtime import ort_cpu_name
    from qsim.sim.pipeline import is_fp32
    from qsim.sweep.evaluate import _graph

    cpu = ort_cpu_name(spec.ort_cpu)  # checked, and QSIM_ORT_CPU read, once
    plans: dict[str, Any] = {}
    lanes: dict[str, int | None] = {}  # graph id -> float_lanes_tag: the model is built once for it
    keys, jobs, why = {}, {}, {}
    for point in points:
        ev = spec.evaluations.get(point.axes["workload"])
        if ev is None:
            continue
        label = point.axes["precision"]
        try:
            plan = plans[label] if label in plans else plans.setdefault(label, parse_plan(spec.plans[label]))
            policy, bits = _policy_and_width(spec, point, plan)
            params = tuple(sorted((k, repr(v)) for k, v in point.params.items()))
            graph_id = json.dumps([spec.workloads[point.axes["workload"]], params])
            if graph_id not in lanes:  # (the measurement builds the same graph: cached per process)
                lanes[graph_id] = float_lanes_tag(_graph(spec, point.axes["workload"], ev.build_batch,
                                                         dict(point.params)), cpu)
            key = ev.key(graph_id, plan, policy, bits, OVERFLOW, ort_cpu=cpu, float_lanes=lanes[graph_id])
            tag = _cpu_tag(is_fp32(plan), policy, cpu, lanes[graph_id])
        except QsimError as exc:  # a plan the simulator cannot run (check_simulable)
            why[point.point_id] = f"not simulated: {exc}"
            continue
        keys[point.point_id] = key
        jobs.setdefault(key, AccuracyJob(key, point.axes["workload"], label, tuple(sorted(point.params.items())),
                                         policy, bits, cpu, tag))
    return keys, jobs, why


def measure_job(spec: SweepSpec, job: AccuracyJob) -> dict[str, Any]:
    from qsim.sim.int_runtime import ort_cpu_scope, ort_float_lanes
    from qsim.sim.pipeline import is_fp32
    from qsim.sweep.evaluate import _plan

    lanes = ort_float_lanes(job.ort_cpu) if job.cpu_tag.startswith("lanes/") else None
    here = _cpu_tag(is_fp32(_plan(spec, job.precision)), job.policy, job.ort_cpu, lanes)
    if job.cpu_tag and here != job.cpu_tag:  # "host" on a worker of another CPU than the client's: not what the key says
        raise SweepError(f"ort_cpu={job.ort_cpu!r} is onnxruntime {here!r} on this worker but {job.cpu_tag!r} "
                         "where the sweep started; name the CPU kind (ort_cpu: in the spec, or --ort-cpu)")
    from qsim.sweep.evaluate import _graph

    ev = spec.evaluations[job.workload]
    row: dict[str, Any] = {"key": job.key, "workload": job.workload, "precision": job.precision,
                           "policy": job.policy, "accumulator_bits": job.acc_bits, "ort_cpu": job.cpu_tag}
    try:
        graph = _graph(spec, job.workload, ev.build_batch, dict(job.params))
        with ort_cpu_scope(job.ort_cpu):  # every kernel of the measurement follows the kind in the key
            result = ev.measure(graph, spec.plans[job.precision], job.policy, job.acc_bits, OVERFLOW)
    except QsimError as exc:  # the simulator refuses this plan under this policy: say why, measure nothing
        return {**row, "status": "refused", "evaluated_by": f"not simulated: {exc}", "accuracy": np.nan,
                "accuracy_drop": np.nan, "sqnr_db": np.nan, "accuracy_metric": ev.metric.label}
    return {**row, "status": "ok", "evaluated_by": result["executed_by"],
            **{k: result[k] for k in ("accuracy", "accuracy_drop", "sqnr_db", "accuracy_metric", "accuracy_fp32",
                                      "samples", "overflow_events", "saturated")}}


def measure_chunk(spec: SweepSpec, jobs: list[AccuracyJob]) -> list[dict[str, Any]]:
    """The executors' task for accuracy jobs (``qsim.sweep.executor``)."""
    return [measure_job(spec, job) for job in jobs]


def join_accuracy(frame: pd.DataFrame, keys: dict[str, str], why: dict[str, str], measured: pd.DataFrame,
                  with_key: bool = True) -> pd.DataFrame:
    """``frame`` with the JOINED columns filled from ``measured`` (one row per key) for its ok
    points (all empty without measurements), and ``accuracy_key`` when ``with_key``."""
    frame = frame.copy()
    ok = (frame["status"] == "ok").fillna(False).to_numpy(dtype=bool)
    by_key = measured.drop_duplicates("key").set_index("key") if len(measured) else None
    point_key = frame["point_id"].map(keys)
    for column in JOINED:
        if by_key is not None and column in by_key.columns:
            values = point_key.map(by_key[column].to_dict())
        else:
            values = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if column == "evaluated_by":
            values = values.where(values.notna(), frame["point_id"].map(why))
        values = values.where(ok, None)
        frame[column] = pd.array(values.astype(object).where(values.notna(), None).tolist(),
                                 dtype="string" if column in ("accuracy_metric", "evaluated_by") else "float64")
    if with_key:
        frame["accuracy_key"] = pd.array(point_key.astype(object).where(point_key.notna() & ok, None).tolist(),
                                         dtype="string")
    return frame


def run_accuracy(spec: SweepSpec, frame: pd.DataFrame, points: Iterable[Point], store, dispatch: Callable,
                 progress: bool | None) -> tuple[pd.DataFrame, int]:
    """Measure the keys of ``frame``'s ok points that ``store`` (a ResultStore on ``accuracy/``, or
    None: in memory) lacks, on ``dispatch(task, chunks, on_done, count)``; return (the joined frame, the
    number of measurements made now)."""
    from qsim.sweep.progress import Progress
    from qsim.sweep.store import id_keys

    ok_ids = set(frame.loc[(frame["status"] == "ok").fillna(False).astype(bool), "point_id"])
    keys, jobs, why = point_jobs(spec, (p for p in points if p.point_id in ok_ids))
    done = store.done_keys() if store is not None else np.zeros(0, dtype=np.uint64)
    stored = set(done.tolist())
    todo = [job for key, job in jobs.items() if int(id_keys([key])[0]) not in stored]
    collected: list[dict] = []
    bar = Progress(len(todo), progress, label="evaluations")

    def on_done(rows: list[dict]) -> None:
        if store is not None:
            store.append(rows)
        else:
            collected.extend(rows)
        bar.update(len(rows))

    try:
        if todo:
            dispatch(measure_chunk, ([job] for job in todo), on_done, len(todo))
    finally:
        bar.close()
    measured = store.load() if store is not None else pd.DataFrame(collected)
    return join_accuracy(frame, keys, why, measured), len(todo)
