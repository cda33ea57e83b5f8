"""What ``qsim sensitivity`` and ``qsim search`` read before any simulation: the model, the
evaluation data (an ``evaluation:`` block built from the flags), the base plan; every problem is
one line before the first measurement."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.search.models import SHIPPED_MODELS, SearchModel, eval_batch, load_search_model


@dataclass(frozen=True)
class SearchInputs:
    model: SearchModel
    graph: Graph        # at the evaluation batch, for the simulations
    cost_graph: Graph   # at the deployment batch, for the cost model
    evaluation: object  # qsim.evaluation.data.Evaluation
    base: object        # the base plan


def load_inputs(model_text: str, data: str | None, samples: int | None = None, calibration: str | None = None,
                metric: str | None = None, batch: int | None = None, base: str | None = None) -> SearchInputs:
    from qsim.evaluation.data import load_evaluation
    from qsim.search.space import parse_base

    block, where, base_dir = {"data": data}, "command line", Path.cwd()
    if data is None:
        own = _workload_block(model_text)
        if own is None and model_text not in SHIPPED_MODELS:
            raise QsimError(f"--data is required for {model_text} (a shipped set: digits, minilm; a file.npz; "
                            "or package.module:function), unless its workload has an evaluation: block")
        block, where, base_dir = own or ({"data": model_text}, where, base_dir)
    block = dict(block)
    for key, value in (("samples", samples), ("calibration", calibration), ("metric", metric), ("batch", batch)):
        if value is not None:
            block[key] = value
    evaluation = load_evaluation(block, where, base_dir)
    model = load_search_model(model_text, evaluation)
    graph = model.build(eval_batch(evaluation))
    evaluation.check(graph)
    cost_graph = model.build(model.deploy_batch)
    base_plan = parse_base(base if base is not None else (model.plan or "int8"), cost_graph)
    return SearchInputs(model, graph, cost_graph, evaluation, base_plan)


def _workload_block(model_text: str):
    """(a workload file's own ``evaluation:`` block, the file, its folder), or None."""
    from qsim.files import path_exists
    from qsim.workload import resolve_workload
    from qsim.yamlio import load_yaml

    path = resolve_workload(model_text)
    if path.suffix not in (".yaml", ".yml") or not path_exists(path):
        return None
    data = load_yaml(path)
    block = data.get("evaluation") if isinstance(data, Mapping) else None
    return (block, str(path), path.parent) if isinstance(block, Mapping) else None
