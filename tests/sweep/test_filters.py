"""Sweep filters: a closed language. Hostile strings are refused before anything runs; valid ones
select exactly the points a hand-written predicate selects."""
import subprocess
import sys

import pytest

from qsim.sweep import SweepError, generate_points, load_spec
from qsim.sweep.filters import FilterError, parse_filter

from tests.sweep._specs import tiny

SRAM = "memories.sram.capacity_kib"

# Each would create MARKER if any part of it ran. {m} is the marker's path.
HOSTILE = [
    "@pd.io.common.os.system('touch {m}') == 0",  # the reported one: pandas' @ locals
    "__import__('os').system('touch {m}') == 0",
    "open('{m}', 'w') is None",
    "batch.__class__.__mro__[-1].__subclasses__()",
    "profile.__class__",
    "`__class__` == 1",
    "(lambda: __import__('os').system('touch {m}'))() == 0",
    "f'{{__import__(\"os\").system(\"touch {m}\")}}' == ''",
    "exec(\"open('{m}', 'w')\")",
    "getattr(batch, 'real') == 1",
    "profile[0] == 'i'",
    "batch == 1; import os",
    "import os",
    "[open('{m}', 'w') for x in [1]]",
    "(x := open('{m}', 'w'))",
    "batch == 10 ** 10 ** 10",
    "batch == 1" + "0" * 400,
    "batch == 1e999",
    "profile == '" + "x" * 300 + "'",
    "profile == '\\x41'",
    "batch == 1 if True else open('{m}', 'w')",
    "batch & 1",
    "~batch",
    "{{'a': 1}} == 1",
    "not " * 40 + "batch == 1",
    "(" * 40 + "batch == 1" + ")" * 40,
    "batch == 1 " + "and batch == 1 " * 100,  # longer than 1,000 characters
    "pd.io.common.os.system('touch {m}') == 0",
    "os.system('touch {m}')",
    "__builtins__ == 1",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_filters_are_refused_and_nothing_runs(text, tmp_path):
    marker = tmp_path / "MARKER"
    body = text.format(m=marker)
    with pytest.raises(SweepError) as info:
        load_spec(tiny(filters=[{"keep": body}]))
    assert "filters[0].keep" in str(info.value)
    assert not marker.exists()


def test_hostile_filter_in_a_file_is_one_line_naming_file_and_line(tmp_path):
    marker = tmp_path / "M"
    spec = tmp_path / "h.yaml"
    spec.write_text("name: h\nworkloads: [mlperf_tiny_kws]\nprecisions: [int8]\nprofiles: [iot]\nfilters:\n"
                    f"  - keep: \"@pd.io.common.os.system('touch {marker}') == 0\"\n")
    proc = subprocess.run([sys.executable, "-m", "qsim.cli", "sweep", str(spec), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"qsim: error: {spec}:6: filters[0].keep: ")
    assert "'@' references are not allowed" in proc.stderr
    assert not marker.exists() and not (tmp_path / "o").exists()


AXES = {"workload": 0, "precision": 0, "profile": 0, "batch": 0, SRAM: 0}


@pytest.mark.parametrize("text, problem", [
    ("batch.real == 1", "attribute access is not allowed"),
    ("len(profile) == 3", "calls are not allowed"),
    ("profile[0] == 'i'", "subscripts are not allowed"),
    ("`__class__` == 1", "dunder names are not allowed"),
    ("lambda == 1", "'lambda' is not part of the filter language"),
    ("f'x' == profile", "prefixed strings"),
    ("@x == 1", "'@' references are not allowed"),
    ("batch == 1e16", "beyond"),
    ("batch ==", "ends early"),
    ("batch == 1 1", "unexpected '1'"),
    ("colour == 1", "'colour' is not an axis"),
    ("batch == [profile]", "a list holds literals only"),
])
def test_parse_errors_say_what_is_wrong(text, problem):
    with pytest.raises(FilterError, match=problem.replace("[", r"\[").replace("(", r"\(")):
        parse_filter(text, AXES)


def _selected(expr: str) -> list[dict]:
    return [dict(p.axes) for p in generate_points(tiny(filters=[{"keep": expr}]))]


def _expected(keep) -> list[dict]:
    return [dict(p.axes) for p in generate_points(tiny()) if keep(p.axes)]


@pytest.mark.parametrize("expr, keep, count", [
    ("precision in ['int8', 'mixed'] and not (profile == 'mobile' and `memories.sram.capacity_kib` >= 512)",
     lambda a: a["precision"] in ("int8", "mixed") and not (a["profile"] == "mobile" and a[SRAM] >= 512), 12),
    ("`memories.sram.capacity_kib` * 2 == 1024", lambda a: a[SRAM] == 512, 12),
    ("256 <= `memories.sram.capacity_kib` < 512", lambda a: a[SRAM] == 256, 12),
    ("workload < 'mlperf_tiny_b'", lambda a: a["workload"] == "mlperf_tiny_ad", 12),
    ("precision not in ['fp32'] or profile == 'iot'", lambda a: a["precision"] != "fp32" or a["profile"] == "iot", 20),
    ("batch == 1 and (profile != 'iot' or workload == 'mlperf_tiny_kws')",
     lambda a: a["profile"] != "iot" or a["workload"] == "mlperf_tiny_kws", 18),
    ("-`memories.sram.capacity_kib` / 256 == -2.0", lambda a: a[SRAM] == 512, 12),
    ("batch == '1' or profile == 'iot'", lambda a: a["profile"] == "iot", 12),  # a string never equals a number
])
def test_valid_filters_select_exactly_the_right_points(expr, keep, count):
    selected = _selected(expr)
    assert len(selected) == count
    assert selected == _expected(keep)


def test_mapping_filters_and_several_filters_combine():
    points = generate_points(tiny(filters=[{"skip": {"profile": "mobile", "precision": ["fp32", "mixed"]}},
                                           {"keep": "`memories.sram.capacity_kib` == 256"}]))
    assert [dict(p.axes) for p in points] == _expected(
        lambda a: not (a["profile"] == "mobile" and a["precision"] in ("fp32", "mixed")) and a[SRAM] == 256)
    assert len(points) == 8


def test_evaluation_errors_name_the_filter():
    with pytest.raises(SweepError, match=r"filters\[1\]\.keep: cannot order 'mlperf_tiny_ad' > 3"):
        load_spec(tiny(filters=[{"keep": "batch == 1"}, {"keep": "workload > 3"}]))
    with pytest.raises(SweepError, match=r"arithmetic on numbers only: 'iot' \* 3"):
        load_spec(tiny(filters=[{"keep": "profile * 3 == 'iotiotiot'"}]))
    with pytest.raises(SweepError, match="'iot' is not a true/false condition"):
        load_spec(tiny(filters=[{"keep": "profile"}]))
    with pytest.raises(SweepError, match="filters: no point is left to evaluate"):
        load_spec(tiny(filters=[{"keep": "batch == 2"}]))
