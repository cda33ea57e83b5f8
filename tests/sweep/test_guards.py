"""What a spec may ask for: a bounded number of points, a plain name, finite in-range axis values.
Each refusal happens before the output folder exists."""
import itertools
import subprocess
import sys
import tracemalloc

import pytest

from qsim.sweep import SweepError, load_spec, run_sweep
from qsim.sweep.points import check_size, iter_points

from tests.sweep._specs import tiny

# 1 x 1 x 1 x 317 x 316 = 100,172 points: just past the limit
BIG = ("name: big\nworkloads: [mlperf_tiny_kws]\nprecisions: [int8]\nprofiles: [iot]\noverrides:\n"
       f"  clock_mhz: {list(range(1, 318))}\n  dispatch_overhead_us: {[i / 2 for i in range(316)]}\n")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "qsim.cli", "sweep", *map(str, args)], capture_output=True, text=True)


def test_more_than_100000_points_needs_yes_or_max_points(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text(BIG)
    with pytest.raises(SweepError) as info:
        run_sweep(spec, out_dir=tmp_path / "o")
    assert str(info.value) == (f"{spec}:1: sweep 'big' has more than 100,000 points (100,172 before filters); above "
                               "100,000 points qsim needs --yes (run_sweep(..., yes=True)) or max_points: N in the spec")
    assert not (tmp_path / "o").exists()
    allowed = tmp_path / "allowed.yaml"
    allowed.write_text(BIG + "max_points: 200000\n")
    loaded = load_spec(allowed)
    assert check_size(loaded) == 100_172  # no --yes needed: the spec allows it
    tracemalloc.start()
    try:  # points are streamed: 20,000 of them pass through in well under the ~20 MB a list of them takes
        assert sum(1 for _ in itertools.islice(iter_points(loaded), 20_000)) == 20_000
        assert tracemalloc.get_traced_memory()[1] < 2e6
    finally:
        tracemalloc.stop()


def test_max_points_is_the_spec_own_cap():
    spec = load_spec(tiny(max_points=10))
    with pytest.raises(SweepError, match=r"sweep 'tiny' has more than 10 points \(24 before filters\); its max_points"):
        check_size(spec, yes=True)
    with pytest.raises(SweepError, match="its max_points is 10"):
        run_sweep(spec, workers=1)
    assert len(run_sweep(tiny(max_points=24), workers=1)) == 24


def test_points_are_streamed_not_listed():
    points = iter_points(load_spec(tiny()))
    assert next(points).axes["workload"] == "mlperf_tiny_kws" and not isinstance(points, list)


@pytest.mark.parametrize("name", ["../escaped_by_name", "/tmp/abs", "a/b", "..", ".hidden", "a\\b", ""])
def test_names_must_be_plain_file_names(tmp_path, name):
    spec = tmp_path / "n.yaml"
    spec.write_text(f"name: {name!r}\nworkloads: [mlperf_tiny_kws]\nprecisions: [int8]\nprofiles: [iot]\n")
    with pytest.raises(SweepError, match=r"n.yaml:1: name: .* is not a plain file name"):
        load_spec(spec)


def test_escaping_name_writes_nothing_outside(tmp_path):
    spec = tmp_path / "n.yaml"
    spec.write_text("name: ../escaped_by_name\nworkloads: [mlperf_tiny_kws]\nprecisions: [int8]\nprofiles: [iot]\n")
    proc = subprocess.run([sys.executable, "-m", "qsim.cli", "sweep", str(spec)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "is not a plain file name" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.yaml"]


@pytest.mark.parametrize("axis, values, problem", [
    ("batch", "[.nan]", "batch[0]: expected an integer, got nan"),
    ("batch", "[.inf]", "batch[0]: expected an integer, got inf"),
    ("batch", "[100000000000000000000]", "batch[0]: must be <= 1000000, got 100000000000000000000"),
    ("batch", "[0]", "batch[0]: must be >= 1, got 0"),
    ("overrides", "{clock_mhz: [.nan]}", "overrides.clock_mhz[0]: nan is not a finite number within +-1e+15"),
    ("overrides", "{clock_mhz: [-.inf]}", "overrides.clock_mhz[0]: -inf is not a finite number"),
    ("overrides", "{clock_mhz: [1.0e+20]}", "overrides.clock_mhz[0]: 1e+20 is not a finite number"),
    ("overrides", "{clock_mhz: [fast]}", "clock_mhz = 'fast': clock_mhz: expected a number, got 'fast'"),
    ("overrides", "{clock_mhz: [-5]}", "clock_mhz: must be > 0, got -5"),
    ("overrides", "{compute.accumulator_bits: [7.5]}", "compute.accumulator_bits: expected an integer, got 7.5"),
])
def test_axis_values_are_checked_like_the_keys_they_override(tmp_path, axis, values, problem):
    spec = tmp_path / "v.yaml"
    spec.write_text(f"name: v\nworkloads: [mlperf_tiny_kws]\nprecisions: [int8]\nprofiles: [iot]\n{axis}: {values}\n")
    with pytest.raises(SweepError) as info:
        load_spec(spec)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{spec}:5: ") and problem in message, message


def test_a_bad_axis_value_is_one_line_and_creates_nothing(tmp_path):
    spec = tmp_path / "v.yaml"
    spec.write_text("name: v\nworkloads: [mlperf_tiny_kws]\nprecisions: [int8]\nprofiles: [iot]\n"
                    "overrides: {clock_mhz: [100, .nan]}\n")
    proc = _cli(spec, "--out", tmp_path / "o")
    assert proc.returncode == 2
    assert proc.stderr == (f"qsim: error: {spec}:5: overrides.clock_mhz[1]: nan is not a finite number within "
                           "+-1e+15\n")
    assert not (tmp_path / "o").exists()


def test_point_values_are_checked_too():
    spec = {"name": "p", "mode": "points", "points": [
        {"workload": "mlperf_tiny_kws", "precision": "int8", "profile": "iot", "batch": 10 ** 20,
         "overrides": {"clock_mhz": float("nan")}}]}
    with pytest.raises(SweepError) as info:
        load_spec(spec)
    assert "points[0].batch: must be <= 1000000" in str(info.value)
    assert "points[0].overrides.clock_mhz: nan is not a finite number" in str(info.value)
