"""User-facing errors. Every message names what is wrong and where, and says how to fix it."""


class CartpkError(Exception):
    """Base class of every error cartpk raises for bad input; the CLI prints it as one line."""


class ParameterError(CartpkError, ValueError):
    """A model parameter is unknown, non-finite or outside its bounds."""


class RegimenError(CartpkError, ValueError):
    """A dose event is malformed or targets an unknown compartment."""


class DatasetError(CartpkError, ValueError):
    """A dataset fails validation; the message names the file, column and row(s)."""


class ScenarioError(CartpkError, ValueError):
    """A scenario file fails validation; the message names the key."""


class OutputError(CartpkError, OSError):
    """An output directory cannot be written or would be overwritten."""
