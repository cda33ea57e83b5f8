"""Run a float model at several precision plans and measure accuracy against the float reference.

Each run goes through the simulator's one flow (``qsim.sim.pipeline``: quantize for the plan,
choose the executor, run): the integer executor (bit-accurate for a runtime policy) where it
models the graph, else fake quantization (float kernels with quantize-dequantize at every quantized
tensor), and the tables say which one ran.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from qsim.ir.graph import Graph
from qsim.sim.metrics import accuracy, real_value, row_cosine, sqnr_db, topk_agreement
from qsim.sim.compiled import CompiledModel
from qsim.sim.pipeline import prepare, run_model


def execute(qgraph: Graph, feeds: Mapping[str, np.ndarray], executor: str = "auto",
            policy: str = "onnxruntime") -> tuple[dict, str, pd.DataFrame | None]:
    """(real-valued outputs, how it ran, executor stats or None) of a quantized graph."""
    run = run_model(qgraph, feeds, policy, executor)
    return {t: real_value(qgraph, t, v) for t, v in run.outputs.items()}, run.how, run.stats


def _batches(feeds) -> list[Mapping[str, np.ndarray]]:
    return [feeds] if isinstance(feeds, Mapping) else list(feeds)


def _concat(parts: list[dict]) -> dict:
    return {t: np.concatenate([p[t] for p in parts]) for t in parts[0]}


def quantized_outputs(graph: Graph, plan, calib: list[dict], feeds, observer: str = "minmax",
                      executor: str = "auto", policy: str = "onnxruntime"):
    """Outputs of ``graph`` at ``plan`` (fp32: the float reference itself) over one feed dict or a
    list of batches (outputs concatenated along axis 0), and how they were run. ``plan`` may be a
    pair (plan, quantize_graph keyword options), e.g. ``("w4a16", {"weight_block": 32})``."""
    plan, options = plan if isinstance(plan, tuple) else (plan, {})
    q = prepare(graph, plan, calib, observer, **options)
    model = CompiledModel(q, policy=policy, executor=executor, counts=True)  # prepared once, run per batch
    outs, first = [], None
    for f in _batches(feeds):
        outs.append({t: real_value(q, t, v) for t, v in model.run(f).items()})
        first = first or model.last_run
    return _concat(outs), first.how, first.stats


def _per_plan(graph: Graph, plans: Mapping[str, object], calib, feeds, observer, executor, policy,
              row) -> pd.DataFrame:
    """One row per plan: ``row(float output, quantized output)`` plus the plan's name and executor."""
    out = graph.outputs[0]
    ref = quantized_outputs(graph, "fp32", calib, feeds)[0][out]
    rows = []
    for name, plan in plans.items():
        outs, how, _ = quantized_outputs(graph, plan, calib, feeds, observer, executor, policy)
        rows.append({"precision": name, **row(ref, outs[out]), "executed_by": how})
    return pd.DataFrame(rows)


def classifier_table(graph: Graph, plans: Mapping[str, object], calib: list[dict], feeds, labels,
                     observer: str = "minmax", executor: str = "auto", policy: str = "onnxruntime") -> pd.DataFrame:
    """One row per plan: accuracy, top-1 agreement with float, SQNR of the logits, executor."""
    return _per_plan(graph, plans, calib, feeds, observer, executor, policy, lambda ref, logits: {
        "accuracy": accuracy(logits, labels), "top1_agreement": topk_agreement(ref, logits, 1),
        "logits_sqnr_db": sqnr_db(ref, logits)})


def embedding_table(graph: Graph, plans: Mapping[str, object], calib: list[dict], feeds,
                    observer: str = "minmax", executor: str = "auto", policy: str = "onnxruntime") -> pd.DataFrame:
    """One row per plan: mean / min per-sample cosine similarity of the embeddings with float."""
    def row(ref, emb):
        cos = row_cosine(ref, emb)
        return {"mean_cosine": float(np.mean(cos)), "min_cosine": float(np.min(cos)), "sqnr_db": sqnr_db(ref, emb)}

    return _per_plan(graph, plans, calib, feeds, observer, executor, policy, row)


def markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a GitHub markdown table (no tabulate dependency)."""
    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
