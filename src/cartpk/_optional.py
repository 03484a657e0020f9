"""The optional packages of :mod:`cartpk.export`, imported when first needed."""

from __future__ import annotations

import importlib

from ..errors import CartpkError

#: importable module -> the distribution that provides it
_DISTRIBUTIONS = {"sympy": "sympy", "libsbml": "python-libsbml", "roadrunner": "libroadrunner"}


def require(module: str):
    """Import ``module`` or raise a :class:`~cartpk.CartpkError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CartpkError(
            f"model export needs {_DISTRIBUTIONS[module]}: pip install 'cartpk[sbml]'"
        ) from None
