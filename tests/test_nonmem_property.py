"""Property test: read_nonmem either returns a consistent dataset or raises DatasetError."""

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartpk import DatasetError
from cartpk.nonmem import NonmemData, read_nonmem, to_frame

NAMES = [
    "ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "RATE", "DUR", "ADDL", "II", "SS", "CENS",
    "LIMIT", "LLOQ", "BLQ", "DVID", "YTYPE", "y", "ADM", "WT", "note",
]  # fmt: skip
BAD = [
    math.nan, math.inf, -math.inf, -1, -2, -3.5, 0, 1, 2, 3, 4, 1.5, 1e308, 1e-320, "abc", ".",
    "", " 2 ", "inf", "nan", None, True, "1_0", "central",
]  # fmt: skip
cells = st.one_of(st.sampled_from(BAD), st.integers(-3, 5), st.floats(allow_nan=True))


@st.composite
def plausible_tables(draw):
    """Mostly valid datasets, then a few random corruptions."""
    records = []
    for subject in range(1, draw(st.integers(1, 3)) + 1):
        time = 0.0
        for _ in range(draw(st.integers(1, 4))):
            time += draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
            dose = draw(st.booleans())
            cens = 0 if dose else draw(st.sampled_from([0, 0, 1, -1]))
            records.append(
                {
                    "ID": subject,
                    "TIME": time,
                    "DV": "." if dose or (cens and draw(st.booleans())) else draw(st.floats(0, 9)),
                    "AMT": draw(st.sampled_from([1.0, 5e6])) if dose else ".",
                    "EVID": int(dose),
                    "MDV": int(dose),
                    "CMT": draw(st.sampled_from([1, 2, "blood"])) if dose else ".",
                    "RATE": draw(st.sampled_from([0, 2.0])) if dose else ".",
                    "ADDL": draw(st.integers(0, 2)) if dose else ".",
                    "II": 1.5 if dose else ".",
                    "CENS": cens,
                    "LIMIT": 0.5,
                    "DVID": draw(st.sampled_from([1, 2])),
                    "WT": draw(st.sampled_from([60.0, 70.0])),
                }
            )
    frame = pd.DataFrame(records, dtype=object)
    core = ("ID", "TIME", "DV", "AMT", "CENS", "LIMIT")
    frame = frame[[c for c in frame.columns if c in core or draw(st.booleans())]]
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        action = draw(st.sampled_from(["cell", "drop", "duplicate", "shuffle", "rename", "add"]))
        if action == "cell":
            row = draw(st.integers(0, len(frame) - 1))
            column = draw(st.sampled_from(list(frame.columns)))
            frame.loc[frame.index[row], column] = draw(cells)
        elif action == "drop" and len(frame.columns) > 1:
            frame = frame.drop(columns=draw(st.sampled_from(list(frame.columns))))
        elif action == "duplicate":
            row = draw(st.integers(0, len(frame) - 1))
            frame = pd.concat([frame, frame.iloc[[row]]], ignore_index=True)
        elif action == "shuffle":
            order = draw(st.permutations(range(len(frame))))
            frame = frame.iloc[list(order)].reset_index(drop=True)
        elif action == "rename":
            column = draw(st.sampled_from(list(frame.columns)))
            new = draw(st.sampled_from([column.lower(), column.title(), *NAMES]))
            if new not in frame.columns:
                frame = frame.rename(columns={column: new})
        elif action == "add":
            name = draw(st.sampled_from(NAMES))
            if name not in frame.columns:
                frame[name] = [draw(cells) for _ in range(len(frame))]
    if draw(st.booleans()):
        frame = frame.replace(".", np.nan).infer_objects()  # numeric dtypes where possible
    return frame


@st.composite
def random_tables(draw):
    """Arbitrary small tables of standard column names and awkward values."""
    columns = draw(st.lists(st.sampled_from(NAMES), max_size=8, unique=True))
    if draw(st.booleans()):
        columns = ["ID", "TIME", *(c for c in columns if c not in ("ID", "TIME"))]
    n = draw(st.integers(0, 6))
    return pd.DataFrame(
        {c: pd.Series([draw(cells) for _ in range(n)], dtype=object) for c in columns}
    )


def check_dataset(data: NonmemData) -> None:
    assert isinstance(data, NonmemData)
    observations = data.observations()
    arrays = data.to_arrays()
    p, n = arrays.shape
    assert p == len(data.ids) == len(data.regimens) and n >= 1
    for name in ("time", "dv", "mask", "censored", "censored_above", "limit", "dvid"):
        assert getattr(arrays, name).shape == (p, n), name
    for value in arrays.covariates.values():
        assert value.shape == (p, n)
    assert int(arrays.mask.sum()) == len(observations) > 0
    for name in ("time", "dv", "limit"):
        assert np.all(np.isfinite(np.asarray(getattr(arrays, name)))), name
    assert np.all(np.diff(np.asarray(arrays.time), axis=1) >= 0)
    pd.testing.assert_frame_equal(to_frame(arrays), observations)
    states = sorted({d.compartment for r in data.regimens.values() for d in r.doses}) or ["x"]
    doses = data.to_arrays(states).doses
    assert doses.times.shape[0] == p and doses.bolus.shape[2] == len(states)
    assert isinstance(data.summary(), str)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(table=st.one_of(plausible_tables(), random_tables()), as_csv=st.booleans())
def test_read_nonmem_never_lets_bad_data_through(table, as_csv, tmp_path):
    before = table.copy()
    if as_csv:
        path = tmp_path / "data.csv"
        table.to_csv(path, index=False)
        source = path
    else:
        source = table
    try:
        data = read_nonmem(source, compartments=None)
    except DatasetError as error:
        message = str(error)
        assert "\n" not in message
        assert message.startswith(f"{path}: " if as_csv else "<DataFrame>: ")
        return
    finally:
        pd.testing.assert_frame_equal(table, before)  # the input is never modified
    check_dataset(data)
