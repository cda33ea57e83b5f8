"""``qsim calibrate``: measure this machine and write a hardware profile for it.

Peaks come from the instruction set (AVX-512 VNNI ``vpdpbusd``: 64 int8 MACs/cycle/core; AVX-512
FMA: 2 x 16 fp32 MACs/cycle/core; AVX2: half of each), efficiencies from measured GEMMs through
onnxruntime (the runtime whose latency the profile then predicts) and numpy, memory bandwidth from
large and cache-sized copies, and the per-op dispatch overhead from a chain of tiny onnxruntime
nodes. Every value in the written YAML says how it was obtained.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from qsim.errors import QsimError
from qsim.hw.calibrate_kernels import (BROADCAST_SHAPES, CONV_RATE_SHAPES, QUICK_BROADCAST_SHAPES,
                                       QUICK_CONV_RATE_SHAPES, ort_broadcast_fit, ort_concat_ns_per_element,
                                       ort_conv_kernel_seconds, ort_conv_rate_fit)
from qsim.hw.calibrate_stack import (best_seconds, ort_average_pool_ns_per_tap, ort_composed_transpose_ns_per_element,
                                     ort_float_add_ns_per_element,
                                     ort_float_batchnorm_ns_per_element, ort_float_maxpool_ns_per_element,
                                     ort_im2col_gemm_fit, ort_kernel_seconds, ort_session, ort_transpose_ns_per_element,
                                     qparams, stack_lines)
from qsim.hw.profile import build_profile
from qsim.files import atomic_write
from qsim.yamlio import load_yaml


@dataclass(frozen=True)
class Machine:
    name: str
    cores: int
    clock_hz: float
    flags: frozenset
    l2_bytes: int
    l3_bytes: int
    memory_bytes: int


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cache_bytes(level: int) -> int:
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        if _read(str(index / "level")).strip() == str(level) and _read(str(index / "type")).strip() != "Instruction":
            size = _read(str(index / "size")).strip().upper()
            factor = {"K": 1024, "M": 2**20}.get(size[-1:], 1)
            return int(size.rstrip("KM")) * factor
    return 0


def describe_machine() -> Machine:
    info = _read("/proc/cpuinfo")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").strip()
    clock = float(max_khz) * 1e3 if max_khz else float(fields.get("cpu MHz", 2000)) * 1e6
    mem_kib = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                    if line.startswith("MemTotal")), 8 * 2**20)
    return Machine(fields.get("model name", platform.processor() or "unknown CPU"), os.cpu_count() or 1, clock,
                   frozenset(fields.get("flags", "").split()), _cache_bytes(2), _cache_bytes(3), mem_kib * 1024)


def peak_macs_per_cycle(m: Machine) -> dict[str, int]:
    """Per-core MACs/cycle by instruction set, times cores."""
    if "avx512_vnni" in m.flags:
        int8 = 64  # vpdpbusd: 64 u8 x s8 MACs per 512-bit instruction, one per cycle (DESIGN.md)
    elif "avx_vnni" in m.flags or "avx2" in m.flags:
        int8 = 32
    else:
        int8 = 8
    fp32 = 32 if "avx512f" in m.flags else 16 if "fma" in m.flags else 4  # 2 FMA pipes x lanes
    return {"int8": int8 * m.cores, "fp32": fp32 * m.cores}


def ort_gemm_macs_per_s(n: int, integer: bool) -> float:
    """MatMulInteger (u8 x s8 -> s32, onnxruntime's fast integer path) or fp32 MatMul, n x n x n."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if integer:
        a = rng.integers(0, 255, (n, n), dtype=np.uint8)
        b = numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "b")
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        elem_in, elem_out = TensorProto.UINT8, TensorProto.INT32
    else:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "b")
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        elem_in = elem_out = TensorProto.FLOAT
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("a", elem_in, [n, n])],
                              [helper.make_tensor_value_info("y", elem_out, [n, n])], [b])
    sess = ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    return n ** 3 / best_seconds(lambda: sess.run(None, {"a": a}))


def ort_qlinear_matmul_macs_per_s(n: int) -> float:
    """onnxruntime's QOperator GEMM: QLinearMatMul, u8 activations (zero point 128) x s8 weights, n x n x n."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    inits = qparams([("b", rng.integers(-127, 127, (n, n), dtype=np.int8)), ("sa", np.float32(0.01)),
                      ("za", np.uint8(128)), ("sb", np.float32(0.01)), ("zb", np.int8(0)),
                      ("sy", np.float32(0.5)), ("zy", np.uint8(128))])
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
    graph = helper.make_graph([node], "qgemm", [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [n, n])], inits)
    sess = ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    a = rng.integers(0, 255, (n, n), dtype=np.uint8)
    return n ** 3 / best_seconds(lambda: sess.run(None, {"a": a}))


def qlinear_conv_model(size: int, channels: int = 64, cin: int | None = None, kernel: int = 3, stride: int = 1,
                       groups: int = 1):
    """A lone QLinearConv ``kernel`` x ``kernel``, ``cin`` (default ``channels``) -> ``channels`` at
    ``size`` x ``size`` input, padding ``kernel // 2``, u8 activations (zero point 128) x s8 weights (zero point 0)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    cin = cin or channels
    side = (size + 2 * (kernel // 2) - kernel) // stride + 1
    shape, out = [1, cin, size, size], [1, channels, side, side]
    inits = qparams([("w", rng.integers(-127, 127, (channels, cin // groups, kernel, kernel), dtype=np.int8)),
                      ("sx", np.float32(0.01)), ("zx", np.uint8(128)), ("sw", np.float32(0.01)), ("zw", np.int8(0)),
                      ("sy", np.float32(0.5)), ("zy", np.uint8(128))])
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["y"],
                            pads=[kernel // 2] * 4, strides=[stride] * 2, group=groups)
    graph = helper.make_graph([node], "qconv", [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, out)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def ort_qlinear_conv_macs_per_s(size: int, channels: int = 64, cin: int | None = None, kernel: int = 3) -> float:
    """onnxruntime's QOperator convolution (``qlinear_conv_model``): the kernel int8 CNNs run. With 3
    input channels it is a network's stem (im2col over a short reduction)."""
    cin = cin or channels
    sess = ort_session(qlinear_conv_model(size, channels, cin, kernel))
    x = np.random.default_rng(0).integers(0, 255, [1, cin, size, size], dtype=np.uint8)
    return channels * cin * kernel * kernel * size * size / best_seconds(lambda: sess.run(None, {"x": x}))


def numpy_gemm_macs_per_s(n: int) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    return n ** 3 / best_seconds(lambda: a @ a)


def ort_stream_bytes_per_s(n: int) -> float:
    """Weight-streaming bandwidth as onnxruntime reaches it, on all cores: an fp32 1 x n x n MatMul
    (a GEMV: every weight byte read once, far more bytes than the caches hold)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "gemv",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], [b])
    sess = ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    a = rng.standard_normal((1, n), dtype=np.float32)
    return 4 * n * n / best_seconds(lambda: sess.run(None, {"a": a}))


def copy_bytes_per_s(nbytes: int, inner: int = 1) -> float:
    """Read + write bandwidth of ``np.copyto`` on arrays of ``nbytes`` (repeated ``inner`` times)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)

    def run():
        for _ in range(inner):
            np.copyto(dst, src)

    return 2 * nbytes * inner / best_seconds(run)


def ort_dispatch_seconds(chain: int = 200) -> float:
    """Per-node overhead: a chain of Relu nodes on one element, minus a single node."""
    from onnx import TensorProto, helper

    def model(k: int):
        nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(k)]
        graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info(f"t{k}", TensorProto.FLOAT, [1])])
        return ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), True)

    x = {"t0": np.ones(1, np.float32)}
    long, short = model(chain), model(1)
    return max((best_seconds(lambda: long.run(None, x), 20) - best_seconds(lambda: short.run(None, x), 20))
               / (chain - 1), 0.0)


# Ops whose onnxruntime kernels are not plain vector loops, timed per element: qsim's op name -> (ONNX op,
# attributes). LRN (onnxruntime/core/providers/cpu/nn/lrn.cc) sums its window across channels as a sliding
# sum, one channel plane added and one subtracted per channel, so the window's size does not enter the
# per-element work; Eigen's pow per element then dominates. Lone LRN kernels at 7 shapes (64-256
# channels, 13x13-56x56) and 4 input distributions (normal, ReLU'd, x30, zeros) ran 13.5-15.2 ns per
# element on the idle machine: one rate per element.
TIMED_OPS = {"LRN": ("LRN", {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}), "Softmax": ("Softmax", {}),
             "Sigmoid": ("Sigmoid", {}), "Tanh": ("Tanh", {})}


def ort_op_ns_per_element(op: str, attrs: dict, shape=(1, 64, 56, 56)) -> float:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], op,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])
    sess = ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return best_seconds(lambda: sess.run(None, {"x": x})) / int(np.prod(shape)) * 1e9


def measure(quick: bool = False) -> dict:
    m = describe_machine()
    sizes = (256, 512) if quick else (512, 1024)
    results = {
        "machine": m,
        "int8_ort": max(ort_gemm_macs_per_s(n, True) for n in sizes),
        "int8_qmatmul": max(ort_qlinear_matmul_macs_per_s(n) for n in sizes),
        "conv_kernel_s": (kernel_s := ort_conv_kernel_seconds()),
        "int8_qconv_fit": ort_conv_rate_fit(QUICK_CONV_RATE_SHAPES if quick else CONV_RATE_SHAPES, kernel_s),
        "int8_depthwise": ort_qlinear_depthwise_macs_per_s(28 if quick else 56, kernel_s=kernel_s),
        "fp32_ort": max(ort_gemm_macs_per_s(n, False) for n in sizes),
        "fp32_numpy": max(numpy_gemm_macs_per_s(n) for n in sizes),
        # a memory level's bandwidth serves reads and writes alike: the faster of the runtime's
        # weight streaming (multi-threaded) and a numpy copy (read + write bytes, one thread)
        "dram_bps": max(ort_stream_bytes_per_s(4096 if quick else 8192),
                        copy_bytes_per_s((64 if quick else 256) * 2**20)),
        "cache_bps": copy_bytes_per_s(max(m.l2_bytes // 4, 64 * 1024), inner=50),
        "dispatch_s": ort_dispatch_seconds(50 if quick else 200),
        "op_ns": {name: ort_op_ns_per_element(op, attrs) for name, (op, attrs) in TIMED_OPS.items()},
        "transpose_ns": ort_transpose_ns_per_element(),
        "float_maxpool_ns": ort_float_maxpool_ns_per_element(),
        "float_add_ns": (ort_float_add_ns_per_element(1), ort_float_add_ns_per_element(2)),
        "composed_transpose_ns": ort_composed_transpose_ns_per_element(),
        "average_pool_ns": ort_average_pool_ns_per_tap(28 if quick else 56),
        "float_batchnorm_ns": ort_float_batchnorm_ns_per_element(),
        "broadcast_shapes": QUICK_BROADCAST_SHAPES if quick else BROADCAST_SHAPES,
        "concat_ns": ort_concat_ns_per_element(14 if quick else 56),
    }
    results["broadcast_fit"] = {name: ort_broadcast_fit(op, results["broadcast_shapes"])
                                for name, op in (("MulConst", "QLinearMul"), ("AddConst", "QLinearAdd"))}
    results["int8_qconv"] = results["int8_qconv_fit"]["macs_per_s"]
    results["im2col_gemm"] = ort_im2col_gemm_fit(results["int8_ort"], 28 if quick else 56, kernel_s)
    return results


def _efficiency(measured: float, peak_per_cycle: float, clock_hz: float) -> float:
    return round(min(measured / (peak_per_cycle * clock_hz), 1.0), 4)


def profile_yaml(r: dict, name: str = "local") -> str:
    """A profile for this machine from ``measure()`` results, each value with its origin."""
    m: Machine = r["machine"]
    peak = peak_macs_per_cycle(m)
    today = date.today().isoformat()
    fp32_best = max(r["fp32_ort"], r["fp32_numpy"])
    # Turbo clocks exceed the reported one: where a measured rate beats peak x clock, the peak per
    # cycle is raised to the measured rate (efficiency 1) rather than inventing a clock.
    source = {"int8": "AVX-512 VNNI vpdpbusd: 64 u8 x s8 MACs/cycle/core (AVX2: 32)",
              "fp32": "2 FMA pipes x 16 fp32 lanes (AVX-512) per core"}
    # int8 models run onnxruntime's QOperator kernels: the efficiency is QLinearConv's (CNNs spend
    # their MACs there); MatMulInteger and QLinearMatMul are recorded beside it
    int8_rate = r.get("int8_qconv", r["int8_ort"])
    convs = ", ".join(row[0] for row in r.get("int8_qconv_fit", {}).get("rows", ()))
    int8_note = (f"onnxruntime QLinearConv 3x3 u8 x s8: {int8_rate * 2e-9:.1f} GOPS measured"
                 + (f" (lone kernels {convs}: least squares with a cost per output)" if convs else "")
                 + " (QLinearMatMul "
                 f"{r['int8_qmatmul'] * 2e-9:.1f}, MatMulInteger {r['int8_ort'] * 2e-9:.1f})" if "int8_qconv" in r
                 else f"onnxruntime MatMulInteger u8 x s8: {int8_rate * 2e-9:.1f} GOPS measured")
    for unit, rate in (("int8", int8_rate), ("fp32", fp32_best)):
        if rate > peak[unit] * m.clock_hz:
            peak[unit] = -int(-rate // m.clock_hz)  # ceil: efficiency stays <= 1
            source[unit] = "measured rate / reported clock (turbo beats the instruction-set peak at that clock)"
    buffer_kib = max((m.l3_bytes or m.l2_bytes * m.cores) // 1024, 64)
    lines = [
        f"# Measured by `qsim calibrate` on {today}: {m.name}, {m.cores} cores.",
        "# Peaks from the instruction set, efficiencies = measured GEMM rate / (peak x clock).",
        f"name: {name}",
        f"description: {m.name} ({m.cores} cores), onnxruntime CPU execution provider",
        "kind: cpu",
        f"clock_mhz: {m.clock_hz / 1e6:.0f}".ljust(36) + "# cpufreq max (or /proc/cpuinfo); turbo may run faster",
        "compute:",
        "  macs_per_cycle:",
        f"    int8: {peak['int8']}".ljust(36) + f"# {source['int8']}",
        f"    fp32: {peak['fp32']}".ljust(36) + f"# {source['fp32']}",
        "  efficiency:",
        f"    int8: {_efficiency(int8_rate, peak['int8'], m.clock_hz)}".ljust(36) + f"# {int8_note}",
        f"    fp32: {_efficiency(fp32_best, peak['fp32'], m.clock_hz)}".ljust(36)
        + f"# fp32 GEMM: onnxruntime {r['fp32_ort'] * 2e-9:.1f}, numpy {r['fp32_numpy'] * 2e-9:.1f} GFLOPS measured",
        *_depthwise_lines(r, peak["int8"], m.clock_hz),
        f"  vector_ops_per_cycle: {16 * m.cores}".ljust(36) + "# 16 fp32 lanes per core per cycle",
        "  accumulator_bits: 32".ljust(36) + "# onnxruntime integer kernels accumulate in int32",
        "memories:",
        "  cache:",
        f"    capacity_kib: {buffer_kib}".ljust(36) + "# last-level cache (sysfs)",
        f"    bandwidth_gbps: {r['cache_bps'] / 1e9:.1f}".ljust(36) + "# measured: copies of an L2-sized array",
        "    read_pj_per_byte: 2.5".ljust(36) + "# Horowitz 45 nm: 64-bit read of a 32 KB SRAM, 20 pJ / 8",
        "    write_pj_per_byte: 2.5".ljust(36) + "# assumed equal to the read energy",
        "    on_chip: true",
        "  dram:",
        f"    capacity_kib: {m.memory_bytes // 1024}".ljust(36) + "# /proc/meminfo MemTotal",
        f"    bandwidth_gbps: {r['dram_bps'] / 1e9:.1f}".ljust(36)
        + "# measured: the faster of onnxruntime fp32 GEMV weight streaming (256 MiB) and a copy",
        "    read_pj_per_byte: 20".ljust(36) + "# Horowitz: DRAM 1.3 nJ per 64 bits",
        "    write_pj_per_byte: 20".ljust(36) + "# assumed equal to the read energy",
        "    on_chip: false",
        "placement:",
        "  weights: dram",
        "  activations: dram",
        "  buffer: cache",
        "energy:",
        "  process_nm: 5".ljust(36) + "# assumption: a current server CPU node; see qsim/hw/energy.py",
        "  static_mw: 10000".ljust(36) + "# assumption: share of package power for the cores used",
        f"dispatch_overhead_us: {r['dispatch_s'] * 1e6:.2f}".ljust(36)
        + "# measured: per-node cost of a chain of tiny onnxruntime nodes",
        "requant_policy: onnxruntime",
        "op_ns_per_element:                  # measured: onnxruntime on a 1x64x56x56 float tensor",
        *[f"  {name}: {ns:.3g}".ljust(36) + "# measured per output element" for name, ns in r["op_ns"].items()],
        *stack_lines(r),
        "",
    ]
    text = "\n".join(lines)
    build_profile(load_yaml(f"<calibrated {name}>", text), f"<calibrated {name}>")  # never write an invalid one
    return text


def _depthwise_lines(r: dict, peak_int8: int, clock_hz: float) -> list[str]:
    if "int8_depthwise" not in r:
        return []
    return ["  depthwise_efficiency:",
            f"    int8: {max(_efficiency(r['int8_depthwise'], peak_int8, clock_hz), 0.0001)}".ljust(36)
            + f"# onnxruntime QLinearConv depthwise 3x3, 64 channels at 56x56: {r['int8_depthwise'] * 2e-9:.1f} GOPS "
            "measured (kernel time)"]


def ort_qlinear_depthwise_macs_per_s(size: int, channels: int = 64, kernel_s: float = 0.0) -> float:
    """A lone 8-bit depthwise 3x3 convolution's kernel time (MLAS's symmetric depthwise kernel), less the
    fixed ``kernel_s`` every conv kernel pays (charged apart)."""
    x = np.random.default_rng(0).integers(0, 255, (1, channels, size, size), dtype=np.uint8)
    model = qlinear_conv_model(size, channels, channels, 3, groups=channels)
    seconds = ort_kernel_seconds(model, {"x": x}, "QLinearConv")
    return channels * 9 * size * size / (seconds - kernel_s if seconds > 2 * kernel_s else seconds)


def median_results(rounds: list[dict]) -> dict:
    """Several ``measure()`` rounds as one: the median of each measured number (each round already keeps
    the fastest of its repeated runs). Work from other processes only slows runs down and comes in
    bursts: a round it hit stands out, and with 3 or more rounds taken minutes apart the median is a
    quiet round's figure."""
    first = rounds[0]
    if isinstance(first, dict):
        return {k: median_results([r[k] for r in rounds]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(median_results([r[i] for r in rounds]) for i in range(len(first)))
    if isinstance(first, (int, float)) and not isinstance(first, bool) and any(r != first for r in rounds):
        return float(np.median(rounds))
    return first  # the machine, labels, sizes


def write_profile(path: Path, quick: bool = False, rounds: int = 1) -> str:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise QsimError("qsim calibrate measures onnxruntime: pip install onnxruntime") from None
    if rounds < 1:
        raise QsimError(f"qsim calibrate --rounds must be at least 1, got {rounds}")
    text = profile_yaml(median_results([measure(quick) for _ in range(rounds)]), name=path.stem)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return text
