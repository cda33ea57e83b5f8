"""Matrix ops.

* Gemm: ``y = x @ W.T + b`` over the last axis of ``x`` (any leading batch axes). Attributes:
  out_features, bias=True. Weight shape (out_features, in_features), as PyTorch Linear and ONNX
  Gemm with transB=1.
* MatMul: batched product of two activations with numpy broadcasting (attention scores).
* Embedding: table lookup of integer ids. Attributes: num_embeddings, embedding_dim.
"""
from __future__ import annotations

import numpy as np

from qsim.ir.registry import CostClass, Inferred, MatrixView, QuantRule, numel, register


def _gemm_macs(inputs, outputs, attrs) -> int:
    return numel(outputs[0]) * inputs[0][-1]


def _gemm_matrix(inputs, outputs, attrs) -> MatrixView:
    out = outputs[0]
    return MatrixView(1, numel(out) // out[-1], out[-1], inputs[0][-1])


def _matmul_matrix(inputs, outputs, attrs) -> MatrixView:
    out = outputs[0]
    return MatrixView(numel(out[:-2]), out[-2], out[-1], inputs[0][-1])


@register("Gemm", cost_class=CostClass.MATRIX, matrix=_gemm_matrix, float_kernel="float_ops.gemm",
          int_kernel="int_ops.gemm", quant=QuantRule(weights=("weight",), bias="bias"), bias_roles=("bias",),
          macs=_gemm_macs, vector_ops=lambda i, o, a: numel(o[0]) if a.get("bias", True) else 0,
          attrs=("out_features", "bias"))
def infer_gemm(inputs, attrs) -> Inferred:
    if len(inputs) != 1 or len(inputs[0]) < 1:
        raise ValueError("Gemm takes one input with a feature axis")
    k = inputs[0][-1]
    n = int(attrs["out_features"])
    if n <= 0:
        raise ValueError("out_features must be positive")
    weights = {"weight": (n, k)}
    if attrs.get("bias", True):
        weights["bias"] = (n,)
    return Inferred(outputs=(inputs[0][:-1] + (n,),), weights=weights)


# MACs: output elements x the reduction length, as for Gemm
@register("MatMul", cost_class=CostClass.MATRIX, matrix=_matmul_matrix, float_kernel="float_mlas.matmul",
          int_kernel="int_ops.matmul", macs=_gemm_macs, attrs=("alpha",))  # alpha: a scale applied to the product
def infer_matmul(inputs, attrs) -> Inferred:
    if len(inputs) != 2 or min(len(inputs[0]), len(inputs[1])) < 2:
        raise ValueError("MatMul takes two inputs of rank >= 2")
    a, b = inputs
    if a[-1] != b[-2]:
        raise ValueError(f"inner dimensions differ: {a[-1]} vs {b[-2]}")
    batch = np.broadcast_shapes(a[:-2], b[:-2])
    return Inferred(outputs=(tuple(int(d) for d in batch) + (a[-2], b[-1]),))


# The ids (input 0) are integer indices; the output rows are the table's, so its integer kernel
# gathers stored codes.
@register("Embedding", cost_class=CostClass.DATA_MOVEMENT, float_kernel="float_ops.embedding",
          int_kernel="int_ops.embedding", quant=QuantRule(weights=("weight",)), index_inputs=(0,),
          weights_read=lambda i, o, a: numel(o[0]), attrs=("num_embeddings", "embedding_dim"))
def infer_embedding(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Embedding takes one tensor of ids")
    vocab, dim = int(attrs["num_embeddings"]), int(attrs["embedding_dim"])
    return Inferred(outputs=(tuple(inputs[0]) + (dim,),), weights={"weight": (vocab, dim)})
