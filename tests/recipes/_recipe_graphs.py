"""Small graphs for recipe tests: a fixed-seed untrained byte decoder, and LayerNorm -> Gemm chains."""
from __future__ import annotations

import numpy as np

from qsim.evaluation.decoder import Config, decoder_graph, feeds
from qsim.ir.graph import Graph

TINY = Config(layers=2, hidden=32, heads=2, ffn=64, max_positions=16)


def tiny_decoder(batch: int = 3, seq: int = 12, seed: int = 1):
    """(graph, calibration batches, torch module) of an untrained decoder with fixed weights."""
    from qsim.evaluation.decoder_train import export, model

    net = model(TINY, seed).eval()
    ids = np.random.default_rng(seed).integers(32, 127, (batch, seq))
    return decoder_graph(export(net), TINY, batch, seq), [feeds(ids)], net


def norm_linear(norm: str = "LayerNorm", outlier: float = 30.0, seed: int = 0) -> tuple[Graph, list[dict]]:
    """x -> {norm} -> two Gemms (q, k) -> Add; channel 0 of the normalised input carries an outlier."""
    rng = np.random.default_rng(seed)
    g = Graph("norm-linear")
    g.add_input("x", (4, 8))
    g.add_node(norm, "ln", ["x"])
    g.add_node("Gemm", "q", ["ln"], {"out_features": 6})
    g.add_node("Gemm", "k", ["ln"], {"out_features": 6})
    g.add_node("Add", "sum", ["q", "k"])
    g.mark_output("sum")
    gamma = np.ones(8, np.float32)
    gamma[0] = outlier
    g.constants["ln.gamma"] = gamma
    if norm == "LayerNorm":
        g.constants["ln.beta"] = rng.normal(size=8).astype(np.float32)
    for n in ("q", "k"):
        g.constants[f"{n}.weight"] = rng.normal(size=(6, 8)).astype(np.float32)
        g.constants[f"{n}.bias"] = rng.normal(size=6).astype(np.float32)
    return g.validate(), [{"x": rng.normal(size=(4, 8)).astype(np.float32)} for _ in range(2)]
