"""An execution plan: the integer executor of one graph, prepared once and run on many batches.

``ExecutionPlan(graph, policy, ...).run(feeds)`` returns what ``integer.run_integer`` returns for the
same arguments, bit for bit. The difference is when the work that does not depend on the input
values is done. Each node is planned once, on the plan's first run, with that run's arrays (so every
shape, dtype and memory layout is known): a planner (``plan_ops.PLANNERS``) resolves the
quantization parameters, requantization specs, packed weights, kernel choice, activation range,
layout and thread count, allocates the node's output and scratch buffers, and returns a ``Bound``:
a closure that only calls the kernels. Later runs are a loop over those closures. A node without a
planner, one its planner declines (its kernel is not the fast one, the node is a float island, ...),
or one whose inputs arrive with another shape, dtype or layout than when it was planned, runs the
per-node path of ``integer`` (``_run_node``), as ``run_integer`` does.

Buffers: a planned node writes into the same buffers at every run, and nodes whose buffers are
never live at once share memory (``plan_memory``, from the second run on). What leaves a run never
aliases them: with ``trace=True`` every planned node writes fresh arrays, and a graph output that shares
memory with a plan buffer (directly or through a view such as a Reshape) is copied. A plan is not
reentrant: runs of one plan are serialized by a lock.
"""
from __future__ import annotations

import threading
from typing import Callable, Mapping

import numpy as np

from qsim.errors import QsimError
from qsim.kernels._common import thread_count_functions
from qsim.ir.graph import Graph
from qsim.sim.executor import check_feeds
from qsim.sim.int_common import Step
from qsim.sim.int_runtime import get_runtime, ort_nan_to_min
from qsim.sim.plan_memory import share_buffers
from qsim.sim.integer import NodeStats, SimResult, _feed, _kernels, _run_node, integer_kernel_applies


class Bound:
    """A planned node: ``fn(args, fresh) -> (outputs, overflow events)``; ``fresh``: write new
    arrays instead of the plan's buffers. ``bounds``: each output's clamp range (or None), as the
    per-node path records it in ``Step.bounds``. ``outputs`` / ``scratch``: the lists ``fn`` reads
    its output buffers and its scratch buffers from (``share_buffers`` replaces their arrays with
    views of shared memory); ``aliases``: an output may be a view of an input (Reshape);
    ``serial``: run on one thread (too little work to wake a second one, ``serial_below``), on the
    threads the model runs on (False), or either (None: kernels without parallel loops)."""
    __slots__ = ("fn", "bounds", "outputs", "scratch", "aliases", "serial", "layout", "keep", "elements")

    def __init__(self, fn: Callable, bounds: list, outputs: list | None = None, scratch: list | None = None,
                 aliases: bool = False, serial: bool | None = None):
        self.fn, self.bounds, self.aliases, self.serial = fn, bounds, aliases, serial
        self.outputs = outputs if outputs is not None else []
        self.scratch = scratch if scratch is not None else []
        self.layout: tuple = ()
        self.keep = False  # an output is a graph output: always written fresh
        self.elements = -1  # the outputs' total size (the same at every run), once known


def fast_quantizer(q, rt) -> Callable | None:
    """``quantize(x, q, Kernels.ONNXRUNTIME)`` for a per-tensor integer ``q`` in fewer passes, or None:
    ``clip(rne(fp32(x / scale)) + zp)``, a NaN as ``quantize`` takes it. The zero point is added in fp32,
    exactly (a rounded quotient below 2^24 in magnitude plus an 8..16-bit zero point), or past
    2^24, inexactly but beyond every integer range, so it clips the same. A contiguous float32 /
    float64 input runs ``ort_quantize_jit.ort_quantize`` (one pass, the same formula)."""
    from qsim.numerics.policies import Kernels

    if q is None or q.int_fmt is None or q.scale.size != 1 or q.zero_point.size != 1 or q.int_fmt.bits > 16 \
            or rt.quantize is not Kernels.ONNXRUNTIME:
        return None
    scale = np.float32(q.scale.reshape(-1)[0])
    zp = np.float32(int(q.zero_point.reshape(-1)[0]))
    lo, hi, dtype = np.float32(q.fmt.qmin), np.float32(q.fmt.qmax), q.fmt.storage_dtype
    nanq = lo - zp if ort_nan_to_min() else np.float32(0.0)  # a NaN's rounded quotient (``ort_nan_to_min``)

    from qsim.kernels.ort_quantize_jit import ort_quantize  # here, not per call: quantize runs every run

    def quantize(x):
        x = np.asarray(x)
        if x.flags.c_contiguous and x.dtype in (np.float32, np.float64):
            out = np.empty(x.shape, dtype=dtype)
            ort_quantize(x.reshape(-1), scale, zp, lo, hi, nanq, out.reshape(-1))
            return out
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = np.rint(np.divide(np.asarray(x, np.float32), scale, dtype=np.float32))
            y[np.isnan(y)] = nanq
            y += zp
        np.clip(y, lo, hi, out=y)
        return y.astype(dtype)
    return quantize


def _layout(args) -> tuple:
    return tuple((a.shape, a.strides, a.dtype) if isinstance(a, np.ndarray) else None for a in args)


class ExecutionPlan:
    """See the module doc. Arguments as ``integer.run_integer``'s."""

    def __init__(self, graph: Graph, policy: str, acc_bits: int | None = None, overflow: str = "wrap",
                 impl: str = "numba", float_nodes=(), ort_cpu: str | None = None):
        self.float_nodes = frozenset(float_nodes)
        names = {n.name for n in graph.nodes()}
        if not self.float_nodes <= names:
            raise QsimError(f"graph {graph.name!r} has no node {sorted(self.float_nodes - names)[0]!r} to run in float")
        if overflow not in ("wrap", "saturate"):
            raise QsimError(f"overflow must be 'wrap' or 'saturate', got {overflow!r}")
        self.graph, self.policy, self.impl, self.overflow = graph, policy, impl, overflow
        self.rt, self.kernels = get_runtime(policy, ort_cpu), _kernels(impl)
        self.acc_bits = 32 if acc_bits is None else int(acc_bits)
        self.nodes = list(graph.nodes())
        self._bound: list = [None] * len(self.nodes)  # None: not planned yet; False: per-node path
        self._buffer_ids: set[int] = set()
        self._feeders: dict = {}
        self._shared = False
        self._steady = None  # the feeds' layout of a run on which every node ran planned
        self._fp8 = any(q.fmt.element_type.startswith("float8") for q in graph.quant_params.values())
        self._lock = threading.Lock()

    def _step(self, node, args) -> Step:
        return Step(self.graph, node, args, self.rt, self.kernels, self.impl, self.acc_bits, self.overflow)

    def _plan(self, node, args) -> Bound | bool:
        from qsim.sim.plan_ops import PLANNERS

        planner = PLANNERS.get(node.op)
        if planner is None or self.impl != "numba" or not all(isinstance(a, np.ndarray) for a in args):
            return False
        step = self._step(node, args)
        if not integer_kernel_applies(step, self.float_nodes):
            return False
        bound = planner(step)
        if bound is None:
            return False
        bound.layout = _layout(args)
        bound.keep = any(t in self.graph.outputs for t in node.outputs)
        self._buffer_ids.update(id(a) for a in bound.outputs + bound.scratch)
        return bound

    def run(self, feeds: Mapping[str, np.ndarray], trace: bool = False, counts: bool = True) -> SimResult:
        with self._lock:
            return self._run(feeds, trace, counts)

    def _run(self, feeds, trace: bool, counts: bool) -> SimResult:
        graph = self.graph
        check_feeds(graph, feeds)
        env = {t: self._feed(t, feeds[t]) for t in graph.inputs}
        stats = NodeStats(graph)
        # A run whose feeds are laid out as on a run where every node ran planned needs no layout
        # checks: a planned node's outputs are laid out by its inputs' layouts alone (its buffers,
        # or arrays made like them), so by induction every node sees the layouts it was planned for.
        feed_layout = _layout([env[t] for t in graph.inputs])
        steady = feed_layout == self._steady
        every = True  # whether every node ran planned
        get_threads, set_threads = thread_count_functions()
        threads = get_threads()
        serial = False  # whether the kernels run on one thread now (switched only between nodes that differ)
        try:
            for i, node in enumerate(self.nodes):
                args = [env[t] for t in node.inputs]
                bound = self._bound[i]
                if steady:
                    planned = True
                else:
                    if bound is None:
                        bound = self._bound[i] = self._plan(node, args)
                    planned = bound is not False and bound.layout == _layout(args)
                    every = every and planned
                if planned and bound.serial is not None and bound.serial != serial and threads > 1:
                    serial = bound.serial
                    set_threads(1 if serial else threads)
                self._node(node, bound if planned else None, args, env, stats, trace, counts)
        finally:
            if serial:
                set_threads(threads)
        if every and not steady:
            self._steady = feed_layout
        if not self._shared and all(b is not None for b in self._bound):
            self._shared = True  # every node is planned: its buffers may now be shared
            self._buffer_ids = {id(a) for a in share_buffers(self.nodes, self._bound, graph.outputs)}
        outputs = {t: self._detached(env[t]) for t in graph.outputs}
        return SimResult(outputs, dict(env) if trace else None, stats)

    def _node(self, node, bound: Bound | None, args: list, env: dict, stats: NodeStats, trace: bool, counts: bool):
        """Run one node (planned, or the per-node path), store its outputs, record its statistics."""
        if bound is not None:
            outs, events = bound.fn(args, trace or bound.keep)
            mode, ranges = "integer", bound.bounds
            if bound.elements < 0:
                bound.elements = int(sum(np.size(v) for v in outs))
            elements = bound.elements
        else:
            step = self._step(node, args)
            outs, mode = _run_node(step, self.float_nodes)
            events, ranges = step.overflow_events, [step.bounds.get(t) for t in node.outputs]
            elements = int(sum(np.size(v) for v in outs))
        low = high = 0
        for t, value, rng in zip(node.outputs, outs, ranges):
            env[t] = value
            if counts and rng is not None:
                low += int(np.count_nonzero(value == rng[0]))
                high += int(np.count_nonzero(value == rng[1]))
        stats.modes.append(mode)
        stats.overflow.append(int(events))
        stats.low.append(low if counts else None)
        stats.high.append(high if counts else None)
        stats.elements.append(elements)

    def _feed(self, tensor: str, value):
        """``integer._feed``; a float feed of a per-tensor integer input under onnxruntime's
        QuantizeLinear formula by ``fast_quantizer``."""
        if tensor not in self._feeders:
            self._feeders[tensor] = fast_quantizer(self.graph.quant_params.get(tensor), self.rt)
        fast = self._feeders[tensor]
        value = np.asarray(value)
        if fast is not None and value.dtype.kind == "f":
            return fast(value)
        return _feed(self.graph, tensor, value, self.rt)

    def _detached(self, value):
        """``value``, copied where it shares memory with a plan buffer."""
        root = value
        while isinstance(root, np.ndarray) and root.base is not None:
            root = root.base
        return value.copy() if id(root) in self._buffer_ids else value

    def how(self, stats: NodeStats) -> str:
        how = f"integer executor ({self.policy}): {stats.integer_nodes()}/{len(stats)} nodes integer"
        return how + (", fp8 by value emulation" if self._fp8 else "")
