"""A small byte-level causal transformer (GPT-style, pre-LayerNorm) for the LLM recipes, with nothing
downloaded: it is trained at benchmark time (``qsim.evaluation.decoder_train``) on the Python
documentation text that the standard library ships (``pydoc_data.topics``, ~0.75 MB of English
prose and code), and evaluated by perplexity on held-out text.

The graph is written op by op, so that every matrix product is a node the simulator can quantize:
token + position Embeddings -> Add -> L x [LayerNorm -> Q, K, V Gemm -> Reshape/Transpose to heads
-> MatMul(Q, K^T) -> AddConst (causal mask, -1e9 above the diagonal) -> Softmax -> MatMul(P, V) ->
Transpose/Reshape -> output Gemm -> Add residual -> LayerNorm -> Gemm 4d -> GELU (erf) -> Gemm d ->
Add residual] -> LayerNorm -> LM head Gemm (256 logits, no bias). The 1/sqrt(head_dim) score scale
is folded into the Q projection, as exporters fuse it. Inputs ``ids`` and ``positions`` (int64,
(batch, seq)); output ``logits`` (batch, seq, 256).

Weights are a dict of numpy arrays (``decoder_train.export``), named as in ``Config.names``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsim.errors import QsimError
from qsim.ir.graph import Graph

VOCAB, EPS = 256, 1e-5


@dataclass(frozen=True)
class Config:
    layers: int = 2
    hidden: int = 128
    heads: int = 4
    ffn: int = 512
    max_positions: int = 128


def corpus() -> bytes:
    """The standard library's pydoc topics text, as bytes (deterministic order)."""
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics)).encode("utf-8")


def split(text: bytes, held_out: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) byte arrays: the last ``held_out`` fraction is never trained on."""
    data = np.frombuffer(text, np.uint8).astype(np.int64)
    cut = int(len(data) * (1 - held_out))
    return data[:cut], data[cut:]


def windows(data: np.ndarray, seq: int, count: int, offset: int = 0) -> np.ndarray:
    """``count`` consecutive, non-overlapping windows of ``seq + 1`` bytes (inputs and next-byte targets)."""
    need = count * (seq + 1)
    if offset + need > len(data):
        raise QsimError(f"the text has {len(data)} bytes; {count} windows of {seq + 1} need {need} from {offset}")
    return data[offset:offset + need].reshape(count, seq + 1)


def feeds(ids: np.ndarray) -> dict[str, np.ndarray]:
    return {"ids": np.ascontiguousarray(ids, np.int64),
            "positions": np.broadcast_to(np.arange(ids.shape[1]), ids.shape).astype(np.int64)}


def perplexity(logits: np.ndarray, targets: np.ndarray) -> float:
    """exp(mean negative log-likelihood of the next byte), computed in float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    nll = -np.take_along_axis(logp, np.asarray(targets)[..., None], axis=-1)
    return float(np.exp(nll.mean()))


def _gemm(g: Graph, name: str, x: str, w: np.ndarray, b: np.ndarray | None) -> str:
    g.add_node("Gemm", name, [x], {"out_features": w.shape[0], "bias": b is not None})
    g.constants[f"{name}.weight"] = np.asarray(w, np.float32)
    if b is not None:
        g.constants[f"{name}.bias"] = np.asarray(b, np.float32)
    return name


def _layernorm(g: Graph, name: str, x: str, w: dict, prefix: str) -> str:
    g.add_node("LayerNorm", name, [x], {"eps": EPS})
    g.constants[f"{name}.gamma"] = np.asarray(w[f"{prefix}.weight"], np.float32)
    g.constants[f"{name}.beta"] = np.asarray(w[f"{prefix}.bias"], np.float32)
    return name


def _heads(g: Graph, name: str, x: str, heads: int, hd: int, perm: tuple[int, ...]) -> str:
    g.add_node("Reshape", f"{name}.split", [x], {"shape": (0, 0, heads, hd)})
    g.add_node("Transpose", f"{name}.heads", [f"{name}.split"], {"perm": perm})
    return f"{name}.heads"


def _block(g: Graph, i: int, x: str, w: dict, cfg: Config, seq: int) -> str:
    p, n = f"blocks.{i}", f"l{i}"
    hd = cfg.hidden // cfg.heads
    scale = np.float32(1.0 / np.sqrt(hd))
    h = _layernorm(g, f"{n}.ln1", x, w, f"{p}.ln1")
    q = _gemm(g, f"{n}.q", h, w[f"{p}.q.weight"] * scale, w[f"{p}.q.bias"] * scale)
    k = _gemm(g, f"{n}.k", h, w[f"{p}.k.weight"], w[f"{p}.k.bias"])
    v = _gemm(g, f"{n}.v", h, w[f"{p}.v.weight"], w[f"{p}.v.bias"])
    qh = _heads(g, q, q, cfg.heads, hd, (0, 2, 1, 3))
    kh = _heads(g, k, k, cfg.heads, hd, (0, 2, 3, 1))
    vh = _heads(g, v, v, cfg.heads, hd, (0, 2, 1, 3))
    g.add_node("MatMul", f"{n}.scores", [qh, kh])
    g.add_node("AddConst", f"{n}.mask", [f"{n}.scores"], {"operand_shape": (seq, seq)})
    g.constants[f"{n}.mask.operand"] = np.triu(np.full((seq, seq), -1e9, np.float32), 1)
    g.add_node("Softmax", f"{n}.probs", [f"{n}.mask"], {"axis": -1})
    g.add_node("MatMul", f"{n}.context", [f"{n}.probs", vh])
    g.add_node("Transpose", f"{n}.merge", [f"{n}.context"], {"perm": (0, 2, 1, 3)})
    g.add_node("Reshape", f"{n}.concat", [f"{n}.merge"], {"shape": (0, 0, cfg.hidden)})
    o = _gemm(g, f"{n}.o", f"{n}.concat", w[f"{p}.o.weight"], w[f"{p}.o.bias"])
    g.add_node("Add", f"{n}.res1", [x, o])
    h = _layernorm(g, f"{n}.ln2", f"{n}.res1", w, f"{p}.ln2")
    f = _gemm(g, f"{n}.fc1", h, w[f"{p}.fc1.weight"], w[f"{p}.fc1.bias"])
    g.add_node("GELU", f"{n}.gelu", [f])
    f = _gemm(g, f"{n}.fc2", f"{n}.gelu", w[f"{p}.fc2.weight"], w[f"{p}.fc2.bias"])
    g.add_node("Add", f"{n}.res2", [f"{n}.res1", f])
    return f"{n}.res2"


def decoder_graph(weights: dict[str, np.ndarray], cfg: Config, batch: int, seq: int) -> Graph:
    """The decoder for (batch, seq) byte ids (every position predicts the next byte)."""
    if not 1 <= seq <= cfg.max_positions:
        raise QsimError(f"sequence length must be 1..{cfg.max_positions} bytes, got {seq}")
    g = Graph(f"byte-decoder-{cfg.layers}x{cfg.hidden}")
    g.add_input("ids", (batch, seq), dtype="int64")
    g.add_input("positions", (batch, seq), dtype="int64")
    g.add_node("Embedding", "tok", ["ids"], {"num_embeddings": VOCAB, "embedding_dim": cfg.hidden})
    g.add_node("Embedding", "pos", ["positions"], {"num_embeddings": seq, "embedding_dim": cfg.hidden})
    g.constants["tok.weight"] = np.asarray(weights["tok.weight"], np.float32)
    g.constants["pos.weight"] = np.asarray(weights["pos.weight"][:seq], np.float32)
    g.add_node("Add", "embed", ["tok", "pos"])
    x = "embed"
    for i in range(cfg.layers):
        x = _block(g, i, x, weights, cfg, seq)
    x = _layernorm(g, "lnf", x, weights, "lnf")
    _gemm(g, "logits", x, weights["head.weight"], None)
    g.mark_output("logits")
    return g.validate()
