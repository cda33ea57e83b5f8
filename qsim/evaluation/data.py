"""The ``evaluation:`` block of a workload or sweep spec: what data to measure accuracy on, what
to calibrate on, and which metric. ``load_evaluation`` parses and checks it (every problem before
any simulation, ``file:line: evaluation.KEY: problem``) and returns an ``Evaluation``, whose
``measure`` runs a plan through the simulator (``qsim.evaluation.measure``).

```yaml
evaluation:
  data: digits              # a shipped set (digits, minilm), a file.npz, or package.module:function
  calibration: calib.npz    # optional, same forms (default: below)
  samples: 256              # optional: evaluate on the first N samples (default: all)
  batch: 64                 # optional: samples per run (default: the model's batch)
  metric: top1              # top1 | topk (with k: 5) | cosine | sqnr | mse | package.module:function
  observer: minmax          # optional calibration observer: minmax | percentile | mse
```

* An ``.npz`` holds one array per model input (keyed by the input's name, samples on axis 0, in
  the model file's own layout: NHWC for a .tflite image) and optionally ``labels``; a relative path
  is relative to the YAML file.
* An entry point is called with no arguments and returns a dict of arrays or an iterable of such
  batches (each may hold ``labels``); batches are concatenated.
* Calibration: a shipped set brings its own (digits: the training split; minilm: 64 other
  sentences). Otherwise, without ``calibration:``, the first tenth of the data (at least one
  sample) calibrates and is left out of the evaluation, so the two never overlap.
* Default metric: ``top1`` when the data has labels, else ``cosine``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from qsim.errors import Problem, QsimError
from qsim.evaluation.entry import is_entry, resolve_entry
from qsim.evaluation.metrics_spec import Metric, metric_problem
from qsim.evaluation.sets import CALIBRATION_NOTES, SHIPPED_SETS, Dataset, from_arrays, from_batches
from qsim.schema import Enum, Int, Record, Str
from qsim.yamlio import line_of

OBSERVERS = ("minmax", "percentile", "mse")
BLOCK_SCHEMA = Record(required={"data": Str()}, optional={
    "calibration": Str(), "samples": Int(1, 2**31 - 1), "batch": Int(1, 2**31 - 1), "metric": Str(),
    "k": Int(1, 2**31 - 1), "observer": Enum(OBSERVERS)})
DEFAULT_BATCH = 64  # samples per run when the graph can be built at any batch (sweeps) and none is given


class EvaluationError(QsimError):
    """An ``evaluation:`` block that does not parse, or data that does not fit the model."""


@dataclass(frozen=True)
class Source:
    kind: str   # "npz", "entry" or "shipped"
    text: str   # as written
    ref: str    # what identifies the data: a resolved path with its size and time, an entry point, a name


@dataclass
class Evaluation:
    data: Dataset
    calibration: Dataset
    metric: Metric
    where: str                 # the file the block is in, for errors
    lines: Mapping[str, int]   # block key -> line
    fingerprint: str           # what the results depend on besides the model and the plan
    calibration_note: str      # where the calibration data came from, for reports
    batch: int | None = None
    observer: str = "minmax"
    prefix: str = "evaluation"
    _cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.data)

    def __getstate__(self):  # the caches hold graphs of this process: a worker builds its own
        return {**self.__dict__, "_cache": {}}

    def error(self, key: str, message: str) -> EvaluationError:
        line = self.lines.get(key, self.lines.get("", 0))
        return EvaluationError(message, file=self.where, line=line or None, key=f"{self.prefix}.{key}")

    @property
    def build_batch(self) -> int:
        """The batch to build a model at for this evaluation (sweeps build their workload at it)."""
        return self.batch or min(len(self.data), DEFAULT_BATCH)

    def check(self, graph) -> None:
        """The checks that need the model: input names, per-sample shapes and dtypes, the batch."""
        from qsim.evaluation.measure import check_graph

        if id(graph) not in self._cache.setdefault("checked", {}):
            check_graph(self, graph)
            self._cache["checked"][id(graph)] = graph  # held: ids stay unique while cached

    def measure(self, graph, plan, policy: str = "onnxruntime", acc_bits: int | None = None,
                overflow: str = "wrap", observer: str | None = None, **options) -> dict[str, Any]:
        """Accuracy of ``graph`` (a float model) at ``plan``; see ``qsim.evaluation.measure``."""
        from qsim.evaluation.measure import measure

        return measure(self, graph, plan, policy, acc_bits, overflow, observer or self.observer, **options)

    def key(self, graph_id: str, plan, policy: str = "onnxruntime", acc_bits: int | None = None,
            overflow: str = "wrap", observer: str | None = None, ort_cpu: str | None = None,
            float_lanes: int | None = None, **options) -> str:
        """What a measurement depends on (model, plan, policy, accumulator, calibration, this data
        and metric, under the onnxruntime policy the CPU kind ``ort_cpu``, and ``float_lanes``: the
        model's ``float_mlas.float_lanes_tag``) and nothing else: clocks, bandwidths and profiles do
        not enter it."""
        return accuracy_key(graph_id, plan, policy, acc_bits, overflow,
                            calibration=f"{self.fingerprint}/{observer or self.observer}", ort_cpu=ort_cpu,
                            float_lanes=float_lanes, **options)


def accuracy_key(graph_id: str, plan, policy: str = "onnxruntime", acc_bits: int | None = None,
                 overflow: str = "wrap", calibration: str = "", ort_cpu: str | None = None,
                 float_lanes: int | None = None, **options) -> str:
    """A short hash of what a plan's accuracy depends on. A float plan runs no integer arithmetic:
    its key leaves out the policy, the accumulator and the CPU kind, so every fp32 point shares one.
    Under the onnxruntime policy the key holds ``int_runtime.ort_cpu_tag`` (the CPU kind and MLAS float
    lanes of ``ort_cpu``; None: the enclosing ``ort_cpu_scope``'s, else ``QSIM_ORT_CPU``, else the
    host's), so a store filled for an avx2 onnxruntime never answers for a vnni one.

    ``float_lanes``: the MLAS float lanes the model's float runs depend on
    (``float_mlas.float_lanes_tag(graph, ort_cpu)``; None where they cannot: no softmax longer than
    16). The fp32 reference, the calibration run and float islands use MLAS's softmax under every
    policy, so where it is given it enters every key (fp32 and other policies too; the onnxruntime
    tag holds it already). Keys of lane-free models are unchanged by it."""
    from qsim.precision import parse_plan
    from qsim.sim.int_runtime import ort_cpu_tag
    from qsim.sim.pipeline import is_fp32

    lanes = None if float_lanes is None else int(float_lanes)
    if is_fp32(plan):
        parts = [graph_id, "fp32", calibration] + ([f"float_lanes={lanes}"] if lanes is not None else [])
    else:
        tag = ort_cpu_tag(policy, ort_cpu)
        if tag is not None:  # as an option named ort_cpu: the keys qsim search cached before stay valid
            options = {**options, "ort_cpu": tag}
        elif lanes is not None:
            options = {**options, "float_lanes": lanes}
        parts = [graph_id, repr(parse_plan(plan)), str(policy), 32 if acc_bits is None else int(acc_bits),
                 overflow, calibration, sorted((k, repr(v)) for k, v in options.items())]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _source(text: str, base_dir: Path | None) -> tuple[Source | None, str | None]:
    """(the source ``text`` names, or None with why)."""
    if text in SHIPPED_SETS:
        return Source("shipped", text, f"shipped:{text}"), None
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if text.endswith(".npz") or path.exists():
        if not path.is_file():
            return None, f"no such file {text!r}" + (f" (looked in {base_dir})" if base_dir else "")
        if path.suffix != ".npz":
            return None, f"{text!r} is not an .npz file"
        stat = path.stat()
        return Source("npz", text, f"{path.resolve()}@{stat.st_size}:{stat.st_mtime_ns}"), None
    if is_entry(text):
        try:
            resolve_entry(text, base_dir)
        except QsimError as exc:
            return None, exc.message
        return Source("entry", text, f"entry:{text}"), None
    return None, (f"no file {text!r} and no shipped set of that name (shipped: {', '.join(SHIPPED_SETS)}); "
                  "an entry point is written package.module:function")


def _read(source: Source, base_dir: Path | None, what: str) -> tuple[Dataset, Dataset | None]:
    """(the data, the shipped set's own calibration or None)."""
    if source.kind == "shipped":
        return SHIPPED_SETS[source.text]()
    if source.kind == "npz":
        path = Path(source.ref.rsplit("@", 1)[0])
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:  # noqa: BLE001 - numpy raises several types for a damaged file
            raise QsimError(f"cannot read {source.text!r}: {type(exc).__name__}: {exc}") from None
        return from_arrays(arrays, source.text), None
    fn = resolve_entry(source.text, base_dir)
    try:
        result = fn()
        return from_batches(result, f"{what} {source.text}"), None
    except QsimError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's data function that fails
        raise QsimError(f"{source.text} failed: {type(exc).__name__}: {exc}") from None


def load_evaluation(block: Mapping, where: str, base_dir: Path | None = None,
                    prefix: str = "evaluation") -> Evaluation:
    """Parse and check an ``evaluation:`` block (see the module doc); read its data. Every problem
    is an EvaluationError naming ``where``, the line and ``prefix.KEY``."""
    where = str(where)
    base = getattr(block, "line", 0)
    lines = {"": base, **{k: line_of(block, k, base) for k in (block if isinstance(block, Mapping) else ())}}

    def fail(problems: list[Problem]):
        raise EvaluationError(file=where, problems=[Problem(p.message, line=p.line or base or None,
                                                            key=p.key) for p in problems])

    errors: list[Problem] = []
    BLOCK_SCHEMA.check(block, prefix, base, errors)
    if errors:
        fail(errors)

    def problem(key: str, message: str) -> Problem:
        return Problem(message, line=lines.get(key, base), key=f"{prefix}.{key}")

    name = block.get("metric")
    why = metric_problem(name if name is not None else "top1", block.get("k"))
    if why:
        errors.append(problem("k" if why.startswith("k is") else "metric", why))
    sources = {}
    for key in ("data", "calibration"):
        if key in block:
            sources[key], why = _source(block[key], base_dir)
            if why:
                errors.append(problem(key, why))
    if errors:
        fail(errors)
    try:
        data, own_calibration = _read(sources["data"], base_dir, "data")
    except QsimError as exc:
        fail([problem("data", exc.message)])
    if "calibration" in sources:
        try:
            calibration = _read(sources["calibration"], base_dir, "calibration")[0]
        except QsimError as exc:
            fail([problem("calibration", exc.message)])
        note = f"calibration: {sources['calibration'].text}"
    elif own_calibration is not None:
        calibration = own_calibration
        note = f"calibration: {len(calibration)} samples, {CALIBRATION_NOTES[block['data']]}"
    else:
        if len(data) < 2:
            fail([problem("data", "one sample cannot be split into calibration and evaluation data; "
                                  "give calibration:")])
        n_cal = max(1, len(data) // 10)
        calibration, data = data.take(0, n_cal), data.take(n_cal, len(data))
        note = f"calibration: the first {n_cal} samples of the data (left out of the evaluation)"
    samples = block.get("samples")
    if samples is not None:
        if samples > len(data):
            fail([problem("samples", f"{samples} samples requested; the evaluation data has {len(data)}")])
        data = data.take(0, samples)
    metric_name = name if name is not None else ("top1" if data.labels is not None else "cosine")
    metric = Metric(metric_name, block.get("k", 1), str(base_dir) if base_dir else None)
    if metric.needs_labels and data.labels is None:
        fail([problem("metric" if name is not None else "data",
                      f"metric {metric.label} needs labels; the data has none (add a 'labels' array, or use "
                      "cosine, sqnr or mse)")])
    fingerprint = json.dumps([sources["data"].ref, sources.get("calibration", Source("", "", "")).ref,
                              samples, block.get("batch"), metric.label, metric.name])
    return Evaluation(data, calibration, metric, where, lines, hashlib.sha256(fingerprint.encode()).hexdigest()[:16],
                      note, block.get("batch"), block.get("observer", "minmax"), prefix)
