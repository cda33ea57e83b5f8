"""Quantization parameters attached to graph tensors (``Graph.quant_params[tensor]``).

Importers fill them from a file's own scales and zero points, unchanged; calibration fills them for
float models. ``axis`` is None for per-tensor, the channel axis for per-channel; ``block_size`` > 0
for per-block (groups of ``block_size`` along ``axis``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class TensorQuant:
    scale: np.ndarray  # float32, shape () per-tensor or (channels,) / block grid
    zero_point: np.ndarray  # integer (or float for fp8 formats), same shape as scale
    dtype: str  # element format name: int8 uint8 int16 int4 uint4 float8e4m3fn float8e5m2 ...
    axis: int | None = None
    block_size: int = 0

    def __post_init__(self):
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point))

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and self.scale.ndim > 0 and self.scale.size > 1

    def __eq__(self, other) -> bool:
        return (isinstance(other, TensorQuant) and self.dtype == other.dtype and self.axis == other.axis
                and self.block_size == other.block_size
                and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))
