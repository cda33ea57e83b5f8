"""``python -m qsim``: the same command as the ``qsim`` script (and ``python -m qsim.cli``)."""
import sys

from qsim.cli import main

sys.exit(main())
