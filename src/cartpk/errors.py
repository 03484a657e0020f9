"""User-facing errors. Every message names what is wrong and where, and says how to fix it."""


class CartpkError(Exception):
    """Base class of every error cartpk raises for bad input; the CLI prints it as one line."""


class ParameterError(CartpkError, ValueError):
    """A model parameter is unknown, non-finite or outside its bounds."""


class RegimenError(CartpkError, ValueError):
    """A dose event is malformed or targets an unknown compartment."""


class DatasetError(CartpkError, ValueError):
    """A dataset fails validation; the message names the file, column and row(s).

    Attributes:
        column: the offending column as spelled in the file (None for a file-level problem).
        rows: the offending 1-based data rows (empty for a file- or column-level problem).
    """

    def __init__(self, message: str, column: str | None = None, rows: tuple[int, ...] = ()):
        super().__init__(message)
        self.column = column
        self.rows = tuple(rows)


class ScenarioError(CartpkError, ValueError):
    """A scenario file fails validation; the message names the key."""


class OutputError(CartpkError, OSError):
    """An output directory cannot be written or would be overwritten."""


class ArgumentError(CartpkError, ValueError):
    """An argument of a simulation function (a tolerance, the step limit, the output times, the
    chunk size, ...) has a value no solve can honour; the message names the argument."""


class ConvergenceError(CartpkError):
    """The optimisation stopped without converging; the message names the best point reached."""


class SimulationWarning(UserWarning):
    """Some patients failed to simulate; :meth:`~cartpk.Solution.failures` says which and why."""


class Terminated(KeyboardInterrupt):
    """The run was ended by a signal (SIGTERM, SIGHUP); it unwinds as Ctrl-C does."""


class PopulationError(ParameterError):
    """A virtual population is inconsistent with itself or with its model.

    Attributes:
        field: where, in the population's own fields: ``variability.rho``,
            ``correlations[0].r``, ``subgroups[1].scale``, ``covariates.weight_kg.cv``.
    """

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field
