"""``python -m qsim.cli``: the same command as the ``qsim`` script."""
import sys

from qsim.cli import main

sys.exit(main())
