"""Readers on the real WHO and OWID files, and on broken copies of them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dosewise.errors import InputError
from dosewise.surveillance.demo import DPRK_SITREPS
from dosewise.surveillance.readers import (
    read_owid,
    read_sitreps,
    read_who_vaccination,
    read_who_vaccination_metadata,
    read_who_weekly,
)


def _raw_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_who_weekly_shape_and_conveyances(who_path: Path, who_weekly: pd.DataFrame) -> None:
    raw = _raw_rows(who_path)
    conveyance = sum(r["Country_code"].startswith("XX") for r in raw)
    assert conveyance > 0
    assert who_weekly.attrs["dropped_conveyance_rows"] == conveyance
    assert len(who_weekly) == len(raw) - conveyance
    assert not who_weekly["iso3"].str.startswith("XX").any()
    assert "XKX" in set(who_weekly["iso3"])  # Kosovo's XK


def test_namibia_is_not_missing(who_path: Path, who_weekly: pd.DataFrame) -> None:
    raw = [r for r in _raw_rows(who_path) if r["Country_code"] == "NA"]
    nam = who_weekly[who_weekly["iso3"] == "NAM"].sort_values("week")
    assert len(nam) == len(raw) > 0
    expected = max(int(r["Cumulative_cases"]) for r in raw)
    assert nam["cumulative_cases"].max() == expected > 100_000
    assert who_weekly["iso3"].notna().all()


def test_garbled_name_joined_by_code(who_path: Path, who_weekly: pd.DataFrame) -> None:
    raw = [r for r in _raw_rows(who_path) if r["Country_code"] == "CI"]
    assert "\ufffd" in raw[0]["Country"]  # the file's own broken "Côte d'Ivoire"
    civ = who_weekly[who_weekly["iso3"] == "CIV"]
    assert len(civ) == len(raw)
    assert civ["cumulative_deaths"].max() == max(int(r["Cumulative_deaths"]) for r in raw)


def test_blank_counts_are_nan_not_zero(who_path: Path, who_weekly: pd.DataFrame) -> None:
    raw = [r for r in _raw_rows(who_path) if not r["Country_code"].startswith("XX")]
    blanks = sum(r["New_cases"] == "" for r in raw)
    zeros = sum(r["New_cases"] == "0" for r in raw)
    assert blanks > 0
    assert int(who_weekly["new_cases"].isna().sum()) == blanks
    assert int((who_weekly["new_cases"] == 0).sum()) == zeros


def _copy_head(
    src: Path, dst: Path, n: int, edit: dict[int, tuple[str, str]] | None = None, drop: str | None = None
) -> Path:
    rows = _raw_rows(src)[:n]
    for i, (col, val) in (edit or {}).items():
        rows[i][col] = val
    fields = [f for f in rows[0] if f != drop]
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return dst


def test_text_in_count_column_names_file_row_column(who_path: Path, tmp_path: Path) -> None:
    bad = _copy_head(who_path, tmp_path / "who.csv", 50, edit={9: ("New_deaths", "twelve")})
    with pytest.raises(InputError) as info:
        read_who_weekly(bad)
    err = info.value
    assert (err.file, err.row, err.field, err.value) == (str(bad), 11, "New_deaths", "twelve")
    assert "who.csv" in str(err) and "row 11" in str(err) and "New_deaths" in str(err)


def test_missing_column_is_named(who_path: Path, tmp_path: Path) -> None:
    bad = _copy_head(who_path, tmp_path / "who.csv", 20, drop="Cumulative_deaths")
    with pytest.raises(InputError, match="Cumulative_deaths") as info:
        read_who_weekly(bad)
    assert info.value.field == "Cumulative_deaths"


def test_bad_date_and_unknown_code(who_path: Path, tmp_path: Path) -> None:
    bad = _copy_head(who_path, tmp_path / "d.csv", 20, edit={4: ("Date_reported", "2020-13-01")})
    with pytest.raises(InputError) as info:
        read_who_weekly(bad)
    assert (info.value.row, info.value.field) == (6, "Date_reported")
    bad = _copy_head(who_path, tmp_path / "c.csv", 20, edit={2: ("Country_code", "QQ")})
    with pytest.raises(InputError) as info:
        read_who_weekly(bad)
    assert (info.value.row, info.value.field, info.value.value) == (4, "Country_code", "QQ")


def test_who_vaccination_snapshot(shared_data: Path) -> None:
    path = shared_data / "vaccination" / "who" / "vaccination-data.csv"
    raw = {r["ISO3"]: r for r in _raw_rows(path)}
    vax = read_who_vaccination(path).set_index("iso3")
    assert len(vax) == len(raw)
    assert vax.loc["AFG", "total_vaccinations"] == float(raw["AFG"]["TOTAL_VACCINATIONS"])
    assert vax.loc["AFG", "people_fully_vaccinated"] == float(raw["AFG"]["PERSONS_LAST_DOSE"])
    assert vax.loc["AFG", "date"] == pd.Timestamp(raw["AFG"]["DATE_UPDATED"])
    meta = read_who_vaccination_metadata(shared_data / "vaccination" / "who" / "vaccination-metadata.csv")
    assert {"iso3", "product_name", "company_name", "start_date"} <= set(meta.columns)
    assert meta["iso3"].str.fullmatch("[A-Z]{3}").all()


def test_who_vaccination_text_in_count(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "vaccination" / "who" / "vaccination-data.csv"
    bad = _copy_head(src, tmp_path / "v.csv", 10, edit={3: ("PERSONS_LAST_DOSE", "n/a")})
    with pytest.raises(InputError) as info:
        read_who_vaccination(bad)
    assert (info.value.row, info.value.field, info.value.value) == (5, "PERSONS_LAST_DOSE", "n/a")


def test_owid_vaccinations(shared_data: Path, owid_vax: pd.DataFrame, tmp_path: Path) -> None:
    path = shared_data / "vaccination" / "owid" / "vaccinations.csv"
    raw = _raw_rows(path)
    assert next(iter(raw[0])) == ""  # the leading index column
    aggregates = sum(r["iso_code"].startswith("OWID_") for r in raw)
    assert owid_vax.attrs["dropped_aggregate_rows"] == aggregates > 0
    assert len(owid_vax) == len(raw) - aggregates
    assert "Unnamed: 0" not in owid_vax.columns and "" not in owid_vax.columns
    first = next(r for r in raw if r["iso_code"] == "IND" and r["total_vaccinations"])
    row = owid_vax[(owid_vax["iso3"] == "IND") & (owid_vax["date"] == pd.Timestamp(first["date"]))]
    assert row["total_vaccinations"].item() == float(first["total_vaccinations"])
    # the owid-covid-data column set through the same reader, no index column
    covid = tmp_path / "owid-covid-data.csv"
    covid.write_text(
        "iso_code,continent,location,date,new_cases,new_deaths,new_tests,total_tests,population\n"
        "NAM,Africa,Namibia,2021-07-01,1000,20,5000,,2500000\n"
        "OWID_AFR,,Africa,2021-07-01,9,9,9,9,9\n",
        encoding="utf-8",
    )
    frame = read_owid(covid)
    assert frame["iso3"].tolist() == ["NAM"]
    assert frame[["new_cases", "new_tests", "population"]].iloc[0].tolist() == [1000.0, 5000.0, 2500000.0]
    assert np.isnan(frame["total_tests"].iloc[0])


def test_owid_text_in_count_reports_file_line(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text(
        ",location,iso_code,date,total_vaccinations\n0,World,OWID_WRL,2021-01-01,5\n"
        "1,India,IND,2021-01-01,1e3\n2,India,IND,2021-01-02,lots\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        read_owid(path)
    assert (info.value.row, info.value.field, info.value.value) == (4, "total_vaccinations", "lots")


def test_sitreps_records_and_csv(tmp_path: Path) -> None:
    frame = read_sitreps(DPRK_SITREPS)
    assert (frame["participant"] == "PRK").all()
    assert frame["people_tested"].tolist() == [r["people_tested"] for r in DPRK_SITREPS]
    assert (frame["days"] == 7).all() and (frame["cases"] == 0).all()
    assert frame["deaths"].isna().all()  # not reported, not zero
    path = tmp_path / "sitreps.csv"
    pd.DataFrame(DPRK_SITREPS).to_csv(path, index=False)
    again = read_sitreps(path)
    pd.testing.assert_frame_equal(frame.drop(columns="source"), again.drop(columns="source"))


def test_sitreps_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "participant,period_start,period_end,people_tested,samples_tested,cases,deaths\n"
        "PRK,2021-07-30,2021-08-05,693,,0,\n"
        "PRK,2021-08-06,2021-08-12,many,,0,\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        read_sitreps(path)
    assert (info.value.file, info.value.row, info.value.field, info.value.value) == (
        str(path),
        3,
        "people_tested",
        "many",
    )
    with pytest.raises(InputError, match="period_end is before"):
        read_sitreps([{"participant": "PRK", "period_start": "2021-08-05", "period_end": "2021-07-30"}])
    with pytest.raises(InputError) as info:
        read_sitreps([DPRK_SITREPS[0], {**DPRK_SITREPS[1], "cases": -1}])
    assert (info.value.row, info.value.field) == (2, "cases")


def test_public_names_do_not_drift() -> None:
    import dosewise.surveillance as pkg

    assert pkg.__all__ == sorted(pkg.__all__, key=lambda s: (not s.isupper(), s))
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None
