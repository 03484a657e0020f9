"""cartpk unit strings (``"1/d"``, ``"cells/uL"``, ``"mg*d/L"``) as SBML unit definitions.

A unit string is a product of factors joined by ``*``, ``/`` (dividing by the next factor), or a
space (``"ug gDNA"``: one factor, bound tighter than ``*`` and ``/``), with integer powers
(``Gy^2``) and parentheses; ``"-"`` is dimensionless. Every name must be one of :data:`UNITS`;
a string with any other name (``"copies/ug gDNA"``, ``"day-dose"``) has no SBML definition and
:func:`parse` returns None (the exporters then record the string in an annotation only).
"""

from __future__ import annotations

import re

#: unit name -> (SBML base unit kind, decimal scale, multiplier): ``(multiplier 10^scale kind)``
UNITS: dict[str, tuple[str, int, float]] = {
    "s": ("second", 0, 1.0),
    "min": ("second", 0, 60.0),
    "h": ("second", 0, 3600.0),
    "d": ("second", 0, 86400.0),
    "L": ("litre", 0, 1.0),
    "dL": ("litre", -1, 1.0),
    "mL": ("litre", -3, 1.0),
    "uL": ("litre", -6, 1.0),
    "nL": ("litre", -9, 1.0),
    "g": ("gram", 0, 1.0),
    "kg": ("gram", 3, 1.0),
    "mg": ("gram", -3, 1.0),
    "ug": ("gram", -6, 1.0),
    "ng": ("gram", -9, 1.0),
    "pg": ("gram", -12, 1.0),
    "mol": ("mole", 0, 1.0),
    "mmol": ("mole", -3, 1.0),
    "umol": ("mole", -6, 1.0),
    "nmol": ("mole", -9, 1.0),
    "pmol": ("mole", -12, 1.0),
    "m": ("metre", 0, 1.0),
    "cm": ("metre", -2, 1.0),
    "mm": ("metre", -3, 1.0),
    "cells": ("item", 0, 1.0),
    "cell": ("item", 0, 1.0),
    "copies": ("item", 0, 1.0),
    "copy": ("item", 0, 1.0),
    "Gy": ("gray", 0, 1.0),
}

_TOKEN = re.compile(r"\s*(\(|\)|\*|/|\^-?\d+|[A-Za-z_][A-Za-z0-9_-]*|\d+)")


def parse(text: str) -> list[tuple[str, int, int, float]] | None:
    """``text`` as SBML units ``(kind, exponent, scale, multiplier)``; ``[]`` for
    dimensionless; None if it names a unit SBML cannot express."""
    text = text.replace("µ", "u").strip()
    if text in ("-", "1", ""):
        return []
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            return None
        spaced = position > 0 and text[position].isspace()
        tokens.append((match.group(1), spaced))
        position = match.end()
    try:
        units, rest = _product(tokens)
    except ValueError:
        return None
    return units if not rest else None


def _product(tokens):
    units, tokens = _juxtaposed(tokens)
    while tokens and tokens[0][0] in ("*", "/"):
        operator, tokens = tokens[0][0], tokens[1:]
        factor, tokens = _juxtaposed(tokens)
        units += _power(factor, -1) if operator == "/" else factor
    return units, tokens


def _juxtaposed(tokens):
    units, tokens = _factor(tokens)
    while tokens and tokens[0][1] and tokens[0][0] not in ("*", "/", ")"):
        more, tokens = _factor(tokens)
        units += more
    return units, tokens


def _factor(tokens):
    if not tokens:
        raise ValueError("missing factor")
    token, tokens = tokens[0][0], tokens[1:]
    if token == "(":
        units, tokens = _product(tokens)
        if not tokens or tokens[0][0] != ")":
            raise ValueError("unbalanced parenthesis")
        tokens = tokens[1:]
    elif token == "1":
        units = []
    elif token in UNITS:
        kind, scale, multiplier = UNITS[token]
        units = [(kind, 1, scale, multiplier)]
    else:
        raise ValueError(f"unknown unit {token}")
    if tokens and tokens[0][0].startswith("^"):
        units, tokens = _power(units, int(tokens[0][0][1:])), tokens[1:]
    return units, tokens


def _power(units, n):
    return [(kind, exponent * n, scale, multiplier) for kind, exponent, scale, multiplier in units]


def unit_id(text: str) -> str:
    """An SBML UnitSId naming the unit string (``"1/d"`` -> ``per_d``)."""
    name = text.replace("µ", "u").strip()
    if name.startswith("1/"):
        name = "per_" + name[2:]
    name = name.replace("/", "_per_").replace("^", "")
    name = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    return name if re.match(r"[A-Za-z]", name) else f"unit_{name}"
