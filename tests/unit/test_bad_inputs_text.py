"""Text inputs and output paths that must fail in one line, fast: YAML bombs and deep nesting, binary
files, duplicate keys beside schema problems, merge keys, very long names, and the atomic writer's
refusals (folders, links, devices, a full disk, a missing permission)."""
import errno
import os
import time
from pathlib import Path

import pytest

from qsim.errors import ProfileError, QsimError, SweepError, WorkloadError
from qsim.files import OutputError, atomic_write, check_output_dir, check_output_file
from qsim.hw.profile import load_profile
from qsim.sweep import load_spec
from qsim.workload import load_workload
from qsim.yamlio import MAX_DEPTH, load_yaml

IOT = Path("hw_profiles/iot.yaml")
LONG = "x" * 5000


def _bomb(key: str) -> str:
    """Nine levels of ten aliases: 10**9 strings once expanded (the billion laughs)."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + f"\n{key}: *a8\n"


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


def test_alias_bomb_in_a_description_is_one_line_and_fast(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb("description"))
    start = time.perf_counter()
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert time.perf_counter() - start < 2
    assert _one_line(info.value) == (f"{path}:6: this value expands to more than 200,000 values through its aliases "
                                     "(*name); write it out or use fewer aliases")


def test_alias_bomb_in_a_workload_value(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(_bomb("seq"))
    with pytest.raises(QsimError, match=r"w.yaml:6: this value expands to more than 200,000 values"):
        load_workload(path)


def test_aliases_within_the_bound_still_work():
    data = load_yaml("a.yaml", "base: &b [1, 2, 3]\ncopy: *b\n")
    assert data == {"base": [1, 2, 3], "copy": [1, 2, 3]}


def test_recursive_alias_is_refused():
    with pytest.raises(QsimError) as info:
        load_yaml("r.yaml", "a: &a [1, *a]\n")
    assert _one_line(info.value) == "r.yaml:1: an alias refers to the value that contains it (a recursive structure)"


@pytest.mark.parametrize("text", ["a: " + "[" * 5000 + "]" * 5000,
                                  "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)) + "  " * 200 + "1\n"])
def test_deep_nesting_is_one_line_not_a_recursion_error(text):
    start = time.perf_counter()
    with pytest.raises(QsimError) as info:
        load_yaml("deep.yaml", text)
    assert time.perf_counter() - start < 5
    assert _one_line(info.value).startswith("deep.yaml:")
    assert _one_line(info.value).endswith(f"nested more than {MAX_DEPTH} levels deep")


def test_nesting_through_aliases_is_bounded():
    text = "a0: &a0 " + "[" * 40 + "]" * 40 + "\n" + "a1: &a1 " + "[" * 40 + "*a0" + "]" * 40 + "\n"
    with pytest.raises(QsimError, match=r"nests more than 64 levels deep through its aliases"):
        load_yaml("n.yaml", text)


def test_binary_profile_is_one_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"name: iot\n\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert _one_line(info.value) == f"{path}:2: not a UTF-8 text file (byte 0x89 at offset 10); expected YAML"


def test_control_character_is_one_line_with_its_line():
    with pytest.raises(QsimError) as info:
        load_yaml("c.yaml", "a: 1\nb: x\x00y\n")
    assert _one_line(info.value) == ("c.yaml:2: invalid YAML: character U+0000 is not allowed in YAML (special "
                                     "characters are not allowed)")


def test_a_list_as_a_key_is_a_problem_not_a_type_error():
    with pytest.raises(QsimError, match=r"k.yaml:1: a key must be a plain value, not list"):
        load_yaml("k.yaml", "[1, 2]: 3\n")


def test_profile_duplicate_and_unknown_keys_reported_together(tmp_path):
    text = IOT.read_text().replace("clock_mhz:", "clok_mhz: 5\nclock_mhz:", 1) + "kind: mcu\n"
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    found = {(p.key, p.message.split(" (")[0].split(";")[0]) for p in info.value.problems}
    assert ("kind", "duplicate key") in found
    assert any(key == "clok_mhz" and message.startswith("unknown key") for key, message in found), found
    lines = [p.line for p in info.value.problems]
    assert lines == sorted(lines)


@pytest.mark.parametrize("load,error,text,expected", [
    (load_workload, WorkloadError, "name: w\nmodel: {builder: resnet18}\nbatch: 1\nbatch: 2\nbatchsize: 3\n",
     [(4, "batch"), (5, "batchsize")]),
    (load_spec, SweepError, "name: s\nname: t\nworkloads: [resnet18]\nprecisions: [int8]\nprofiles: [iot]\nprofile: iot\n",
     [(2, "name"), (6, "profile")]),
])
def test_duplicate_and_unknown_keys_reported_together(tmp_path, load, error, text, expected):
    path = tmp_path / "f.yaml"
    path.write_text(text)
    with pytest.raises(error) as info:
        load(path)
    assert [(p.line, p.key) for p in info.value.problems] == expected


def test_merge_key_override_works_as_yaml_specifies():
    text = "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n"
    assert load_yaml("m.yaml", text) == {"base": {"x": 1, "y": 2}, "d": {"x": 1, "y": 3}}
    chained = "b1: &b1 {x: 1, z: 0}\nb2: &b2 {<<: *b1, x: 2}\nc: {<<: *b2, x: 3}\n"
    assert load_yaml("m.yaml", chained)["c"] == {"x": 3, "z": 0}
    with pytest.raises(QsimError, match=r"m.yaml:5: y: duplicate key \(first at line 4\)"):
        load_yaml("m.yaml", text + "  y: 4\n")


def test_profile_with_a_merge_key_loads(tmp_path):
    text = IOT.read_text().replace("  sram:\n", "  sram: &mem\n", 1)
    text = text.replace("  flash:\n    capacity_kib: 2048", "  flash:\n    <<: *mem\n    capacity_kib: 2048", 1)
    path = tmp_path / "merged.yaml"
    path.write_text(text)
    p, ref = load_profile(path), load_profile(IOT)
    assert p.memories["flash"].capacity_bytes == 2048 * 1024
    assert p.memories == ref.memories  # flash's own keys override every merged one


def test_five_thousand_character_names_are_errors_not_oserror(tmp_path):
    with pytest.raises(QsimError, match="no shipped profile of that name"):
        load_profile(LONG)
    with pytest.raises(QsimError, match="cannot read: File name too long"):
        load_workload(LONG + ".yaml")
    with pytest.raises(OutputError) as info:
        check_output_file(tmp_path / f"{LONG}.csv", "--out")
    assert len(_one_line(info.value)) < 300 and "the file name is too long (5004 characters" in str(info.value)
    with pytest.raises(OutputError, match="a folder name is too long"):
        check_output_dir(tmp_path / LONG)
    path = tmp_path / "w.yaml"
    path.write_text(f"name: {LONG}\nmodel: {{builder: resnet18}}\n")
    assert load_workload(path).name == LONG  # a name is data; no file is derived from it


# -- the atomic writer ---------------------------------------------------------------------------

def _write_x(tmp):
    Path(tmp).write_text("x")


def test_writer_refuses_a_directory(tmp_path):
    with pytest.raises(OutputError) as info:
        atomic_write(tmp_path, _write_x)
    assert _one_line(info.value) == f"{tmp_path}: is a directory, not a file; give a file name"


def test_writer_refuses_a_symlink_and_leaves_it_a_link(tmp_path):
    target = tmp_path / "target.csv"
    target.write_text("keep")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with pytest.raises(OutputError, match="link.csv: is a symbolic link; qsim does not write through links"):
        atomic_write(link, _write_x)
    assert link.is_symlink() and target.read_text() == "keep"


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_writer_refuses_device_nodes(device):
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    with pytest.raises(OutputError) as info:
        atomic_write(device, _write_x)
    assert _one_line(info.value) == f"{device}: is a character device, not a file; give a file name"
    assert Path(device).is_char_device()


def test_writer_refuses_a_link_to_a_device(tmp_path):
    link = tmp_path / "out.csv"
    link.symlink_to("/dev/null")
    with pytest.raises(OutputError, match="is a symbolic link"):
        atomic_write(link, _write_x)
    assert link.is_symlink()


def test_writer_refuses_a_fifo(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="pipe.csv: is a FIFO, not a file"):
        atomic_write(fifo, _write_x)


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "No space left on device"),
                                        (errno.EACCES, "Permission denied"),
                                        (errno.EROFS, "Read-only file system")])
def test_write_errors_are_one_line_and_leave_the_old_file(tmp_path, code, words):
    path = tmp_path / "r.csv"
    path.write_text("old")

    def fails(tmp):
        Path(tmp).write_text("partial")
        raise OSError(code, os.strerror(code))

    with pytest.raises(OutputError) as info:
        atomic_write(path, fails)
    assert _one_line(info.value) == f"{path}: cannot write: {words}"
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_a_rename_refused_is_one_line(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match=r"r.csv: cannot write: Permission denied$"):
        atomic_write(tmp_path / "r.csv", _write_x)
    assert list(tmp_path.iterdir()) == []


def test_a_parent_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"file/r.csv: cannot write here: Not a directory"):
        atomic_write(tmp_path / "file" / "r.csv", _write_x)


def test_writer_replaces_a_regular_file(tmp_path):
    path = tmp_path / "sub" / "r.csv"
    atomic_write(path, _write_x)
    atomic_write(path, lambda tmp: Path(tmp).write_text("y"))
    assert path.read_text() == "y" and sorted(p.name for p in path.parent.iterdir()) == ["r.csv"]


def test_output_folder_that_is_a_file_or_device_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match=r"--out .*f: is a file, not a folder"):
        check_output_dir(tmp_path / "f", "--out")
    with pytest.raises(OutputError, match=r"/dev/null: is a character device, not a folder"):
        check_output_dir("/dev/null")
    assert check_output_dir(tmp_path) == tmp_path


def test_exponents_without_a_dot_are_numbers_and_yaml_global_loader_is_untouched():
    import yaml

    from qsim.yamlio import load_yaml
    data = load_yaml("x.yaml", text="a: 1e3\nb: -5E-1\nc: 1e3x\n")
    assert data == {"a": 1000.0, "b": -0.5, "c": "1e3x"}
    assert yaml.safe_load("a: 1e3") == {"a": "1e3"}  # registered on qsim's loader only
