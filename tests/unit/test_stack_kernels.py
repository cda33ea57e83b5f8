"""Kernels PyTorch eager launches for transformer blocks as Hugging Face transformers writes them
(``lowering: hf-transformers``), counted by hand from transformers' modeling_llama.py / modeling_bert.py
(see qsim/cost/stack_kernels.py for the line-by-line list)."""
from __future__ import annotations

import pytest

from qsim.cost import estimate_graph
from qsim.cost.stack_kernels import stack_kernels
from qsim.hw.profile import load_profile
from qsim.ir import Graph
from qsim.ir.builders import build
from qsim.precision import PrecisionPlan


def _launches(graph, precision: str, stack: str, **overrides):
    profile = load_profile("cloud", {"stack": stack, **{f"stacks.{stack}.{k}": v for k, v in overrides.items()}})
    return estimate_graph(graph, PrecisionPlan.uniform(precision), profile).layers.set_index("name").launches


def _layer(launches, prefix: str) -> int:
    return int(launches[[n for n in launches.index if n.startswith(prefix)]].sum())


def test_bert_layer_kernels_under_eager_pytorch():
    bert = build("bert", batch=1, seq=128)
    sdpa = _launches(bert, "fp16", "pytorch-eager")
    # q, k, v Linears (bias in the cuBLASLt epilogue), SDPA, o Linear, residual add, LayerNorm,
    # intermediate Linear, GELU, output Linear, residual add, LayerNorm
    assert _layer(sdpa, "l0_") == 3 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 == 12
    # embeddings: word, token type, add, position, add, LayerNorm
    assert int(sdpa.sum()) == 6 + 12 * 12
    # eager_attention_forward: QK^T, * scaling, + mask, softmax (fp32), .to(dtype), PV, contiguous
    eager = _launches(bert, "fp16", "pytorch-eager", attention="unfused")
    assert _layer(eager, "l0_") == 12 - 1 + 7 == 18
    # int8, dynamic per-tensor scaling: per Linear (6 a layer) amax, scale, cast, int32 rescale, bias add
    int8 = _launches(bert, "int8", "pytorch-eager")
    assert _layer(int8, "l0_") == 12 + 6 * 5 == 42
    # a fused engine: one QKV GEMM, flash, output GEMM (+ add), LayerNorm, FFN GEMMs (+ GELU, + add), LayerNorm
    fused = _launches(bert, "fp16", "tensorrt")
    assert _layer(fused, "l0_") == 3 + 1 + 1 + 1 + 1 == 7


def test_llama_layer_kernels_under_eager_pytorch():
    llama = build("llama", seq=1, context=1023)
    fp16 = _launches(llama, "fp16", "pytorch-eager")
    rms = 8  # LlamaRMSNorm: to(fp32), pow, mean, + eps, rsqrt, *, to(fp16), weight *
    attention = 4 + 10 + 2 + 1  # q, k, v, o proj; rotary 5 each for q and k; cache cat K and V; SDPA
    mlp = 5  # gate, up, SiLU, *, down
    assert fp16["l0_attention"] == attention == 17
    assert fp16["l0_attn_norm"] == rms
    assert _layer(fp16, "l0_") == rms + attention + 1 + rms + mlp + 1 == 40
    assert int(fp16.sum()) == 1 + 32 * 40 + rms + 1  # embedding, layers, final norm, lm_head
    # fp8 with dynamic scaling: amax, scale and cast before each of the 7 projections (scaled_mm's
    # epilogue applies the scales), and before lm_head
    fp8 = _launches(llama, "fp8", "pytorch-eager")
    assert _layer(fp8, "l0_") == 40 + 7 * 3
    assert int(fp8.sum()) == int(fp16.sum()) + 32 * 21 + 3
    fp32 = _launches(llama, "fp32", "pytorch-eager")  # the RMSNorm casts are no-ops in fp32
    assert fp32["l0_attn_norm"] == 6


def test_extra_kernel_bytes_by_hand():
    g = Graph("norm")
    g.add_input("x", (1, 1, 4096))
    g.add_node("RMSNorm", "n", ["x"])
    g.mark_output("n")
    stack = load_profile("cloud", {"stack": "pytorch-eager"}).stack
    n = 4096
    kernels = stack_kernels(g, g.node("n"), stack, 16)
    # fp32 intermediates: cast 2n -> 4n, pow 4n -> 4n, mean 4n -> 4, + eps 4 -> 4, rsqrt 4 -> 4,
    # x * rsqrt 4n + 4 -> 4n, cast back 4n -> 2n
    assert sum(k.bytes_moved for k in kernels) == 6 * n + 8 * n + 4 * n + 4 + 8 + 8 + 8 * n + 4 + 6 * n
    # decode over 1023 cached positions: DynamicCache's cat copies all 1024 rows of K and V
    llama = build("llama", seq=1, context=1023, layers=1)
    att = llama.node("l0_attention")
    cache = [k for k in stack_kernels(llama, att, stack, 16) if k.name.startswith("cache_")]
    assert [k.bytes_moved for k in cache] == [2 * 32 * 1024 * 128 * 2] * 2
    static = load_profile("cloud", {"stack": "pytorch-cudagraph"}).stack  # StaticCache: the new row only
    assert [k.bytes_moved for k in stack_kernels(llama, att, static, 16) if k.name.startswith("cache_")] == \
        [2 * 32 * 1 * 128 * 2] * 2


def test_stack_kernels_run_after_the_node_at_the_copy_bandwidth():
    g = Graph("norm")
    g.add_input("x", (1, 512, 4096))
    g.add_node("RMSNorm", "n", ["x"])
    g.mark_output("n")
    profile = load_profile("cloud", {"stack": "pytorch-cudagraph"})
    row = estimate_graph(g, PrecisionPlan.uniform("fp16"), profile).layers.iloc[0]
    extra = sum(k.bytes_moved for k in stack_kernels(g, g.node("n"), profile.stack, 16))
    assert row.stack_kernels_s == pytest.approx(extra / 3007.8e9)
    assert row.latency_s == pytest.approx(8 * 4.56e-6 + max(row.compute_s, row.memory_s) + row.stack_kernels_s)


def test_decode_gemv_streams_its_weights_at_the_copy_bandwidth():
    g = Graph("gemv")
    g.add_input("x", (1, 1, 4096))
    g.add_node("Gemm", "up", ["x"], {"out_features": 11008, "bias": False})
    g.mark_output("up")
    row = estimate_graph(g, PrecisionPlan.uniform("fp16"), load_profile("cloud", {"stack": "pytorch-cudagraph"})
                         ).layers.iloc[0]
    assert row.bound == "memory"
    assert row.latency_s == pytest.approx(4.56e-6 + (4096 * 11008 + 4096 + 11008) * 2 / 3007.8e9)


def test_eager_host_issues_module_kernels_and_plain_ops_at_their_own_costs():
    llama = build("llama", seq=1, context=15, layers=1)
    profile = load_profile("cloud", {"stack": "pytorch-eager"})
    est = estimate_graph(llama, PrecisionPlan.uniform("fp16"), profile)
    layers = est.layers.set_index("name")
    # Attention: q_proj (the node's own), k/v/o_proj Linears; rotary 10, cache cat 2, SDPA 1 plain ops
    assert layers.loc["l0_attention", "launches"] == 17 and layers.loc["l0_attention", "stack_op_launches"] == 13
    assert layers.loc["l0_attn_norm", "stack_op_launches"] == 7  # LlamaRMSNorm's steps before `weight *`
    kernels, ops = int(layers.launches.sum()), int(layers.stack_op_launches.sum())
    assert (kernels, ops) == (1 + 40 + 8 + 1, 13 + 7 + 7 + 7)
    host = (kernels - ops) * 26.46e-6 + ops * 13.49e-6
    assert host > float(layers.latency_s.sum())  # one decode layer at batch 1 waits on the host
    assert est.totals["latency_s"] == pytest.approx(host)


def test_prefill_under_eager_starts_the_dynamic_cache_without_a_copy():
    prefill = _launches(build("llama", seq=512, layers=1), "fp16", "pytorch-eager")
    assert prefill["l0_attention"] == 17 - 2  # DynamicCache keeps the first K and V: no torch.cat
    graph = _launches(build("llama", seq=512, layers=1), "fp16", "pytorch-cudagraph")
    assert graph["l0_attention"] == 17  # StaticCache: index_copy_ of K and V
