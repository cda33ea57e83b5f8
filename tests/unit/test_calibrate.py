"""qsim calibrate: the profile it writes is valid and carries the measured numbers."""
import pytest

from qsim.hw.calibrate import Machine, peak_macs_per_cycle, profile_yaml
from qsim.cli import main
from qsim.hw.profile import build_profile, load_profile
from qsim.yamlio import load_yaml

FAKE = Machine("Test CPU", 2, 3.0e9, frozenset({"avx512f", "avx512_vnni", "fma"}), 2**20, 32 * 2**20, 16 * 2**30)


def _results(int8=600e9 / 2, fp32=150e9 / 2):
    return {"machine": FAKE, "int8_ort": int8, "fp32_ort": fp32, "fp32_numpy": fp32 / 2, "dram_bps": 20e9,
            "cache_bps": 200e9, "dispatch_s": 2e-6, "op_ns": {"LRN": 10.3, "Softmax": 1.5}}


def test_peaks_follow_the_instruction_set():
    assert peak_macs_per_cycle(FAKE) == {"int8": 128, "fp32": 64}
    avx2 = Machine("old", 4, 3e9, frozenset({"avx2", "fma"}), 0, 0, 0)
    assert peak_macs_per_cycle(avx2) == {"int8": 128, "fp32": 64}


def test_profile_from_measurements_is_valid_and_traceable():
    text = profile_yaml(_results(), name="local")
    p = build_profile(load_yaml("x.yaml", text), "x.yaml")
    # 300 G MAC/s / (128 MACs/cycle x 3 GHz) = 0.78125
    assert p.compute.efficiency["int8"] == 0.7812
    assert p.compute.efficiency["fp32"] == round(75e9 / (64 * 3e9), 4)
    assert p.memories["dram"].bandwidth_bytes_per_s == 20e9
    assert p.dispatch_s == 2e-6
    assert p.op_s_per_element["LRN"] == pytest.approx(10.3e-9)
    assert "600.0 GOPS measured" in text


def test_turbo_rates_raise_the_peak_not_the_clock():
    text = profile_yaml(_results(int8=128 * 3.5e9), name="local")  # faster than possible at 3.0 GHz
    p = build_profile(load_yaml("x.yaml", text), "x.yaml")
    assert p.clock_hz == 3.0e9
    assert p.compute.macs_per_cycle["int8"] == 150  # ceil(448e9 / 3e9)
    assert p.compute.efficiency["int8"] == round(448e9 / (150 * 3e9), 4)
    assert "turbo beats the instruction-set peak" in text


def test_calibrate_command_writes_a_loadable_profile(tmp_path, capsys):
    out = tmp_path / "local.yaml"
    assert main(["calibrate", "--quick", "--out", str(out)]) == 0
    prof = load_profile(out)
    assert prof.kind == "cpu" and prof.compute.macs_per_cycle["int8"] > 0


def test_int8_efficiency_comes_from_the_qoperator_convolution():
    r = {**_results(int8=600e9 / 2), "int8_qconv": 192e9, "int8_qmatmul": 240e9}
    text = profile_yaml(r, name="local")
    p = build_profile(load_yaml("x.yaml", text), "x.yaml")
    assert p.compute.macs_per_cycle["int8"] == 128  # the instruction-set peak, not a measured rate
    assert p.compute.efficiency["int8"] == 0.5  # 192 G MAC/s / (128 x 3 GHz)
    assert "QLinearConv 3x3 u8 x s8: 384.0 GOPS measured (QLinearMatMul 480.0, MatMulInteger 600.0)" in text


def test_the_int8_conv_rate_names_the_lone_kernels_it_was_read_from():
    fit = {"macs_per_s": 192e9, "output_ns": 0.05, "rows": [("3x3 64->64 56x56", 115605504, 0.6e-3, (64, 64, 56, 3)),
                                                            ("1x1 256->64 56x56", 51380224, 0.3e-3, (256, 64, 56, 1))]}
    r = {**_results(int8=600e9 / 2), "int8_qconv": 192e9, "int8_qconv_fit": fit, "int8_qmatmul": 240e9}
    text = profile_yaml(r, name="local")
    assert build_profile(load_yaml("x.yaml", text), "x.yaml").compute.efficiency["int8"] == 0.5
    assert "384.0 GOPS measured (lone kernels 3x3 64->64 56x56, 1x1 256->64 56x56: least squares with a cost per " \
        "output)" in text


def test_rounds_keep_the_median_of_each_number():
    from qsim.hw.calibrate import median_results

    rounds = [{"machine": FAKE, "rate": 1.0, "pair": (0.5, 2.0), "rows": [("a", 7, 1.0)], "sizes": ((64, 56),)},
              {"machine": FAKE, "rate": 9.0, "pair": (0.4, 3.0), "rows": [("a", 7, 3.0)], "sizes": ((64, 56),)},
              {"machine": FAKE, "rate": 2.0, "pair": (0.6, 1.0), "rows": [("a", 7, 2.0)], "sizes": ((64, 56),)}]
    assert median_results(rounds) == {"machine": FAKE, "rate": 2.0, "pair": (0.5, 2.0), "rows": [("a", 7, 2.0)],
                                      "sizes": ((64, 56),)}
    assert isinstance(median_results(rounds)["sizes"][0][0], int)  # unchanged numbers keep their type


def test_calibrate_rejects_zero_rounds(tmp_path):
    from qsim.errors import QsimError
    from qsim.hw.calibrate import write_profile

    with pytest.raises(QsimError, match="--rounds must be at least 1, got 0"):
        write_profile(tmp_path / "local.yaml", quick=True, rounds=0)


def test_qoperator_microbenchmarks_run_at_tiny_sizes():
    from qsim.hw.calibrate import ort_qlinear_conv_macs_per_s, ort_qlinear_matmul_macs_per_s

    assert ort_qlinear_conv_macs_per_s(4, channels=8) > 0
    assert ort_qlinear_matmul_macs_per_s(16) > 0


def test_depthwise_efficiency_comes_from_the_lone_depthwise_kernel():
    r = {**_results(int8=600e9 / 2), "int8_qconv": 192e9, "int8_qmatmul": 240e9, "int8_depthwise": 19.2e9}
    p = build_profile(load_yaml("x.yaml", profile_yaml(r, name="local")), "x.yaml")
    assert p.compute.depthwise_efficiency == {"int8": 0.05}  # 19.2 G MAC/s / (128 x 3 GHz)
    assert "fp32" not in p.compute.depthwise_efficiency  # fp32 depthwise keeps the fp32 efficiency
