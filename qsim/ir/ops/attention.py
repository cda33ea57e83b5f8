"""Attention: a multi-head (or grouped-query) self-attention block with a KV cache.

Input ``x`` is (batch, seq, hidden). The op covers the Q, K, V projections, scaled dot-product
attention over ``past + seq`` keys, and the output projection, so one node is one transformer
attention sub-layer. Attributes:

* heads, kv_heads (default heads: grouped-query when smaller), head_dim (default hidden/heads);
* past: the KV cache length already filled (0 for a prefill or an encoder);
* kv_cache: keep a KV cache (decoders): the op then owns k_cache/v_cache state;
* bias: whether projections carry biases (BERT yes, Llama no); causal is informative only;
* rotary: rotary position embeddings applied to q and k (Llama); the cost model counts the kernels a
  stack launches for them (qsim.cost.stack_kernels); the float kernel does not rotate.

Weights: wq (heads*hd, hidden), wk and wv (kv_heads*hd, hidden), wo (hidden, heads*hd).
State (kv_cache): k_cache and v_cache (batch, kv_heads, past + seq, head_dim): ``past`` rows read,
``seq`` rows written every call; the cost model charges them at the activation format.
"""
from __future__ import annotations

from qsim.ir.registry import CostClass, Inferred, QuantRule, Support, register


def _dims(inputs, attrs):
    b, s, hidden = inputs[0]
    heads = int(attrs["heads"])
    kv_heads = int(attrs.get("kv_heads", heads))
    hd = int(attrs.get("head_dim", hidden // heads))
    past = int(attrs.get("past", 0))
    return b, s, hidden, heads, kv_heads, hd, past


def _attention_macs(inputs, outputs, attrs) -> int:
    b, s, hidden, heads, kvh, hd, past = _dims(inputs, attrs)
    projections = b * s * hidden * (2 * heads * hd + 2 * kvh * hd)  # q, o + k, v
    scores_and_context = 2 * b * heads * s * (past + s) * hd  # QK^T and PV
    return projections + scores_and_context


def _attention_vector_ops(inputs, outputs, attrs) -> int:
    b, s, hidden, heads, kvh, hd, past = _dims(inputs, attrs)
    softmax = 6 * b * heads * s * (past + s)  # scale, max, sub, exp, sum, divide
    biases = b * s * (2 * heads * hd + 2 * kvh * hd) if attrs.get("bias", False) else 0
    return softmax + biases


def _kv_cache_io(inputs, attrs) -> tuple[int, int]:
    b, s, hidden, heads, kvh, hd, past = _dims(inputs, attrs)
    return 2 * b * kvh * past * hd, 2 * b * kvh * s * hd  # K and V: past rows read, new rows written


# No integer kernel: no runtime qsim models runs a whole attention block as one quantized op
# (imported models arrive as MatMul, Softmax, ... nodes). No GEMM view: several GEMM shapes in one node.
@register("Attention", cost_class=CostClass.MATRIX, float_kernel="float_ops.attention",
          int_kernel=Support.UNSUPPORTED, quant=QuantRule(weights=("wq", "wk", "wv", "wo")),
          bias_roles=("bq", "bk", "bv", "bo"),
          macs=_attention_macs, vector_ops=_attention_vector_ops, state_io=_kv_cache_io,
          attrs=("heads", "kv_heads", "head_dim", "past", "kv_cache", "bias", "causal", "rotary"))
def infer_attention(inputs, attrs) -> Inferred:
    if len(inputs) != 1 or len(inputs[0]) != 3:
        raise ValueError("Attention takes one (batch, seq, hidden) input")
    b, s, hidden, heads, kvh, hd, past = _dims(inputs, attrs)
    if heads <= 0 or kvh <= 0 or heads % kvh:
        raise ValueError(f"kv_heads={kvh} must divide heads={heads}")
    if "head_dim" not in attrs and hidden % heads:
        raise ValueError(f"hidden={hidden} is not divisible by heads={heads}; give head_dim")
    if past < 0:
        raise ValueError("past must be >= 0")
    weights = {"wq": (heads * hd, hidden), "wk": (kvh * hd, hidden), "wv": (kvh * hd, hidden),
               "wo": (hidden, heads * hd)}
    if attrs.get("bias", False):
        weights.update(bq=(heads * hd,), bk=(kvh * hd,), bv=(kvh * hd,), bo=(hidden,))
    if past and not attrs.get("kv_cache", False):
        raise ValueError("past > 0 needs kv_cache: true")
    cache = (b, kvh, past + s, hd)
    state = {"k_cache": cache, "v_cache": cache} if attrs.get("kv_cache", False) else {}
    return Inferred(outputs=((b, s, hidden),), weights=weights, state=state)
