"""Ethos-U block scheduling after Vela: the OFM block that fits the shared buffer, and the cycles of its blocks.

Vela (nxp-imx/ethos-u-vela) runs every NPU operation as a sequence of OFM blocks. Each block holds its
IFM window and its accumulators in the shared buffer (SHRAM, double-buffered), so the block is chosen
per operation (architecture_allocator.py ``find_block_config`` @ bc6ee58d): every (height, width, depth)
that fits, scored by the IFM and weights it fetches per output element; the cheapest wins.

The cycles of the operation (npu_performance.py ``_estimate_conv_cycles`` @ a71efe00) follow from that
block: per block the MAC array spends ``max(cycles_wb, 4 x micro-blocks)`` per kernel step (the
array's micro-block model, ``qsim.cost.npu_array``, but over one block, not the whole output), plus a
pipeline delay when a block is a single micro-block; the output stage spends its cycles per element
on the block; both are at least a quarter of the block's command cost (IFM and OFM block transfers with
their memory latencies, ``_estimate_minimum_memory_cycles``, plus the two stages). The two stages
overlap across blocks: ``max(dpu, output) x blocks + min(dpu, output)`` (one fill / drain).

What this adds over the whole-output micro-block count: the per-kernel-step weight-fetch floor and the
command floor bite per block, so small blocks (deep or wide layers whose accumulators fill SHRAM) and
small layers cost more than their MACs say.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import ceil, inf

from qsim.hw.stack_profile import MacArray

CONV, DEPTHWISE, VECTOR = "conv", "depthwise", "vector"  # Vela's ConvolutionMxN, ConvolutionDepthWise, VectorProduct
SPLIT_DEPTH = 16  # [vela] ArchitectureFeatures.OFMSplitDepth
SUB_KERNEL_MAX = 8  # [vela] ArchitectureFeatures.SubKernelMax (8 x 8); sub_kernel_limits of conv and depthwise
PART_KERNEL_IFM_DEPTH = 16  # [vela] _ifm_blockdepth: int8 part-kernel-first reads 16 channels per IFM block
IFM_UBLOCK_DEPTH = 8  # [vela] ethos-u65-256 ifm_ublock Block(2, 2, 8)
ACC_BYTES = 4  # [vela] SHRAMElements.Acc32 (int8 operations)
PIPELINE_DELAY = 2  # [vela] _estimate_conv_cycles: delay of a one-micro-block block on the 256-MAC configurations
BIAS_CYCLES_PER_CHANNEL_LATENCY = 10 / 256  # [vela] _estimate_conv_cycles: cycles_bias_blk = 10 x depth x latency / 256


def part_kernel_first(cin: int, kernel_elems: int, array: MacArray) -> bool:
    """Vela's choice of traversal: part-kernel-first when it fills the dot product better."""
    if cin <= array.dot_product_width:
        return True
    depth_first = cin / (ceil(cin / array.ifm_block_depth) * array.ifm_block_depth)
    part_kernel = cin * kernel_elems / (ceil(cin / array.dot_product_width) * array.dot_product_width
                                        * ceil(kernel_elems / array.kernel_step) * array.kernel_step)
    return part_kernel > depth_first


@dataclass(frozen=True)
class BlockConfig:
    ofm: tuple[int, int, int]  # OFM block (height, width, depth), as find_block_config returns it
    ifm: tuple[int, int, int]  # IFM block (height, width, depth)
    part_kernel: bool


@dataclass(frozen=True)
class LayerShape:
    ofm: tuple[int, int, int]  # (height, width, channels)
    ifm: tuple[int, int, int]
    kernel: tuple[int, int]  # (height, width)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    kind: str = CONV


def _round_up(v: int, q: int) -> int:
    return -(-v // q) * q


def _area(layer: LayerShape) -> tuple[int, int]:
    """The dilated kernel's extent (Vela's Kernel.area_height / area_width)."""
    return tuple((k - 1) * d + 1 for k, d in zip(layer.kernel, layer.dilation))


def _ifm_block(ofm_block: tuple[int, int, int], layer: LayerShape, array: MacArray, depth: int) -> tuple[int, int, int]:
    """[vela] _get_ifm_blocksize: the IFM window an OFM block reads, rounded to the micro-block."""
    uh, uw, _ = array.ofm_ublock
    ah, aw = _area(layer)
    h = _round_up((ofm_block[0] - 1) * layer.stride[0] + min(ah, SUB_KERNEL_MAX), uh)
    w = _round_up((ofm_block[1] - 1) * layer.stride[1] + min(aw, SUB_KERNEL_MAX), uw)
    return h, w, depth


def _fits(ofm_block, ifm_block, array: MacArray) -> bool:
    """[vela] _try_block_config: IFM banks after the reserved output banks, accumulators below the
    reserved end (LUT) banks, both double-buffered and rounded to their bank granules."""
    sb = array.shared_buffer
    ifm_bytes = ifm_block[0] * ifm_block[1] * _round_up(ifm_block[2], 8)
    ifm_banks = _round_up(ceil(ifm_bytes / sb.bank_bytes) * 2, sb.ifm_granule_banks)
    acc_bytes = ofm_block[0] * ofm_block[1] * _round_up(ofm_block[2], 8) * ACC_BYTES
    acc_banks = _round_up(ceil(acc_bytes / sb.bank_bytes) * 2, sb.accumulator_granule_banks)
    return sb.reserved_output_banks + ifm_banks <= sb.banks - sb.reserved_end_banks - acc_banks


def _one_dimensional(layer: LayerShape, array: MacArray) -> bool:
    """[vela] fit_block_for_ofm / _estimate_conv_cycles: a one-row output with a one-row kernel runs
    on 1 x 4 micro-blocks on the 2-row arrays (the Conv1D optimisation; even widths only for the cycles)."""
    return layer.ofm[0] == 1 and layer.kernel[0] == 1 and array.ofm_ublock[0] == 2


@lru_cache(maxsize=4096)  # a pure search over frozen inputs; sweeps and fits ask for the same layers again
def find_block_config(layer: LayerShape, array: MacArray) -> BlockConfig:
    """[vela] architecture_allocator.find_block_config for an int8 operation with weights (no resampling)."""
    uh, uw, ud = array.ofm_ublock
    oh, ow, od = layer.ofm
    ifm_h, ifm_w, ifm_d = layer.ifm
    depthwise = layer.kind == DEPTHWISE
    convolution = layer.kind in (CONV, DEPTHWISE)
    part = convolution and part_kernel_first(ifm_d, layer.kernel[0] * layer.kernel[1], array)
    ifm_depth = _round_up(min(ifm_d, PART_KERNEL_IFM_DEPTH if part else array.ifm_block_depth), IFM_UBLOCK_DEPTH)
    ah, aw = _area(layer)
    ifm_repeats = ceil(aw / SUB_KERNEL_MAX) * ceil(ah / SUB_KERNEL_MAX)
    weight_fetch_wh = ah * aw if convolution else 0
    max_h, max_w, max_d = array.shared_buffer.ofm_block_max
    space = (_round_up(min(oh, max_h), uh), _round_up(min(ow, max_w), uw), _round_up(min(od, max_d), ud))
    ofm_elements = oh * ow * od
    best, best_cost, best_coverage = None, inf, inf
    depth = max(ud, min(space[2], SPLIT_DEPTH))
    if depth < od:
        depth = _round_up(depth, SPLIT_DEPTH)
    while depth <= space[2]:
        wont_fit = set()
        for h in range(uh, space[0] + 1, uh):
            for w in range(uw, space[1] + 1, uw):
                if (h, w) in wont_fit:
                    continue
                ifm_block = _ifm_block((h, w, depth), layer, array, depth if depthwise else ifm_depth)
                block = (min(h, oh), w, depth) if _one_dimensional(layer, array) else (h, w, depth)
                if not _fits(block, ifm_block, array):
                    wont_fit.add((w, h))  # [vela] keys the transposed block, as the source does
                    continue
                full = [ceil(o / b) for o, b in zip(layer.ofm, block)]
                frac = [o / b for o, b in zip(layer.ofm, block)]
                weight_fetch = weight_fetch_wh * ifm_d * full[0] * full[1]
                if not depthwise:
                    weight_fetch *= block[2] * frac[2]
                ifm_fetch = ifm_block[0] * ifm_block[1] * ifm_d * ifm_repeats * frac[0] * frac[1]
                if not depthwise:
                    ifm_fetch *= full[2]
                cost = (ifm_fetch + weight_fetch) / ofm_elements
                if ifm_h * ifm_w * ifm_d < ifm_block[0] * ifm_block[1] * ifm_block[2] * 2:
                    cost /= 2  # the whole IFM fits both buffers: preferred
                if cost > best_cost:
                    continue
                if cost == best_cost:  # equal cost: the larger IFM coverage, for small blocks only
                    coverage = ifm_h * ifm_w / (min(ifm_h, ifm_block[0]) * min(ifm_w, ifm_block[1]))
                    if not (coverage <= best_coverage and h <= 4 and w <= 4):
                        continue
                    best_coverage = coverage
                else:
                    best_coverage = inf
                best_cost, best = cost, BlockConfig((h, w, depth), ifm_block, part)
        depth += ud
        if depth < od:
            depth = _round_up(depth, SPLIT_DEPTH)
    if best is None:  # cannot happen for the shipped shared buffers: the smallest block always fits
        raise ValueError(f"no OFM block fits the shared buffer for a {layer.kind} layer of output {layer.ofm}")
    return best


def _dpu_block_cycles(layer: LayerShape, array: MacArray, config: BlockConfig, ofm_block, ublock) -> int:
    """[vela] _estimate_conv_cycles: MAC-array cycles of one OFM block, pipeline delay included."""
    xy = ceil(ofm_block[0] / ublock[0]) * ceil(ofm_block[1] / ublock[1])
    z = ceil(ofm_block[2] / ublock[2])
    ifm_block_depth = min(layer.ifm[2], config.ifm[2])
    limit = SUB_KERNEL_MAX if layer.kind != VECTOR else 1
    kh, kw = layer.kernel
    subs = [min(kh - i * limit, limit) * min(kw - j * limit, limit)
            for i in range(ceil(kh / limit)) for j in range(ceil(kw / limit))]
    pass_cycles = array.ifm_block_depth // array.dot_product_width * xy  # 4 cycles per micro-block
    per_step = max(array.weight_fetch_cycles, pass_cycles)
    total = 0
    for elems in subs:
        if layer.kind == DEPTHWISE:
            steps = ceil(elems / array.kernel_step)
            cycles = per_step * steps * z
        elif config.part_kernel:
            steps = ceil(elems / array.kernel_step)
            cycles = per_step * steps * ceil(ifm_block_depth / array.dot_product_width) * z
        else:
            steps = elems
            cycles = per_step * steps * z
        delay = 0
        if xy == 1:
            delay = PIPELINE_DELAY * steps if z == 1 else PIPELINE_DELAY * (steps - 1) * z if steps > 1 else 0
        if layer.kind == CONV and config.part_kernel:
            delay *= ceil(ifm_block_depth / array.dot_product_width)
        total += cycles + delay
    if layer.kind != DEPTHWISE:  # one pass per IFM depth block
        total *= ceil(layer.ifm[2] / ifm_block_depth)
    return total


def layer_cycles(layer: LayerShape, array: MacArray, config: BlockConfig | None = None) -> int:
    """[vela] _estimate_conv_cycles: NPU cycles of an int8 operation with weights and bias, run in OFM blocks."""
    sb = array.shared_buffer
    config = config or find_block_config(layer, array)
    ofm_block = tuple(min(o, b) for o, b in zip(layer.ofm, config.ofm))
    ublock = array.ofm_ublock
    if layer.kind in (CONV, DEPTHWISE, VECTOR) and _one_dimensional(layer, array) and layer.ofm[1] % 2 == 0:
        ublock, ofm_block = (1, 4, ublock[2]), (1, *ofm_block[1:])
    dpu = _dpu_block_cycles(layer, array, config, ofm_block, ublock)
    blocks = 1
    for o, b in zip(layer.ofm, ofm_block):
        blocks *= ceil(o / b)
    output = ceil(sb.output_cycles_per_element * ofm_block[0] * ofm_block[1] * ofm_block[2])
    read_latency, write_latency = sb.block_latency_cycles
    output = max(output, BIAS_CYCLES_PER_CHANNEL_LATENCY * ofm_block[2] * read_latency)  # scales and biases
    # [vela] _estimate_minimum_memory_cycles: the block's IFM and OFM transfers, each after its latency
    ifm_bytes = 1
    for s, b in zip(layer.ifm, config.ifm):
        ifm_bytes *= min(s, b)
    ofm_bytes = 1
    for s, b in zip(layer.ofm, config.ofm):
        ofm_bytes *= min(s, b)
    command = (read_latency + ifm_bytes / sb.block_bytes_per_cycle + write_latency
               + ofm_bytes / sb.block_bytes_per_cycle + output + dpu) / 4  # per DPU
    dpu, output = max(dpu, command), max(output, command)
    return int(max(dpu, output) * blocks + min(dpu, output))
