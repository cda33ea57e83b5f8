"""Hypothesis budgets for the loader fuzz tests.

CI (the default): derandomized, a fixed small number of cases per test, so the suite is stable
and the whole fuzz folder stays well under a minute. The long mode: ``QSIM_FUZZ_EXAMPLES=N``
runs N cases per test with fresh randomness (``benchmarks/fuzz_loaders.py`` sets it and prints
the counts per loader). The per-case time and memory bounds are checked in ``_mutate.outcome``;
Hypothesis's own deadline is off because the first case of a model pays for imports and JIT.
"""
import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
             HealthCheck.function_scoped_fixture]
settings.register_profile("qsim-ci", derandomize=True, max_examples=int(os.environ.get("QSIM_FUZZ_CI", "25")),
                          deadline=None, database=None, suppress_health_check=_SUPPRESS, print_blob=True)
_LONG = os.environ.get("QSIM_FUZZ_EXAMPLES")
if _LONG:
    settings.register_profile("qsim-long", derandomize=False, max_examples=int(_LONG), deadline=None,
                              database=None, suppress_health_check=_SUPPRESS, print_blob=True)
settings.load_profile("qsim-long" if _LONG else "qsim-ci")
