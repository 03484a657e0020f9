"""Stage 2, resolve: the role of each column (standard NONMEM and Monolix names, a header
spec mapping file columns to roles, covariates)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._parse import RawTable
from ._report import Report

# Canonical column -> accepted names (upper case). Aliases of one column may not appear together.
# Monolix's ``Y`` is its observation column (renamed OBSERVATION in 2018), ``YTYPE`` the type.
ALIASES: dict[str, tuple[str, ...]] = {
    "ID": ("ID",),
    "TIME": ("TIME",),
    "DV": ("DV", "Y"),
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
    "DVID": ("DVID", "YTYPE"),
    "C": ("C",),
}
CANONICAL = {alias: name for name, aliases in ALIASES.items() for alias in aliases}

#: Roles a header spec may give, beyond the canonical names: Monolix column types (its data
#: format page) and ``use=`` keywords of Mlxtran ``[CONTENT]``, written in any case, with spaces,
#: underscores or hyphens. ``COVARIATE`` keeps a column as a covariate, ``IGNORE`` drops it.
ROLE_NAMES: dict[str, str] = {
    "IDENTIFIER": "ID",
    "OBSERVATION": "DV",
    "AMOUNT": "AMT",
    "EVENTID": "EVID",
    "EVENTIDENTIFIER": "EVID",
    "IGNOREDOBSERVATION": "MDV",
    "MISSINGDEPENDENTVARIABLE": "MDV",
    "ADMINISTRATION": "CMT",
    "ADMINISTRATIONID": "CMT",
    "INFUSIONRATE": "RATE",
    "INFUSIONDURATION": "DUR",
    "INFUSIONTIME": "DUR",
    "TINF": "DUR",
    "ADDITIONALDOSES": "ADDL",
    "ADDITIONALDOSE": "ADDL",
    "INTERDOSEINTERVAL": "II",
    "STEADYSTATE": "SS",
    "CENSORING": "CENS",
    "CENSORED": "CENS",
    "OBSERVATIONID": "DVID",
    "OBSID": "DVID",
    "ADMID": "CMT",
    "OBSERVATIONTYPE": "DVID",
    "COVARIATE": "COVARIATE",
    "CONTINUOUSCOVARIATE": "COVARIATE",
    "CATEGORICALCOVARIATE": "COVARIATE",
    "CONTCOV": "COVARIATE",
    "CATCOV": "COVARIATE",
    "COV": "COVARIATE",
    "CAT": "COVARIATE",
    "REGRESSOR": "COVARIATE",
    "X": "COVARIATE",
    "IGNORE": "IGNORE",
    "DROP": "IGNORE",
}
_SQUASH = re.compile(r"[\s_\-]+")


def role(text: str) -> str | None:
    """The canonical role of a header-spec entry (``"OBSERVATION ID"`` -> ``"DVID"``), or None."""
    key = _SQUASH.sub("", str(text)).upper()
    return CANONICAL.get(key) or ROLE_NAMES.get(key)


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


def resolve(
    table: RawTable,
    covariates: Sequence[str] | None,
    header: Mapping[str, str] | Sequence[str] | None = None,
) -> Columns:
    """Map the columns of ``table`` to canonical roles and covariates.

    ``header`` (``read_nonmem(columns=...)``) gives roles explicitly: file column -> role, or
    one role per column in file order (Monolix's header types, NONMEM's ``$INPUT``).

    Raises
    ------
    DatasetError
        On duplicated or conflicting names, a missing required column or covariate, or a header
        spec naming an unknown column or role.
    """
    report = Report(table.name)
    names = table.names
    found = ", ".join(names) if names else "none"
    given = _given_roles(names, header, found, report)
    spelling: dict[str, str] = {}
    position: dict[str, int] = {}
    seen: dict[str, str] = {}
    others: dict[str, int] = {}
    for j, name in enumerate(names):
        upper = name.upper()
        if upper in seen:
            report.fail(f"duplicate column {name} (same as {seen[upper]}; names ignore case)", name)
        seen[upper] = name
        canonical = given.get(j, CANONICAL.get(upper))
        if canonical == "IGNORE":
            continue
        if canonical is None or canonical == "COVARIATE":
            others[upper] = j
            continue
        if canonical in spelling:
            report.fail(
                f"columns {spelling[canonical]} and {name} both given; "
                f"they mean the same ({canonical}), keep one",
                name,
            )
        spelling[canonical] = name
        position[canonical] = j
    for required in ("ID", "TIME"):
        if required not in spelling:
            report.fail(f"missing required column {required} (found: {found})", required)
    if "DV" not in spelling:
        if "AMT" not in spelling:
            report.fail(f"missing required column DV or AMT (found: {found})", "DV")
        if "CENS" not in spelling:
            report.fail(f"missing required column DV (found: {found})", "DV")
    if covariates is None:
        chosen = list(others)
    else:
        if isinstance(covariates, str):
            raise TypeError("covariates must be a sequence of column names, not a string")
        chosen = []
        for wanted in covariates:
            upper = str(wanted).strip().upper()
            if upper not in others and upper in CANONICAL:
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


def _given_roles(names, header, found: str, report: Report) -> dict[int, str]:
    """Column index -> canonical role (or ``COVARIATE``/``IGNORE``) from a header spec."""
    if header is None:
        return {}
    if isinstance(header, str):
        raise TypeError("columns must be a mapping {file column: role} or a list of roles")
    if isinstance(header, Mapping):
        index = {n.upper(): j for j, n in enumerate(names)}
        pairs = []
        for column, wanted in header.items():
            j = index.get(str(column).strip().upper())
            if j is None:
                report.fail(f"columns: no column {column} in the file (found: {found})", column)
            pairs.append((j, wanted))
    else:
        header = list(header)
        if len(header) != len(names):
            report.fail(
                f"columns: {len(header)} roles given for {len(names)} columns (found: {found})"
            )
        pairs = list(enumerate(header))
    roles: dict[int, str] = {}
    for j, wanted in pairs:
        canonical = role(wanted)
        if canonical is None:
            report.fail(
                f"columns: unknown role {wanted!r} for column {names[j]} (use a NONMEM name such "
                f"as {', '.join(ALIASES)}, a Monolix column type such as OBSERVATION, or "
                "COVARIATE or IGNORE)",
                names[j],
            )
        roles[j] = canonical
    return roles
