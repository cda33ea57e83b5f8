"""Hypothesis strategies that damage VALID inputs, and the one rule every fuzz case checks.

Text files (profiles, workloads, sweep specs) are mutated as parsed YAML trees (delete or add a key,
swap a value's type, put NaN / inf / huge / negative numbers in) or as text (truncate, flip a byte,
duplicate or drop a line). Model files are mutated as bytes (flip, truncate, splice). ``outcome``
runs one case: success or a clean ``QsimError`` (a non-empty message, no traceback); any other
exception fails the test, as does a case over its time or memory budget. ``COUNTS`` tallies the
cases per loader and outcome for the long run (benchmarks/fuzz_loaders.py).
"""
from __future__ import annotations

import copy
import math
import time
import tracemalloc
from collections import Counter
from typing import Any, Callable

import yaml
from hypothesis import strategies as st

from qsim.errors import QsimError

COUNTS: Counter = Counter()          # (loader, "ok" | "error" | "unhandled") -> cases
# The long run sets this: an unhandled exception is recorded (loader, type, where) instead of raised,
# so that one run lists every distinct defect.
COLLECT: dict | None = None
NONFINITE_ACCEPTED: Counter = Counter()  # loader -> cases where a NaN/inf went in and the load succeeded
NONFINITE_ACCEPTED.cases = []  # (loader, file name, text) of each, for the long run to print
MEMORY_BOUND = 512 * 2 ** 20          # bytes one case may allocate at its peak (numpy arrays included)
TIME_BOUND_S = 20.0                   # wall seconds per case, with the machine shared


def outcome(loader: str, fn: Callable[[], Any], memory: bool = False) -> tuple[str, Any]:
    """Run ``fn``: ("ok", result) or ("error", the QsimError). Any other exception propagates."""
    if memory:
        tracemalloc.start()
    start = time.monotonic()
    try:
        result = fn()
        kind = "ok"
    except QsimError as exc:
        text = str(exc)
        assert text.strip(), f"{loader}: a QsimError with an empty message"
        assert "Traceback" not in text, f"{loader}: a traceback inside the message: {text}"
        result, kind = exc, "error"
    except Exception as exc:
        if COLLECT is None:
            raise
        tb = exc.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename.rsplit('/qsim/', 1)[-1]}:{tb.tb_lineno}"
        COLLECT.setdefault((loader, type(exc).__name__, where), str(exc)[:200])
        result, kind = exc, "unhandled"
    finally:
        if memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak <= MEMORY_BOUND, f"{loader}: one case allocated {peak / 2 ** 20:.0f} MiB"
    elapsed = time.monotonic() - start
    assert elapsed <= TIME_BOUND_S, f"{loader}: one case took {elapsed:.1f} s"
    COUNTS[(loader, kind)] += 1
    return kind, result


# -- YAML trees ------------------------------------------------------------------------------------
NASTY = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 2 ** 64, -2 ** 63, 10 ** 30, -1, 0, -0.5,
         1.5, 1e-300, True, None, "", "x", "?" * 300, [1, 2], [], {"a": 1}, {}, [[1]], "1e3"]


def _paths(tree, prefix=()) -> list[tuple]:
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, prefix + (i,))
    return out


def _parent(tree, path):
    for k in path[:-1]:
        tree = tree[k]
    return tree


def plain(tree):
    """A loader's tree (located dicts) as plain dicts and lists, dumpable again."""
    if isinstance(tree, dict):
        return {plain(k) if not isinstance(k, (list, dict)) else str(k): plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [plain(v) for v in tree]
    return tree


@st.composite
def mutated_tree(draw, tree) -> tuple[Any, bool]:
    """One to three edits of ``tree``; also whether the result holds a non-finite number."""
    tree = plain(tree)  # fresh containers: YAML aliases share them, and an edit must not make a cycle
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(tree) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(tree, path), path[-1]
        edit = draw(st.sampled_from(["replace", "replace", "scale", "delete", "add_key", "wrap"]))
        if edit == "replace":
            value = draw(st.sampled_from(NASTY) | st.integers() | st.floats() | st.text(max_size=8))
            parent[key] = copy.deepcopy(value)  # later edits must not change NASTY itself
        elif edit == "scale" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            factor = draw(st.sampled_from([-1, 0, 0.5, 1e6, 1e300, float("inf"), float("nan")]))
            value = parent[key] * factor
            parent[key] = int(value) if isinstance(parent[key], int) and math.isfinite(value) else value
        elif edit == "delete":
            del parent[key]
            continue
        elif edit == "add_key" and isinstance(parent, dict):
            value = copy.deepcopy(draw(st.sampled_from(NASTY)))
            parent[draw(st.sampled_from(["unknown_key", "name", "x" * 60]))] = value
        elif edit == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"k": parent[key]}]))
        else:
            continue
    return tree, _has_nonfinite(tree)  # the shipped files hold none: any NaN / inf is one an edit put in


def _has_nonfinite(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nonfinite(v) for v in value)
    return False


def dump(tree) -> str:
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=False, width=4096)


@st.composite
def mutated_text(draw, text: str) -> bytes:
    """Text-level damage: truncate, flip a byte, drop or duplicate a line, splice in a YAML bomb."""
    data = text.encode()
    edit = draw(st.sampled_from(["truncate", "flip", "drop_line", "dup_line", "bytes", "indent"]))
    lines = text.splitlines(keepends=True)
    if edit == "truncate":
        return data[:draw(st.integers(0, max(len(data) - 1, 0)))]
    if edit == "flip":
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:] if data else data
    if edit == "bytes":
        i = draw(st.integers(0, len(data)))
        return data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]
    i = draw(st.integers(0, max(len(lines) - 1, 0)))
    if edit == "drop_line":
        del lines[i:i + 1]
    elif edit == "dup_line":
        lines[i:i] = lines[i:i + 1]
    else:
        lines[i] = "  " + lines[i] if lines else ""
    return "".join(lines).encode()


# -- bytes -----------------------------------------------------------------------------------------
@st.composite
def mutated_bytes(draw, data: bytes) -> bytes:
    """Binary damage: flip 1..8 bytes, truncate, or splice random bytes in."""
    data = bytearray(data)
    edit = draw(st.sampled_from(["flip", "flip", "truncate", "splice", "zero_run"]))
    if edit == "truncate":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    if edit == "splice":
        i = draw(st.integers(0, len(data)))
        return bytes(data[:i]) + draw(st.binary(min_size=1, max_size=16)) + bytes(data[i:])
    if edit == "zero_run":
        i = draw(st.integers(0, len(data) - 1))
        n = draw(st.integers(1, 16))
        data[i:i + n] = bytes(len(data[i:i + n]))
        return bytes(data)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    return bytes(data)
