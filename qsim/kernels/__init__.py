"""Integer kernels: `reference` (numpy, the executable spec) and `jit` (numba, same signatures).

Import the module you need (`from qsim.kernels import jit`); importing this package compiles nothing.

The numba kernels run their parallel loops on OpenMP threads. OpenMP's default wait policy spins
between parallel regions; on a machine whose cores are shared (other processes, or onnxruntime's
pool in the same process) a spinning thread holds a core its partner needs, and every region then
waits for the scheduler: ResNet-18 at batch 1 took 0.9-3 s instead of ~30-40 ms at load 10 on 2 cores
(measured with benchmarks/bench_simulate.py's model). Passive waiting is set here, before numba
starts its OpenMP pool (at the first parallel kernel), unless the user chose a policy.

Waking a sleeping thread costs every parallel region 10-45 us (2 threads, idle machine: a region of
no work took 43 us, median), and a planned ResNet-18 at batch 1 runs ~40 regions, MobileNetV2 ~100.
So the threads spin a short while before they sleep (GOMP_SPINCOUNT, which libgomp honours under
the passive policy too): 10000 spins, ~0.1-0.3 ms here, bridge the gap between one kernel and the
next in a run, and end soon after it. Measured (ResNet-18 u8/s8 batch 1, 2 threads, this machine):
idle, median 10.9 -> 7.2 ms; with 6 busy processes on the 2 cores, median 48-52 -> 47-116 ms
(p90 70 -> 110 ms), where the unbounded default spin took 0.9-3 s. ``GOMP_SPINCOUNT=0`` restores
pure passive waiting.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
