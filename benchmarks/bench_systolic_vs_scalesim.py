"""qsim's systolic-array model against SCALE-Sim v3 on ResNet-50 layers and a few GEMMs.

Run: ``.venv/bin/python benchmarks/bench_systolic_vs_scalesim.py [--configs ample,example]``
(needs ``pip install scalesim``; minutes on 2 cores, so it is not part of the test run).

Two memory configurations, each for 8x8, 32x32 and 128x128 arrays and the os/ws/is dataflows:

* ``ample``: SRAMs big enough to hold every operand and a DRAM port of 2*max(R, C) words/cycle,
  so both simulators are compute-bound and the comparison checks mapping, folds, fill and drain.
* ``example``: SCALE-Sim's example ``configs/scale.cfg`` memory (64 KiB per SRAM, Bandwidth 10
  words/cycle), run in USER bandwidth mode (the file says CALC, in which reads never stall:
  ``read_buffer_estimate_bw.py``). In USER mode SCALE-Sim takes the ifmap and filter port widths from
  ``IfmapSRAMBankBandwidth`` / ``FilterSRAMBankBandwidth`` (``single_layer_sim.run``), so those
  are set to 10 as well. qsim runs with ``im2col_in_sram=True``, SCALE-Sim's storage assumption.
  Here the two memory models differ (see ``qsim/cost/systolic.py``); the error is reported, not
  tuned.

SCALE-Sim simulates every cycle in Python, so a layer's channel counts are halved (``scale``
column: divisor applied to Cin and Cout, or N and K of a GEMM) until its estimated run time fits
``--budget-s``; both simulators always see the same, possibly scaled, layer.

SCALE-Sim 3.0.0 on numpy >= 2.4 fails in ``int(max(list_of_1_element_arrays))``
(scalesim-project/SCALE-Sim issue #160). ``_patch_scalesim_for_numpy24`` applies the issue's
suggested fix at run time, by shadowing ``max`` in the two affected modules with a numpy reduction;
site-packages are not modified.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from qsim.cost.systolic import SystolicArray, conv_as_gemm, systolic_conv, systolic_gemm


@dataclass(frozen=True)
class Layer:
    name: str
    h: int  # ifmap height, already padded (SCALE-Sim has no padding parameter)
    w: int
    kh: int
    kw: int
    cin: int
    cout: int
    stride: int = 1
    gemm: bool = False  # if True: (h, cout, cin) = (M, N, K)

    def scaled(self, div: int) -> Layer:
        if self.gemm:
            return Layer(self.name, self.h, 1, 1, 1, max(1, self.cin // div), max(1, self.cout // div),
                         gemm=True)
        return Layer(self.name, self.h, self.w, self.kh, self.kw, max(1, self.cin // div),
                     max(1, self.cout // div), self.stride)

    def mnk(self) -> tuple[int, int, int]:
        if self.gemm:
            return self.h, self.cout, self.cin
        g = conv_as_gemm(self.h, self.w, self.kh, self.kw, self.cin, self.cout, self.stride)
        return g.m, g.n, g.k


# ResNet-50 v1 (He et al., CVPR 2016, Table 1), 224x224 input; ifmaps padded by (k - 1) / 2.
# conv1 takes 229 rows, not 224 + 6: SCALE-Sim sizes outputs as ceil((H - kh + s) / s), which
# counts a partial edge window (113 outputs from 230), where PyTorch and qsim give 112 from both.
LAYERS = [
    Layer("conv1 7x7/2", 229, 229, 7, 7, 3, 64, 2),
    Layer("res2 1x1 64>64", 56, 56, 1, 1, 64, 64),
    Layer("res2 3x3 64", 58, 58, 3, 3, 64, 64),
    Layer("res2 1x1 64>256", 56, 56, 1, 1, 64, 256),
    Layer("res3 3x3 128", 30, 30, 3, 3, 128, 128),
    Layer("res3 1x1 128>512", 28, 28, 1, 1, 128, 512),
    Layer("res4 3x3 256", 16, 16, 3, 3, 256, 256),
    Layer("res4 1x1 256>1024", 14, 14, 1, 1, 256, 1024),
    Layer("res5 3x3 512", 9, 9, 3, 3, 512, 512),
    Layer("res5 1x1 512>2048", 7, 7, 1, 1, 512, 2048),
    Layer("fc 2048>1000", 1, 1, 1, 1, 2048, 1000, gemm=True),
    Layer("gemm 64^3", 64, 1, 1, 1, 64, 64, gemm=True),
    Layer("gemm 197x768x768", 197, 1, 1, 1, 768, 768, gemm=True),
    Layer("gemm 512x256x1024", 512, 1, 1, 1, 1024, 256, gemm=True),
]
ARRAYS = (8, 32, 128)
DATAFLOWS = ("os", "ws", "is")


def _patch_scalesim_for_numpy24() -> None:
    """Issue #160's fix, applied at run time: reduce with numpy where SCALE-Sim calls max()."""
    import scalesim.memory.double_buffered_scratchpad_mem as dbsp
    import scalesim.memory.read_buffer as rdbuf

    def np_max(*args):
        if len(args) == 1:
            return np.max(np.asarray(args[0]))
        return max(np.max(np.asarray(a)) for a in args)

    dbsp.max = np_max  # module globals shadow the builtin for the methods defined there
    rdbuf.max = np_max


def _memory(config: str, rows: int, cols: int) -> tuple[int, int]:
    """(SRAM KiB per operand, DRAM words per cycle) of a named configuration."""
    if config == "ample":
        # Half of 8 MiB holds the largest lowered operand here (conv1: 12544 x 147 = 1.8 M words);
        # 2*max(R, C) words/cycle is twice what the array can consume per cycle from one SRAM.
        return 8192, 2 * max(rows, cols)
    return 64, 10  # SCALE-Sim v3 configs/scale.cfg


def run_scalesim(layer: Layer, rows: int, cols: int, dataflow: str, config: str) -> dict:
    from scalesim.layout_utils import layouts
    from scalesim.scale_config import scale_config
    from scalesim.single_layer_sim import single_layer_sim
    from scalesim.topology_utils import topologies

    kib, bw = _memory(config, rows, cols)
    cfg = scale_config()
    cfg.array_rows, cfg.array_cols, cfg.df = rows, cols, dataflow
    cfg.ifmap_sz_kb = cfg.filter_sz_kb = cfg.ofmap_sz_kb = kib
    # USER bandwidth mode: the ofmap port takes Bandwidth, the read ports their bank bandwidth.
    cfg.use_user_bandwidth, cfg.bandwidths = True, [bw]
    cfg.ifmap_sram_bank_bandwidth = cfg.filter_sram_bank_bandwidth = bw
    cfg.ifmap_sram_bank_num = cfg.filter_sram_bank_num = 1
    cfg.using_ifmap_custom_layout = cfg.using_filter_custom_layout = False
    cfg.valid_conf_flag = True
    topo = topologies()
    if layer.gemm:  # SCALE-Sim's own GEMM encoding (topology_utils.load_arrays_gemm)
        m, n, k = layer.mnk()
        row = ["L", m, k, 1, k, 1, n, 1, 1, 1, 1]
    else:
        row = ["L", layer.h, layer.w, layer.kh, layer.kw, layer.cin, layer.cout, layer.stride,
               layer.stride, 1, 1]
    topo.load_layer_params_from_list("L", row)
    sim = single_layer_sim()
    sim.set_params(layer_id=0, config_obj=cfg, topology_obj=topo, layout_obj=layouts(), verbose=False)
    sim.run()
    _overall, total, stall, *_ = sim.get_compute_report_items()
    detail = sim.get_detail_report_items()
    return dict(total=int(total), stall=int(stall), ifmap_dram=int(detail[11]),
                filter_dram=int(detail[14]), ofmap_dram=int(detail[17]))


def run_qsim(layer: Layer, rows: int, cols: int, dataflow: str, config: str):
    kib, bw = _memory(config, rows, cols)
    array = SystolicArray(rows, cols, dataflow, kib, kib, kib, dram_bytes_per_cycle=bw,
                          word_bytes=1, im2col_in_sram=(config == "example"))
    if layer.gemm:
        m, n, k = layer.mnk()
        return systolic_gemm(m, n, k, array=array)
    return systolic_conv(layer.h, layer.w, layer.kh, layer.kw, layer.cin, layer.cout,
                         layer.stride, array=array)


def _estimated_seconds(layer: Layer, rows: int, cols: int, dataflow: str) -> float:
    """Rough SCALE-Sim run time on this machine: per demand line, and per prefetch element."""
    r = run_qsim(layer, rows, cols, dataflow, "ample")
    m, n, k = layer.mnk()
    # Measured on this 2-core machine: ~45 us per demand line plus ~0.25 us per address in it,
    # and ~1 us per element of the prefetch-matrix loops.
    return r.compute_cycles * (45e-6 + (rows + 2 * cols) * 0.25e-6) + (m * k + k * n) * 1e-6


def _fit(layer: Layer, rows: int, cols: int, dataflow: str, budget_s: float) -> tuple[Layer, int]:
    div = 1
    while _estimated_seconds(layer.scaled(div), rows, cols, dataflow) > budget_s and \
            max(layer.cin, layer.cout) // div > 1:
        div *= 2
    return layer.scaled(div), div


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="ample,example")
    parser.add_argument("--arrays", default=",".join(map(str, ARRAYS)))
    parser.add_argument("--budget-s", type=float, default=1.5,
                        help="estimated SCALE-Sim seconds per run before channels are scaled down")
    args = parser.parse_args(argv)
    _patch_scalesim_for_numpy24()
    # (config, array, dataflow) -> [(|error| %, whether both moved the same DRAM words +-10 %)]
    errors: dict[tuple[str, int, str], list[tuple[float, bool]]] = {}
    head = (f"{'config':8} {'layer':20} {'scale':>5} {'array':>7} {'df':3} {'qsim cyc':>10} "
            f"{'SCALE-Sim':>10} {'err %':>7} {'qsim DRAM rd (if/fl)':>22} {'SCALE-Sim DRAM rd':>22}")
    print(head)
    start = time.time()
    for config in args.configs.split(","):
        for size in (int(a) for a in args.arrays.split(",")):
            for layer in LAYERS:
                for df in DATAFLOWS:
                    scaled, div = _fit(layer, size, size, df, args.budget_s)
                    q = run_qsim(scaled, size, size, df, config)
                    s = run_scalesim(scaled, size, size, df, config)
                    err = 100.0 * (q.total_cycles - s["total"]) / s["total"]
                    q_reads = q.ifmap_dram_reads + q.filter_dram_reads
                    s_reads = s["ifmap_dram"] + s["filter_dram"]
                    same = abs(s_reads - q_reads) <= 0.1 * q_reads
                    errors.setdefault((config, size, df), []).append((abs(err), same))
                    print(f"{config:8} {layer.name:20} {div:>5} {size:>3}x{size:<3} {df:3} "
                          f"{q.total_cycles:>10} {s['total']:>10} {err:>7.2f} "
                          f"{q.ifmap_dram_reads:>11}/{q.filter_dram_reads:<10} "
                          f"{s['ifmap_dram']:>11}/{s['filter_dram']:<10}", flush=True)
    print(f"\nsummary: |error| of total cycles, qsim vs SCALE-Sim ({time.time() - start:.0f} s); "
          "'same DRAM': only rows where both read the same words +-10 %, i.e. SCALE-Sim did not "
          "re-stream an operand")
    print(f"{'config':8} {'array':>7} {'df':3} {'median %':>9} {'max %':>8} {'n':>3}   "
          f"{'same DRAM: median %':>19} {'max %':>7} {'n':>3}")
    for (config, size, df), rows in errors.items():
        every = [e for e, _ in rows]
        same = [e for e, same in rows if same] or [float("nan")]
        print(f"{config:8} {size:>3}x{size:<3} {df:3} {statistics.median(every):>9.2f} "
              f"{max(every):>8.2f} {len(every):>3}   {statistics.median(same):>19.2f} "
              f"{max(same):>7.2f} {sum(s for _, s in rows):>3}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
