from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from dosewise.errors import InputError, ReferenceDataError
from dosewise.reference import country_info, group_members, population_by_age, validate_iso3, wpp_coverage


def test_population_matches_wpp_2024_csv(shared_data: Path) -> None:
    """The package reads starsim-data's HDF5; it must equal the shared WPP 2024 extract."""
    rows = {}
    with open(shared_data / "population" / "wpp2024_population_by_age_sex.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["year"] == "2020" and r["sex"] == "Both" and r["iso3"] in ("PRK", "NAM", "IND"):
                rows[r["iso3"]] = np.array([float(v) for v in list(r.values())[4:]])
    got = population_by_age(["PRK", "NAM", "IND"], 2020)
    for i, code in enumerate(["PRK", "NAM", "IND"]):
        np.testing.assert_allclose(got[i], rows[code], rtol=1e-6, atol=1.0)


def test_population_interpolates_between_decades() -> None:
    p2020, p2030 = population_by_age(["KEN"], 2020)[0], population_by_age(["KEN"], 2030)[0]
    np.testing.assert_allclose(population_by_age(["KEN"], 2023)[0], 0.7 * p2020 + 0.3 * p2030)


def test_missing_countries_raise_with_what_to_supply() -> None:
    missing = sorted(set(group_members("AMC92")) - wpp_coverage())
    assert missing == ["DMA", "FSM", "GRD", "MHL", "SOM", "TUV", "XKX"]
    with pytest.raises(ReferenceDataError, match=r"TUV.*supply `population:`"):
        population_by_age(["KEN", "TUV"])


def test_amc92_matches_shared_list(shared_data: Path) -> None:
    with open(shared_data / "metadata" / "covax_amc92.csv", newline="") as fh:
        ref = sorted(r["iso3"] for r in csv.DictReader(fh))
    assert group_members("amc92") == ref


def test_country_info_offline() -> None:
    prk = country_info("PRK")
    assert prk.income_level == "Low" and prk.subregion == "Eastern Asia"
    assert country_info("nam").iso2 == "NA"
    assert country_info("XKX").name == "Kosovo"
    with pytest.raises(InputError, match="ZZZ"):
        validate_iso3("ZZZ")
