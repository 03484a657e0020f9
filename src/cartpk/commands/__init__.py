"""The command line's commands, one module each; the only code that reads parsed arguments,
prints, or writes folders (``docs/architecture.md``).

Every command writes its results through :class:`ResultsFolder` (``_folder.py``) and prints
through :class:`Console` (``_console.py``).
"""

from . import check, completion, demo, export, fit, nca, optimize, simulate
from ._console import Console as Console
from ._console import error_line as error_line
from ._folder import SCHEMA as SCHEMA
from ._folder import ResultsFolder as ResultsFolder
from ._folder import versions as versions
from .fit import save_fit as save_fit

#: The commands in the order ``cartpk --help`` lists them.
COMMANDS = (demo, simulate, optimize, check, nca, fit, export, completion)
