"""Optional packages (the extras of ``pyproject.toml``), imported when first needed."""

from __future__ import annotations

import importlib

from .errors import CartpkError

#: importable top-level module -> (the distribution that provides it, the extra, what needs it)
_EXTRAS = {
    "sympy": ("sympy", "sbml", "model export"),
    "libsbml": ("python-libsbml", "sbml", "model export"),
    "roadrunner": ("libroadrunner", "sbml", "model export"),
    "SALib": ("SALib", "sensitivity", "global sensitivity analysis"),
}


def require(module: str):
    """Import ``module`` (e.g. ``"SALib.analyze.sobol"``) or raise a
    :class:`~cartpk.CartpkError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        distribution, extra, purpose = _EXTRAS[module.partition(".")[0]]
        raise CartpkError(
            f"{purpose} needs {distribution}: pip install 'cartpk[{extra}]'"
        ) from None
