"""A hardware fused multiply-add for numba kernels: ``fma32(b, r, a) = round_fp32(b * r + a)``, one
rounding, as ``llvm.fma.f32`` (IEEE 754 fusedMultiplyAdd: correctly rounded by definition, on any
CPU; ``vfmadd`` where the CPU has FMA). The same value as ``rounding_jit.fma_f32``, which emulates
it in float64 with a TwoSum correction; that emulation does not vectorize, this one does (the
elementwise kernels over whole activations use it)."""
from __future__ import annotations

from numba import njit, types
from numba.core.extending import intrinsic


@intrinsic
def _fma(typingctx, b, r, a):
    if not all(t == types.float32 for t in (b, r, a)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen


@njit(cache=True, inline="always")
def fma32(b, r, a):
    """round_fp32(b * r + a) of three float32 values, one rounding."""
    return _fma(b, r, a)
