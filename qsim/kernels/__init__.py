"""Integer kernels: `reference` (numpy, the executable spec) and `jit` (numba, same signatures).

Import the module you need (`from qsim.kernels import jit`); importing this package compiles nothing.

The numba kernels run their parallel loops on OpenMP threads. OpenMP's default wait policy spins
between parallel regions; on a machine whose cores are shared (other processes, or onnxruntime's
pool in the same process) a spinning thread holds a core its partner needs, and every region then
waits for the scheduler: ResNet-18 at batch 1 took 0.9-3 s instead of ~30-40 ms at load 10 on 2 cores
(measured with benchmarks/bench_simulate.py's model). Passive waiting is set here, before numba
starts its OpenMP pool (at the first parallel kernel), unless the user chose a policy.

A passive worker sleeps in the kernel between regions, and waking it costs more than many of the
regions it is woken for: an empty 2-thread parallel region took ~40 us (median) against ~2 us for
one thread, on the 2-core VM of benchmarks/bench_depthwise_layers.py, where MobileNetV2 at batch 1
(~60 regions per run) then ran slower on 2 threads than on 1. libgomp's GOMP_SPINCOUNT bounds a spin
before the sleep: 10000 spins (~0.3 ms of one core, measured) cover the gap between the regions of
consecutive nodes (an empty region then took ~2 us), and the worker still sleeps soon after a run,
so a shared core is held for at most that long, not the ~9 ms of libgomp's default spin.
The spin has a price when another busy process shares the cores: ResNet-18 u8/s8 at batch 1 took
20-25 ms with it against 12 ms passive (idle: 7.0-8.5 ms against 11.3 ms). On a shared machine, set
``GOMP_SPINCOUNT=0`` before the first kernel runs (onnxruntime's own pool spins too by default).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
