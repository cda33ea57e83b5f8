"""The command's text inputs and outputs as a user meets them: --set / --hw-set checked like the files,
the cycles column, and bad files or output paths as one line on stderr with exit status 2."""
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qsim.cli import main

KV_BYTES_PER_POSITION = 32 * 2 * 4096 * 2  # llama7b: layers x (K, V) x hidden x fp16 bytes


def run(*args, preexec_fn=None, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "qsim.cli", *args], capture_output=True, text=True,
                          preexec_fn=preexec_fn, cwd=cwd, env=env, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start


def error_of(capsys, *args) -> str:
    """The one line a user error prints (exit status 2, nothing else on stderr)."""
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def json_run(capsys, *args) -> dict:
    assert main(["run", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_set_changes_the_workload_like_the_file(capsys):
    base = json_run(capsys, "llama7b_decode", "--hw", "cloud")
    longer = json_run(capsys, "llama7b_decode", "--hw", "cloud", "--set", "context=4095", "--set", "seq=1")
    assert base["totals"]["state_bytes"] == 1024 * KV_BYTES_PER_POSITION  # the file: context 1023 + seq 1
    assert longer["totals"]["state_bytes"] == 4096 * KV_BYTES_PER_POSITION
    assert json_run(capsys, "llama7b_decode", "--hw", "cloud", "--set", "model.params.context=4095")["totals"] \
        == longer["totals"]


def test_set_batch_is_the_batch_flag(capsys):
    by_set = json_run(capsys, "mlperf_tiny_ad", "--hw", "cloud", "--set", "batch=8")
    by_flag = json_run(capsys, "mlperf_tiny_ad", "--hw", "cloud", "--batch", "8")
    assert by_set["totals"] == by_flag["totals"] and by_set["totals"]["macs"] == 8 * 264_192


def test_set_a_builder_param(capsys):
    small = json_run(capsys, "resnet18", "--hw", "cloud", "--set", "image_size=112")
    full = json_run(capsys, "resnet18", "--hw", "cloud")
    assert small["layers"][0]["macs"] * 4 == full["layers"][0]["macs"]  # the stem conv: a quarter of the pixels


@pytest.mark.parametrize("args,message", [
    (["--set", "context=abc"], "qsim: error: --set context=abc: model.params.context: expected an integer, got 'abc'"),
    (["--set", "context=-5"], "qsim: error: --set context=-5: model.params.context: must be >= 0, got -5"),
    (["--set", "seq=.nan"], "qsim: error: --set seq=nan: seq: expected an integer, got nan"),
    (["--set", "seq"], "qsim: error: --set 'seq': expected KEY=VALUE (e.g. --set seq=128)"),
    (["--set", "seq=1", "--set", "seq=2"], "qsim: error: --set seq: given twice"),
    (["--set", "seq=[1, 2]"], "qsim: error: --set seq=[1, 2]: expected a number, string or boolean"),
    (["--set", "a.b=1"], "qsim: error: --set a.b=1: only batch, seq and the parameters of a builder workload can "
                         "be set (NAME or model.params.NAME)"),
])
def test_bad_set_is_one_line_naming_the_key(capsys, args, message):
    assert error_of(capsys, "run", "llama7b_decode", "--hw", "cloud", *args) == message


def test_set_beyond_bert_positions_and_unknown_param(capsys):
    assert error_of(capsys, "run", "bert_base", "--hw", "cloud", "--set", "seq=600") == \
        "qsim: error: --set seq=600: seq: 600 is beyond the model's 512 positions (max_positions)"
    assert "builder 'llama' does not take ['foo']" in error_of(capsys, "run", "llama7b_decode", "--hw", "cloud",
                                                                "--set", "foo=3")


def test_hw_set_overrides_a_profile_key(capsys):
    assert main(["run", "resnet50", "--hw", "iot", "--precision", "int8"]) == 0
    assert "sram: needs 2.30 MiB of 512.0 KiB: DOES NOT FIT" in capsys.readouterr().out
    assert main(["run", "resnet50", "--hw", "iot", "--precision", "int8",
                 "--hw-set", "memories.sram.capacity_kib=4096"]) == 0
    assert "sram: needs 2.30 MiB of 4.00 MiB: fits" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--hw-set", "memories.sram.capacity_kib=-1"],
     "qsim: error: --hw-set memories.sram.capacity_kib=-1: memories.sram.capacity_kib: must be > 0, got -1"),
    (["--hw-set", "clock_mhz=.inf"], "qsim: error: --hw-set clock_mhz=inf: clock_mhz: must be a finite number, got inf"),
    (["--hw-set", "memories.sram.capacity_kb=1"],
     "qsim: error: --hw-set: override 'memories.sram.capacity_kb': 'capacity_kb' is not in the profile "
     "(did you mean 'memories.sram.capacity_kib'?)"),
    (["--hw-set", "=1"], "qsim: error: --hw-set '=1': expected KEY=VALUE (e.g. --hw-set "
                         "memories.sram.capacity_kib=1024)"),
])
def test_bad_hw_set_is_one_line_naming_the_key(capsys, args, message):
    assert error_of(capsys, "run", "resnet50", "--hw", "iot", *args) == message


def test_cycles_column_is_latency_times_clock(capsys):
    report = json_run(capsys, "resnet50", "--hw", "iot", "--hw-set", "clock_mhz=480")
    for layer in report["layers"]:
        assert layer["cycles"] == round(layer["latency_s"] * 480e6)
    assert main(["run", "resnet50", "--hw", "iot"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[header.index("latency_s") + 1] == "cycles"
    assert main(["run", "mlperf_tiny_ad", "--hw", "iot", "--format", "csv"]) == 0
    assert ",latency_s,cycles," in capsys.readouterr().out.splitlines()[0]


def test_out_refuses_links_folders_and_devices(capsys, tmp_path):
    link = tmp_path / "r.csv"
    link.symlink_to("/dev/null")
    assert error_of(capsys, "run", "mlperf_tiny_ad", "--hw", "iot", "--out", str(link)) == \
        f"qsim: error: --out {link}: is a symbolic link; qsim does not write through links (give the link's " \
        "target or another name)"
    assert link.is_symlink()
    folder = tmp_path / "d.json"
    folder.mkdir()
    assert error_of(capsys, "run", "mlperf_tiny_ad", "--hw", "iot", "--out", str(folder)) == \
        f"qsim: error: --out {folder}: is a directory, not a file; give a file name"
    assert error_of(capsys, "calibrate", "--out", "/dev/full") == \
        "qsim: error: --out /dev/full: is a character device, not a file; give a file name"
    (tmp_path / "f").write_text("")
    assert error_of(capsys, "sweep", "workloads/sweeps/precision_x_profile.yaml", "--out", str(tmp_path / "f")) == \
        f"qsim: error: --out {tmp_path / 'f'}: is a file, not a folder"


def test_import_output_to_a_device_is_refused_before_importing(capsys, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read: the output is checked first")
    assert error_of(capsys, "import", str(model), "-o", "/dev/null") == \
        "qsim: error: --output /dev/null: is a character device, not a file; give a file name"


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


def test_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    """A full disk as the writer meets it: the write fails part way (here at a 2 KiB ulimit -f)."""
    out = tmp_path / "r.csv"
    code, _, err, _ = run("run", "resnet50", "--hw", "iot", "--out", str(out), preexec_fn=_limit_file_size)
    assert code == 2, err
    assert err == f"qsim: error: {out}: cannot write: File too large (a file-size limit: ulimit -f)\n"
    assert list(tmp_path.iterdir()) == []


def test_bad_text_files_through_the_command_are_one_line_and_fast(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\ndescription: *a8\n")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00n\x00a")
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 3000 + "]" * 3000)
    for path, message in ((bomb, f"{bomb}:6: this value expands to more than 200,000 values"),
                          (binary, f"{binary}:1: not a UTF-8 text file (byte 0xff at offset 0)"),
                          (deep, f"{deep}:1: nested more than 64 levels deep")):
        code, _, err, seconds = run("profiles", "check", str(path))
        assert code == 2 and err.startswith(f"qsim: error: {message}") and err.count("\n") == 1, err
        assert seconds < 30  # interpreter start included; the bomb alone took 12 s and ran out of memory before


def test_five_thousand_character_names_are_one_line(capsys):
    long = "x" * 5000
    for args in (["run", long, "--hw", "iot"], ["run", "resnet50", "--hw", long],
                 ["run", "resnet50", "--hw", "iot", "--out", f"{long}.csv"]):
        assert len(error_of(capsys, *args)) < 400


def test_workload_parameters_are_sweep_axes(capsys, tmp_path):
    import pandas as pd

    spec = tmp_path / "ctx.yaml"
    spec.write_text("name: ctx\nworkloads: [llama7b_decode]\nprecisions: [w4a16]\nprofiles: [cloud]\n"
                    "params: {context: [1023, 4095]}\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress"]) == 0
    df = pd.read_csv(tmp_path / "out" / "results.csv").sort_values("context")
    assert list(df["context"]) == [1023, 4095]
    assert list(df["state_bytes"]) == [1024 * KV_BYTES_PER_POSITION, 4096 * KV_BYTES_PER_POSITION]
    assert len(set(df["point_id"])) == 2


def test_bad_sweep_parameters_name_the_spec_line_and_workload(capsys, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\nprecisions: [int8]\npoints:\n"
                    "  - {workload: bert_base, precision: int8, profile: cloud, params: {seq: 384}}\n"
                    "  - {workload: bert_base, precision: int8, profile: cloud, params: {seq: 600}}\n"
                    "  - {workload: bert_base, precision: int8, profile: cloud, params: {latency_s: 1}}\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:5: points[1].params.seq: workload 'bert_base': params: seq=600: seq: 600 is beyond the " \
           "model's 512 positions (max_positions)" in err
    assert f"{spec}:6: points[2].params.latency_s: 'latency_s' is a column of the results; it cannot be a " \
           "parameter" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
