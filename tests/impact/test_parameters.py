"""Reference data of the impact model against the shared real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dosewise.errors import ReferenceDataError
from dosewise.impact.parameters import ODRISCOLL2021_IFR_PCT, ifr_by_band
from dosewise.reference.contacts import contact_matrices, matrix_coverage
from dosewise.reference.population import population_by_age


def test_odriscoll_values_match_the_compiled_table(shared_data: Path) -> None:
    tab = pd.read_csv(shared_data / "severity" / "age_severity_estimates.csv")
    rows = tab[(tab["source"] == "ODriscoll2021") & (tab["quantity"] == "IFR_both")]
    assert list(rows["value"]) == list(ODRISCOLL2021_IFR_PCT)


def test_ifr_75_plus_folded_by_population() -> None:
    pop = population_by_age(["JPN", "NGA"], 2020)
    ifr = ifr_by_band(pop)
    assert ((ifr[:, 15] > 0.03203) & (ifr[:, 15] < 0.08292)).all()
    assert ifr[0, 15] > ifr[1, 15]  # Japan's 75+ are older than Nigeria's
    assert ifr_by_band(pop, "levin2020").shape == (2, 16)


def test_contact_orientation_rows_are_respondents() -> None:
    codes = ["IND", "NGA", "BRA"]
    mats = contact_matrices(codes).matrices
    pop = population_by_age(codes, 2020)
    n16 = np.concatenate([pop[:, :15], pop[:, 15:].sum(axis=1, keepdims=True)], axis=1)
    rows = n16[:, :, None] * mats
    cols = mats * n16[:, None, :]

    def asym(x: np.ndarray) -> np.ndarray:
        return np.abs(x - x.transpose(0, 2, 1)).sum(axis=(1, 2)) / x.sum(axis=(1, 2))

    assert (asym(rows) < asym(cols)).all()


def test_prem2017_fills_and_proxies_are_flagged() -> None:
    cm = contact_matrices(["JPN", "ITA", "SOM", "DMA"], like={"DMA": "LCA"}, income_levels=[None, None, "Low", None])
    assert cm.source == ("prem2017", "prem2021", "income-mean:Low", "proxy:LCA")
    assert list(cm.is_proxy) == [False, False, True, True]
    assert {"JPN", "HTI", "AUS"} <= matrix_coverage()
    with pytest.raises(ReferenceDataError, match="SOM"):
        contact_matrices(["SOM"])
