"""User-facing errors. The CLI prints these without a traceback and exits nonzero."""


class QsimError(Exception):
    """Base class for every error caused by user input (a file, a flag, a model)."""


class GraphError(QsimError):
    """A malformed graph: unknown op, cycle, dangling tensor, shape mismatch. Names the node."""


class ProfileError(QsimError):
    """A hardware profile that does not parse or validate. Lists every problem with file:line: key."""


class WorkloadError(QsimError):
    """A workload or precision specification that does not parse or validate."""


class SweepError(QsimError):
    """A sweep spec that does not parse or validate (every problem with file:line: key), or a sweep
    that cannot run as asked (its output folder is in use, it is too big without consent)."""
