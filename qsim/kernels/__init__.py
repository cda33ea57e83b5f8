"""Integer kernels: `reference` (numpy, the executable spec) and `jit` (numba, same signatures).

Import the module you need (`from qsim.kernels import jit`); importing this package compiles nothing.
"""
