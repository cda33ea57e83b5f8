"""User-facing errors. The CLI prints these without a traceback and exits with status 2.

Every error caused by user input is a ``QsimError``. It carries where the problem is (``file``,
``line``, ``key`` and/or ``node``, each optional) apart from what is wrong (``message``), and
formats itself as ``file:line: key: message``. A validator that collects several problems raises
one error holding them all as ``Problem`` records, so callers and tests can read the fields
instead of parsing text.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


def _located(message: str, file: str | None, line: int | None, key: str | None, node: str | None) -> str:
    """``file:line: key: node: message``, leaving out the parts that are not known."""
    if file is not None:
        where = f"{file}:{line}" if line else str(file)
    else:
        where = f"line {line}" if line else None
    node = None if node is None else f"node {node!r}"
    return ": ".join(str(part) for part in (where, key, node, message) if part not in (None, ""))


@dataclass(frozen=True)
class Problem:
    """One problem found while validating a file: what is wrong, and where."""

    message: str
    file: str | None = None
    line: int | None = None
    key: str | None = None
    node: str | None = None

    def __str__(self) -> str:
        return _located(self.message, self.file, self.line, self.key, self.node)

    def in_file(self, file: str | None) -> "Problem":
        """This problem, located in ``file`` unless it already names one."""
        return self if self.file is not None or file is None else replace(self, file=str(file))


class QsimError(Exception):
    """Base class for every error caused by user input (a file, a flag, a model).

    ``QsimError("message")`` still works; the location fields are keywords. With ``problems``,
    the error stands for all of them: ``file: N problem(s):`` and one indented line per problem.
    """

    def __init__(self, message: str = "", *, file: str | None = None, line: int | None = None,
                 key: str | None = None, node: str | None = None, problems=()):
        self.message = message
        self.file = None if file is None else str(file)
        self.line, self.key, self.node = line, key, node
        self.problems: tuple[Problem, ...] = tuple(p.in_file(self.file) for p in problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.problems:
            return _located(self.message, self.file, self.line, self.key, self.node)
        head = _located(self.message or f"{len(self.problems)} problem(s):", self.file, self.line, self.key,
                        self.node)
        return head + "".join(f"\n  {p}" for p in self.problems)

    def retyped(self, cls: type["QsimError"]) -> "QsimError":
        """The same error as another subclass (a YAML error met while loading a profile)."""
        return cls(self.message, file=self.file, line=self.line, key=self.key, node=self.node,
                   problems=self.problems)

    def __reduce__(self):  # processes (sweeps) pickle errors: keep the fields, not only the text
        return _rebuild, (type(self), self.message, self.file, self.line, self.key, self.node, self.problems)


def _rebuild(cls, message, file, line, key, node, problems):
    err = cls.__new__(cls)
    QsimError.__init__(err, message, file=file, line=line, key=key, node=node, problems=problems)
    return err


class GraphError(QsimError):
    """A malformed graph: unknown op, cycle, dangling tensor, shape mismatch. Names the node."""


class ProfileError(QsimError):
    """A hardware profile that does not parse or validate. Lists every problem with file:line: key."""


class WorkloadError(QsimError):
    """A workload or precision specification that does not parse or validate."""


class SweepError(QsimError):
    """A sweep spec that does not parse or validate (every problem with file:line: key), or a sweep
    that cannot run as asked (its output folder is in use, it is too big without consent)."""
