"""Stage 2, resolve: the role of each column (standard NONMEM and Monolix names, covariates)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._parse import RawTable
from ._report import Report

# Canonical column -> accepted names (upper case). Aliases of one column may not appear together.
ALIASES: dict[str, tuple[str, ...]] = {
    "ID": ("ID",),
    "TIME": ("TIME",),
    "DV": ("DV",),
    "AMT": ("AMT",),
    "EVID": ("EVID",),
    "MDV": ("MDV",),
    "CMT": ("CMT", "ADM"),
    "RATE": ("RATE",),
    "DUR": ("DUR",),
    "ADDL": ("ADDL",),
    "II": ("II",),
    "SS": ("SS",),
    "CENS": ("CENS", "BLQ"),
    "LIMIT": ("LIMIT",),
    "LLOQ": ("LLOQ",),
    "DVID": ("DVID", "YTYPE", "Y"),
}
CANONICAL = {alias: name for name, aliases in ALIASES.items() for alias in aliases}


@dataclass(frozen=True)
class Columns:
    """Which source column plays which role.

    Attributes
    ----------
    spelling : dict
        Canonical name (``"CMT"``) -> the name as spelled in the source (``"ADM"``).
    position : dict
        Canonical name or covariate (as spelled) -> index of the source column.
    covariates : tuple of str
        Covariate columns as spelled, in the order chosen.
    """

    spelling: dict[str, str]
    position: dict[str, int]
    covariates: tuple[str, ...]

    def __contains__(self, canonical: str) -> bool:
        return canonical in self.spelling

    def label(self, canonical: str) -> str:
        """The column's name as spelled in the source (the canonical name when absent)."""
        return self.spelling.get(canonical, canonical)


def resolve(table: RawTable, covariates: Sequence[str] | None) -> Columns:
    """Map the columns of ``table`` to canonical roles and covariates.

    Raises
    ------
    DatasetError
        On duplicated or conflicting names, a missing required column or covariate.
    """
    report = Report(table.name)
    names = table.names
    spelling: dict[str, str] = {}
    position: dict[str, int] = {}
    seen: dict[str, str] = {}
    for j, name in enumerate(names):
        upper = name.upper()
        if upper in seen:
            report.fail(f"duplicate column {name} (same as {seen[upper]}; names ignore case)", name)
        seen[upper] = name
        canonical = CANONICAL.get(upper)
        if canonical is None:
            continue
        if canonical in spelling:
            report.fail(
                f"columns {spelling[canonical]} and {name} both given; "
                f"they mean the same ({canonical}), keep one",
                name,
            )
        spelling[canonical] = name
        position[canonical] = j
    found = ", ".join(names) if names else "none"
    for required in ("ID", "TIME"):
        if required not in spelling:
            report.fail(f"missing required column {required} (found: {found})", required)
    if "DV" not in spelling:
        if "AMT" not in spelling:
            report.fail(f"missing required column DV or AMT (found: {found})", "DV")
        if "CENS" not in spelling:
            report.fail(f"missing required column DV (found: {found})", "DV")
    others = {n.upper(): j for j, n in enumerate(names) if n.upper() not in CANONICAL}
    if covariates is None:
        chosen = list(others)
    else:
        if isinstance(covariates, str):
            raise TypeError("covariates must be a sequence of column names, not a string")
        chosen = []
        for wanted in covariates:
            upper = str(wanted).strip().upper()
            if upper in CANONICAL:
                report.fail(
                    f"covariate {wanted} is a standard NONMEM column, not a covariate", str(wanted)
                )
            if upper not in others:
                report.fail(f"missing covariate column {wanted} (found: {found})", str(wanted))
            if upper not in chosen:
                chosen.append(upper)
    chosen_names = tuple(names[others[u]] for u in chosen)
    for name in chosen_names:
        position[name] = others[name.upper()]
    return Columns(spelling, position, chosen_names)
