"""Planners of ``plan.ExecutionPlan``, one per op (``PLANNERS``): each takes the node's ``Step`` of
the plan's first run and returns a ``plan.Bound`` (the node's kernels with everything but the input
values resolved), or None where the node keeps the per-node path. Each planner makes the decisions
of the op's integer kernel (``int_ops``, ``int_pool``, ``int_elementwise``) through the same setup
functions, and computes the same bits (tests/sim/test_plan.py compares every tensor)."""
from __future__ import annotations

import numpy as np

from qsim.kernels import ort_binary_jit, pool, portable
from qsim.kernels._common import pool_geometry
from qsim.numerics.policies import Kernels
from qsim.sim import int_ops
from qsim.sim.int_pool import _window
from qsim.sim.int_common import Fallback, Step, activation_range, int_range, same_params, scalar_scale, scalar_zp, storage
from qsim.sim.plan import Bound
from qsim.sim.plan_conv import plan_conv
from qsim.sim.plan_matmul import plan_gemm

_F32 = np.float32


def _declines(setup):
    """``setup()``, or None where the op's kernel would decline (a float island instead)."""
    try:
        return setup()
    except Fallback:
        return None


def plan_binary(step: Step) -> Bound | None:
    """Add / Mul of two same-shape operands: one flat pass in the memory order of the first
    (channels-last after a fused conv; the other operand is copied in that order if it differs)
    into the plan's buffer, with the parameters of the
    runtime's kernel (``int_elementwise._binary``) derived once. Results do not depend on the order
    elements are visited, except in LiteRT's optimized ADD and MUL when the size is not a multiple
    of 16 (their position-dependent tail): that case keeps the per-node path."""
    from qsim.sim.int_elementwise import binary_setup

    op = "add" if step.node.op == "Add" else "mul"
    setup = _declines(lambda: binary_setup(step, op))
    if setup is None or step.node.op not in ("Add", "Mul"):
        return None
    family, a, b, params, lo, hi = setup
    if a.shape != b.shape or a.dtype != b.dtype:
        return None
    order = _memory_order(a) or _memory_order(b) or tuple(range(a.ndim))  # the other operand is copied in it
    kernel = _binary_kernel(step, op, family, params, lo, hi, a.size)
    if kernel is None:
        return None
    inverse = tuple(int(i) for i in np.argsort(order))
    outs = [np.empty(tuple(a.shape[i] for i in order), dtype=storage(step.out_q()))]

    def run(args, fresh):
        y = np.empty_like(outs[0]) if fresh else outs[0]
        # the methods, not np.transpose: 0.5 us a call less (16 adds in ResNet-50)
        kernel(args[0].transpose(order).reshape(-1), args[1].transpose(order).reshape(-1), y.reshape(-1))
        return [y.transpose(inverse)], 0

    # onnxruntime's kernels are parallel, on the model's threads: ResNet-50 b1's 16 residual adds
    # (100k-800k elements) take 1.09 ms on one thread, 0.61-0.65 ms on two as planned nodes (1.52 /
    # 0.98-1.03 ms before ort_add's bounded variant and 8k blocks; onnxruntime in the model ~0.65 ms). One of fewer than PARALLEL_MIN elements runs on the
    # calling thread: whatever thread count the previous node left does (no switch).
    parallel = family is Kernels.ONNXRUNTIME and a.size >= ort_binary_jit.PARALLEL_MIN
    return Bound(run, [(lo, hi)], outs, serial=False if parallel else None)


def _memory_order(a: np.ndarray) -> tuple | None:
    """The axis order in which ``a`` is C-contiguous, or None."""
    order = tuple(int(i) for i in np.argsort(a.strides, kind="stable")[::-1])
    return order if np.transpose(a, order).flags.c_contiguous else None


def _binary_kernel(step: Step, op: str, family, params, lo: int, hi: int, size: int):
    """``kernel(a, b, out)`` on flat same-size operands: the runtime's Add / Mul (``int_elementwise``)."""
    from qsim.sim.int_elementwise import ort_add_params, ort_mul_ratio

    sa, za, sb, zb, sc, zc = params
    if family is Kernels.ONNXRUNTIME:
        if op == "add":
            ra, rb, fixed = ort_add_params(sa, za, sb, zb, sc, zc)
            bounded = ort_binary_jit.add_bounded(ra, rb, fixed, step.args[0].dtype)
        else:
            ratio = ort_mul_ratio(sa, sb, sc)

        def ort(a, b, out):
            if op == "add":
                ort_binary_jit.ort_add(a, b, ra, rb, fixed, lo, hi, bounded, out)
            else:
                ort_binary_jit.ort_mul(a, b, int(za), int(zb), ratio, _F32(zc), lo, hi, out)
        return ort
    from qsim.kernels import elementwise as ew, elementwise_jit as ewj  # here: an onnxruntime model needs neither

    from qsim.sim.int_elementwise import litert_pot_int16

    if family is Kernels.TFLITE_OPTIMIZED and step.out_q().fmt.name == "uint8":
        return None  # LiteRT's 8-wide uint8 kernels have no compiled twin: the per-node path
    if op == "add" and litert_pot_int16(step, params):
        return None  # LiteRT's power-of-two int16 ADD (int_elementwise._pot_int16_add): the per-node path
    if family is Kernels.XNNPACK and op == "add":
        fn, extra = ewj._xnn_add_kernel, (ew.xnnpack_add_params(sa, za, sb, zb, sc), zc, lo, hi)
    elif family is Kernels.XNNPACK:
        fn, extra = ewj._xnn_mul_kernel, (_F32(_F32(_F32(sa) * _F32(sb)) / _F32(sc)), za, zb, zc, lo, hi)
    elif op == "mul":
        if family is Kernels.TFLITE_OPTIMIZED and size % 16:
            return None
        q, shift = ew.tflite_mul_params(sa, sb, sc)
        nvec = size if family is Kernels.TFLITE_OPTIMIZED else 0  # every element in a 16-vector
        fn, extra = ewj._mul_kernel, (q, shift, za, zb, zc, lo, hi, nvec)
    else:
        optimized = family is Kernels.TFLITE_OPTIMIZED
        if optimized and size % 16:
            return None
        left_shift = 15 if step.out_q().fmt.name == "int16" else 20  # as int_elementwise._binary
        p = ew.tflite_add_params(sa, sb, sc, left_shift)
        return lambda a, b, out: ewj._add_kernel(a, b, p, za, zb, zc, lo, hi, optimized, out)

    def int64_kernel(a, b, out):  # the other elementwise_jit kernels take int64 operands and return int64
        out[:] = fn(a.astype(np.int64), b.astype(np.int64), *extra)
    return int64_kernel


def plan_maxpool(step: Step) -> Bound | None:
    """MaxPool with unchanged parameters on channels-last data (``jit.maxpool2d``'s NHWC kernel)."""
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    xh = x.transpose(0, 2, 3, 1) if x.ndim == 4 else None
    if not same_params(xq, yq) or xh is None or not xh.flags.c_contiguous or x.shape[1] < 2:
        return None
    k, s, p = _window(step)
    kh, kw, sh, sw, pt, pl, _, _, oh, ow = pool_geometry(x, k, s, p, bool(step.attr("ceil_mode", False)))
    lo, hi = activation_range(step, yq)
    clamp = (lo, hi) != int_range(xq)  # a fused activation narrows the range; else the codes stay in it
    outs = [np.empty((x.shape[0], oh, ow, x.shape[1]), dtype=x.dtype)]

    def run(args, fresh):
        y = np.empty_like(outs[0]) if fresh else outs[0]
        portable.maxpool_nhwc(args[0].transpose(0, 2, 3, 1), kh, kw, sh, sw, pt, pl, y)
        if clamp:
            np.clip(y, lo, hi, out=y)
        return [y.transpose(0, 3, 1, 2)], 0

    return Bound(run, [(lo, hi)], outs, serial=False)


def plan_global_avgpool(step: Step) -> Bound | None:
    """MLAS QLinearGlobalAveragePool (``int_pool._ort_global_avgpool``): an exact integer sum over the
    spatial axes, in memory order for channels-last data (``pool.channel_sums``), else numpy's."""
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    if step.rt.avgpool is not Kernels.ONNXRUNTIME or x.ndim < 3:
        return None
    hw = int(np.prod(x.shape[2:]))
    scale = _F32(scalar_scale(step, xq, "the input") / _F32(scalar_scale(step, yq, "the output") * _F32(hw)))
    zin, zout = scalar_zp(step, xq, "the input"), scalar_zp(step, yq, "the output")
    lo, hi = int_range(yq)
    flo, fhi = _F32(lo - zout), _F32(hi - zout)
    axes = tuple(range(2, x.ndim))
    shape = x.shape[:2] + (1,) * (x.ndim - 2)
    dtype = storage(yq)
    # The layout is the planned one at every planned run: the kernel's view of it is decided here
    # (np.moveaxis on each run cost 4 us, a third of the node's time on MobileNetV2's 1280x7x7 map)
    last = bool(np.moveaxis(x, 1, -1).flags.c_contiguous)
    perm = (0,) + axes + (1,) if last else tuple(range(x.ndim))
    x3 = (x.shape[0], hw, x.shape[1]) if last else (x.shape[0], x.shape[1], hw)
    acc = np.empty(x.shape[1], dtype=pool.sum_type(x.dtype, hw))  # the kernel's scratch, per node
    outs = [np.empty(shape, dtype=dtype)]

    if last or x.flags.c_contiguous:  # summed in memory order, one kernel call
        def run(args, fresh):
            y = np.empty_like(outs[0]) if fresh else outs[0]
            pool.global_avg_q(args[0].transpose(perm).reshape(x3), last, zin, scale, flo, fhi, zout, acc,
                              y.reshape(x.shape[:2]))
            return [y], 0
        return Bound(run, [(lo, hi)], outs)

    def run_numpy(args, fresh):
        sums = args[0].sum(axis=axes, dtype=np.int64) - zin * hw
        r = np.clip((sums.astype(_F32) * scale).astype(_F32), flo, fhi)
        return [(np.rint(r).astype(np.int64) + zout).astype(dtype).reshape(shape)], 0
    return Bound(run_numpy, [(lo, hi)])


def plan_avgpool(step: Step) -> Bound | None:
    """AveragePool whose window covers the whole unpadded image (ResNet-50's 7x7 head): onnxruntime
    runs MLAS's global average pool there (``int_pool._ort_avgpool``), so it is planned as one."""
    x = step.args[0]
    if step.rt.avgpool is not Kernels.ONNXRUNTIME or x.ndim != 4:
        return None
    k, _, p = _window(step)
    if tuple(k) != tuple(x.shape[2:]) or any(p):
        return None
    return plan_global_avgpool(step)


def plan_softmax(step: Step) -> Bound | None:
    """onnxruntime's QLinearSoftmax (``int_elementwise.softmax``) with its parameters resolved once
    (``softmax_setup``, whose checks decide as on the per-node path) and its table built once (it
    depends on the row length, fixed for a planned node); the rows run in
    ``ort_softmax_jit.ort_softmax_rows``. ResNet-50's 1000 classes: 0.095 ms per run on the numpy
    form, 0.003 ms now (a one-node onnxruntime session: 0.011 ms; Zen 3, 1 and 2 threads)."""
    from qsim.kernels.ort_softmax_jit import ort_softmax_rows
    from qsim.sim.int_elementwise import ort_softmax_table, softmax_setup

    s = _declines(lambda: softmax_setup(step)) if step.rt.softmax is Kernels.ONNXRUNTIME else None
    if s is None:
        return None
    moved = np.moveaxis(step.args[0], s.axis, -1).shape
    rows, d = int(np.prod(moved[:-1])), moved[-1]  # explicit: reshape(-1, 0) is refused
    table = ort_softmax_table(s.s_in, d, s.signed)
    y_scale = float(np.floor(_F32(1.0) / _F32(s.s_out)))
    zp, top = int(s.zp_out), 127 if s.signed else 255  # the reference's saturation (by the input type)
    outs = [np.empty(moved, dtype=storage(step.out_q()))]
    last = s.axis == step.args[0].ndim - 1  # no moveaxis (~3 us a call, the kernel's own time)

    def run(args, fresh):
        y = np.empty_like(outs[0]) if fresh else outs[0]
        x = args[0] if last else np.moveaxis(args[0], s.axis, -1)
        ort_softmax_rows(x.reshape(rows, d), table, y_scale, zp, top, y.reshape(rows, d))
        return [y if last else np.moveaxis(y, -1, s.axis)], 0

    return Bound(run, [(s.lo, s.hi)], outs)


def plan_move(step: Step) -> Bound | None:
    """Reshape / Flatten / Transpose with unchanged parameters (``int_ops.move``): the float kernel's
    numpy call with its arguments resolved (``float_ops.reshape``, ``flatten``, ``transpose``: a
    reshape to the shape it gave on the planning run's input, whose shape every planned run shares;
    a transpose by the node's permutation)."""
    moved = _declines(lambda: int_ops.move(step))
    if moved is None:
        return None
    if step.node.op == "Transpose":
        perm = step.node.attrs.get("perm", None)

        def run(args, fresh):
            return [np.transpose(args[0], perm)], 0
    else:
        shape = moved[0].shape

        def run(args, fresh):
            return [args[0].reshape(shape)], 0

    return Bound(run, [None], aliases=True)


PLANNERS = {"Conv": plan_conv, "Add": plan_binary, "Mul": plan_binary, "MaxPool": plan_maxpool,
            "AvgPool": plan_avgpool, "GlobalAvgPool": plan_global_avgpool, "Reshape": plan_move,
            "Flatten": plan_move, "Transpose": plan_move, "Gemm": plan_gemm, "Softmax": plan_softmax}
