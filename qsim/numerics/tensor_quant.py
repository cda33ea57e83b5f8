"""Quantization parameters attached to graph tensors (``Graph.quant_params[tensor]``).

Importers fill them from a file's own scales and zero points, unchanged; calibration fills them for
float models. ``fmt`` is the element format (a ``qsim.numerics.formats`` object; a name or an ONNX
element type spelling is converted once, here). ``axis`` is None for per-tensor, the channel axis
for per-channel; ``block_size`` > 0 for per-block (groups of ``block_size`` along ``axis``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsim.numerics.formats import Format, IntFormat, get_format


@dataclass(frozen=True, eq=False)
class TensorQuant:
    scale: np.ndarray  # float32, shape () per-tensor or (channels,) / block grid
    zero_point: np.ndarray  # integer (or float for fp8 formats), same shape as scale
    fmt: Format  # element format: IntFormat(8), FP8_E4M3 ... (a name is accepted and converted)
    axis: int | None = None
    block_size: int = 0

    def __post_init__(self):
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point))
        object.__setattr__(self, "fmt", get_format(self.fmt))

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and self.scale.ndim > 0 and self.scale.size > 1

    @property
    def int_fmt(self) -> IntFormat | None:
        """The integer format, or None for fp8 / MX parameters."""
        return self.fmt if isinstance(self.fmt, IntFormat) else None

    def __eq__(self, other) -> bool:
        return (isinstance(other, TensorQuant) and self.fmt == other.fmt and self.axis == other.axis
                and self.block_size == other.block_size
                and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))
