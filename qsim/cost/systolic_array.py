"""The hardware a systolic-array layer runs on: an R x C array, its dataflow, its SRAMs and DRAM port.

Shared by the dataflow model (``systolic.py``: folds, fill and drain) and its memory side
(``systolic_memory.py``: re-fetches and stalls), which import this module and not each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from qsim.errors import QsimError


class SystolicError(QsimError, ValueError):
    """A bad array description or layer shape. Names the offending parameter."""


class Dataflow(str, Enum):
    """What stays in the PEs across a fold: outputs, weights (filter) or inputs (ifmap)."""

    OS = "os"
    WS = "ws"
    IS = "is"


@dataclass(frozen=True)
class SystolicArray:
    """An R x C MAC array with double-buffered ifmap/filter/ofmap SRAMs and a DRAM port per operand.

    Defaults are SCALE-Sim v3's example ``configs/scale.cfg`` memory (64 KiB per SRAM) and
    ``Bandwidth : 10`` (words/cycle with its 1-byte word). ``im2col_in_sram``: the ifmap SRAM
    holds the lowered operand, as SCALE-Sim assumes, instead of the raw feature map.
    """

    rows: int
    cols: int
    dataflow: Dataflow | str = Dataflow.WS
    ifmap_sram_kib: float = 64.0
    filter_sram_kib: float = 64.0
    ofmap_sram_kib: float = 64.0
    dram_bytes_per_cycle: float = 10.0
    word_bytes: int = 1
    im2col_in_sram: bool = False

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "word_bytes"):
            positive_int(name, getattr(self, name))
        name = getattr(self.dataflow, "value", self.dataflow)
        try:
            object.__setattr__(self, "dataflow", Dataflow(str(name).lower()))
        except ValueError:
            raise SystolicError(f"dataflow: unknown dataflow {self.dataflow!r}; "
                                f"known: {[d.value for d in Dataflow]}") from None
        for name in ("ifmap_sram_kib", "filter_sram_kib", "ofmap_sram_kib", "dram_bytes_per_cycle"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                    or not math.isfinite(value):
                raise SystolicError(f"{name}: must be a positive finite number, got {value!r}")
        for name in ("ifmap_sram_kib", "filter_sram_kib", "ofmap_sram_kib"):
            if self.sram_words(name) < 2:
                raise SystolicError(f"{name}: {getattr(self, name)} KiB holds fewer than 2 words "
                                    f"of {self.word_bytes} bytes; a double buffer needs 2")

    def sram_words(self, name: str) -> int:
        """Capacity of one SRAM (``"ifmap_sram_kib"`` ...) in words."""
        return int(getattr(self, name) * 1024) // self.word_bytes

    @property
    def dram_words_per_cycle(self) -> float:
        return self.dram_bytes_per_cycle / self.word_bytes


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SystolicError(f"{name}: must be a positive integer, got {value!r}")
    return value
