"""Strict YAML reading shared by profiles, workloads and sweep specs.

``yaml.safe_load`` silently keeps the second of two duplicate keys; this loader raises instead and
remembers the line of every key, so validators can say ``file:line: key: problem``. It subclasses
SafeLoader privately (nothing is registered on yaml's global loaders).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from qsim.errors import Problem, QsimError


class LocatedDict(dict):
    """A mapping that knows the line of each key (1-based) and of itself."""

    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


def line_of(mapping, key, default: int = 0) -> int:
    """The line of ``key`` in a mapping read by ``load_yaml``; ``default`` for plain dicts."""
    return mapping.line_of(key) if isinstance(mapping, LocatedDict) else default


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, then move the result over ``path``: a failure or an interruption
    never leaves a partial file under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


class DuplicateKeyError(QsimError):
    pass


class _StrictLoader(yaml.SafeLoader):
    duplicates: list[Problem]


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> LocatedDict:
    loader.flatten_mapping(node)
    out = LocatedDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in out:
            loader.duplicates.append(Problem(f"duplicate key (first at line {out.key_lines[key]})", line=line,
                                             key=str(key)))
            continue
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path, text: str | None = None) -> Any:
    """Parse a YAML file strictly; errors name the file and line."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise QsimError(f"cannot read: {exc.strerror}", file=path) from None
    loader = _StrictLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise QsimError(f"invalid YAML: {exc.problem}", file=path, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise QsimError(f"invalid YAML: {exc}", file=path) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise DuplicateKeyError(file=path, problems=loader.duplicates)
    return data
