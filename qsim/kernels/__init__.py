"""Integer kernels: `reference` (numpy, the executable spec) and `jit` (numba, same signatures).

Import the module you need (`from qsim.kernels import jit`); importing this package compiles nothing.

The numba kernels run their parallel loops on OpenMP threads. OpenMP's default wait policy spins
between parallel regions; on a machine whose cores are shared (other processes, or onnxruntime's
pool in the same process) a spinning thread holds a core its partner needs, and every region then
waits for the scheduler: ResNet-18 at batch 1 took 0.9-3 s instead of ~30-40 ms at load 10 on 2 cores
(measured with benchmarks/bench_simulate.py's model). Passive waiting is set here, before numba
starts its OpenMP pool (at the first parallel kernel), unless the user chose a policy.

Passive waiting has a price: waking the sleeping thread costs each parallel region 10-45 us
(2 threads, idle: a region of no work took 43 us, median), and a planned ResNet-18 at batch 1 runs
~40 regions, MobileNetV2 ~100. libgomp's GOMP_SPINCOUNT (honoured under the passive policy too)
makes the threads spin that many turns before they sleep. Measured with ResNet-18 u8/s8 at batch 1,
2 threads, on this 2-core machine (median per run): idle, 0 spins 11.3 ms, 1000: 9.2 ms, 3000:
7.0 ms, 10000 (~0.1-0.3 ms): 7.2-8.5 ms; with one busy process beside it, 0: 12 ms, 1000: 15 ms,
3000: 21 ms, 10000: 20-25 ms. The default stays passive (a shared machine is the common case here);
on a machine of its own, ``GOMP_SPINCOUNT=10000`` before the first kernel runs buys the idle figures.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
