"""The integer program over per-layer choices (as HAWQ-V3 formulates it), solved by
``scipy.optimize.milp`` (HiGHS).

Variables: x[l, c] in {0, 1}, one per layer l and allowed precision c. Constraints: each layer takes
exactly one precision; the estimated accuracy drop, the sum of the layers' measured single-layer
drops against the base plan, stays within a budget; plans already rejected (they did not fit, or
their measured drop broke the budget) are cut off (``sum of their x <= layers - 1``). Objective: the
sum of the layers' single-layer cost changes on the chip, with the estimated drop as a tie-break
so that among equally cheap plans the more accurate one is taken.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from qsim.errors import QsimError


@dataclass(frozen=True)
class Option:
    precision: object   # a LayerPrecision
    cost_delta: float   # objective change against the base plan when only this layer changes
    drop_delta: float   # measured accuracy-drop change against the base plan (>= 0 after clipping)


def solve(options: Mapping[str, Sequence[Option]], budget: float, cuts: Sequence[Mapping[str, object]] = (),
          tie_break: float = 1e-6) -> dict[str, object] | None:
    """The cheapest choice {layer: precision} within ``budget``, or None if none is feasible."""
    try:
        from scipy.optimize import Bounds, LinearConstraint, milp
    except ImportError:
        raise QsimError("the search's integer program needs scipy >= 1.9 (pip install 'qsim[search]')") from None

    layers = list(options)
    index = [(layer, i) for layer in layers for i in range(len(options[layer]))]
    n = len(index)
    cost = np.array([options[l][i].cost_delta for l, i in index], dtype=np.float64)
    drop = np.array([max(0.0, options[l][i].drop_delta) for l, i in index], dtype=np.float64)
    scale = float(np.max(np.abs(cost))) or 1.0
    objective = cost / scale + tie_break * drop / (float(np.max(drop)) or 1.0)
    rows, lower, upper = [], [], []
    for layer in layers:  # one precision per layer
        rows.append([1.0 if l == layer else 0.0 for l, _ in index])
        lower.append(1.0)
        upper.append(1.0)
    rows.append(list(drop))
    lower.append(-np.inf)
    upper.append(max(0.0, budget) + 1e-12)
    for cut in cuts:  # this exact choice again is not allowed
        rows.append([1.0 if options[l][i].precision == cut.get(l) else 0.0 for l, i in index])
        lower.append(-np.inf)
        upper.append(len(layers) - 1.0)
    res = milp(objective, integrality=np.ones(n), bounds=Bounds(np.zeros(n), np.ones(n)),
               constraints=LinearConstraint(np.array(rows), np.array(lower), np.array(upper)))
    if res.x is None or res.status != 0:
        return None
    return {l: options[l][i].precision for (l, i), v in zip(index, res.x) if v > 0.5}
