"""Integer kernels: `reference` (numpy, the executable spec) and `jit` (numba, same signatures).

Import the module you need (`from qsim.kernels import jit`); importing this package compiles nothing.

The numba kernels run their parallel loops on OpenMP threads. OpenMP's default wait policy spins
between parallel regions; on a machine whose cores are shared (other processes, or onnxruntime's
pool in the same process) a spinning thread holds a core its partner needs, and every region then
waits for the scheduler: ResNet-18 at batch 1 took 0.9-3 s instead of ~30-40 ms at load 10 on 2 cores
(measured with benchmarks/bench_simulate.py's model). Passive waiting is set here, before numba
starts its OpenMP pool (at the first parallel kernel), unless the user chose a policy.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
