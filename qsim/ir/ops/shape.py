"""Data movement without arithmetic: Concat (axis), Reshape (shape, one -1 allowed, 0 copies the
input dimension as in ONNX), Flatten (axis=1, ONNX semantics), Transpose (perm), Slice (starts,
ends, axes, steps: ONNX semantics, which are Python's slices: negative indices count from the end,
out-of-range ones clamp), Gather (axis, indices, index_shape: constant indices, as ONNX's Gather with
an index array known at import, made non-negative by the importer).

Reshape, Flatten, Transpose, Slice and Gather keep their input's quantization parameters (exact copies of
the stored integers); Concat runs the runtimes' integer concatenation, rescaling differing inputs."""
from __future__ import annotations

from math import prod

from qsim.ir.registry import CostClass, Inferred, QuantRule, numel, register

_SHARED = QuantRule(shares_input_params=True)


@register("Concat", cost_class=CostClass.DATA_MOVEMENT, float_kernel="float_ops.concat",
          int_kernel="int_ops.concat", attrs=("axis",))
def infer_concat(inputs, attrs) -> Inferred:
    if not inputs:
        raise ValueError("Concat needs at least one input")
    rank = len(inputs[0])
    axis = int(attrs.get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ValueError(f"axis {attrs.get('axis')} out of range for rank {rank}")
    for s in inputs[1:]:
        if len(s) != rank or any(a != b for i, (a, b) in enumerate(zip(s, inputs[0])) if i != axis):
            raise ValueError(f"shapes {inputs[0]} and {s} differ outside axis {axis}")
    out = list(inputs[0])
    out[axis] = sum(s[axis] for s in inputs)
    return Inferred(outputs=(tuple(out),))


@register("Reshape", cost_class=CostClass.VIEW, float_kernel="float_ops.reshape", int_kernel="int_ops.move",
          quant=_SHARED, attrs=("shape",))
def infer_reshape(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Reshape takes one input")
    src = inputs[0]
    shape = [src[i] if int(d) == 0 else int(d) for i, d in enumerate(attrs["shape"])]
    total = prod(src)
    if shape.count(-1) > 1:
        raise ValueError("at most one -1 in shape")
    if -1 in shape:
        known = prod(d for d in shape if d != -1)
        if known == 0 or total % known:
            raise ValueError(f"cannot reshape {src} to {attrs['shape']}")
        shape[shape.index(-1)] = total // known
    if prod(shape) != total:
        raise ValueError(f"cannot reshape {src} ({total} elements) to {tuple(shape)}")
    return Inferred(outputs=(tuple(shape),))


@register("Flatten", cost_class=CostClass.VIEW, float_kernel="float_ops.flatten", int_kernel="int_ops.move",
          quant=_SHARED, attrs=("axis",))
def infer_flatten(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Flatten takes one input")
    axis = int(attrs.get("axis", 1))
    s = inputs[0]
    return Inferred(outputs=((prod(s[:axis]), prod(s[axis:])),))


@register("Transpose", cost_class=CostClass.DATA_MOVEMENT, float_kernel="float_ops.transpose",
          int_kernel="int_ops.move", quant=_SHARED, attrs=("perm",))
def infer_transpose(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Transpose takes one input")
    s = inputs[0]
    perm = [int(p) for p in attrs.get("perm", range(len(s) - 1, -1, -1))]
    if sorted(perm) != list(range(len(s))):
        raise ValueError(f"perm {perm} is not a permutation of rank {len(s)}")
    return Inferred(outputs=(tuple(s[p] for p in perm),))


def slice_index(rank: int, attrs) -> tuple[slice, ...]:
    """The numpy index of a Slice node's attributes (axes normalized by the importer)."""
    index = [slice(None)] * rank
    for start, end, axis, step in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]):
        if not -rank <= int(axis) < rank:
            raise ValueError(f"axis {axis} out of range for rank {rank}")
        if int(step) == 0:
            raise ValueError("a Slice step is 0")
        index[int(axis)] = slice(int(start), int(end), int(step))
    return tuple(index)


@register("Slice", cost_class=CostClass.DATA_MOVEMENT, float_kernel="float_ops.slice_axes",
          int_kernel="int_ops.move", quant=_SHARED, attrs=("starts", "ends", "axes", "steps"),
          inputs_read=lambda i, o, a: numel(o[0]))
def infer_slice(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Slice takes one input")
    s = inputs[0]
    index = slice_index(len(s), attrs)
    return Inferred(outputs=(tuple(len(range(d)[i]) for d, i in zip(s, index)),))


@register("Gather", cost_class=CostClass.DATA_MOVEMENT, float_kernel="float_ops.take",
          int_kernel="int_ops.move", quant=_SHARED, attrs=("axis", "indices", "index_shape"),
          inputs_read=lambda i, o, a: min(numel(o[0]), numel(i[0])))  # repeated indices read no more than all
def infer_gather(inputs, attrs) -> Inferred:
    if len(inputs) != 1:
        raise ValueError("Gather takes one input (its indices are an attribute)")
    s = inputs[0]
    axis = int(attrs["axis"])
    if not 0 <= axis < len(s):
        raise ValueError(f"axis {axis} out of range for rank {len(s)}")
    index_shape = tuple(int(d) for d in attrs["index_shape"])
    indices = [int(i) for i in attrs["indices"]]
    if len(indices) != prod(index_shape):
        raise ValueError(f"{len(indices)} indices for an index array of shape {index_shape}")
    if any(not 0 <= i < s[axis] for i in indices):
        raise ValueError(f"an index out of [0, {s[axis]}) for axis {axis} of {s}")
    return Inferred(outputs=(s[:axis] + index_shape + s[axis + 1:],))


@register("Constant", cost_class=CostClass.VIEW, float_kernel="float_ops.constant", int_kernel="int_ops.constant",
          attrs=("shape",))
def infer_constant(inputs, attrs) -> Inferred:
    """A constant used where an activation goes (ViT's class token, concatenated with the patch
    tokens): no input, its weight ``value`` as output."""
    if inputs:
        raise ValueError("Constant takes no input")
    shape = tuple(int(d) for d in attrs["shape"])
    return Inferred(outputs=(shape,), weights={"value": shape})
