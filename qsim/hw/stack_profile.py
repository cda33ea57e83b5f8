"""The software-stack and validation sections of a hardware profile.

A profile lists the runtimes it models under ``stacks:`` and selects one with ``stack:`` (a sweep
varies it through the override ``{"stack": "tensorrt"}``). A stack states what the runtime fuses
(BatchNorm folding, activation and residual-Add fusion, flash attention, quantize/dequantize in the
GEMM epilogue), whether layouts are converted, how kernels are launched (one by one from the host,
or replayed as a captured graph), its kernel library's efficiency per op class, and how the
profile was validated with this stack (rows fitted, rows held out, median and worst error).
``qsim.cost.stack`` applies it to a graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from qsim.errors import Problem
from qsim.precision import EMULATION_ORDER
from qsim.schema import Bool, Enum, Int, ListOf, MapOf, Num, Record, Str
from qsim.yamlio import line_of

COMPUTE_CLASSES = tuple(EMULATION_ORDER)
CONV_CLASSES = ("conv_stem", "conv1x1", "conv3x3", "conv_other")
MEMORY_CLASSES = ("depthwise", "elementwise", "normalization", "pool")
FLOAT_ISLAND_OPS = ("MaxPool", "Add", "BatchNorm")  # qsim.cost.stack_work: the 8-bit ops a runtime is known (and measured) to run in float
SOFTMAX_LOWERINGS = ("vela-int8",)  # qsim.cost.npu_softmax: Vela's 31-operation int8 Softmax on Ethos-U
_FRACTION = Num(0, 1, exclusive_min=True)
_NON_NEGATIVE = Num(0)
_POSITIVE = Num(0, exclusive_min=True)

VALIDATION_SCHEMA = Record(
    required={"source": Str(), "fitted": Str(), "held_out": Str(), "held_out_median_pct": _NON_NEGATIVE,
              "held_out_worst_pct": _NON_NEGATIVE},
    optional={"fitted_median_pct": _NON_NEGATIVE, "fitted_worst_pct": _NON_NEGATIVE,
              "rows_fitted": Int(0), "rows_held_out": Int(0),
              "precisions": ListOf(Enum(COMPUTE_CLASSES))},  # the compute classes the validated rows ran at
)
# The shared buffer an Ethos-U operation's OFM blocks live in (Vela's SHRAM), and what each block costs
# beside its MACs: qsim.cost.npu_blocks.
SHARED_BUFFER_SCHEMA = Record(
    required={"schedule_in_blocks": Bool(),  # false: the numbers are recorded, layers cost as one block
              "banks": Int(1), "bank_bytes": Int(1), "reserved_output_banks": Int(0), "reserved_end_banks": Int(0),
              "ifm_granule_banks": Int(1), "accumulator_granule_banks": Int(1),
              "ofm_block_max": ListOf(Int(1), length=3),  # [height, width, channels]
              "output_cycles_per_element": _POSITIVE,  # the output stage, per OFM element
              "block_latency_cycles": ListOf(Int(0), length=2),  # [read, write] latency of a block's transfers
              "block_bytes_per_cycle": _POSITIVE},  # the block transfers' rate
)
# An NPU MAC array as its compiler's performance model sees it (Vela's, for Arm Ethos-U): work is issued
# in micro-blocks of output pixels x output channels, each taking ``ifm_block_depth / dot_product_width``
# cycles per kernel element and IFM-depth block, never fewer than ``weight_fetch_cycles`` per kernel step.
MAC_ARRAY_SCHEMA = Record(
    required={"ofm_ublock": ListOf(Int(1), length=3),  # [height, width, output channels]
              "dot_product_width": Int(1),  # input channels summed per MAC per cycle
              "ifm_block_depth": Int(1),  # input channels per pass (depth-first traversal)
              "kernel_step": Int(1),  # kernel elements per step (part-kernel-first and depthwise)
              "weight_fetch_cycles": Int(0)},  # minimum cycles per kernel step and micro-block depth
    optional={"shared_buffer": SHARED_BUFFER_SCHEMA},  # present: layers run in OFM blocks (qsim.cost.npu_blocks)
)
# onnxruntime's QLinearConv on x86 outside its direct (indirect-buffer) kernel: im2col, the u8 x s8 GEMM
# into an int32 buffer, a requantize pass (qsim.cost.stack_work)
IM2COL_GEMM_SCHEMA = Record(
    required={"channel_multiple": Int(1),  # the direct kernel needs input and output channels in multiples
              "min_output_channels": Int(1),  # and at least this many output channels, one group
              "gemm_gops": _POSITIVE,  # the GEMM's rate (MatMulInteger)
              "position_ns": _NON_NEGATIVE,  # per output pixel, group and kernel position (an im2col copy)
              "output_ns_per_element": _NON_NEGATIVE},  # per output element (int32 write, requantize)
)
STACK_SCHEMA = Record(
    required={"runtime": Str(), "fold_batchnorm": Bool(), "fuse_activation": Bool(),
              "fuse_residual_add": Bool(), "launch": Enum(("per_kernel", "graph"))},
    optional={
        "attention": Enum(("fused", "unfused")),  # fused: one flash kernel; unfused: scores go through memory
        "quantize": Enum(("epilogue", "separate")),  # separate: a cast kernel before each quantized matrix op
        "activation_scale": Enum(("static", "dynamic")),  # dynamic: an amax and a scale kernel before each cast
        "lowering": Enum(("hf-transformers",)),  # transformer blocks launched as HF transformers' modules do
        "kv_cache_update": Enum(("concat", "in_place")),  # concat: the whole KV cache copied every step
        "layout_conversion": Bool(),  # a transpose kernel on the graph's input and on its output
        "kernel_launch_us": _NON_NEGATIVE,  # device-side cost per kernel; default: dispatch_overhead_us
        "conv_min_latency_us": _POSITIVE,  # a lone convolution's minimum (launch included); default: the GEMM's
        "host_us_per_kernel": _NON_NEGATIVE,  # host issue cost per kernel; the device waits when it is larger
        "host_us_per_op": _NON_NEGATIVE,  # host cost of a plain tensor op a module runs inside (default: per kernel)
        "l2_residency": Bool(),  # activations read back from the on-chip buffer while they are still there
        "conv_efficiency": MapOf(MapOf(_FRACTION, COMPUTE_CLASSES), CONV_CLASSES),
        "bandwidth_fraction": MapOf(MapOf(_FRACTION, COMPUTE_CLASSES), MEMORY_CLASSES),
        "cascading": Bool(),  # single-consumer activations stay in the on-chip buffer (Vela's cascades)
        "activation_into_add": Bool(),  # an activation after an Add runs in the Add (TFLite's fused_activation_function)
        "memory_overlaps_compute": Bool(),  # false: an in-order core stalls on its loads (time = compute + memory)
        "matrix_vector_efficiency": MapOf(_FRACTION, COMPUTE_CLASSES),  # a fully-connected layer at batch 1
        "mac_array": MAC_ARRAY_SCHEMA,
        "softmax_lowering": Enum(SOFTMAX_LOWERINGS),  # an 8-bit Softmax run as the compiler's chain of NPU operations
        "channels_last_int8": Bool(),  # 8-bit convs / concats run NHWC: a transpose where a tensor leaves or enters
        "layout_transpose_ns_per_element": _POSITIVE,  # the measured time of those transposes
        "float_islands": MapOf(_POSITIVE, FLOAT_ISLAND_OPS),  # 8-bit op -> measured ns per element of its float kernels
        "dequantize_ns_per_element": _POSITIVE,  # a DequantizeLinear kernel in front of a float island
        "composed_transpose_ns_per_element": _POSITIVE,  # an 8-bit Transpose fused with the layout change
        "im2col_gemm": IM2COL_GEMM_SCHEMA,  # 8-bit convs the runtime's direct conv kernel refuses
        "conv_output_ns_per_element": _NON_NEGATIVE,  # the direct 8-bit conv's cost per output beyond its MACs
        "conv_kernel_us": _NON_NEGATIVE,  # every 8-bit conv kernel's fixed cost beyond its work
        "broadcast_ns_per_element": MapOf(_POSITIVE, ("MulConst", "AddConst")),  # 8-bit x per-channel constant
        "broadcast_ns_per_channel": MapOf(_NON_NEGATIVE, ("MulConst", "AddConst")),  # per channel (broadcast span)
        "average_pool_ns_per_tap": _POSITIVE,  # an 8-bit windowed AvgPool, per output element and window element
        "concat_ns_per_element": _POSITIVE,  # an 8-bit Concat (inputs requantized to the output's scale), per element
        "validation": VALIDATION_SCHEMA,
    },
)
PROFILE_STACK_KEYS = {"stack": Str(), "stacks": MapOf(STACK_SCHEMA)}


@dataclass(frozen=True)
class Validation:
    source: str
    fitted: str
    held_out: str
    held_out_median_pct: float
    held_out_worst_pct: float
    fitted_median_pct: float | None = None
    fitted_worst_pct: float | None = None
    rows_fitted: int | None = None
    rows_held_out: int | None = None
    precisions: tuple[str, ...] = ()  # the compute classes the rows ran at; () not recorded


@dataclass(frozen=True)
class SharedBuffer:
    schedule_in_blocks: bool
    banks: int
    bank_bytes: int
    reserved_output_banks: int
    reserved_end_banks: int
    ifm_granule_banks: int
    accumulator_granule_banks: int
    ofm_block_max: tuple[int, int, int]
    output_cycles_per_element: float
    block_latency_cycles: tuple[int, int]
    block_bytes_per_cycle: float


@dataclass(frozen=True)
class MacArray:
    ofm_ublock: tuple[int, int, int]  # output rows, columns, channels per micro-block
    dot_product_width: int
    ifm_block_depth: int
    kernel_step: int
    weight_fetch_cycles: int
    shared_buffer: SharedBuffer | None = None  # None: one block over the whole output (qsim.cost.npu_array)


@dataclass(frozen=True)
class Im2colGemm:
    channel_multiple: int
    min_output_channels: int
    gemm_macs_per_s: float
    position_s: float
    output_s_per_element: float


@dataclass(frozen=True)
class Stack:
    name: str
    runtime: str
    fold_batchnorm: bool
    fuse_activation: bool
    fuse_residual_add: bool
    launch: str
    attention: str | None = None  # None: an Attention node is costed as one kernel
    quantize: str = "epilogue"
    activation_scale: str = "static"
    lowering: str | None = None  # qsim.cost.stack_kernels: None runs each node as one kernel
    kv_cache_update: str = "in_place"
    layout_conversion: bool = False
    kernel_launch_s: float | None = None
    conv_min_latency_s: float | None = None  # None: a conv takes its precision's GEMM minimum
    host_s_per_kernel: float = 0.0
    host_s_per_op: float | None = None  # None: host_s_per_kernel
    l2_residency: bool = False
    conv_efficiency: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    bandwidth_fraction: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    activation_into_add: bool = False
    cascading: bool = False
    memory_overlaps_compute: bool = True
    matrix_vector_efficiency: Mapping[str, float] = field(default_factory=dict)
    mac_array: MacArray | None = None
    softmax_lowering: str | None = None  # None: a Softmax is one kernel
    channels_last_int8: bool = False
    layout_transpose_ns_per_element: float | None = None
    float_islands: Mapping[str, float] = field(default_factory=dict)  # op -> ns per element
    dequantize_ns_per_element: float = 0.0
    composed_transpose_ns_per_element: float | None = None
    im2col_gemm: Im2colGemm | None = None
    conv_output_ns_per_element: float = 0.0
    conv_kernel_s: float = 0.0
    average_pool_ns_per_tap: float | None = None
    broadcast_ns_per_element: Mapping[str, float] = field(default_factory=dict)  # op -> ns per output element
    broadcast_ns_per_channel: Mapping[str, float] = field(default_factory=dict)  # op -> ns per channel (span)
    concat_ns_per_element: float | None = None
    validation: Validation | None = None


def stack_errors(data: Mapping[str, Any]) -> list[Problem]:
    """Cross-field rules: ``stack`` and ``stacks`` come together and the selection names a listed stack."""
    stacks, chosen = data.get("stacks"), data.get("stack")
    if chosen is None and stacks is None:
        return []
    if not isinstance(stacks, Mapping):
        return [Problem(f"missing (stack {chosen!r} selects one of them)", line=line_of(data, "stack"), key="stacks")]
    if chosen is not None and not isinstance(chosen, str):
        return []  # the schema reports the wrong type (Str)
    if chosen is None:
        return [Problem(f"missing (select one of {', '.join(stacks)})", line=line_of(data, "stacks"), key="stack")]
    if chosen not in stacks:
        return [Problem(f"{chosen!r} is not listed under stacks (listed: {', '.join(stacks)})",
                        line=line_of(data, "stack"), key="stack")]
    return _validation_errors(stacks)


def _validation_errors(stacks: Mapping[str, Any]) -> list[Problem]:
    """A recorded band whose median exceeds its worst error cannot have been measured."""
    found = []
    for name, stack in stacks.items():
        v = stack.get("validation") if isinstance(stack, Mapping) else None
        for part in ("held_out", "fitted") if isinstance(v, Mapping) else ():
            median, worst = v.get(f"{part}_median_pct"), v.get(f"{part}_worst_pct")
            if isinstance(median, (int, float)) and isinstance(worst, (int, float)) and median > worst:
                found.append(Problem(f"{median} is above {part}_worst_pct {worst}",
                                     line=line_of(v, f"{part}_median_pct"),
                                     key=f"stacks.{name}.validation.{part}_median_pct"))
    return found


def _shared_buffer(b: Mapping[str, Any] | None) -> SharedBuffer | None:
    if b is None:
        return None
    return SharedBuffer(**{**b, "ofm_block_max": tuple(b["ofm_block_max"]),
                           "block_latency_cycles": tuple(b["block_latency_cycles"])})


def build_stack(data: Mapping[str, Any]) -> Stack | None:
    """The selected stack of validated profile data; None when the profile names none."""
    chosen = data.get("stack")
    if chosen is None:
        return None
    s = data["stacks"][chosen]
    v = s.get("validation")
    freeze = lambda table: MappingProxyType({k: MappingProxyType(dict(t)) for k, t in (table or {}).items()})  # noqa: E731
    return Stack(
        name=chosen, runtime=s["runtime"], fold_batchnorm=s["fold_batchnorm"], fuse_activation=s["fuse_activation"],
        fuse_residual_add=s["fuse_residual_add"], launch=s["launch"], attention=s.get("attention"),
        quantize=s.get("quantize", "epilogue"), activation_scale=s.get("activation_scale", "static"),
        lowering=s.get("lowering"), kv_cache_update=s.get("kv_cache_update", "in_place"), layout_conversion=s.get("layout_conversion", False),
        kernel_launch_s=s["kernel_launch_us"] / 1e6 if "kernel_launch_us" in s else None,
        conv_min_latency_s=s["conv_min_latency_us"] / 1e6 if "conv_min_latency_us" in s else None,
        host_s_per_kernel=s.get("host_us_per_kernel", 0.0) / 1e6,
        host_s_per_op=s["host_us_per_op"] / 1e6 if "host_us_per_op" in s else None, l2_residency=s.get("l2_residency", False),
        conv_efficiency=freeze(s.get("conv_efficiency")), bandwidth_fraction=freeze(s.get("bandwidth_fraction")),
        activation_into_add=s.get("activation_into_add", False), cascading=s.get("cascading", False),
        memory_overlaps_compute=s.get("memory_overlaps_compute", True),
        matrix_vector_efficiency=MappingProxyType(dict(s.get("matrix_vector_efficiency") or {})),
        mac_array=MacArray(tuple(a["ofm_ublock"]), a["dot_product_width"], a["ifm_block_depth"], a["kernel_step"],
                           a["weight_fetch_cycles"], _shared_buffer(a.get("shared_buffer")))
        if (a := s.get("mac_array")) else None,
        softmax_lowering=s.get("softmax_lowering"), channels_last_int8=s.get("channels_last_int8", False),
        layout_transpose_ns_per_element=s.get("layout_transpose_ns_per_element"),
        float_islands=MappingProxyType(dict(s.get("float_islands") or {})),
        dequantize_ns_per_element=s.get("dequantize_ns_per_element", 0.0),
        composed_transpose_ns_per_element=s.get("composed_transpose_ns_per_element"),
        im2col_gemm=Im2colGemm(m["channel_multiple"], m["min_output_channels"], m["gemm_gops"] * 1e9 / 2,
                               m["position_ns"] * 1e-9, m["output_ns_per_element"] * 1e-9)
        if (m := s.get("im2col_gemm")) else None,
        conv_output_ns_per_element=s.get("conv_output_ns_per_element", 0.0),
        conv_kernel_s=s.get("conv_kernel_us", 0.0) / 1e6,
        average_pool_ns_per_tap=s.get("average_pool_ns_per_tap"),
        broadcast_ns_per_element=MappingProxyType(dict(s.get("broadcast_ns_per_element") or {})),
        broadcast_ns_per_channel=MappingProxyType(dict(s.get("broadcast_ns_per_channel") or {})),
        concat_ns_per_element=s.get("concat_ns_per_element"),
        validation=Validation(**{**v, "precisions": tuple(v.get("precisions") or ())}) if v else None,
    )
