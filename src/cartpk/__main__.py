"""``python -m cartpk``: the same as the ``cartpk`` command."""

import sys

from .cli import main

sys.exit(main())
