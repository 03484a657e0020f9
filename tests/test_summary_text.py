"""The terminal summary of ``cartpk simulate`` / ``cartpk demo``: the table, then what differs
between the arms (built on small hand-made summary tables, no simulation)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cartpk.commands.simulate import explain_arms, format_summary, mechanisms
from cartpk.scenario import bundled_scenario, load_scenario
from cartpk.therapies import THERAPIES

REFERENCE = {
    "cmax_cells_per_ul": 22.5,
    "auc0_28_cells_per_ul_d": 279.0,
    "persistence_d": 109.0,
    "tumour_car_t_auc_cell_d": 2.64e8,
    "infiltration_ratio": 0.166,
    "exhausted_fraction_d28": 0.746,
    "tumour_nadir_percent": 20.9,
    "tumour_change_percent": 1353.0,
}


def _summary(arms: dict[str, dict], response: list[float] | None = None, subgroups=False):
    """``summary.csv`` rows: ``<endpoint>_median`` columns (p05/p95 too, as the real table)."""
    rows = []
    for arm, changes in arms.items():
        row = {"arm": arm, "subgroup": "all", "patients": 32, "failed": 0}
        for name, value in {**REFERENCE, **changes}.items():
            row.update(
                {f"{name}_median": value, f"{name}_p05": 0.5 * value, f"{name}_p95": 2 * value}
            )
        rows.append(row)
    frame = pd.DataFrame(rows)
    if response is not None:
        frame["objective_response_percent"] = response
        frame["complete_response_percent"] = 0.0
    if subgroups:  # per-subgroup rows follow; the text uses the rows of all patients
        frame = pd.concat([frame, frame.assign(subgroup="HA-high", patients=16)])
    return frame.reset_index(drop=True)


def test_same_response_in_every_arm_is_said_once_with_what_differs_instead():
    summary = _summary(
        {
            "CAR-T alone": {},
            "+ anti-VEGF 5 mg/kg d-7, d7": {
                "tumour_car_t_auc_cell_d": 1.2 * 2.64e8,
                "infiltration_ratio": 1.2 * 0.166,
            },
            "+ radiotherapy": {"tumour_change_percent": 443.0},
        },
        response=[0.0, 0.0, 0.0],
        subgroups=True,
    )
    text = format_summary(summary)
    lines = text.splitlines()
    assert lines[0].startswith("arm (median of patients)")
    assert lines.count("") == 1  # one blank line between the table and the explanation
    explanation = lines[lines.index("") + 1 :]
    assert explanation == [
        "arm by arm, against CAR-T alone (medians of patients; x: ratio, pp: percentage points):",
        "  + anti-VEGF 5 mg/kg d-7, d7: intratumoural CAR-T AUC x1.2, infiltration ratio x1.2; "
        "objective response unchanged (0 %)",
        "  + radiotherapy: tumour change at horizon -910 pp (+443 %); "
        "objective response unchanged (0 %)",
        "every arm has the same objective response (0 %): no patient in any arm reaches a "
        "partial response (tumour diameter 30 % below baseline); the arms differ in CAR-T "
        "exposure and tumour growth (above), not in response",
    ]


def test_ratios_differences_and_a_changed_response():
    summary = _summary(
        {
            "CAR-T alone": {},
            "armoured": {
                "cmax_cells_per_ul": 4.83 * 22.5,
                "auc0_28_cells_per_ul_d": 5.7 * 279.0,
                "tumour_car_t_auc_cell_d": 29.7 * 2.64e8,
                "persistence_d": 180.0,
                "exhausted_fraction_d28": 0.646,
                "infiltration_ratio": 0.166 * 1.01,  # 1 %: below the 2 % worth a mention
            },
            "+ anti-PD-1": {"exhausted_fraction_d28": 0.556, "cmax_cells_per_ul": 1.03 * 22.5},
        },
        response=[0.0, 3.125, 0.0],
    )
    lines = explain_arms(summary)
    # the largest differences first, at most four, then how many more
    assert lines[1] == (
        "  armoured: intratumoural CAR-T AUC x30, AUC0-28 x5.7, Cmax x4.8, persistence +71 d "
        "(180 d), 1 more (summary.csv); objective response 3 % (+3 pp)"
    )
    assert lines[2] == (
        "  + anti-PD-1: exhausted fraction d28 -19 pp (56 %), Cmax x1.03; "
        "objective response unchanged (0 %)"
    )
    assert len(lines) == 3  # the responses differ: no shared-response line


def test_nothing_differs_and_missing_columns():
    summary = _summary({"CAR-T alone": {}, "+ hyaluronidase": {}}, response=[0.0, 0.0])
    lines = explain_arms(summary)
    assert lines[1] == (
        "  + hyaluronidase: no endpoint differs by 2 %, 1 d or 1 pp or more; "
        "objective response unchanged (0 %)"
    )
    assert lines[2].endswith("; the arms do not differ in the endpoints above either")
    # a blood-cancer scenario: no tumour endpoints, everyone a complete response
    blood = _summary(
        {"CAR-T alone": {}, "+ IL-7": {"cmax_cells_per_ul": 45.0}}, response=[100.0, 100.0]
    )
    blood = blood.drop(columns=[c for c in blood if c.startswith(("tumour", "infiltration"))])
    blood = blood.drop(columns="subgroup")
    lines = explain_arms(blood)
    assert lines[1] == "  + IL-7: Cmax x2; objective response unchanged (100 %)"
    assert lines[2].startswith(
        "every arm has the same objective response (100 %): without a tumour at baseline every "
        "patient counts as a complete response; the arms differ in CAR-T exposure"
    )
    # no response column at all, a NaN endpoint, a zero reference
    plain = _summary(
        {
            "A": {"tumour_car_t_auc_cell_d": 0.0, "persistence_d": np.nan},
            "B": {"tumour_car_t_auc_cell_d": 3e8},
        }
    )
    assert explain_arms(plain)[1:] == ["  B: intratumoural CAR-T AUC 3e+08 (vs 0)"]
    # one arm: nothing to compare
    assert explain_arms(_summary({"CAR-T alone": {}}, response=[0.0])) == []
    assert "arm by arm" not in format_summary(_summary({"CAR-T alone": {}}, response=[0.0]))


def test_a_grid_of_many_arms_is_explained_for_the_first_twelve():
    arms = {"CAR-T alone": {}, **{f"day {d}": {"cmax_cells_per_ul": 30.0 + d} for d in range(20)}}
    lines = explain_arms(_summary(arms, response=[0.0] * 21))
    assert sum(line.startswith("  day ") for line in lines) == 12
    assert "  ... and 8 more arms (summary.csv)" in lines


def test_each_arm_says_how_it_acts():
    """The arm lines carry the descriptions of the arm's product and therapy modules."""
    scenario = load_scenario(bundled_scenario("combinations"))
    how = mechanisms(scenario)
    assert "CAR-T alone" not in how
    assert how["+ hyaluronidase 3 ug/kg 2x/wk"] == THERAPIES["hyaluronidase"].description
    both = how["armoured + anti-VEGF + hyaluronidase"].split("; ")
    assert both[0] == THERAPIES["ccl19_il7"].description
    arms = {"CAR-T alone": {}, "+ hyaluronidase 3 ug/kg 2x/wk": {"infiltration_ratio": 0.2}}
    lines = explain_arms(_summary(arms, response=[0.0, 0.0]), how)
    assert lines[2] == f"    how: {THERAPIES['hyaluronidase'].description}"
