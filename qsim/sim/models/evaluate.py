"""Run a float model at several precision plans and measure accuracy against the float reference.

``execute`` runs a quantized graph with the integer executor (``qsim.sim.integer``, bit-accurate
for a runtime policy) or with fake quantization (``run_fake_quant``: float kernels with
quantize-dequantize at every quantized tensor) and says which one ran, since tables must say so.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.precision import parse_plan
from qsim.sim.executor import run_float
from qsim.sim.metrics import accuracy, real_value, row_cosine, sqnr_db, topk_agreement
from qsim.sim.quantize_graph import quantize_graph, run_fake_quant

EXECUTORS = ("auto", "integer", "fake")


def integer_available() -> bool:
    try:
        import qsim.sim.integer  # noqa: F401  (written in parallel; absent in older checkouts)
    except ImportError:
        return False
    return True


def integer_ready(qgraph: Graph) -> bool:
    """Whether the integer executor models this graph: it has every op, and no activation is fp16/bf16 (the executor keeps unquantized tensors in fp32, while
    ``run_fake_quant`` rounds them to their format: w8a16 plans)."""
    from qsim.sim.integer import INT_OPS

    half = any(s.kind == "activation" and s.dtype in ("float16", "bfloat16") for s in qgraph.tensors.values())
    return not half and all(n.op in INT_OPS for n in qgraph.nodes())


def execute(qgraph: Graph, feeds: Mapping[str, np.ndarray], executor: str = "auto",
            policy: str = "onnxruntime") -> tuple[dict, str, pd.DataFrame | None]:
    """(real-valued outputs, how it ran, executor stats or None). ``auto``: the integer executor
    when it is present and reads the graph (``integer_ready``), else fake quantization."""
    if executor not in EXECUTORS:
        raise QsimError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    if executor == "integer" or executor == "auto" and integer_available() and integer_ready(qgraph):
        from qsim.sim.integer import run_integer

        res = run_integer(qgraph, feeds, policy)
        modes = res.stats["mode"].value_counts()
        how = f"integer executor ({policy}): {int(modes.get('integer', 0))}/{len(res.stats)} nodes integer"
        if any(q.fmt.element_type.startswith("float8") for q in qgraph.quant_params.values()):
            how += ", fp8 by value emulation"
        outs, stats = res.outputs, res.stats
    else:
        outs, how, stats = run_fake_quant(qgraph, feeds), "fake quantization (float kernels, QDQ)", None
    return {t: real_value(qgraph, t, v) for t, v in outs.items()}, how, stats


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
    p = parse_plan(plan)
    if p.name == "fp32":
        return _concat([run_float(graph, f) for f in _batches(feeds)]), "float reference", None
    q = quantize_graph(graph, p, calib, **{"observer": observer, **options})
    runs = [execute(q, f, executor, policy) for f in _batches(feeds)]
    return _concat([r[0] for r in runs]), runs[0][1], runs[0][2]


def classifier_table(graph: Graph, plans: Mapping[str, object], calib: list[dict], feeds, labels,
                     observer: str = "minmax", executor: str = "auto", policy: str = "onnxruntime") -> pd.DataFrame:
    """One row per plan: accuracy, top-1 agreement with float, SQNR of the logits, executor."""
    out = graph.outputs[0]
    ref = quantized_outputs(graph, "fp32", calib, feeds)[0][out]
    rows = []
    for name, plan in plans.items():
        outs, how, _ = quantized_outputs(graph, plan, calib, feeds, observer, executor, policy)
        logits = outs[out]
        rows.append({"precision": name, "accuracy": accuracy(logits, labels),
                     "top1_agreement": topk_agreement(ref, logits, 1), "logits_sqnr_db": sqnr_db(ref, logits),
                     "executed_by": how})
    return pd.DataFrame(rows)


def embedding_table(graph: Graph, plans: Mapping[str, object], calib: list[dict], feeds,
                    observer: str = "minmax", executor: str = "auto", policy: str = "onnxruntime") -> pd.DataFrame:
    """One row per plan: mean / min per-sample cosine similarity of the embeddings with float."""
    out = graph.outputs[0]
    ref = quantized_outputs(graph, "fp32", calib, feeds)[0][out]
    rows = []
    for name, plan in plans.items():
        outs, how, _ = quantized_outputs(graph, plan, calib, feeds, observer, executor, policy)
        cos = row_cosine(ref, outs[out])
        rows.append({"precision": name, "mean_cosine": float(np.mean(cos)), "min_cosine": float(np.min(cos)),
                     "sqnr_db": sqnr_db(ref, outs[out]), "executed_by": how})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a GitHub markdown table (no tabulate dependency)."""
    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
