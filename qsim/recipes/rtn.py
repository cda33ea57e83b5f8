"""Round-to-nearest weight quantization, per output channel or in groups along the input axis: the
baseline that GPTQ and AWQ are measured against (e.g. w4a16 with groups of 128, as in Frantar et
al. 2022, "GPTQ", Table 3, and Lin et al. 2023, "AWQ", Table 4).

``{name: rtn, group: 128}`` sets the quantizer's weight group (``quantize_graph(weight_block=...)``;
0: per output channel). The weight format is the plan's (``w4a16``: int4 weights, fp16
activations). Each group has a symmetric scale ``amax / qmax`` (int4: ``amax / 7``) and codes
``round_half_even(w / scale)``: ``qsim.sim.quantize_graph.quantize_weight``, reused as is.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from qsim.errors import WorkloadError
from qsim.recipes import RecipeMetadata, RecipeState

METADATA = RecipeMetadata(stage="settings", params={"group": 128},
                          extra_scale_bytes="one fp32 scale per group of `group` weights (per output channel when 0)")


def check_params(group=128):
    check_group(group)


def check_group(group) -> int:
    if isinstance(group, bool) or not isinstance(group, int) or group < 0:
        raise WorkloadError(f"group: expected a group size >= 0 (0: per output channel), got {group!r}")
    return group


def rtn(w: np.ndarray, fmt, group: int = 0) -> np.ndarray:
    """The numpy reference: ``w`` rounded to the nearest point of its group's (or row's) grid."""
    from qsim.sim.quantize_graph import quantize_weight
    from qsim.numerics.quantize import dequantize

    q, tq = quantize_weight(np.asarray(w, np.float32), fmt, per_channel=True, block=group)
    return dequantize(np.asarray(q).astype(np.float32), tq)


def run(state: RecipeState, group=128) -> RecipeState:
    return replace(state, options={**state.options, "weight_block": group},
                   notes=state.notes + (f"weights RTN in groups of {group}" if group else "weights RTN per channel",))
