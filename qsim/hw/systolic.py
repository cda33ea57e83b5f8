"""The ``systolic:`` section of a hardware profile: the array and the memories of its dataflow.

```yaml
systolic:
  rows: 256                 # PEs along the reduction (ws/is) or output rows (os)
  cols: 256
  dataflow: ws              # ws | os | is
  ifmap_sram_kib: 24576     # double-buffered SRAM per operand (half is filled while half is used)
  filter_sram_kib: 256
  ofmap_sram_kib: 1024      # counted in output words of the operand size
  dram: weight_dram         # a memory of the profile: each operand's DRAM port runs at its bandwidth
```

The cost model (``qsim.cost.systolic``) builds a ``SystolicArray`` from this section, so the
array's folds, SRAM re-fetches and DRAM stalls all come from the profile.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from qsim.errors import Problem
from qsim.schema import Enum, Int, Num, Record, Str
from qsim.yamlio import line_of

DATAFLOWS = ("ws", "os", "is")
SRAM_KEYS = ("ifmap_sram_kib", "filter_sram_kib", "ofmap_sram_kib")

SYSTOLIC_SCHEMA = Record(required={"rows": Int(1), "cols": Int(1), "dataflow": Enum(DATAFLOWS),
                                   **{key: Num(0, exclusive_min=True) for key in SRAM_KEYS}, "dram": Str()})


@dataclass(frozen=True)
class Systolic:
    rows: int
    cols: int
    dataflow: str
    ifmap_sram_kib: float
    filter_sram_kib: float
    ofmap_sram_kib: float
    dram: str  # the profile memory behind each operand's DRAM port
    dram_bytes_per_s: float  # that memory's bandwidth


def systolic_errors(data: Mapping[str, Any]) -> list[Problem]:
    """The DRAM port must name a memory of the profile."""
    section, memories = data.get("systolic"), data.get("memories")
    if not isinstance(section, Mapping) or not isinstance(memories, Mapping):
        return []
    dram = section.get("dram")
    if isinstance(dram, str) and dram and dram not in memories:
        return [Problem(f"{dram!r} is not a memory (defined: {', '.join(map(str, memories))})",
                        line=line_of(section, "dram"), key="systolic.dram")]
    return []


def build_systolic(section: Mapping[str, Any] | None, memories: Mapping[str, Any]) -> Systolic | None:
    """The validated section as a frozen record (``memories``: the built ``Memory`` objects)."""
    if not section:
        return None
    return Systolic(section["rows"], section["cols"], section["dataflow"],
                    *(float(section[key]) for key in SRAM_KEYS), section["dram"],
                    memories[section["dram"]].bandwidth_bytes_per_s)
