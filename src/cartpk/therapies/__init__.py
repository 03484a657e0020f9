"""Combination-therapy modules: a base, one file per therapy, and a registry by name."""

from .base import AbstractTherapy, Combined, combine

#: name -> therapy class, for scenario files and the demo.
THERAPIES: dict[str, type[AbstractTherapy]] = {}

__all__ = ["THERAPIES", "AbstractTherapy", "Combined", "combine"]
