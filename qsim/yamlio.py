"""Strict YAML reading shared by profiles, workloads and sweep specs.

``yaml.safe_load`` silently keeps the second of two duplicate keys; this loader raises instead and
remembers the line of every key, so validators can say ``file:line: key: problem``. It subclasses
SafeLoader privately (nothing is registered on yaml's global loaders).

Bounds, so that no file can exhaust memory or the stack: nesting deeper than ``MAX_DEPTH`` levels
and documents whose aliases expand to more than ``MAX_NODES`` values (a "billion laughs" bomb:
ten aliases of ten aliases of ...) are refused while composing, before anything is built. A merge
key (``<<: *base``) works as YAML specifies: the mapping's own keys override the merged ones.
"""
from __future__ import annotations

import re

from pathlib import Path
from typing import Any, Callable

import yaml

from qsim.errors import Problem, QsimError
from qsim.files import short_path


class LocatedDict(dict):
    """A mapping that knows the line of each key (1-based) and of itself."""

    line: int = 0
    key_lines: dict

    def line_of(self, key) -> int:
        return self.key_lines.get(key, self.line)


def line_of(mapping, key, default: int = 0) -> int:
    """The line of ``key`` in a mapping read by ``load_yaml``; ``default`` for plain dicts."""
    return mapping.line_of(key) if isinstance(mapping, LocatedDict) else default


class DuplicateKeyError(QsimError):
    pass


MAX_DEPTH = 64  # levels of nested mappings and lists; real profiles and workloads use fewer than 10
MAX_NODES = 200_000  # values after expanding aliases; a large explicit-layer workload has ~10,000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    duplicates: list[Problem]
    depth: int = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise QsimError(f"nested more than {MAX_DEPTH} levels deep", line=mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def flatten_mapping(self, node):
        # Remember the keys written in each mapping before merges are folded in (a merged mapping is
        # flattened from inside another's flattening): only two written keys can be duplicates.
        if not hasattr(node, "qsim_own_keys"):
            node.qsim_own_keys = {id(k) for k, _ in node.value if k.tag != _MERGE_TAG}
        super().flatten_mapping(node)

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand past MAX_NODES values or MAX_DEPTH levels, or refer
    to themselves. Composing shares an anchored node between its aliases, so a bomb is small here;
    it explodes only when something walks the built values. Sizes are memoized per node and the
    walk is iterative (no recursion limit to hit)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_NODES or depth[key] > MAX_DEPTH:
                what = (f"expands to more than {MAX_NODES:,} values" if size[key] > MAX_NODES
                        else f"nests more than {MAX_DEPTH} levels deep")
                raise QsimError(f"this value {what} through its aliases (*name); write it out or use fewer "
                                "aliases", line=node.start_mark.line + 1)
            continue
        if key in size:
            continue
        if key in on_path:
            raise QsimError("an alias refers to the value that contains it (a recursive structure)",
                            line=node.start_mark.line + 1)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> LocatedDict:
    loader.flatten_mapping(node)  # merged pairs first, then this mapping's own: a later pair overrides
    own = node.qsim_own_keys
    out = LocatedDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    own_lines: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            loader.duplicates.append(Problem(f"a key must be a plain value, not {type(key).__name__}", line=line))
            continue
        if id(key_node) in own:
            if key in own_lines:
                loader.duplicates.append(Problem(f"duplicate key (first at line {own_lines[key]})", line=line,
                                                 key=str(key)))
                continue
            own_lines[key] = line
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 (PyYAML) reads ``1e3`` and ``5e-1`` as strings: a float needs a dot there. Users write
# exponents without one (``clock_mhz: 1e3``), as YAML 1.2 allows, so this loader (and only it) reads them as
# floats. The resolver table is copied first: add_implicit_resolver would otherwise change SafeLoader's.
_StrictLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
                                    list("-+0123456789"))


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise QsimError(f"cannot read: {reason}", file=short_path(path)) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise QsimError(f"not a UTF-8 text file (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "expected YAML", file=path, line=line) from None


def load_yaml(path: str | Path, text: str | None = None, check: Callable[[Any], list[Problem]] | None = None) -> Any:
    """Parse a YAML file strictly; errors name the file and line. ``check`` (data -> problems, a
    schema) runs when the file has duplicate keys, so that one error lists the duplicates and the
    schema's problems together; without duplicates the caller validates as usual."""
    path = Path(path)
    if text is None:
        text = _read_text(path)
    loader = None
    try:
        loader = _StrictLoader(text)  # checks the characters first
        loader.duplicates = []
        data = loader.get_single_data()
    except QsimError as exc:  # a bound above: locate it in this file
        raise QsimError(exc.message, file=path, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "malformed"
        raise QsimError(f"invalid YAML: {_one_line(what)}", file=path, line=mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as exc:  # a control character: say where, on one line
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        raise QsimError(f"invalid YAML: character U+{exc.character:04X} is not allowed in YAML ({exc.reason})",
                        file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise QsimError(f"invalid YAML: {_one_line(exc)}", file=path) from None
    except RecursionError:  # MAX_DEPTH keeps well below the limit; a last resort
        raise QsimError(f"nested too deeply (at most {MAX_DEPTH} levels)", file=path) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.duplicates:
        found = list(loader.duplicates)
        if check is not None:
            found += [p for p in check(data) if p not in found]
        found.sort(key=lambda p: p.line or 0)
        raise DuplicateKeyError(file=path, problems=found)
    return data


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())
