"""Structured errors: where (file, line, key, node) apart from what, formatted as file:line: key: message."""
import pickle

import pytest

from qsim.errors import GraphError, Problem, ProfileError, QsimError
from qsim.yamlio import DuplicateKeyError, load_yaml


def test_fields_format_as_file_line_key_message():
    assert str(QsimError("must be > 0, got 0", file="p.yaml", line=3, key="clock_mhz")) == \
        "p.yaml:3: clock_mhz: must be > 0, got 0"
    assert str(GraphError("input tensor 'y' is not defined", node="fc")) == \
        "node 'fc': input tensor 'y' is not defined"
    assert str(QsimError("no such file", file="m.onnx")) == "m.onnx: no such file"
    assert str(QsimError("plain text")) == "plain text"
    assert str(Problem("unknown key", line=7, key="a.b")) == "line 7: a.b: unknown key"


def test_collected_problems_are_records_located_in_the_file():
    err = ProfileError(file="p.yaml", problems=[Problem("missing required key", line=1, key="name"),
                                                Problem("must be > 0, got -1", line=4, key="clock_mhz")])
    assert [p.file for p in err.problems] == ["p.yaml", "p.yaml"]
    assert str(err) == ("p.yaml: 2 problem(s):\n  p.yaml:1: name: missing required key\n"
                        "  p.yaml:4: clock_mhz: must be > 0, got -1")


def test_errors_survive_pickling_with_their_fields():
    err = ProfileError(file="p.yaml", problems=[Problem("bad", line=2, key="k")])
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ProfileError and back.problems == err.problems and str(back) == str(err)
    one = pickle.loads(pickle.dumps(GraphError("bad shape", file="w.yaml", line=5, node="fc")))
    assert (one.file, one.line, one.node, one.message) == ("w.yaml", 5, "fc", "bad shape")


def test_yaml_duplicates_are_problem_records(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("a: 1\nb: 2\na: 3\nb: 4\n")
    with pytest.raises(DuplicateKeyError) as info:
        load_yaml(path)
    assert [(p.line, p.key, p.message) for p in info.value.problems] == [
        (3, "a", "duplicate key (first at line 1)"), (4, "b", "duplicate key (first at line 2)")]
    assert f"{path}:3: a: duplicate key (first at line 1)" in str(info.value)
    assert info.value.retyped(ProfileError).problems == info.value.problems
