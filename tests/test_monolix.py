"""Datasets as pharmacometricians bring them: Monolix censoring and column names, text columns,
NONMEM's IGNORE/ACCEPT rules and ``C`` column, resets, and dose-independent models fitted to
files with dose records.

External definitions the fixtures follow (each CSV below is written to them):

- Monolix censoring: a censored record's observation column holds the limit (CENS=1: below it,
  CENS=-1: above it); an optional LIMIT column holds the other bound of an interval, and
  ``.`` there means -inf (CENS=1) or +inf (CENS=-1).
  https://monolix.lixoft.com/censoreddata/ and
  http://dataset.lixoft.com/description/character-definition-for-data-set-elements-naming/
- Monolix column types (OBSERVATION, OBSERVATION ID, CENSORING, ...; ``Y``/``YTYPE`` renamed
  OBSERVATION/OBSERVATION ID in 2018): https://monolix.lixoft.com/data-format/ and
  http://dataset.lixoft.com/faq/evolution-monolixsuite-data-set-starting-2018r1-version/
- The Monolix demo warfarin file and its Mlxtran header, as shipped by Rsmlx
  (github.com/MarcLavielle/Rsmlx, ``inst/extdata/warfarin_data.csv`` and
  ``RsmlxDemo1.mlxtran``: ``header = {id, time, amt, dv, dvid, wt, sex, age}``).
- NONMEM Users Guide VIII, ``$DATA``: ``IGNORE=#`` is the default; ``IGNORE=@`` skips records
  whose first non-blank character is a letter or ``@``; ``IGNORE=c1`` records starting with
  ``c1``; ``IGNORE=(list)``/``ACCEPT=(list)`` exclude each other, conditions in a list are
  OR'ed. https://nmhelp.tingjieguo.com/$data.html and the IGNORE_ACCEPT example
  https://nmhelp.tingjieguo.com/ignacc.html
- NONMEM EVID: 3 reset, 4 reset and dose. https://nmhelp.tingjieguo.com/evid.html
"""

import re

import numpy as np
import pytest

import cartpk
from cartpk import DatasetError
from cartpk.estimation import CovariateEffect, Settings, build_problem, fit
from cartpk.nonmem import read_nonmem

NAME = "data.csv"


def read(text: str, **options):
    return read_nonmem(text.encode(), name=NAME, **options)


def refused(message: str, column, rows, text: str, **options):
    """Reading ``text`` raises exactly ``data.csv: MESSAGE`` with this column and these rows."""
    with pytest.raises(DatasetError, match=f"^{re.escape(f'{NAME}: {message}')}$") as info:
        read(text, **options)
    assert "\n" not in str(info.value)
    assert (info.value.column, info.value.rows) == (column, rows)


# ------------------------------------------------------------------------------------------------
# 1. CENS/LIMIT: Monolix's convention and NONMEM's


def test_monolix_censored_dv_holds_the_limit():
    data = read(
        "ID,TIME,DV,CENS\n"
        "1,1,12,0\n"
        "1,2,0.5,1\n"  # below the LLOQ 0.5
        "1,3,80,-1\n"  # above the ULOQ 80
    )
    arrays = data.to_arrays()
    np.testing.assert_array_equal(arrays.censored, [[False, True, False]])
    np.testing.assert_array_equal(arrays.censored_above, [[False, False, True]])
    np.testing.assert_array_equal(np.asarray(arrays.limit)[0, 1:], [0.5, 80.0])
    # LIMIT '.' is the open side of the interval (-inf for CENS=1): plain left censoring
    data = read("ID,TIME,DV,CENS,LIMIT\n1,1,12,0,.\n1,2,0.5,1,.\n")
    assert data.observations()["LIMIT"].tolist()[1] == 0.5


def test_monolix_interval_is_refused_on_one_line():
    refused(
        "column LIMIT: interval censoring is not supported in row(s) 2 (CENS≠0 with DV and a "
        "different LIMIT: as in Monolix, DV is the limit and LIMIT the other bound of an "
        "interval, which the M3 likelihood cannot fit; leave LIMIT empty to censor at DV)",
        "LIMIT",
        (2,),
        "ID,TIME,DV,CENS,LIMIT\n1,1,12,0,.\n1,2,0.5,1,0\n",  # 0 <= value <= 0.5
    )


def test_nonmem_conventions_are_kept():
    # NONMEM M3: the limit is LLOQ and DV a placeholder (here 0) on BLQ records
    data = read("ID,TIME,DV,BLQ,LLOQ\n1,1,12,0,2\n1,2,0,1,2\n")
    assert data.observations()["LIMIT"].tolist() == [2.0, 2.0]
    # DV empty on a censored record: the limit is LIMIT (or LLOQ)
    data = read("ID,TIME,DV,CENS,LIMIT\n1,1,12,0,.\n1,2,.,1,3\n")
    assert data.observations()["LIMIT"].tolist()[1] == 3.0
    assert bool(data.to_arrays().dv_missing[0, 1])
    # LIMIT equal to DV means the same in both conventions
    assert read("ID,TIME,DV,CENS,LIMIT\n1,2,9,-1,9\n").observations()["LIMIT"].tolist() == [9.0]


# ------------------------------------------------------------------------------------------------
# 2. Monolix files with their own column names

WARFARIN = (  # Rsmlx inst/extdata/warfarin_data.csv, its header and first records
    "id,time,amt,dv,dvid,wt,sex,age\n"
    "1,0,100,.,1,66.7,1,50\n"
    "1,0,.,100,2,66.7,1,50\n"
    "1,24,.,9.2,1,66.7,1,50\n"
    "1,24,.,49,2,66.7,1,50\n"
    "2,0,100,.,1,66.7,1,31\n"
    "2,0.5,.,0,1,66.7,1,31\n"
    "2,2,.,8.4,1,66.7,1,31\n"
)


def test_warfarin_by_monolix_header_types_and_mlxtran_uses():
    types = ["id", "time", "amount", "observation", "obsid", "contcov", "catcov", "contcov"]
    data = read(WARFARIN, columns=types)
    uses = {  # RsmlxDemo1.mlxtran [CONTENT]
        "id": "identifier",
        "time": "time",
        "amt": "amount",
        "dv": "observation",
        "dvid": "observationtype",
        "wt": "covariate",
        "sex": "covariate",
        "age": "covariate",
    }
    assert read(WARFARIN, columns=uses).frame.equals(data.frame)
    assert data.ids == (1, 2) and data.covariates == ("wt", "sex", "age")
    assert data.regimens[2] == cartpk.Regimen.single(100.0, "1")
    assert data.observations()["DVID"].tolist() == [2, 1, 2, 1, 1]
    assert "DVIDs: 1 (3 obs), 2 (2 obs)" in data.summary()


def test_raw_monolix_names_mapped_to_roles():
    text = (
        "ID,time,y,y_ID,cens,limit,crp\n"
        "1,1,20,1,0,.,5\n1,2,0.1,1,1,.,5\n1,3,4,2,0,.,5\n2,1,30,1,0,.,7\n"
    )
    data = read(text, columns={"time": "TIME", "y": "DV", "y_ID": "DVID"})
    assert data.observations()["DVID"].tolist() == [1, 1, 2, 1]
    assert data.observations()["CENS"].tolist() == [0, 1, 0, 0]
    assert data.regimens == {1: cartpk.Regimen(), 2: cartpk.Regimen()}  # no AMT: no doses
    refused(
        "columns: no column Y_ID2 in the file (found: ID, time, y, y_ID, cens, limit, crp)",
        "Y_ID2",
        (),
        text,
        columns={"Y_ID2": "DVID"},
    )
    refused(
        "columns: unknown role 'OUTCOME' for column y (use a NONMEM name such as ID, TIME, DV, "
        "AMT, EVID, MDV, CMT, RATE, DUR, ADDL, II, SS, CENS, LIMIT, LLOQ, DVID, C, a Monolix "
        "column type such as OBSERVATION, or COVARIATE or IGNORE)",
        "y",
        (),
        text,
        columns={"y": "OUTCOME"},
    )
    # Monolix's Y is its observation column, not the type
    assert read("ID,TIME,Y\n1,1,3\n").observations()["DV"].tolist() == [3.0]


# ------------------------------------------------------------------------------------------------
# 3. Text columns


TEXT = "ID,TIME,DV,GROUP,WT\n1,1,5,CR,70\n1,2,4,CR,70\n2,1,6,PR,60\n2,2,5,PR,60\n3,1,7,CR,80\n"


def test_text_columns_are_carried_and_categorical_covariates_use_them():
    data = read(TEXT)
    assert data.text_columns == ("GROUP",) and data.covariates == ("WT",)
    assert data.frame["GROUP"].tolist() == ["CR", "CR", "PR", "PR", "CR"]
    assert "GROUP" not in data.observations().columns
    model = cartpk.Multiphasic()
    problem = build_problem(
        model, data, covariates=[CovariateEffect("cmax", "GROUP", "categorical")]
    )
    (effect,) = problem.layout.effects
    assert (effect.name, effect.reference, effect.level) == ("beta_cmax_GROUP_PR", "CR", "PR")
    np.testing.assert_array_equal(problem.arrays.design[:, 0], [0.0, 1.0, 0.0])
    with pytest.raises(
        DatasetError,
        match=re.escape(
            "data.csv: column GROUP: the power covariate model needs numbers, got text "
            "(e.g. 'CR' in row 1); declare it categorical or give numbers"
        ),
    ):
        build_problem(model, data, covariates=[CovariateEffect("cmax", "GROUP")])


# ------------------------------------------------------------------------------------------------
# 4. NONMEM IGNORE/ACCEPT and the C column


def test_c_column_and_character_rules():
    text = (
        "C,ID,TIME,DV\n"
        "C,1,0,99\n"  # commented out
        ".,1,1,2\n"
        "0,1,2,3\n"
        "1,1,3,99\n"  # commented out
    )
    data = read(text)
    assert data.observations()["DV"].tolist() == [2.0, 3.0]
    assert data.ignored == {"C": (1, 4)}
    # IGNORE=@: any record whose first non-blank character is a letter or @ (a table header)
    data = read("ID,TIME,DV\n1,0,1\nTABLE NO. 1\n ID,TIME,DV\n@ note\n1,1,2\n", ignore=["@"])
    assert data.observations()["DV"].tolist() == [1.0, 2.0]
    assert data.ignored == {"@": (2, 3, 4)}
    # IGNORE=c1: records starting with c1; '#' stays the default
    data = read("ID,TIME,DV\n1,0,1\nx,1,5\n# a note\n1,2,3\n", ignore=["x"])
    assert data.ignored == {"x": (2,), "#": (3,)}
    assert "ignored records: 1 by x, 1 by #" in data.summary()


GEN_AGE = "ID,TIME,DV,GEN,AGE\n" + "".join(
    f"{i},1,1,{gen},{age}\n"
    for i, (gen, age) in enumerate([(1, 70), (1, 50), (2, 70), (2, 50), (1, 61), (2, 61)], 1)
)


def test_ignore_and_accept_conditions_as_nonmem_defines_them():
    # ignacc.html: IGNORE=(B.GE.100,A.LT.1,A.GT.2) drops a record when any condition holds
    data = read(GEN_AGE, ignore=["(GEN.EQ.1, AGE.GT.65)"])
    assert data.ids == (4, 6)
    assert data.ignored == {"GEN.EQ.1": (1, 2, 5), "AGE.GT.65": (3,)}
    # ignacc.html: ACCEPT=(GEN.NE.1,AGE.LE.60) keeps exactly .NOT.(GEN.EQ.1.AND.AGE.GT.60)
    data = read(GEN_AGE, accept=["GEN != 1", "AGE<=60"])
    assert data.ids == (2, 3, 4, 6)
    assert data.ignored == {"accept GEN != 1, AGE<=60": (1, 5)}
    assert "ignored records: 2 by accept GEN != 1, AGE<=60" in data.summary()
    # text comparisons and a role name (DVID for a mapped Monolix y_ID)
    data = read(
        "ID,TIME,y,y_ID,ARM\n1,1,2,1,A\n1,2,3,2,A\n2,1,4,1,B\n",
        columns={"y": "DV", "y_ID": "DVID"},
        ignore=["DVID==2", "ARM=='B'"],
    )
    assert data.ignored == {"DVID==2": (2,), "ARM=='B'": (3,)}
    # NM-TRAN reads an empty field as 0
    assert read("ID,TIME,DV,FLAG\n1,1,2,.\n1,2,3,1\n", ignore=["FLAG.EQ.0"]).ignored == {
        "FLAG.EQ.0": (1,)
    }


def test_selection_refusals():
    refused(
        "give ignore conditions or accept conditions, not both (NONMEM's IGNORE=(list) and "
        "ACCEPT=(list) exclude each other)",
        None,
        (),
        GEN_AGE,
        ignore=["GEN==1"],
        accept=["AGE<60"],
    )
    with pytest.raises(DatasetError, match=r"^ignore: GEN>=x: compare text only with == or !=$"):
        read(GEN_AGE, ignore=["GEN>=x"])
    refused(
        "HT>1: no column HT in the file (found: ID, TIME, DV, GEN, AGE)",
        "HT",
        (),
        GEN_AGE,
        ignore=["HT>1"],
    )
    refused("no data rows left after GEN.GT.0 (6 rows)", None, (), GEN_AGE, ignore=["GEN.GT.0"])
    with pytest.raises(DatasetError, match=r"^ignore: 'DVID~2' is not a condition COLUMN OP"):
        read(GEN_AGE, ignore=["DVID~2"])


# ------------------------------------------------------------------------------------------------
# 5. EVID 3 and 4


@pytest.mark.parametrize("evid, event", [(3, "reset"), (4, "reset and dose")])
def test_resets_are_refused_with_the_reason(evid, event):
    refused(
        f"column EVID: EVID={evid} ({event}) is not supported in row(s) 3 (the solver carries "
        "each subject's state from event to event and cannot reset it; give each period after "
        "a reset its own ID)",
        "EVID",
        (3,),
        f"ID,TIME,DV,AMT,EVID\n1,0,.,5,1\n1,1,2,.,0\n1,9,.,{5 if evid == 4 else '.'},{evid}\n",
    )


# ------------------------------------------------------------------------------------------------
# 6. A dose-independent model fitted to a file with dose records


def test_dose_independent_model_counts_time_from_the_dose():
    model = cartpk.Multiphasic()
    text = "ID,TIME,DV,AMT\n1,3,.,1e8\n1,10,100,.\n1,31,20,.\n2,0,.,1e8\n2,7,50,.\n"
    with pytest.warns(
        UserWarning,
        match=re.escape(
            "data.csv: Multiphasic takes no dose input: the dose records of 2 subjects are "
            "dropped, time counted from each subject's dose (1 shifted, by up to 3 d)"
        ),
    ):
        problem = build_problem(model, read(text))
    np.testing.assert_array_equal(problem.arrays.time, [[7.0, 28.0], [7.0, 7.0]])
    assert not np.asarray(problem.arrays.doses.bolus).any()
    kept = build_problem(model, read(text), ignore_doses=True)  # TIME as it is
    np.testing.assert_array_equal(kept.arrays.time, [[10.0, 31.0], [7.0, 7.0]])
    with pytest.raises(
        DatasetError,
        match=re.escape(
            "data.csv: column TIME: ID 1 is dosed on days 0, 14, but Multiphasic takes no dose "
            "input and counts time from one dose (give one dose time per subject, or "
            "ignore_doses=True to keep TIME as it is) in row(s) 1, 3"
        ),
    ):
        build_problem(model, read("ID,TIME,DV,AMT\n1,0,.,1\n1,7,5,.\n1,14,.,1\n1,21,5,.\n"))
    with pytest.raises(
        DatasetError,
        match=re.escape(
            "data.csv: column TIME: observation before day 0 of Multiphasic, whose time zero is "
            "the dose in row(s) 1"
        ),
    ):
        with pytest.warns(UserWarning):
            build_problem(model, read("ID,TIME,DV,AMT\n1,1,5,.\n1,3,.,1e8\n1,10,100,.\n"))


# ------------------------------------------------------------------------------------------------
# 7. Time-varying covariates


def test_time_varying_covariate_is_refused_naming_the_first_subject():
    data = read("ID,TIME,DV,WT\n1,1,5,70\n1,2,4,.\n2,1,6,60\n2,2,5,62\n")
    assert "covariates: WT (time-varying: WT)" in data.summary()
    assert data.varying("WT") == (2, 4)
    with pytest.raises(
        DatasetError,
        match=re.escape(
            "data.csv: column WT: time-varying covariate (it changes within ID 2 in row 4); "
            "covariates on parameters must be constant per subject"
        ),
    ):
        build_problem(cartpk.Multiphasic(), data, covariates=[CovariateEffect("cmax", "WT")])


# ------------------------------------------------------------------------------------------------
# The fit's arguments


def test_fit_takes_columns_ignore_and_accept(tmp_path):
    path = tmp_path / NAME
    path.write_text("ID,time,y,y_ID\n1,1,20,1\n1,2,9,2\n2,1,30,1\n")
    settings = Settings(columns={"y": "DV", "y_ID": "DVID"}, ignore=["DVID==2"])
    problem = settings.problem(cartpk.Multiphasic(), path)
    assert problem.layout.dvids == (1,) and problem.data.ignored == {"DVID==2": (2,)}
    with pytest.raises(DatasetError, match=r": HT>1: no column HT in the file"):
        fit(cartpk.Multiphasic(), path, columns={"y": "DV"}, accept=["HT>1"])
    with pytest.raises(cartpk.CartpkError, match="^data is already read: give ignore to"):
        build_problem(cartpk.Multiphasic(), problem.data, ignore=["DVID==2"])
