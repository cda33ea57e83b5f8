"""Put the project's test helper folders on sys.path (as pytest's rootdir conftest does), so that
the shared model writers import the same way under pytest and under ``python -m tests.differential``."""
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for _p in (TESTS, TESTS / "unit", TESTS / "sim"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
