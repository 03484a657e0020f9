"""Reading, validating and round-tripping NONMEM-style datasets (cartpk.nonmem)."""

import os
import re
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from cartpk import DatasetError, Dose, Regimen, stack_regimens
from cartpk.cli import main
from cartpk.nonmem import NonmemData, ObservationArrays, read_nonmem, to_frame

GOOD = """\
ID,TIME,DV,AMT,EVID,MDV,CMT,RATE,ADDL,II,CENS,LLOQ,DVID,WT
1,0,.,1e6,1,1,1,0,2,7,0,.,.,70
1,1,5.2,.,0,0,.,.,.,.,0,1,1,70
1,2,.,.,0,0,.,.,.,.,1,1,1,71
1,2,3,.,0,0,.,.,.,.,0,1,2,71
2,0,.,100,1,1,2,50,0,.,0,.,.,80
2,0.5,4,.,0,0,.,.,.,.,0,1,1,80
"""


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def raises(message):
    """pytest.raises for a DatasetError whose whole message is ``message``."""
    return pytest.raises(DatasetError, match=f"^{re.escape(message)}$")


def check_round_trip(data: NonmemData) -> ObservationArrays:
    arrays = data.to_arrays()
    back = to_frame(arrays)
    pd.testing.assert_frame_equal(back, data.observations())
    assert int(arrays.mask.sum()) == len(back)
    assert arrays.time.dtype == jnp.float64 and arrays.dv.dtype == jnp.float64
    return arrays


# ------------------------------------------------------------------------------------------------
# Reading and round trips


def test_good_file_round_trip(tmp_path):
    data = read_nonmem(write(tmp_path, GOOD), compartments={1: "blood_effector", 2: "drug"})
    assert data.ids == (1, 2)
    assert data.covariates == ("WT",)
    arrays = check_round_trip(data)
    assert arrays.shape == (2, 3)
    expected = pd.DataFrame(
        {
            "ID": [1, 1, 1, 2],
            "TIME": [1.0, 2.0, 2.0, 0.5],
            "DV": [5.2, np.nan, 3.0, 4.0],
            "DVID": [1, 1, 2, 1],
            "CENS": [0, 1, 0, 0],
            "LIMIT": [1.0, 1.0, 1.0, 1.0],
            "WT": [70.0, 71.0, 71.0, 80.0],
        }
    )
    pd.testing.assert_frame_equal(to_frame(arrays), expected)
    np.testing.assert_array_equal(arrays.mask, [[True, True, True], [True, False, False]])
    # padding keeps times sorted and values finite
    np.testing.assert_array_equal(arrays.time, [[1.0, 2.0, 2.0], [0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(arrays.dv, [[5.2, 1.0, 3.0], [4.0, 0.0, 0.0]])
    assert bool(arrays.dv_missing[0, 1]) and bool(arrays.censored[0, 1])
    assert data.regimens[1] == Regimen.schedule(1e6, "blood_effector", interval=7.0, count=3)
    assert data.regimens[2] == Regimen.single(100.0, "drug", duration=2.0)
    assert list(data.frame.index) == [1, 2, 3, 4, 5, 6]


def test_dataframe_round_trip_with_extra_columns():
    frame = pd.DataFrame(
        {
            "ID": [1, 1, 2, 2, 2],
            "TIME": [0.0, 1.0, 0.0, 1.0, 3.0],
            "DV": [np.nan, 2.0, np.nan, 1.5, 0.7],
            "AMT": [10.0, np.nan, 20.0, np.nan, np.nan],
        }
    )
    data = read_nonmem(frame)
    assert data.source == "<DataFrame>"
    arrays = check_round_trip(data)
    pred = jnp.arange(4.0).reshape(2, 2)
    out = to_frame(arrays, PRED=pred, IPRED=2 * pred)
    assert list(out.columns) == ["ID", "TIME", "DV", "DVID", "CENS", "LIMIT", "PRED", "IPRED"]
    np.testing.assert_array_equal(out["PRED"], [0.0, 2.0, 3.0])
    np.testing.assert_array_equal(out["IPRED"], [0.0, 4.0, 6.0])
    assert data.to_frame(arrays).equals(to_frame(arrays))
    with raises("to_frame: column PRED has shape (3,), expected (2, 2)"):
        to_frame(arrays, PRED=np.zeros(3))
    with raises("to_frame: extra column DV clashes with a standard column"):
        to_frame(arrays, DV=pred)
    # the caller's DataFrame is not modified
    assert list(frame.columns) == ["ID", "TIME", "DV", "AMT"]
    assert frame["DV"].isna().sum() == 2


def test_censoring_blq_alias_and_above_limit():
    frame = pd.DataFrame(
        {
            "id": [1, 1, 1, 1],
            "time": [0, 1, 2, 3],
            "dv": [None, 4.0, None, 9.0],
            "amt": [5.0, None, None, None],
            "cens": [0, 0, 1, -1],
            "limit": [None, None, 0.5, 9.0],
            "lloq": [None, 0.5, 0.5, None],
        }
    )
    data = read_nonmem(frame)
    arrays = check_round_trip(data)
    np.testing.assert_array_equal(arrays.censored, [[False, True, False]])
    np.testing.assert_array_equal(arrays.censored_above, [[False, False, True]])
    np.testing.assert_array_equal(arrays.limit, [[0.5, 0.5, 9.0]])
    np.testing.assert_array_equal(arrays.dv, [[4.0, 0.5, 9.0]])

    blq = pd.DataFrame(
        {
            "ID": [1, 1, 1],
            "TIME": [0, 1, 2],
            "DV": [None, None, 3.0],
            "AMT": [5.0, None, None],
            "BLQ": [None, 1, 0],
            "LLOQ": [None, 1.0, 1.0],
        }
    )
    data = read_nonmem(blq)
    out = to_frame(check_round_trip(data))
    np.testing.assert_array_equal(out["CENS"], [1, 0])
    assert np.isnan(out["DV"][0]) and out["LIMIT"].tolist() == [1.0, 1.0]
    assert "1 censored below" in data.summary()


def test_multiple_dvids_and_monolix_columns():
    frame = pd.DataFrame(
        {
            "ID": [7, 7, 7, 7, 9, 9],
            "TIME": [0, 0, 1, 1, 0, 2],
            "DV": [None, None, 1.0, 2.0, None, 3.0],
            "AMT": [1e7, 5.0, None, None, 2e7, None],
            "ADM": [1, 2, None, None, 1, None],
            "YTYPE": [None, None, 1, 2, None, 2],
        }
    )
    data = read_nonmem(frame, compartments={1: "blood_effector", 2: "drug"})
    arrays = check_round_trip(data)
    np.testing.assert_array_equal(arrays.dvid, [[1, 2], [2, 0]])
    assert data.ids == (7, 9)
    assert data.regimens[7] == Regimen((Dose(0.0, 1e7, "blood_effector"), Dose(0.0, 5.0, "drug")))
    assert "DVIDs: 1 (1 obs), 2 (2 obs)" in data.summary()


def test_covariates_kept_constant_and_time_varying(tmp_path):
    path = write(
        tmp_path,
        """\
        ID,TIME,DV,AMT,WT,crp,SITE
        1,0,.,1,70,5,3
        1,1,2,.,70,12,3
        1,2,3,.,70,.,3
        2,0,.,1,60,1,4
        2,1,4,.,60,2,4
        """,
    )
    data = read_nonmem(path)
    assert data.covariates == ("WT", "crp", "SITE")
    arrays = check_round_trip(data)
    np.testing.assert_array_equal(arrays.covariates["crp"][0], [12.0, np.nan])
    assert "covariates: WT, crp, SITE (time-varying: crp)" in data.summary()
    chosen = read_nonmem(path, covariates=["wt"])
    assert chosen.covariates == ("WT",) and "crp" not in chosen.frame.columns
    with raises(f"{path}: missing covariate column HT (found: ID, TIME, DV, AMT, WT, crp, SITE)"):
        read_nonmem(path, covariates=["HT"])
    with raises(f"{path}: covariate DV is a standard NONMEM column, not a covariate"):
        read_nonmem(path, covariates=["DV"])


def test_addl_expansion(tmp_path):
    path = write(
        tmp_path,
        """\
        ID,TIME,DV,AMT,CMT,ADDL,II
        1,0,.,10,2,3,0.5
        1,1,1.0,.,.,.,.
        1,4,.,20,2,0,.
        """,
    )
    data = read_nonmem(path)
    assert [d.time for d in data.regimens[1].doses] == [0.0, 0.5, 1.0, 1.5, 4.0]
    assert [d.amount for d in data.regimens[1].doses] == [10.0] * 4 + [20.0]
    assert {d.compartment for d in data.regimens[1].doses} == {"2"}
    assert "doses: 2 records, 5 doses after ADDL expansion (5 bolus, 0 infusion)" in (
        data.summary()
    )
    arrays = data.to_arrays(["1", "2"])
    expected = stack_regimens([data.regimens[1]], ["1", "2"])
    np.testing.assert_array_equal(arrays.doses.times, expected.times)
    np.testing.assert_array_equal(arrays.doses.bolus[0, :, 1], [10, 10, 10, 10, 20])


def test_infusions_via_rate_and_dur(tmp_path):
    rate = write(
        tmp_path,
        """\
        ID,TIME,DV,AMT,RATE,CMT
        1,0,.,100,50,drug
        1,0,.,3e6,0,blood
        1,1,2,.,.,.
        2,0,.,60,120,drug
        2,1,2,.,.,.
        """,
        "rate.csv",
    )
    data = read_nonmem(rate)
    assert data.regimens[1] == Regimen(
        (Dose(0.0, 100.0, "drug", 2.0), Dose(0.0, 3e6, "blood", 0.0))
    )
    assert data.regimens[2] == Regimen.single(60.0, "drug", duration=0.5)
    arrays = data.to_arrays(["blood", "drug"])
    np.testing.assert_array_equal(arrays.doses.rate[:, 0, 1], [50.0, 120.0])

    dur = write(
        tmp_path,
        """\
        ID,TIME,DV,AMT,DUR
        1,0,.,100,0.25
        1,1,2,.,.
        """,
        "dur.csv",
    )
    assert read_nonmem(dur).regimens[1] == Regimen.single(100.0, "1", duration=0.25)


def test_evid_mdv_derivation_and_other_events():
    frame = pd.DataFrame(
        {
            "ID": [1, 1, 1, 1, 1],
            "TIME": [0, 1, 2, 3, 4],
            "DV": [0, 1.0, np.nan, 5.0, 2.0],
            "AMT": [10, 0, 0, 0, 0],
            "MDV": [1, 0, 1, 1, 0],
        }
    )
    data = read_nonmem(frame)
    assert data.frame["EVID"].tolist() == [1, 0, 2, 2, 0]
    assert data.observations()["TIME"].tolist() == [1.0, 4.0]
    with_evid = frame.assign(EVID=[1, 0, 2, 0, 0])
    data = read_nonmem(with_evid)
    assert data.observations()["TIME"].tolist() == [1.0, 4.0]
    assert "1 excluded with MDV=1" in data.summary()
    no_codes = frame.drop(columns="MDV").iloc[[0, 1, 3, 4]]
    data = read_nonmem(no_codes)
    assert data.frame["EVID"].tolist() == [1, 0, 0, 0]
    assert data.frame["MDV"].tolist() == [1, 0, 0, 0]
    assert data.frame.index.tolist() == [1, 2, 3, 4]


def test_compartment_names_and_mapping(tmp_path):
    path = write(
        tmp_path,
        """\
        ID,TIME,DV,AMT,CMT
        1,0,.,1e6,blood_effector
        1,0,.,50,1
        1,1,2,.,.
        """,
    )
    data = read_nonmem(path)
    assert {d.compartment for d in data.regimens[1].doses} == {"blood_effector", "1"}
    mapped = read_nonmem(path, compartments={"blood_effector": "blood", "1": "drug"})
    assert {d.compartment for d in mapped.regimens[1].doses} == {"blood", "drug"}
    assert "compartments: blood_effector -> blood, 1 -> drug" in mapped.summary()


def test_nonmem_csv_conventions(tmp_path):
    path = write(
        tmp_path,
        """\
        #ID, TIME , dv,amt,,

        1, 0 ,.,5,,
        1,1, 2.5 ,.,,
        """,
    )
    data = read_nonmem(path)
    assert data.frame.index.tolist() == [2, 3]  # the blank line counts as data row 1
    assert data.observations()["DV"].tolist() == [2.5]


def test_arrays_are_jittable():
    frame = pd.DataFrame({"ID": [1, 1, 2], "TIME": [0.0, 1.0, 2.0], "DV": [1.0, 2.0, 3.0]})
    arrays = read_nonmem(frame).to_arrays()
    total = jax.jit(lambda a: jnp.sum(jnp.where(a.mask, a.dv, 0.0)))(arrays)
    assert float(total) == 6.0
    assert read_nonmem(frame).regimens == {1: Regimen(), 2: Regimen()}


def test_file_not_modified(tmp_path):
    path = write(tmp_path, GOOD)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    path.chmod(0o444)  # reading needs no write access
    before = path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_mode
    read_nonmem(path).to_arrays()
    with raises(f"{path}: column CMT: dose into unknown compartment 2 in row(s) 5 (known: 1)"):
        read_nonmem(path, compartments={1: "blood"})
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_mode) == before


# ------------------------------------------------------------------------------------------------
# Command line


def test_cli_check_good_file(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: 2 subjects, 6 records")
    assert "covariates: WT" in out


def test_cli_check_bad_file(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("2,0.5,4", "2,-0.5,4"))
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {path}: column TIME: negative time in row(s) 6\n"
    assert "Traceback" not in captured.err + captured.out
    assert main(["check", str(tmp_path / "missing.csv")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.csv'}: file not found\n"


# ------------------------------------------------------------------------------------------------
# Validation: one test per rule, each pinning the message


def test_file_not_found(tmp_path):
    with raises(f"{tmp_path / 'nope.csv'}: file not found"):
        read_nonmem(tmp_path / "nope.csv")


def test_directory(tmp_path):
    with raises(f"{tmp_path}: not a file (it is a directory)"):
        read_nonmem(tmp_path)


def test_not_a_csv(tmp_path):
    path = tmp_path / "data.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with raises(f"{path}: not a CSV file (not UTF-8 text): byte 0x89 on line 1; save it as UTF-8"):
        read_nonmem(path)
    path.write_bytes(b"ID,TIME\x00,DV\n1,0,1\n")
    with raises(f"{path}: not a CSV file (binary content): a NUL byte on line 1"):
        read_nonmem(path)


def test_not_comma_separated(tmp_path):
    path = write(tmp_path, "ID TIME DV\n1 0 1\n")
    with raises(
        f"{path}: not a comma-, semicolon- or tab-separated file "
        "(the header is one column 'ID TIME DV')"
    ):
        read_nonmem(path)


def test_empty_file(tmp_path):
    path = write(tmp_path, "")
    with raises(f"{path}: empty file (no header line)"):
        read_nonmem(path)
    path = write(tmp_path, "\n  \n")
    with raises(f"{path}: empty file (no header line)"):
        read_nonmem(path)


def test_no_rows(tmp_path):
    path = write(tmp_path, "ID,TIME,DV\n")
    with raises(f"{path}: no data rows"):
        read_nonmem(path)
    with raises("<DataFrame>: no data rows"):
        read_nonmem(pd.DataFrame({"ID": [], "TIME": [], "DV": []}))


def test_missing_required_column(tmp_path):
    path = write(tmp_path, "ID,TIME,AMT\n1,0,5\n")
    with raises(f"{path}: missing required column DV (found: ID, TIME, AMT)"):
        read_nonmem(path)
    with raises("<DataFrame>: missing required column TIME (found: ID, DV)"):
        read_nonmem(pd.DataFrame({"ID": [1], "DV": [1.0]}))
    with raises("<DataFrame>: missing required column DV or AMT (found: ID, TIME)"):
        read_nonmem(pd.DataFrame({"ID": [1], "TIME": [1.0]}))
    with raises("<DataFrame>: missing required column ID (found: none)"):
        read_nonmem(pd.DataFrame())


def test_duplicate_and_conflicting_columns(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,dv\n1,0,1,1\n")
    with raises(f"{path}: duplicate column dv (same as DV; names ignore case)"):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,DVID,YTYPE\n1,0,1,1,1\n")
    with raises(f"{path}: columns DVID and YTYPE both given; they mean the same (DVID), keep one"):
        read_nonmem(path)


def test_wrong_number_of_fields(tmp_path):
    path = write(tmp_path, "ID,TIME,DV\n1,0,1\n1,1\n1,2,3,4\n")
    with raises(
        f"{path}: wrong number of fields (the header has 3) in row(s) "
        "2 (line 3, 2 fields), 3 (line 4, 4 fields)"
    ):
        read_nonmem(path)


def test_unnamed_column(tmp_path):
    path = write(tmp_path, "ID,,DV,TIME\n1,5,1,0\n")
    with raises(f"{path}: column 2 has no name in the header"):
        read_nonmem(path)


def test_non_numeric_values(tmp_path):
    path = write(tmp_path, "ID,TIME,DV\n1,0,1\n1,abc,2\n1,2,x\n")
    with raises(f"{path}: column TIME: non-numeric value(s) in row(s) 2 (e.g. 'abc')"):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,SEX\n1,0,1,M\n")
    data = read_nonmem(path)  # a text column no covariate uses is carried, not refused
    assert data.covariates == () and data.text_columns == ("SEX",)
    assert data.frame["SEX"].tolist() == ["M"]
    assert read_nonmem(path, covariates=[]).text_columns == ()


def test_non_finite_values():
    frame = pd.DataFrame({"ID": [1, 1, 1], "TIME": [0, 1, 2], "DV": [1.0, np.inf, -np.inf]})
    with raises("<DataFrame>: column DV: non-finite value(s) in row(s) 2, 3 (e.g. inf)"):
        read_nonmem(frame)
    # NaN where a value is required
    frame = pd.DataFrame({"ID": [1, 1], "TIME": [0, np.nan], "DV": [1.0, 2.0]})
    with raises("<DataFrame>: column TIME: missing value(s) in row(s) 2"):
        read_nonmem(frame)


def test_negative_time(tmp_path):
    rows = "\n".join(f"1,{t},1" for t in (0, 1, 2, -3, 4, 5, 6, 7, -8, 9))
    path = write(tmp_path, f"ID,TIME,DV\n{rows}\n")
    with raises(f"{path}: column TIME: negative time in row(s) 4, 9"):
        read_nonmem(path)


def test_negative_amount(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT\n1,0,.,-5\n1,1,2,.\n")
    with raises(f"{path}: column AMT: negative amount in row(s) 1"):
        read_nonmem(path)


def test_time_decreasing(tmp_path):
    path = write(tmp_path, "ID,TIME,DV\n1,0,1\n1,2,1\n1,1,1\n2,0,1\n")
    with raises(
        f"{path}: column TIME: time decreases within an ID in row(s) 3 "
        "(records must be sorted by time within each ID)"
    ):
        read_nonmem(path)


def test_id_not_contiguous(tmp_path):
    path = write(tmp_path, "ID,TIME,DV\n1,0,1\n2,0,1\n1,1,1\n")
    with raises(
        f"{path}: column ID: ID 1 reappears after other IDs in row(s) 3 "
        "(records of one subject must be contiguous)"
    ):
        read_nonmem(path)


def test_missing_observation(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT\n1,0,.,5\n1,1,2,.\n1,2,.,.\n")
    with raises(f"{path}: column DV: missing observation in row(s) 3 (not MDV=1 and not censored)"):
        read_nonmem(path)


def test_dose_without_amount(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,EVID\n1,0,.,0,1\n1,1,2,.,0\n1,2,.,.,1\n")
    with raises(f"{path}: column AMT: dose with zero or missing amount in row(s) 1, 3"):
        read_nonmem(path)


def test_dose_into_unknown_compartment(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,CMT\n1,0,.,5,1\n1,0,.,5,3\n1,1,2,.,2\n")
    with raises(f"{path}: column CMT: dose into unknown compartment 3 in row(s) 2 (known: 1, 2)"):
        read_nonmem(path, compartments={1: "blood_effector", 2: "drug"})
    path = write(tmp_path, "ID,TIME,DV,AMT\n1,0,.,5\n1,1,2,.\n")
    with raises(
        f"{path}: column CMT: dose into unknown compartment 1 in row(s) 1 "
        "(known: 2; no CMT column, so doses go to 1)"
    ):
        read_nonmem(path, compartments={2: "drug"})


def test_invalid_compartment_value(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,CMT\n1,0,.,5,1.5\n1,1,2,.,.\n")
    with raises(
        f"{path}: column CMT: invalid compartment(s) in row(s) 1 "
        "(e.g. '1.5'; use a positive integer or a name)"
    ):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,AMT,CMT\n1,0,.,5,.\n1,1,2,.,.\n")
    with raises(f"{path}: column CMT: dose without a compartment in row(s) 1"):
        read_nonmem(path)


def test_censored_without_limit(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,CENS,LIMIT\n1,0,1,0,.\n1,1,.,1,.\n")
    with raises(
        f"{path}: column CENS: censored observation without a limit in row(s) 2 "
        "(DV is empty; give the limit in DV, LIMIT or LLOQ)"
    ):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,BLQ\n1,0,1,0\n1,1,.,1\n")
    with raises(
        f"{path}: column BLQ: censored observation without a limit in row(s) 2 "
        "(DV is empty and the file has no LIMIT or LLOQ column)"
    ):
        read_nonmem(path)


def test_limit_and_lloq_disagree(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,CENS,LIMIT,LLOQ\n1,0,1,0,2,2\n1,1,.,1,1,2\n")
    with raises(f"{path}: column LIMIT: LIMIT and LLOQ disagree in row(s) 2"):
        read_nonmem(path)


def test_invalid_cens(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,CENS,LIMIT\n1,0,1,0,1\n1,1,1,2,1\n")
    with raises(
        f"{path}: column CENS: invalid CENS value(s) in row(s) 2 (e.g. 2; allowed: 0, 1, -1)"
    ):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,BLQ,LLOQ\n1,0,1,0,1\n1,1,1,-1,1\n")
    with raises(f"{path}: column BLQ: invalid BLQ value(s) in row(s) 2 (e.g. -1; allowed: 0, 1)"):
        read_nonmem(path)


RESET = (
    "the solver carries each subject's state from event to event and cannot reset it; "
    "give each period after a reset its own ID"
)


def test_unsupported_evid(tmp_path):
    base = "ID,TIME,DV,AMT,EVID\n1,0,.,5,1\n1,1,2,.,0\n"
    path = write(tmp_path, base + "1,2,.,.,3\n")
    with raises(f"{path}: column EVID: EVID=3 (reset) is not supported in row(s) 3 ({RESET})"):
        read_nonmem(path)
    path = write(tmp_path, base + "1,2,.,5,4\n")
    with raises(
        f"{path}: column EVID: EVID=4 (reset and dose) is not supported in row(s) 3 ({RESET})"
    ):
        read_nonmem(path)
    path = write(tmp_path, base + "1,2,.,5,7\n")
    with raises(
        f"{path}: column EVID: invalid EVID in row(s) 3 "
        "(e.g. 7; allowed: 0 observation, 1 dose, 2 other)"
    ):
        read_nonmem(path)
    path = write(tmp_path, base + "1,2,.,5,.\n")
    with raises(f"{path}: column EVID: missing value(s) in row(s) 3"):
        read_nonmem(path)


def test_invalid_mdv_and_conflicts(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,MDV\n1,0,1,0\n1,1,1,2\n")
    with raises(f"{path}: column MDV: invalid MDV in row(s) 2 (e.g. 2; allowed: 0, 1)"):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,AMT,MDV\n1,0,0,5,0\n1,1,1,.,0\n")
    with raises(
        f"{path}: column MDV: record with AMT > 0 and MDV=0 in row(s) 1 "
        "(a dose needs MDV=1, an observation AMT=0 or empty)"
    ):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,AMT\n1,0,3,5\n1,1,1,.\n")
    with raises(
        f"{path}: column DV: record with both AMT > 0 and DV in row(s) 1 "
        "(ambiguous without EVID or MDV: add MDV=1 to doses)"
    ):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,AMT,EVID,MDV\n1,0,.,5,1,0\n1,1,1,.,0,0\n")
    with raises(f"{path}: column MDV: dose record (EVID=1) with MDV=0 in row(s) 1"):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,AMT,EVID\n1,0,1,5,0\n")
    with raises(f"{path}: column AMT: observation record (EVID=0) with AMT > 0 in row(s) 1"):
        read_nonmem(path)


def test_dvid_must_be_integer(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,DVID\n1,0,1,1\n1,1,1,1.5\n")
    with raises(f"{path}: column DVID: non-integer observation type(s) in row(s) 2"):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,DVID\n1,0,1,1\n1,1,1,.\n")
    with raises(f"{path}: column DVID: missing value(s) in row(s) 2"):
        read_nonmem(path)


def test_no_observations(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,MDV\n1,0,.,5,1\n1,1,2,.,1\n")
    with raises(f"{path}: no observations (no record with EVID=0 and MDV=0)"):
        read_nonmem(path)


def test_duplicated_rows(tmp_path):
    path = write(tmp_path, "ID,TIME,DV\n1,0,1\n1,1,2\n1,1,2.0\n1,2,3\n")
    with raises(f"{path}: duplicated record(s) in row(s) 3 (identical to an earlier row)"):
        read_nonmem(path)


def test_rate_and_dur_both_given(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,RATE,DUR\n1,0,.,5,1,5\n1,1,2,.,0,0\n")
    with raises(f"{path}: RATE and DUR both given in row(s) 1 (give one of them)"):
        read_nonmem(path)


def test_modelled_rate_unsupported(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,RATE\n1,0,.,5,-1\n1,1,2,.,.\n")
    with raises(
        f"{path}: column RATE: modelled infusion rate (RATE=-1) is not supported in row(s) 1"
    ):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,AMT,RATE\n1,0,.,5,-2\n1,1,2,.,.\n")
    with raises(
        f"{path}: column RATE: modelled infusion duration (RATE=-2) is not supported in row(s) 1"
    ):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,AMT,DUR\n1,0,.,5,-2\n1,1,2,.,.\n")
    with raises(f"{path}: column DUR: negative duration in row(s) 1"):
        read_nonmem(path)


def test_addl_needs_interval(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,ADDL,II\n1,0,.,5,2,0\n1,1,2,.,.,.\n")
    with raises(f"{path}: column II: ADDL > 0 needs a dosing interval II > 0 in row(s) 1"):
        read_nonmem(path)
    path = write(tmp_path, "ID,TIME,DV,AMT,ADDL\n1,0,.,5,2\n1,1,2,.,.\n")
    with raises(
        f"{path}: column II: ADDL > 0 needs a dosing interval II > 0 in row(s) 1 "
        "(the file has no II column)"
    ):
        read_nonmem(path)


def test_addl_must_be_non_negative_integer(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,ADDL,II\n1,0,.,5,-1,1\n1,1,.,5,1.5,1\n1,2,2,.,.,.\n")
    with raises(f"{path}: column ADDL: ADDL must be a non-negative integer in row(s) 1, 2"):
        read_nonmem(path)


def test_steady_state_unsupported(tmp_path):
    path = write(tmp_path, "ID,TIME,DV,AMT,SS,II\n1,0,.,5,1,1\n1,1,2,.,0,.\n")
    with raises(f"{path}: column SS: steady-state dosing (SS≠0) is not supported in row(s) 1"):
        read_nonmem(path)


def test_at_most_five_rows_listed(tmp_path):
    rows = "\n".join(f"1,{t},-1" for t in range(8))
    path = write(tmp_path, f"ID,TIME,DV,AMT\n{rows.replace(',-1', ',.,-1')}\n")
    with raises(f"{path}: column AMT: negative amount in row(s) 1, 2, 3, 4, 5 and 3 more"):
        read_nonmem(path)


def test_bad_compartments_argument(tmp_path):
    path = write(tmp_path, GOOD)
    with raises(f"{path}: compartments: invalid CMT key -1; use a positive integer or a name"):
        read_nonmem(path, compartments={-1: "blood"})
    with raises(
        f"{path}: compartments: the state name for CMT 1 must be a non-empty string, got 3"
    ):
        read_nonmem(path, compartments={1: 3})
