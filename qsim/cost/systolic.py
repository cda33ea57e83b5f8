"""Systolic-array dataflow model: cycles, utilization and memory traffic of one GEMM or convolution.

An R x C array of MAC units runs a GEMM of (M, N, K) = (output rows, output cols, reduction) under
one of three dataflows. The mapping, the fold order and the per-fold cycle counts follow SCALE-Sim
v3 (``scalesim/compute/systolic_compute_{os,ws,is}.py``), so the compute cycles agree with it
exactly; the memory side (``systolic_memory.py``) is an analytical model of double-buffered SRAMs
behind a bandwidth-limited DRAM port.

Public API::

    SystolicArray(rows, cols, dataflow="ws", ifmap_sram_kib=64, filter_sram_kib=64,
                  ofmap_sram_kib=64, dram_bytes_per_cycle=10.0, word_bytes=1, im2col_in_sram=False)
    systolic_gemm(m, n, k, array) -> SystolicResult
    systolic_conv(h, w, kh, kw, cin, cout, stride=1, pad=0, array=...) -> SystolicResult
    conv_as_gemm(h, w, kh, kw, cin, cout, stride=1, pad=0) -> ConvGemm      (the lowering alone)

Mapping (SCALE-Sim's names: Sr spatial rows, Sc spatial cols, T temporal)::

    dataflow            array rows <- Sr   array cols <- Sc   streamed T   cycles per fold
    os  output-stat.    M                  N                  K            T + R + C - 2
    ws  weight-stat.    K                  N                  M            2R + C + T - 2
    is  input-stat.     K                  M                  N            2R + C + T - 2

Folds = ceil(Sr / R) x ceil(Sc / C), visited column fold outer, row fold inner (as SCALE-Sim).
Fill and drain per fold: OS runs T MAC cycles plus R - 1 + C - 1 cycles of skew (operands reach
the far corner late; the previous fold's outputs drain meanwhile); WS/IS first load the
stationary operand (R cycles), then stream T inputs with the same R - 1 + C - 1 skew.
A convolution lowers as SCALE-Sim's operand matrices do: the ifmap operand has Sr = OH*OW rows
and T = kh*kw*Cin columns, the filter operand has Sc = Cout columns.

Result fields (``SystolicResult``): total_cycles (compute + stall; the preload before the first
fold and the write-back after the last are reported apart, as SCALE-Sim's "Total Cycles" also
leaves them out), compute_cycles, stall_cycles, preload_cycles, writeback_cycles, row_folds,
col_folds, cycles_per_fold, macs, mapping_efficiency (mean fraction of PEs mapped per fold),
compute_utilization (MACs / (R*C*compute_cycles)), utilization (MACs / (R*C*total_cycles)),
SRAM accesses per operand in words (ifmap_sram_reads, filter_sram_reads, ofmap_sram_writes,
ofmap_sram_reads), DRAM traffic in words (ifmap_dram_reads, filter_dram_reads, ofmap_dram_reads,
ofmap_dram_writes) and ``dram_bytes(...)`` / ``*_bytes`` properties for a word size. The words
written into the ifmap and filter SRAMs are their DRAM reads (each fill lands once).

Where qsim and SCALE-Sim v3 differ (checked by ``benchmarks/bench_systolic_vs_scalesim.py``):

* SCALE-Sim's "Total Cycles" is the index of the last cycle (``max`` of serviced cycles), one less
  than the count qsim reports: compute-bound layers differ by exactly one cycle.
* DRAM reads. SCALE-Sim streams its *prefetch matrix*: the lowered (im2col) operand, duplicates
  included, padded with null entries to whole folds, rounded up to lines of ``bandwidth`` words,
  and re-streamed cyclically from where it stopped whenever an address misses the active half.
  A miss replaces the whole active half and searches forward, so a demand order that runs back
  across a half-buffer boundary (the row-flipped stationary blocks of ws/is, the skewed os
  streams) re-streams the entire operand: with operands larger than half an SRAM, SCALE-Sim's
  reads reach up to ~70x the operand size, and its cycles up to ~70x qsim's. qsim counts the
  words a buffer filled in demand order moves: the raw ifmap (H*W*Cin, or the lowered operand when
  ``im2col_in_sram``), re-read once per outer fold only when the reused operand does not fit in
  half its SRAM. With ample SRAM, SCALE-Sim's ifmap reads of a 3x3 stride-1 conv are ~9x qsim's.
* Stalls. SCALE-Sim's ``read_buffer.service_reads`` adds each positive stall twice (``offset +=
  potential_stall_cycles`` and again under ``if potential_stall_cycles > 0``) and waits for a
  whole half-buffer prefetch to land; qsim consumes the stream at a uniform rate and counts each
  stall once. DRAM-bound layers therefore stall more in SCALE-Sim.
* DRAM writes. SCALE-Sim's write buffer drains every SRAM write, so ws/is send each partial sum
  to DRAM (Fr*M*N words) and never read one back. qsim keeps a column fold's partial sums in the
  ofmap SRAM when they fit half of it (M*N writes), else spills them: Fr*M*N writes and
  (Fr - 1)*M*N read-backs over the same port, which can make qsim the slower of the two.
* SRAM writes. SCALE-Sim's OS ofmap write count adds R + C per fold (``ofmap_writes +=
  shape[0] + shape[1]``); qsim counts M*N. qsim also counts partial-sum read-backs
  (``ofmap_sram_reads``), which SCALE-Sim does not model.
* Output size. SCALE-Sim (``topology_utils.topo_calc_hyperparams``) takes ceil((H - kh + s) / s)
  rows, counting a partial window at the edge when (H - kh) % s != 0; qsim takes
  (H + 2*pad - kh) // s + 1, as PyTorch and ONNX do. SCALE-Sim has no padding parameter: pass it
  the padded size.
* The DRAM bandwidth is per operand port (ifmap, filter, ofmap each have one), as in SCALE-Sim's
  USER bandwidth mode; SCALE-Sim fixes the word at 1 byte, qsim takes ``word_bytes``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from qsim.cost.systolic_array import Dataflow, SystolicArray, SystolicError, positive_int
from qsim.cost.systolic_memory import DramTraffic, dram_traffic, stall_cycles

__all__ = ["ConvGemm", "Dataflow", "SystolicArray", "SystolicError", "SystolicResult", "conv_as_gemm",
           "cycles_per_fold", "spatial_mapping", "systolic_conv", "systolic_gemm"]


@dataclass(frozen=True)
class ConvGemm:
    """A convolution lowered to a GEMM, plus the raw ifmap size the SRAM would hold."""

    m: int
    n: int
    k: int
    out_h: int
    out_w: int
    ifmap_words: int


@dataclass(frozen=True)
class SystolicResult:
    """Cycles, utilization and traffic (in words) of one layer; fields listed in the module doc."""

    dataflow: Dataflow
    rows: int
    cols: int
    m: int
    n: int
    k: int
    row_folds: int
    col_folds: int
    cycles_per_fold: int
    total_cycles: int
    compute_cycles: int
    stall_cycles: int
    preload_cycles: int
    writeback_cycles: int
    macs: int
    mapping_efficiency: float
    compute_utilization: float
    utilization: float
    ifmap_sram_reads: int
    filter_sram_reads: int
    ofmap_sram_writes: int
    ofmap_sram_reads: int
    ifmap_dram_reads: int
    filter_dram_reads: int
    ofmap_dram_reads: int
    ofmap_dram_writes: int
    word_bytes: int

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds

    @property
    def dram_read_words(self) -> int:
        return self.ifmap_dram_reads + self.filter_dram_reads + self.ofmap_dram_reads

    @property
    def dram_read_bytes(self) -> int:
        return self.dram_read_words * self.word_bytes

    @property
    def dram_write_bytes(self) -> int:
        return self.ofmap_dram_writes * self.word_bytes

    @property
    def traffic(self) -> DramTraffic:
        return DramTraffic(self.ifmap_dram_reads, self.filter_dram_reads, self.ofmap_dram_reads,
                           self.ofmap_dram_writes)

    def dram_bytes(self, operand: str) -> int:
        """DRAM bytes moved for ``"ifmap"``, ``"filter"``, ``"ofmap_read"`` or ``"ofmap_write"``."""
        words = {"ifmap": self.ifmap_dram_reads, "filter": self.filter_dram_reads,
                 "ofmap_read": self.ofmap_dram_reads, "ofmap_write": self.ofmap_dram_writes}
        if operand not in words:
            raise SystolicError(f"operand: unknown operand {operand!r}; known: {sorted(words)}")
        return words[operand] * self.word_bytes


def conv_as_gemm(h: int, w: int, kh: int, kw: int, cin: int, cout: int,
                 stride: int = 1, pad: int = 0) -> ConvGemm:
    """Lower a convolution (NHWC, batch 1, square stride) the way SCALE-Sim builds its operands."""
    for name, value in (("h", h), ("w", w), ("kh", kh), ("kw", kw), ("cin", cin), ("cout", cout),
                        ("stride", stride)):
        positive_int(name, value)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise SystolicError(f"pad: must be a non-negative integer, got {pad!r}")
    if kh > h + 2 * pad or kw > w + 2 * pad:
        raise SystolicError(f"kh, kw: a {kh}x{kw} filter does not fit a {h}x{w} ifmap "
                            f"with pad {pad}")
    out_h = (h + 2 * pad - kh) // stride + 1
    out_w = (w + 2 * pad - kw) // stride + 1
    # Padding zeros are generated, not fetched: the SRAM holds the h x w x cin feature map.
    return ConvGemm(m=out_h * out_w, n=cout, k=kh * kw * cin, out_h=out_h, out_w=out_w,
                    ifmap_words=h * w * cin)


def systolic_conv(h: int, w: int, kh: int, kw: int, cin: int, cout: int, stride: int = 1,
                  pad: int = 0, *, array: SystolicArray) -> SystolicResult:
    """Cycles and traffic of one convolution layer on ``array`` (see the module docstring)."""
    g = conv_as_gemm(h, w, kh, kw, cin, cout, stride, pad)
    ifmap_words = g.m * g.k if array.im2col_in_sram else g.ifmap_words
    return _simulate(g.m, g.n, g.k, array, ifmap_words)


def systolic_gemm(m: int, n: int, k: int, *, array: SystolicArray, ifmap_words: int | None = None) -> SystolicResult:
    """Cycles and traffic of C[m, n] = A[m, k] @ B[k, n] on ``array`` (A is the ifmap operand).
    ``ifmap_words``: what the ifmap SRAM holds for one pass when that is not A itself (a lowered
    convolution holds its raw feature map); default m * k."""
    for name, value in (("m", m), ("n", n), ("k", k)):
        positive_int(name, value)
    return _simulate(m, n, k, array, m * k if ifmap_words is None else positive_int("ifmap_words", ifmap_words))


def spatial_mapping(m: int, n: int, k: int, dataflow: Dataflow) -> tuple[int, int, int]:
    """(Sr, Sc, T): what lies along the array rows, the array columns, and time."""
    if dataflow is Dataflow.OS:
        return m, n, k
    if dataflow is Dataflow.WS:
        return k, n, m
    return k, m, n


def cycles_per_fold(rows: int, cols: int, t: int, dataflow: Dataflow) -> int:
    """SCALE-Sim v3's demand-matrix length per fold (see the table in the module docstring)."""
    if dataflow is Dataflow.OS:
        return t + rows + cols - 2
    return 2 * rows + cols + t - 2


def _simulate(m: int, n: int, k: int, array: SystolicArray, ifmap_words: int) -> SystolicResult:
    df = Dataflow(array.dataflow)
    r, c = array.rows, array.cols
    sr, sc, t = spatial_mapping(m, n, k, df)
    fr, fc = math.ceil(sr / r), math.ceil(sc / c)
    per_fold = cycles_per_fold(r, c, t, df)
    compute = fr * fc * per_fold
    # Every fold maps min(R, rows left) x min(C, cols left) PEs; the sum over folds is Sr * Sc.
    mapping_eff = (sr * sc) / (fr * r * fc * c)
    sram = _sram_accesses(m, n, k, fr, fc, df)
    traffic = dram_traffic(m, n, k, c, fr, fc, df, array, ifmap_words)
    stall, preload, writeback = stall_cycles(compute, traffic, array)
    macs = m * n * k
    return SystolicResult(
        dataflow=df, rows=r, cols=c, m=m, n=n, k=k, row_folds=fr, col_folds=fc,
        cycles_per_fold=per_fold, total_cycles=compute + stall, compute_cycles=compute,
        stall_cycles=stall, preload_cycles=preload, writeback_cycles=writeback, macs=macs,
        mapping_efficiency=mapping_eff, compute_utilization=macs / (r * c * compute),
        utilization=macs / (r * c * (compute + stall)), word_bytes=array.word_bytes, **sram,
        ifmap_dram_reads=traffic.ifmap_reads, filter_dram_reads=traffic.filter_reads,
        ofmap_dram_reads=traffic.ofmap_reads, ofmap_dram_writes=traffic.ofmap_writes)


def _sram_accesses(m: int, n: int, k: int, fr: int, fc: int, df: Dataflow) -> dict[str, int]:
    """Words the array reads from / writes to each SRAM (SCALE-Sim's demand counts, see above)."""
    if df is Dataflow.OS:
        # Each (fr, fc) fold streams its R x K ifmap rows and K x C filter columns; outputs once.
        return dict(ifmap_sram_reads=fc * m * k, filter_sram_reads=fr * k * n,
                    ofmap_sram_writes=m * n, ofmap_sram_reads=0)
    # WS and IS reduce over K across the row folds: every row fold writes a partial sum for each
    # output, and all but the first read the previous partial sum back to accumulate.
    psums = dict(ofmap_sram_writes=fr * m * n, ofmap_sram_reads=(fr - 1) * m * n)
    if df is Dataflow.WS:
        return dict(ifmap_sram_reads=fc * m * k, filter_sram_reads=k * n, **psums)
    return dict(ifmap_sram_reads=m * k, filter_sram_reads=fc * k * n, **psums)
