"""Transformers.

* BERT-base (Devlin et al. 2019): 12 layers, hidden 768, 12 heads, FFN 3072, vocabulary 30,522,
  512 positions, GELU, post-LayerNorm; 110 M parameters (Hugging Face bert-base-uncased:
  109,482,240). About 11.2 GMACs for 128 tokens (12 x (4 x 768^2 + 2 x 768 x 3072) x 128 plus
  attention scores).
* A Llama-7B-class decoder (Touvron et al. 2023, LLaMA Table 2): 32 layers, hidden 4096, 32 heads,
  SwiGLU FFN 11008, vocabulary 32,000, RMSNorm, untied LM head: 6.74 B parameters. ``decode`` is one
  token attending over a KV cache of ``context`` positions; ``prefill`` processes ``seq`` tokens.
"""
from __future__ import annotations

from qsim.ir.builders.common import NetBuilder
from qsim.ir.graph import Graph


def bert(batch: int = 1, seq: int = 128, layers: int = 12, hidden: int = 768, heads: int = 12,
         ffn: int = 3072, vocab: int = 30522, max_positions: int = 512, name: str = "bert_base") -> Graph:
    b = NetBuilder(name, (batch, seq), input_name="input_ids", dtype="int64")
    g = b.graph
    g.add_input("position_ids", (batch, seq), "int64")
    g.add_input("token_type_ids", (batch, seq), "int64")
    words = b.node("Embedding", "word_embeddings", ["input_ids"], num_embeddings=vocab, embedding_dim=hidden)
    pos = b.node("Embedding", "position_embeddings", ["position_ids"], num_embeddings=max_positions,
                 embedding_dim=hidden)
    types = b.node("Embedding", "token_type_embeddings", ["token_type_ids"], num_embeddings=2,
                   embedding_dim=hidden)
    x = b.node("Add", "embed_add", [b.node("Add", "embed_add_pos", [words, pos]), types])
    x = b.node("LayerNorm", "embed_norm", [x])
    for i in range(layers):
        att = b.node("Attention", f"l{i}_attention", [x], heads=heads, bias=True)
        x = b.node("LayerNorm", f"l{i}_attn_norm", [b.node("Add", f"l{i}_attn_add", [x, att])])
        y = b.gemm(x, ffn, act="GELU", name=f"l{i}_ffn_in")
        y = b.gemm(y, hidden, name=f"l{i}_ffn_out")
        x = b.node("LayerNorm", f"l{i}_ffn_norm", [b.node("Add", f"l{i}_ffn_add", [x, y])])
    return b.finish(x)


def llama(batch: int = 1, seq: int = 1, context: int = 0, layers: int = 32, hidden: int = 4096,
          heads: int = 32, kv_heads: int | None = None, ffn: int = 11008, vocab: int = 32000,
          name: str = "llama7b") -> Graph:
    """``seq`` new tokens on top of ``context`` cached ones (decode: seq=1; prefill: context=0)."""
    b = NetBuilder(name, (batch, seq), input_name="input_ids", dtype="int64")
    x = b.node("Embedding", "embed_tokens", [b.x], num_embeddings=vocab, embedding_dim=hidden)
    for i in range(layers):
        h = b.node("RMSNorm", f"l{i}_attn_norm", [x])
        att = b.node("Attention", f"l{i}_attention", [h], heads=heads, kv_heads=kv_heads or heads,
                     past=context, kv_cache=True, causal=True, rotary=True)
        x = b.node("Add", f"l{i}_attn_add", [x, att])
        h = b.node("RMSNorm", f"l{i}_ffn_norm", [x])
        gate = b.gemm(h, ffn, act="SiLU", name=f"l{i}_gate", bias=False)
        up = b.gemm(h, ffn, name=f"l{i}_up", bias=False)
        y = b.gemm(b.node("Mul", f"l{i}_swiglu", [gate, up]), hidden, name=f"l{i}_down", bias=False)
        x = b.node("Add", f"l{i}_ffn_add", [x, y])
    x = b.node("RMSNorm", "final_norm", [x])
    return b.finish(b.gemm(x, vocab, name="lm_head", bias=False))
