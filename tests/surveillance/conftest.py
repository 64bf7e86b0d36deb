"""Fixtures for the surveillance tests: the real WHO and OWID files from ``../shared/data``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dosewise.surveillance.readers import read_owid, read_who_weekly


@pytest.fixture(scope="session")
def who_path(shared_data: Path) -> Path:
    return shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"


@pytest.fixture(scope="session")
def who_weekly(who_path: Path) -> pd.DataFrame:
    return read_who_weekly(who_path)


@pytest.fixture(scope="session")
def owid_vax(shared_data: Path) -> pd.DataFrame:
    return read_owid(shared_data / "vaccination" / "owid" / "vaccinations.csv")


@pytest.fixture(scope="session")
def population(shared_data: Path) -> pd.Series:
    """WPP 2024 population for 2020 by ISO3 (NaN where WPP lacks the country)."""
    cm = pd.read_csv(
        shared_data / "metadata" / "countries_master.csv",
        keep_default_na=False,
        na_values={"pop2020_wpp2024": [""]},
    )
    return cm.set_index("iso3")["pop2020_wpp2024"].astype(float)


@pytest.fixture(scope="session")
def master(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "metadata" / "countries_master.csv", keep_default_na=False).set_index("iso3")
