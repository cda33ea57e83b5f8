"""How much of an NPU's MAC array a layer keeps busy, after its compiler's performance model.

The model is Vela's for Arm Ethos-U (ethosu/vela/npu_performance.py, ``_estimate_conv_cycles``, and
architecture_allocator.py, ``_choose_kernel_method``). Output work is issued in micro-blocks
(``ofm_ublock``: rows x columns x channels). For every micro-block, kernel element and pass over a
block of input channels the array spends ``ifm_block_depth / dot_product_width`` cycles (4 on
Ethos-U: 32 int8 channels, 8 per cycle), and never fewer than ``weight_fetch_cycles`` per kernel step
for the whole block (the weight decoder's rate: 32 cycles per 8 output channels), so:

- a convolution with fewer input channels than the IFM block depth wastes the rest (depth-first), or
  steps ``kernel_step`` kernel elements over ``dot_product_width`` channels at a time (part-kernel-first,
  which the compiler picks when that wastes less);
- output channels are rounded up to the micro-block depth, output pixels to the micro-block;
- a depthwise convolution has one input channel per output: ``kernel_step`` kernel elements per step;
- a layer with few output pixels (a fully-connected layer: one) is bound by the weight fetch.

This counts the whole output as one block. When the profile describes the shared buffer and sets
``schedule_in_blocks``, the layer runs in the OFM blocks Vela would choose, with the output stage and
each block's command cost (``qsim.cost.npu_blocks``).

``utilisation`` returns useful MACs / (cycles x MACs per cycle): the factor by which the array is
slower than its peak on this layer, before the profile's fitted efficiency (stalls, block overheads).
"""
from __future__ import annotations

from math import ceil, prod

from qsim.cost.npu_blocks import CONV, DEPTHWISE, VECTOR, LayerShape, layer_cycles, part_kernel_first
from qsim.hw.stack_profile import MacArray


def _kernel(node) -> tuple[int, int]:
    k = node.attrs.get("kernel", 1)
    return (k, k) if isinstance(k, int) else tuple(k)


def array_cycles(out_rows: int, out_cols: int, cout: int, cin: int, kernel_elems: int, depthwise: bool,
                 array: MacArray) -> int:
    """MAC-array cycles for one image of a convolution (a GEMM is a 1x1 convolution)."""
    uh, uw, ud = array.ofm_ublock
    ublocks_xy = ceil(out_rows / uh) * ceil(out_cols / uw)
    pass_cycles = array.ifm_block_depth // array.dot_product_width  # cycles per micro-block per pass
    per_step = max(array.weight_fetch_cycles, pass_cycles * ublocks_xy)
    z = ceil(cout / ud)
    if depthwise:
        return per_step * ceil(kernel_elems / array.kernel_step) * z
    if part_kernel_first(cin, kernel_elems, array):
        return per_step * ceil(kernel_elems / array.kernel_step) * ceil(cin / array.dot_product_width) * z
    return per_step * kernel_elems * ceil(cin / array.ifm_block_depth) * z


def _pair(node, key: str) -> tuple[int, int]:
    v = node.attrs.get(key, 1)
    return (v, v) if isinstance(v, int) else tuple(v)


def _layer_cycles(oh: int, ow: int, cout: int, cin: int, ih: int, iw: int, node, kind: str, array: MacArray) -> int:
    """One image's cycles: in OFM blocks when the profile describes the shared buffer, else one block."""
    kh, kw = _kernel(node) if node.op == "Conv" else (1, 1)
    if array.shared_buffer is None or not array.shared_buffer.schedule_in_blocks:
        return array_cycles(oh, ow, cout, cin, kh * kw, kind == DEPTHWISE, array)
    stride, dilation = (_pair(node, "stride"), _pair(node, "dilation")) if node.op == "Conv" else ((1, 1), (1, 1))
    return layer_cycles(LayerShape((oh, ow, cout), (ih, iw, cin), (kh, kw), stride, dilation, kind), array)


def utilisation(graph, node, macs: int, macs_per_cycle: int, array: MacArray) -> float | None:
    """Useful MACs / MAC-array capacity over the cycles the layer takes; None for ops off the array."""
    if not macs:
        return None
    out = graph.tensor(node.outputs[0]).shape
    if node.op == "Conv" and len(out) == 4:
        n, cout, oh, ow = out
        _, cin, ih, iw = graph.tensor(node.inputs[0]).shape
        groups = int(node.attrs.get("groups", 1))
        if groups > 1 and groups == cin:
            cycles = n * _layer_cycles(oh, ow, cout, cin, ih, iw, node, DEPTHWISE, array)
        else:  # grouped: one convolution per group
            cycles = n * groups * _layer_cycles(oh, ow, cout // groups, cin // groups, ih, iw, node, CONV, array)
    elif node.op in ("Gemm", "MatMul") and len(out) >= 2:
        rows, cout = prod(out[:-1]), out[-1]
        cin = graph.tensor(node.inputs[0]).shape[-1]
        # rows as output pixels of a 1x1 convolution (Vela's VectorProduct: one row of rows pixels)
        cycles = _layer_cycles(1, rows, cout, cin, 1, rows, node, VECTOR, array)
    else:
        return None
    return min(1.0, macs / (cycles * macs_per_cycle))
