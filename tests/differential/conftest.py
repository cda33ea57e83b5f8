"""Prints the differential case counts (per family, op and runtime) at the end of a pytest run."""
from .tally import TALLY, table


def pytest_terminal_summary(terminalreporter):
    if TALLY:
        terminalreporter.write_sep("-", "differential cases (tests/differential)")
        terminalreporter.write_line(table(TALLY))
