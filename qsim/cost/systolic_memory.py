"""Memory side of the systolic-array model: DRAM traffic per operand and bandwidth stalls.

Each SRAM is double buffered (SCALE-Sim v3 ``double_buffered_scratchpad_mem.py``, active fraction
0.5): the array works on one half while the other half is filled from DRAM (ifmap, filter) or
drained to it (ofmap). An operand whose reused working set fits in half its SRAM is fetched once;
otherwise it is re-fetched on every pass of the loop that reuses it. The loop nest is SCALE-Sim's:
column folds outer, row folds inner.

    dataflow  ifmap re-read per            filter re-read per              ofmap partial sums
    os        column fold (whole ifmap)    row fold (one K x C block)      none (outputs once)
    ws        column fold (whole ifmap)    never (each block used once)    spill if M x C > half
    is        never (each block once)      column fold (whole filter)      spill if C x N > half

Stalls (``stall_cycles``): every port moves ``dram_words_per_cycle`` words per cycle. The first
half-buffer of each input is loaded before the first fold (``preload_cycles``, outside the total,
as in SCALE-Sim); the rest streams from cycle 0 while the array consumes it at a uniform rate.
Half-buffer chunk j can only be used once it has landed, so the layer cannot end before
``arrival(j) + compute left after chunk j`` for any chunk j; that bound is linear in j between the
first and the last full chunk, so three candidates per operand give the exact maximum. Output
words (writes, plus spilled partial sums read back over the same port) must have drained before
the array finishes, except the last half-buffer, which drains afterwards (``writeback_cycles``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from qsim.cost.systolic_array import Dataflow, SystolicArray


@dataclass(frozen=True)
class DramTraffic:
    """Words moved over each DRAM port for one layer."""

    ifmap_reads: int
    filter_reads: int
    ofmap_reads: int
    ofmap_writes: int


def half(array: SystolicArray, name: str) -> int:
    """Words in the active half of one double-buffered SRAM (SCALE-Sim: ceil(total * 0.5))."""
    return math.ceil(array.sram_words(name) / 2)


def dram_traffic(m: int, n: int, k: int, cols: int, row_folds: int, col_folds: int,
                 dataflow: Dataflow, array: SystolicArray, ifmap_words: int) -> DramTraffic:
    """DRAM words per operand; ``ifmap_words`` is what the ifmap SRAM holds for one full pass."""
    ifmap_fits = ifmap_words <= half(array, "ifmap_sram_kib")
    filter_words = k * n
    outputs = m * n
    ofmap_half = half(array, "ofmap_sram_kib")
    if dataflow is Dataflow.OS:
        # Filter block fc (K x C) is reused by every row fold of that column fold.
        block_fits = k * min(cols, n) <= half(array, "filter_sram_kib")
        return DramTraffic(ifmap_reads=ifmap_words * (1 if ifmap_fits else col_folds),
                           filter_reads=filter_words * (1 if block_fits else row_folds),
                           ofmap_reads=0, ofmap_writes=outputs)
    if dataflow is Dataflow.WS:
        # Partial sums of one column fold (M x C) accumulate over the row folds.
        psum_fits = m * min(cols, n) <= ofmap_half
        ifmap = ifmap_words * (1 if ifmap_fits else col_folds)
        filt = filter_words
    else:
        psum_fits = min(cols, m) * n <= ofmap_half
        ifmap = ifmap_words
        filt = filter_words * (1 if filter_words <= half(array, "filter_sram_kib") else col_folds)
    if psum_fits:
        return DramTraffic(ifmap, filt, ofmap_reads=0, ofmap_writes=outputs)
    return DramTraffic(ifmap, filt, ofmap_reads=(row_folds - 1) * outputs,
                       ofmap_writes=row_folds * outputs)


def _input_bound(compute: int, words: int, chunk: int, bw: float) -> float:
    """Earliest end of the layer allowed by one input stream (see the module docstring)."""
    if words <= chunk:
        return 0.0  # Everything fits in the preloaded half: no fetch during compute.
    last = math.ceil(words / chunk) - 1
    bound = 0.0
    for j in {1, max(1, last - 1), last}:
        arrival = (min((j + 1) * chunk, words) - chunk) / bw
        bound = max(bound, arrival + compute * (1 - j * chunk / words))
    return bound


def stall_cycles(compute: int, traffic: DramTraffic, array: SystolicArray) -> tuple[int, int, int]:
    """(stall, preload, writeback) cycles for a layer whose folds take ``compute`` cycles."""
    bw = array.dram_words_per_cycle
    inputs = ((traffic.ifmap_reads, half(array, "ifmap_sram_kib")),
              (traffic.filter_reads, half(array, "filter_sram_kib")))
    end = float(compute)
    for words, chunk in inputs:
        end = max(end, _input_bound(compute, words, chunk, bw))
    out_words = traffic.ofmap_writes + traffic.ofmap_reads
    out_half = half(array, "ofmap_sram_kib")
    if out_words > out_half:
        end = max(end, (out_words - out_half) / bw)
    preload = max(math.ceil(min(words, chunk) / bw) for words, chunk in inputs)
    writeback = math.ceil(min(out_words, out_half) / bw)
    return math.ceil(end) - compute, preload, writeback
