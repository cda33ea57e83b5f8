"""The CPU kind as an argument: ``qsim.simulate(..., ort_cpu=)``, ``qsim.compile(..., ort_cpu=)``,
``qsim validate --ort-cpu``. The planted pairs of test_pairs16 give hand-checked accumulators that
differ between "avx2" (saturating int16 pairs: 255*127 + 255*127 = 64770 -> 32767) and "vnni"
(exact); the argument overrides ``QSIM_ORT_CPU``, and a compiled model keeps the kind it was built for."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto as T, helper as h, numpy_helper as nh
from test_pairs16 import _expected, _matmul_integer, _planted

import qsim
from qsim.cli import main
from qsim.errors import QsimError
from qsim.sim import float_mlas as M
from qsim.sim.int_runtime import ORT_CPUS, host_ort_cpu, ort_cpu, ort_cpu_scope, ort_float_lanes
from qsim.sim.validate_cli import ORT_CPU_CHOICES

OTHER = {"avx2": "vnni", "vnni": "avx2"}
PLANTED = 4  # PAIRS[4]: 255*127 + 255*127


def _y(out):
    return out["y"] if isinstance(out, dict) else out[0]


@pytest.mark.parametrize("k", [8, 9])
@pytest.mark.parametrize("cpu", ["avx2", "vnni"])
def test_argument_gives_the_hand_checked_accumulators_over_the_env(tmp_path, monkeypatch, k, cpu):
    monkeypatch.setenv("QSIM_ORT_CPU", OTHER[cpu])  # the argument wins
    a, b = _planted(k)
    y = _y(qsim.simulate(_matmul_integer(tmp_path / "m.onnx", k, b), {"a": a}, ort_cpu=cpu))
    np.testing.assert_array_equal(y, _expected(a, b, saturate=cpu == "avx2"))
    lone = 255 * 127 if k % 2 else 0
    assert y[PLANTED, PLANTED] - lone == (32767 if cpu == "avx2" else 64770)


def test_compiled_model_keeps_its_kind(tmp_path, monkeypatch):
    a, b = _planted(8)
    path = _matmul_integer(tmp_path / "m.onnx", 8, b)
    monkeypatch.setenv("QSIM_ORT_CPU", "avx2")
    by_env = qsim.compile(path, {"a": a})  # None: the environment, read at compile time
    by_arg = {cpu: qsim.compile(path, {"a": a}, ort_cpu=cpu) for cpu in ("avx2", "vnni")}
    monkeypatch.setenv("QSIM_ORT_CPU", "vnni")
    assert (by_env.ort_cpu, by_arg["avx2"].ort_cpu, by_arg["vnni"].ort_cpu) == ("avx2", "avx2", "vnni")
    for _ in range(2):  # interleaved runs on the same weights: neither plan takes the other's kind
        for compiled, saturate in ((by_env, True), (by_arg["vnni"], False), (by_arg["avx2"], True)):
            np.testing.assert_array_equal(_y(compiled.run({"a": a})), _expected(a, b, saturate))
    assert ort_cpu() == "vnni"  # nothing global changed by the runs


def test_scope_is_restored_and_lanes_follow_the_kind(monkeypatch):
    monkeypatch.delenv("QSIM_ORT_CPU", raising=False)
    host = ort_cpu()
    with ort_cpu_scope("vnni"):
        assert (ort_cpu(), ort_float_lanes()) == ("vnni", 16)
        with ort_cpu_scope("avx2"):
            assert (ort_cpu(), ort_float_lanes()) == ("avx2", 8)
        assert ort_cpu("arm64") == "arm64"  # an explicit argument over the scope
    assert ort_cpu() == host == host_ort_cpu()


def test_float_softmax_lanes_follow_the_argument(tmp_path):
    """A float Softmax runs MLAS's kernel: 8 lanes on "avx2", 16 on "vnni" (AVX-512F)."""
    io = [h.make_tensor_value_info("x", T.FLOAT, [64, 100])], [h.make_tensor_value_info("y", T.FLOAT, None)]
    g = h.make_graph([h.make_node("Softmax", ["x"], ["y"], axis=-1)], "g", *io)
    path = tmp_path / "s.onnx"
    path.write_bytes(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]).SerializeToString())
    x = np.random.default_rng(0).standard_normal((64, 100)).astype(np.float32) * 4
    e = M._exp_scaled((x - x.max(axis=-1, keepdims=True)).astype(np.float32))
    want = {cpu: (e * (np.float32(1) / M._lane_sum(e, lanes))[:, None]).astype(np.float32)
            for cpu, lanes in (("avx2", 8), ("vnni", 16))}
    assert not np.array_equal(want["avx2"], want["vnni"])  # the lanes matter on these rows
    for cpu in ("avx2", "vnni"):
        np.testing.assert_array_equal(_y(qsim.simulate(path, {"x": x}, ort_cpu=cpu)), want[cpu])


@pytest.mark.parametrize("bad", ["avx9", "AVX-512", 3])
def test_bad_argument_is_a_clear_error_before_any_work(monkeypatch, bad):
    monkeypatch.setenv("QSIM_ORT_CPU", "avx9")  # an explicit argument does not read the environment
    with pytest.raises(QsimError, match=r"ort_cpu=.*: use one of host, avx2, vnni, arm64"):
        qsim.simulate("no/such/model.onnx", {}, ort_cpu=bad)
    with pytest.raises(QsimError, match=r"ort_cpu=.*: use one of host, avx2, vnni, arm64"):
        qsim.compile("no/such/model.onnx", ort_cpu=bad)
    from qsim.sim.validate import validate
    with pytest.raises(QsimError, match=r"ort_cpu=.*: use one of host"):
        validate("no/such/model.onnx", ort_cpu=bad)


def test_argument_spellings(tmp_path, monkeypatch):
    monkeypatch.setenv("QSIM_ORT_CPU", "avx9")  # not read: every call below names its kind
    a, b = _planted(8)
    path = _matmul_integer(tmp_path / "m.onnx", 8, b)
    assert qsim.compile(path, {"a": a}, ort_cpu=" VNNI ").ort_cpu == "vnni"
    assert qsim.compile(path, {"a": a}, ort_cpu="host").ort_cpu == "host"
    with pytest.raises(QsimError, match="QSIM_ORT_CPU='avx9'"):  # None: the environment, checked as before
        qsim.compile(path, {"a": a})


def test_cli_choices_are_the_runtime_kinds():
    assert ORT_CPU_CHOICES == ("host",) + ORT_CPUS


def _validate_cli(tmp_path, capsys, *flags):
    code = main(["validate", *map(str, flags), "--format", "json", "--out", str(tmp_path / "report")])
    out = capsys.readouterr()
    return code, out


def _float_in_qlinear_conv(path):
    """QuantizeLinear (x codes 255 for x >= 5.1) -> QLinearConv with every weight -128: each uint8 x
    int8 pair is 255 * -128 * 2 = -65280, saturating to -32768 on avx2 -> DequantizeLinear. (Float
    input and output: ``--against`` feeds onnxruntime float32 arrays and compares real values.)"""
    inits = [nh.from_array(np.array(0.02, np.float32), "xs"), nh.from_array(np.array(0, np.uint8), "xz"),
             nh.from_array(np.full((2, 3, 3, 3), -128, np.int8), "w"), nh.from_array(np.float32(0.01), "ws"),
             nh.from_array(np.int8(0), "wz"), nh.from_array(np.array(4.0, np.float32), "ys"),
             nh.from_array(np.array(128, np.uint8), "yz")]
    nodes = [h.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             h.make_node("QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["yq"], kernel_shape=[3, 3]),
             h.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 5, 5])],
                     [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
    path.write_bytes(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]).SerializeToString())
    return path


def test_validate_ort_cpu_flag(tmp_path, capsys):
    """This host's onnxruntime equals qsim for this host's kind; for the other kind the report says
    which kind was simulated and that --against ran this host's (and, avx2 <-> vnni, they differ)."""
    model = _float_in_qlinear_conv(tmp_path / "c.onnx")
    x = np.full((1, 3, 5, 5), 6.0, np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    here = host_ort_cpu()
    for cpu in (here, OTHER.get(here, "avx2")):
        code, out = _validate_cli(tmp_path, capsys, model, "--data", tmp_path / "d.npz", "--against", "onnxruntime",
                                  "--ort-cpu", cpu.upper())
        assert code == 0, out.err
        report = json.loads(out.out)
        notes = " ".join(report["notes"])
        assert f"CPU kind {cpu!r}" in notes
        mismatches = sum(r["mismatches"] for r in report["against"]["outputs"])
        if cpu == here:
            assert mismatches == 0 and "--against ran this machine's" not in notes
        else:
            assert "--against ran this machine's onnxruntime" in notes
            if {cpu, here} == {"avx2", "vnni"}:  # the runtimes' sums differ on this input
                assert mismatches > 0


def test_validate_bad_flag_and_help(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["validate", "m.onnx", "--ort-cpu", "avx9"])
    assert exc.value.code == 2 and "invalid choice: 'avx9'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--ort-cpu {host,avx2,vnni,arm64}" in text and "default QSIM_ORT_CPU, else host" in text
