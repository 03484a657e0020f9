"""Tests of the curated published-data tables and their loader (no JAX needed)."""

import json
import math
import shutil

import pandas as pd
import pytest

from cartpk import datasets
from cartpk.datasets import VERIFICATION_LEVELS, data_dir, list_datasets, load_dataset
from cartpk.errors import DatasetError

EXPECTED = {
    "ciltacel_cartitude1_ck",
    "clinical_response_targets",
    "kimmel2021_axicel_model_parameters",
    "lisocel_transcend_popck_parameters",
    "solid_tumor_car_t_kinetics",
    "stein2019_tisagenlecleucel_parameters",
    "tisagenlecleucel_ball_response_ck",
    "zuma1_axicel_medians",
}
NAMES = sorted(EXPECTED)


def _by(df, key_col, key):
    rows = df[df[key_col] == key]
    assert len(rows) == 1, f"expected one row with {key_col} == {key!r}, found {len(rows)}"
    return rows.iloc[0]


def test_list_datasets_lists_every_table():
    listing = list_datasets()
    assert list(listing.columns) == ["name", "title", "n_rows"]
    assert set(listing["name"]) == EXPECTED
    assert (listing["n_rows"] > 0).all()
    assert listing["title"].str.len().gt(0).all()


@pytest.mark.parametrize("name", NAMES)
def test_every_column_described_with_unit_field(name):
    meta = json.loads((data_dir() / f"{name}.json").read_text(encoding="utf-8"))
    assert meta["title"] and meta["description"]
    cols = {c["name"]: c for c in meta["columns"]}
    df = load_dataset(name)
    assert set(df.columns) == set(cols)
    for col in df.columns:
        entry = cols[col]
        assert "unit" in entry, f"{name}.{col} has no unit field"
        assert entry["description"].strip(), f"{name}.{col} has no description"
        assert entry["dtype"] in {"string", "float", "int"}
    assert df.attrs["units"] == {c: cols[c]["unit"] for c in cols}
    assert set(df.attrs["descriptions"]) == set(cols)
    assert df.attrs["title"] == meta["title"]


@pytest.mark.parametrize("name", NAMES)
def test_every_row_has_provenance(name):
    df = load_dataset(name)
    assert df["source"].str.strip().str.len().gt(0).all()
    assert df["verification"].isin(VERIFICATION_LEVELS).all()
    assert df["verification_note"].str.strip().str.len().gt(0).all()
    verified = df[df["verification"] == "verified"]
    for _, row in verified.iterrows():
        has_doi = row["doi"].strip() != ""
        assert has_doi or len(row["verification_note"].strip()) > 20, row["source"]
    assert df["doi"].map(lambda d: d == "" or d.startswith("10.")).all()


@pytest.mark.parametrize("name", NAMES)
def test_rows_with_varying_units_name_their_unit(name):
    df = load_dataset(name)
    units = df.attrs["units"]
    if "unit" in df.columns:
        assert units["value"] is None
        assert df["unit"].str.strip().str.len().gt(0).all()


def test_verified_only_drops_only_unverified_rows():
    for name in NAMES:
        full = load_dataset(name)
        kept = load_dataset(name, verified_only=True)
        assert set(kept["verification"]) <= {"verified", "secondary"}
        assert len(kept) == (full["verification"] != "unverified").sum()
        assert kept.attrs["units"] == full.attrs["units"]
    solid = load_dataset("solid_tumor_car_t_kinetics", verified_only=True)
    assert "cmj2025_review_solid_vs_heme" not in set(solid["trial"])


def test_stein2019_typical_values_as_published():
    df = load_dataset("stein2019_tisagenlecleucel_parameters")
    expected = {
        "cmax": (24000, "copies/ug gDNA", 0.65),
        "tmax": (9.3, "d", 0.38),
        "foldx": (3900, "-", 2.4),
        "alpha": (0.16, "1/d", 0.91),
        "fb": (0.0079, "-", 0.8),
        "beta": (0.0032, "1/d", 0.86),
    }
    for par, (value, unit, omega2) in expected.items():
        row = _by(df, "parameter", par)
        assert row["value"] == pytest.approx(value, rel=1e-12), par
        assert row["unit"] == unit, par
        assert row["iiv_omega2"] == pytest.approx(omega2, rel=1e-12), par
    assert _by(df, "parameter", "residual_sd")["value"] == pytest.approx(0.56)
    assert (df["n_subjects"] == 90).all()
    assert (df["doi"] == "10.1002/psp4.12388").all()
    # The abstract's derived quantities follow from the typical values.
    doubling = math.log(2) * 9.3 / math.log(3900)
    assert _by(df, "parameter", "doubling_time")["value"] == pytest.approx(doubling, abs=0.005)
    assert _by(df, "parameter", "t_half_initial")["value"] == pytest.approx(
        math.log(2) / 0.16, abs=0.05
    )
    assert _by(df, "parameter", "t_half_terminal")["value"] == pytest.approx(
        math.log(2) / 0.0032, rel=0.02
    )


def test_zuma1_medians_as_published():
    df = load_dataset("zuma1_axicel_medians")
    assert df.attrs["units"]["median"] == "cells/uL"
    assert df.attrs["units"]["day"] == "d"
    got = {
        int(r.day): (r.median, r.iqr_low, r.iqr_high, int(r.n)) for r in df.itertuples(index=False)
    }
    assert got == {
        7: (27.5, 16.5, 57.5, 19),
        14: (9.1, 3.8, 31.1, 23),
        28: (2.1, 0.6, 6.1, 22),
        90: (0.1, 0.01, 0.4, 22),
    }
    assert (df["verification"] == "verified").all()
    assert (df["doi"] == "10.1098/rspb.2021.0229").all()


def test_lisocel_and_ciltacel_key_numbers():
    liso = load_dataset("lisocel_transcend_popck_parameters")
    assert _by(liso, "parameter", "tmax")[["value", "ci95_low", "ci95_high"]].tolist() == [
        9.29,
        8.81,
        9.70,
    ]
    assert _by(liso, "parameter", "t_half_terminal")["value"] == 352
    cil = load_dataset("ciltacel_cartitude1_ck")
    cmax = _by(cil, "metric", "cmax")
    assert (cmax["value"], cmax["sd"], cmax["unit"]) == (48692, 27174, "copies/ug gDNA")
    assert _by(cil, "metric", "auc0_28d")["value"] == 504496


def test_response_table_flags_label_values_unverified():
    df = load_dataset("tisagenlecleucel_ball_response_ck")
    absolute = df[df["group"] != "responders_vs_non_responders"]
    assert (absolute["verification"] == "unverified").all()
    ratios = df[df["group"] == "responders_vs_non_responders"]
    assert set(ratios["value"]) == {74, 104}
    assert (ratios["verification"] == "verified").all()


def test_solid_tumour_table_holds_review_statement():
    df = load_dataset("solid_tumor_car_t_kinetics")
    assert df["trial"].is_unique
    row = _by(df, "trial", "cmj2025_review_solid_vs_heme")
    assert (row["fold_lower_vs_heme_low"], row["fold_lower_vs_heme_high"]) == (5, 10)
    assert "5-10 times lower" in row["kinetic_summary"]
    assert row["verification"] == "unverified"
    targets = set(df["target"])
    for target in ("mesothelin", "GD2", "claudin18.2", "GPC3", "HER2", "EGFRvIII", "PSMA"):
        assert target in targets
    # every time or persistence number comes with its unit
    for prefix in ("tmax", "persistence", "peak"):
        has_number = df[[f"{prefix}_value", f"{prefix}_low", f"{prefix}_high"]].notna().any(axis=1)
        assert df.loc[has_number, f"{prefix}_unit"].str.len().gt(0).all(), prefix


def test_unknown_name_error_lists_available():
    with pytest.raises(DatasetError) as info:
        load_dataset("no_such_table")
    message = str(info.value)
    assert "no_such_table" in message
    assert "\n" not in message
    for name in EXPECTED:
        assert name in message


def test_invalid_verification_value_is_rejected(tmp_path, monkeypatch):
    name = "zuma1_axicel_medians"
    for suffix in (".csv", ".json"):
        shutil.copy(data_dir() / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    df = pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False)
    df.loc[2, "verification"] = "probably"
    df.to_csv(tmp_path / f"{name}.csv", index=False)
    monkeypatch.setattr(datasets, "data_dir", lambda: tmp_path)
    with pytest.raises(DatasetError, match=r"zuma1_axicel_medians\.csv.*verification.*line\(s\) 4"):
        load_dataset(name)


def test_undescribed_column_is_rejected(tmp_path, monkeypatch):
    name = "zuma1_axicel_medians"
    for suffix in (".csv", ".json"):
        shutil.copy(data_dir() / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    df = pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False)
    df["extra"] = "x"
    df.to_csv(tmp_path / f"{name}.csv", index=False)
    monkeypatch.setattr(datasets, "data_dir", lambda: tmp_path)
    with pytest.raises(DatasetError, match="undescribed"):
        load_dataset(name)
