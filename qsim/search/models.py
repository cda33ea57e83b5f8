"""The MODEL a search or sensitivity run takes: a float model with weights, buildable at any batch.

* ``digits``: the digits CNN (``qsim.evaluation.digits``), trained here in a few seconds (seeded);
* ``minilm``: all-MiniLM-L6-v2 (``qsim.evaluation.minilm``) with the embedding lookups on the host
  (graph input ``embed``), at the token count of the evaluation's sentences;
* an ``.onnx`` / ``.tflite`` float model file, or a workload YAML (path or shipped name) whose model
  carries weights (one naming such a file). Builders and explicit layer lists have no weights:
  enough for the cost model, not for measuring accuracy, and refused in one line.

The model is built twice: at the evaluation's batch for the simulations, and at the workload's
own batch (1 for the shipped models) for the cost model, as it would be deployed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from qsim.errors import QsimError
from qsim.ir.graph import Graph

SHIPPED_MODELS = ("digits", "minilm")
DIGITS_EPOCHS = 12  # as benchmarks/accuracy_tables.py and workloads/digits_cnn.yaml train it


@dataclass(frozen=True)
class SearchModel:
    name: str
    build: Callable[[int], Graph]  # batch -> the float graph with weights
    deploy_batch: int
    plan: object = None            # the workload's own plan (None: fp32 / not given)
    source: Path | None = None     # the file the model came from
    kind: str = "file"             # "digits", "minilm" or "file"


def load_search_model(text: str, evaluation=None) -> SearchModel:
    """``text``: a shipped model name or a model / workload file (see the module doc)."""
    if text == "digits":
        from qsim.evaluation.digits import digits_cnn  # trained once per process (as the digits_cnn workload)

        return SearchModel("digits_cnn", lambda batch: digits_cnn(batch, epochs=DIGITS_EPOCHS), 1, kind="digits")
    if text == "minilm":
        return _minilm(evaluation)
    from qsim.workload import load_workload, resolve_workload

    path = resolve_workload(text)
    if path.suffix not in (".onnx", ".tflite", ".yaml", ".yml"):
        raise QsimError(f"{text}: MODEL is a shipped model ({', '.join(SHIPPED_MODELS)}), an .onnx / .tflite file "
                        "or a workload .yaml")
    first = load_workload(path)
    _check_weights(first.graph, text)
    if first.graph.quant_params:
        raise QsimError(f"{text}: the model is already quantized; a search chooses precisions for a float model")
    plan = None if first.plan.name == "fp32" else first.plan
    deploy = first.graph.tensor(first.graph.inputs[0]).shape[0] if first.graph.inputs else 1

    def build(batch: int) -> Graph:
        return first.graph if batch == deploy else load_workload(path, batch=batch).graph

    return SearchModel(first.name, build, deploy, plan, path, "file")


def _minilm(evaluation) -> SearchModel:
    from qsim.evaluation import minilm as M

    seq = 13
    if evaluation is not None:
        arrays = evaluation.data.inputs
        seq = int(next(iter(arrays.values())).shape[1]) if arrays else seq
    weights = M.load_weights()
    return SearchModel("all-MiniLM-L6-v2", lambda batch: M.minilm_graph(batch, seq, weights, host_lookup=True), 1,
                       kind="minilm")


def _check_weights(graph: Graph, text: str) -> None:
    missing = [n.name for n in graph.nodes() for t in n.weights.values() if t not in graph.constants]
    if missing:
        raise QsimError(f"{text}: node {missing[0]!r} has no weight values (a builder or a layer list is enough "
                        "for the cost model, not for measuring accuracy); give an .onnx / .tflite model with "
                        "weights, or a workload that names one")


def eval_batch(evaluation, limit: int = 1024) -> int:
    """The batch to build the model at for the simulations: the block's ``batch``, else every
    sample in one run (up to ``limit``): fewer, larger runs of the compiled kernels."""
    return evaluation.batch or min(len(evaluation), limit)
