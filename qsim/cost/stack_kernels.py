"""The kernels a software stack launches for one node beyond the node's own kernel.

Each is a kernel of its own: launched (and, on an eager stack, issued by the host), and run after
the node's kernel, memory-bound at the stack's elementwise fraction of the copy bandwidth
(qsim.cost.estimate adds them serially, never under the node's roofline). ``bytes_moved`` counts
bytes read plus written beyond what the node's own row already charges; ``module_call`` tells a
Linear module's kernel (host cost per kernel) from a plain tensor op (host cost per op).

* Attention (key ``attention``): fused: one flash kernel between the projections (a fused engine
  runs QKV as one GEMM: 2 extra kernels); unfused: the score matrix goes through memory.
* ``lowering: hf-transformers``: the transformer block as Hugging Face transformers writes it in
  PyTorch modules (transformers src/transformers/models/llama/modeling_llama.py; BERT's
  modeling_bert.py shares ``eager_attention_forward`` and the SDPA path):
  - separate q_proj / k_proj / v_proj / o_proj Linears (4 GEMMs; at::linear puts the bias in the
    cuBLASLt epilogue, so no bias kernel at 16/32 bits);
  - ``attention: fused``: ``F.scaled_dot_product_attention`` (one flash / memory-efficient kernel; its
    output is laid out (batch, seq, heads, dim), so ``transpose(1, 2).contiguous()`` is a view);
    ``unfused``: ``eager_attention_forward``: QK^T matmul, ``* scaling``, ``+ mask``, softmax in fp32,
    ``.to(dtype)``, PV matmul, ``transpose(1, 2).contiguous()``: 7 kernels;
  - rotary embeddings (attribute ``rotary``): ``apply_rotary_pos_emb`` runs ``q * cos``,
    ``rotate_half(q)`` (a negation and a ``torch.cat``), ``* sin`` and the add: 5 kernels each for q and k;
  - the KV cache (attribute ``kv_cache``): ``kv_cache_update: concat`` (DynamicCache: ``torch.cat``
    copies the whole cache, K and V, once it holds anything) or ``in_place`` (StaticCache:
    ``index_copy_`` of the new rows);
  - RMSNorm as ``LlamaRMSNorm``: ``.to(float32)``, ``pow(2)``, ``mean``, ``+ eps``, ``rsqrt``, ``*``,
    ``.to(input dtype)``, ``weight *``: 8 kernels (6 in fp32, where the casts are no-ops).
* ``quantize: separate``: before each quantized projection a cast kernel; with
  ``activation_scale: dynamic`` also an amax reduction and a scale kernel (per-tensor dynamic
  scaling); an integer GEMM (``torch._int_mm``) returns int32, rescaled to 16 bits in a kernel of its
  own, and its bias is added in another (fp8 ``torch._scaled_mm`` applies scales and bias in its epilogue).
* ``layout_conversion``: an NCHW <-> NHWC transpose on the graph's input and output.
"""
from __future__ import annotations

from dataclasses import dataclass

from qsim.hw.stack_profile import Stack
from qsim.ir.registry import get_op

# Kernels an Attention node launches besides its own one, when no lowering splits it: fused (flash):
# QKV projection, flash kernel, output projection; unfused: Q, K, V, scores, softmax, context, output.
ATTENTION_EXTRA_KERNELS = {"fused": 2, "unfused": 6}
HF = "hf-transformers"


@dataclass(frozen=True)
class Kernel:
    name: str
    bytes_moved: int
    module_call: bool = False  # issued through an nn.Module call (a Linear); else a plain tensor op


def _attention_dims(graph, node):
    b, s, hidden = graph.tensor(node.inputs[0]).shape
    heads = int(node.attrs["heads"])
    kvh = int(node.attrs.get("kv_heads", heads))
    hd = int(node.attrs.get("head_dim", hidden // heads))
    return b, s, hidden, heads, kvh, hd, int(node.attrs.get("past", 0))


def _attention_core(graph, node, stack: Stack, wide: int) -> list[Kernel]:
    """The kernels between the projections (without a lowering: the fused engine's 2 or the 6 of
    an unfused attention, with the score matrix through memory)."""
    b, s, hidden, heads, kvh, hd, past = _attention_dims(graph, node)
    scores = b * heads * s * (past + s)  # elements of the score matrix
    ctx = b * s * heads * hd
    if stack.lowering != HF:
        n = ATTENTION_EXTRA_KERNELS[stack.attention]
        moved = 4 * scores * wide if stack.attention == "unfused" else 0  # QK^T writes, softmax r+w, PV reads
        return [Kernel(f"attention_{i}", moved if i == 0 else 0) for i in range(n)]
    kernels = [Kernel(f"{p}_proj", 0, module_call=True) for p in "kvo"]  # the node's own kernel is q_proj
    if node.attrs.get("rotary"):
        for which, elems in (("q", ctx), ("k", b * s * kvh * hd)):
            kernels += [Kernel(f"rope_{which}_neg", elems * wide), Kernel(f"rope_{which}_cat", 2 * elems * wide),
                        Kernel(f"rope_{which}_mul_cos", 2 * elems * wide),
                        Kernel(f"rope_{which}_mul_sin", 2 * elems * wide),
                        Kernel(f"rope_{which}_add", 3 * elems * wide)]
    # DynamicCache keeps the first call's K and V as they are (no cat on an empty cache)
    if node.attrs.get("kv_cache") and (past or stack.kv_cache_update == "in_place"):
        rows = (past + s) if stack.kv_cache_update == "concat" else s
        kernels += [Kernel(f"cache_{t}_{stack.kv_cache_update}", 2 * b * kvh * rows * hd * wide) for t in "kv"]
    if stack.attention != "unfused":  # SDPA unless the stack says the scores go through memory
        return kernels + [Kernel("sdpa", 0)]
    return kernels + [Kernel("qk_matmul", scores * wide), Kernel("scale", 2 * scores * wide),
                      Kernel("mask_add", 2 * scores * wide), Kernel("softmax_fp32", scores * (wide + 4)),
                      Kernel("softmax_cast", scores * (4 + wide)), Kernel("pv_matmul", scores * wide),
                      Kernel("context_contiguous", 2 * ctx * wide)]


def _rms_norm(graph, node, wide: int) -> list[Kernel]:
    """LlamaRMSNorm's kernels beyond the last ``weight *`` (the node's own)."""
    shape = graph.tensor(node.inputs[0]).shape
    n = graph.tensor(node.inputs[0]).numel
    rows = n // shape[-1]
    casts = wide != 4
    kernels = [Kernel("to_fp32", n * (wide + 4))] if casts else []
    kernels += [Kernel("pow", 8 * n), Kernel("mean", 4 * n + 4 * rows), Kernel("add_eps", 8 * rows),
                Kernel("rsqrt", 8 * rows), Kernel("mul_rsqrt", 8 * n + 4 * rows)]
    return kernels + ([Kernel("to_input_dtype", n * (4 + wide))] if casts else [])


def _quantize(graph, node, stack: Stack, bits: int, integer: bool, wide: int) -> list[Kernel]:
    """Cast kernels (and scale, rescale, bias kernels) around each quantized projection."""
    if node.op == "Attention":
        b, s, hidden, heads, kvh, hd, _ = _attention_dims(graph, node)
        split = stack.lowering == HF
        # (input elements, output elements, has bias) per projection: q, k, v, o or one fused QKV + o
        projections = [("q", b * s * hidden, b * s * heads * hd), ("k", b * s * hidden, b * s * kvh * hd),
                       ("v", b * s * hidden, b * s * kvh * hd), ("o", b * s * heads * hd, b * s * hidden)] \
            if split else [("qkv", b * s * hidden, 0)]
        bias = bool(node.attrs.get("bias", False))
    else:
        bias = bool(node.attrs.get("bias", True)) and node.op == "Gemm"
        projections = [("", graph.tensor(node.inputs[0]).numel, graph.tensor(node.outputs[0]).numel)]
    kernels = []
    for which, x, y in projections:
        tag = f"_{which}" if which else ""
        if stack.activation_scale == "dynamic":
            kernels += [Kernel(f"amax{tag}", x * wide), Kernel(f"scale{tag}", 0)]
        kernels.append(Kernel(f"cast{tag}", x * wide + x * bits // 8))
        if integer and stack.lowering == HF and y and node.op != "Conv":  # torch._int_mm: int32 out, no scale or bias
            kernels.append(Kernel(f"rescale{tag}", y * (4 + wide)))
            if bias:
                kernels.append(Kernel(f"bias_add{tag}", 2 * y * wide))
    return kernels


def stack_kernels(graph, node, stack: Stack | None, activation_bits: int, integer: bool = False) -> list[Kernel]:
    """The kernels the stack launches for ``node`` beyond its own one (see the module docstring)."""
    if stack is None:
        return []
    wide = max(activation_bits, 16) // 8  # what flows between PyTorch kernels: 16-bit (32-bit for fp32)
    kernels: list[Kernel] = []
    if node.op == "Attention" and (stack.attention or stack.lowering == HF):
        kernels += _attention_core(graph, node, stack, wide)
    if node.op == "RMSNorm" and stack.lowering == HF:
        kernels += _rms_norm(graph, node, wide)
    if get_op(node.op).cost_class.matrix_like and stack.quantize == "separate" and activation_bits < 16:
        kernels += _quantize(graph, node, stack, activation_bits, integer, wide)
    if stack.layout_conversion:  # NCHW <-> NHWC transposes on the way in and out of the graph
        for t in [t for t in node.inputs if t in graph.inputs] + [t for t in node.outputs if t in graph.outputs]:
            kernels.append(Kernel(f"layout_{t}", 2 * graph.tensor(t).numel * activation_bits // 8))
    return kernels
