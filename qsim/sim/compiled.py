"""A model prepared once and run on many batches: ``qsim.compile(model, ...) -> CompiledModel``.

``qsim.simulate(model, inputs)`` is ``compile(model, inputs).run(inputs)``; compiling apart pays the
per-model work once (reading and importing the file, quantizing a float model for a plan,
choosing the runtime, packing weights for the VNNI kernels: the packing is cached per weight
array, and the compiled model keeps the same arrays), so each ``run`` is only the executor. Where
the integer executor runs, it runs an execution plan (``qsim.sim.plan``, one per batch size): each
node's parameters, kernel choice and buffers are resolved on the first run, and later runs are a
loop of kernel calls into reused buffers.

A model file with a symbolic batch axis is imported again for each new batch size it is run on
(the quantization parameters come from the file: the results do not depend on it). A float model
quantized for a plan is calibrated once, at compile time, and runs at that batch size only.

``ort_cpu`` names the CPU kind whose onnxruntime is reproduced (``int_runtime.ORT_CPUS``, or "host"):
None takes ``QSIM_ORT_CPU`` (else "host") once, at compile time. The compiled model keeps the kind:
its compilation and every run happen within ``int_runtime.ort_cpu_scope(kind)``, so the execution
plan's runtime, the float kernels (softmax lanes) and the dynamic-quantization kernels all follow it,
whatever the environment says later.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numba

import qsim.kernels  # noqa: F401  (OpenMP's wait policy is set there, before numba starts its threads below)
from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.ir.model_io import ModelIO
from qsim.sim.int_runtime import ort_cpu_name, ort_cpu_scope
from qsim.sim.pipeline import DEFAULT_POLICY, choose_executor, plan_policy, prepare, run_model
from qsim.sim.plan import ExecutionPlan


@lru_cache(maxsize=1)  # read once: float kernels ask for it on every call
def physical_cores() -> int:
    """CPU cores this process may run on, counting SMT siblings once: onnxruntime's default
    intra-op thread count (its ``GetNumPhysicalCpuCores``)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for c in cpus:
        base = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add((base / "physical_package_id").read_text().strip() + ":" + (base / "core_id").read_text().strip())
        except OSError:
            cores.add(str(c))
    return max(1, len(cores))


def default_threads() -> int:
    """The thread count of a model compiled without ``threads=``: ``QSIM_THREADS`` when set (a sweep's
    worker processes get the cores divided among them: ``qsim.sweep.executor``), else the physical
    cores, onnxruntime's default."""
    value = os.environ.get("QSIM_THREADS", "").strip()
    if not value:
        return physical_cores()
    if not value.isdigit() or int(value) < 1:
        raise QsimError(f"QSIM_THREADS must be a positive integer, got {value!r}")
    return int(value)


ORT_LEVELS = ("enable_all", "enable_extended", "enable_basic", "disable_all")  # onnxruntime's GraphOptimizationLevel
UNFUSED_LEVELS = ("enable_basic", "disable_all")  # levels below onnxruntime's QDQ fusion (an extended transformer)


class CompiledModel:
    """See the module doc. ``run(inputs, trace=False)`` returns what ``qsim.simulate`` returns;
    ``last_run`` keeps the last run's ``pipeline.SimRun`` (which executor ran, per-node statistics,
    saturation counted with ``counts=True``). ``executor``: as ``pipeline.run_model``'s; ``ort_cpu``: the
    CPU kind it was compiled for ("host", "avx2", "vnni" or "arm64"; see the module doc)."""

    def __init__(self, model, inputs=None, policy: str | None = None, plan=None, calib=None,
                 acc_bits: int | None = None, overflow: str = "wrap", impl: str = "numba",
                 threads: int | None = None, counts: bool = False, executor: str = "integer",
                 ort_level: str = "enable_all", ort_cpu: str | None = None):
        self.ort_cpu = ort_cpu_name(ort_cpu)  # checked, and the environment read, once: before any work
        with ort_cpu_scope(self.ort_cpu, ort_level):
            self._compile(model, inputs, policy, plan, calib, acc_bits, overflow, impl, threads, counts, executor,
                          ort_level)

    def _compile(self, model, inputs, policy, plan, calib, acc_bits, overflow, impl, threads, counts, executor,
                 ort_level) -> None:
        from qsim.sim.simulate import load_source

        self.model, self.name = model, str(model)
        self.options = dict(acc_bits=acc_bits, overflow=overflow, impl=impl, counts=counts, executor=executor)
        self.threads = default_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise QsimError(f"threads must be >= 1, got {threads!r}")
        if ort_level not in ORT_LEVELS:
            raise QsimError(f"ort_level {ort_level!r}: use one of {', '.join(ORT_LEVELS)}")
        self.ort_level = ort_level
        graph, own_plan, self.suffix, io = load_source(model, inputs)
        quantized = bool(graph.quant_params)
        self.plan = plan if quantized or plan is not None else own_plan
        self.policy = policy or (DEFAULT_POLICY.get(self.suffix, "onnxruntime") if quantized or self.plan is None
                                 else plan_policy(self.plan))
        self._requested_policy = policy
        self.calibrated = not quantized and self.plan is not None
        if self.calibrated:
            if calib is None and inputs is None:
                raise QsimError(f"{self.name}: a float model with a plan needs calibration inputs (calib= or inputs=)")
            batches = calib if calib is not None else [inputs]
            calib_feeds = [self._feeds(graph, io, b) for b in batches]
        else:
            calib_feeds = []
        self._by_batch: dict = {}
        self._plans: dict = {}  # id(graph) of a _by_batch entry -> its ExecutionPlan or None
        self._add(graph, io, calib_feeds)

    def _feeds(self, graph: Graph, io: ModelIO | None, inputs) -> dict:
        from qsim.sim.simulate import graph_feeds

        return io.ir_feeds(inputs, self.name) if io is not None else graph_feeds(graph, inputs)

    def _add(self, graph: Graph, io: ModelIO | None, calib_feeds) -> tuple:
        float_nodes = ()
        if io is not None and (self._requested_policy or DEFAULT_POLICY.get(self.suffix)) == "onnxruntime":
            if io.refusal:
                raise QsimError(f"{self.name}: {io.refusal}")
            if self.ort_level in UNFUSED_LEVELS and io.float_qdq_units:
                units = ", ".join(io.float_qdq_units[:6]) + (" ..." if len(io.float_qdq_units) > 6 else "")
                raise QsimError(f"{self.name}: at {self.ort_level} onnxruntime runs the QDQ units {units} in float "
                                "(its QDQ fusion runs at enable_extended and enable_all), whose summation order qsim "
                                "does not reproduce; qsim equals onnxruntime at enable_extended and enable_all")
            io.for_onnxruntime(graph)
            float_nodes = io.ort_float_units
        graph = prepare(graph, self.plan, calib_feeds)
        entry = (graph, io, float_nodes)
        self._by_batch[self._batch_of(graph, io)] = entry
        return entry

    @staticmethod
    def _batch_of(graph: Graph, io: ModelIO | None):
        if io is None or not io.inputs:
            return None
        return graph.tensor(io.inputs[0].tensor).shape[0]

    def _entry(self, inputs) -> tuple:
        entry = next(iter(self._by_batch.values()))
        io = entry[1]
        batch = io.feed_batch(inputs) if io is not None else None
        if batch is None or batch in self._by_batch:
            return self._by_batch.get(batch, entry)
        if self.calibrated:
            raise QsimError(f"{self.name}: compiled for a plan at batch {self._batch_of(entry[0], io)}; "
                            f"got a batch of {batch} (compile again with feeds of that batch)")
        from qsim.sim.simulate import load_model

        graph, io = load_model(Path(self.model), batch)
        return self._add(graph, io, [])

    def _plan(self, graph: Graph, float_nodes):
        """The graph's ``plan.ExecutionPlan`` where the integer executor runs it, else None; built on
        the first run (so a refusal is raised where ``run_model`` raises it)."""
        key = id(graph)
        if key not in self._plans:
            o = self.options
            chosen = choose_executor(graph, self.policy, o["executor"])
            self._plans[key] = None if chosen != "integer" else ExecutionPlan(
                graph, self.policy, acc_bits=o["acc_bits"], overflow=o["overflow"], impl=o["impl"],
                float_nodes=float_nodes, ort_cpu=self.ort_cpu)
        return self._plans[key]

    @property
    def graph(self) -> Graph:
        """The executed graph (of the first batch size compiled)."""
        return next(iter(self._by_batch.values()))[0]

    def run(self, inputs, trace: bool = False):
        """Simulate one batch (the contract of ``qsim.simulate``), for the compiled CPU kind."""
        with ort_cpu_scope(self.ort_cpu, self.ort_level):
            return self._run(inputs, trace)

    def _run(self, inputs, trace: bool):
        graph, io, float_nodes = self._entry(inputs)
        feeds = self._feeds(graph, io, inputs)
        saved = numba.get_num_threads()
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        try:
            run = run_model(graph, feeds, self.policy, trace=trace, float_nodes=float_nodes,
                            plan=self._plan(graph, float_nodes), **self.options)
        finally:
            numba.set_num_threads(saved)
        self.last_run = run
        if io is not None:
            from qsim.sim.int_runtime import get_runtime

            deq = get_runtime(self.policy).dequantize if run.executor == "integer" else None
            outputs = io.model_outputs(graph, run.outputs, deq)
        else:
            outputs = run.outputs
        return (outputs, run.trace) if trace else outputs


def compile_model(model, inputs=None, **options) -> CompiledModel:
    """``CompiledModel(model, inputs, **options)``: see the module doc and ``qsim.simulate``."""
    return CompiledModel(model, inputs, **options)
