"""Stage 4, build: validated records as a :class:`~._data.NonmemData` (the table, one regimen
per subject). Nothing is checked here: :mod:`._validate` has checked everything."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..regimen import Dose, Regimen
from ._cells import fmt
from ._data import NonmemData
from ._validate import Records


def build(records: Records) -> NonmemData:
    """The dataset of ``records``: the validated table and the subjects' regimens."""
    doses: dict[Any, list[Dose]] = {}
    targets: set[str] = set()
    mapping = records.compartments
    for i in np.flatnonzero(records.dosing).tolist():
        key = records.cmt[i]
        target = mapping[key] if mapping is not None else fmt(key)
        targets.add(target)
        start, interval = records.time[i], records.ii[i]
        amount, duration = float(records.amt[i]), float(records.duration[i])
        doses.setdefault(records.id[i].item(), []).extend(
            Dose(float(start + k * interval), amount, target, duration)
            for k in range(int(records.addl[i]) + 1)
        )
    return NonmemData(
        source=records.name,
        frame=_frame(records),
        ids=records.ids,
        regimens={i: Regimen(tuple(doses.get(i, ()))) for i in records.ids},
        covariates=tuple(records.covariates),
        compartments=mapping,
        text_columns=tuple(records.text),
        ignored=records.ignored,
        _dose_names=tuple(sorted(targets)),
    )


def _frame(records: Records) -> pd.DataFrame:
    data = {
        "ID": records.id,
        "TIME": records.time,
        "DV": records.dv,
        "AMT": records.amt,
        "EVID": records.evid,
        "MDV": records.mdv,
        "CMT": pd.Series(records.cmt, dtype=object).to_numpy(),
        "CENS": records.cens,
        "LIMIT": records.limit,
        "DVID": records.dvid,
        **records.given,
        **records.covariates,
        **records.text,
    }
    frame = pd.DataFrame(data, index=pd.Index(records.rows, name="row"))
    frame["CMT"] = frame["CMT"].astype(object)
    return frame
