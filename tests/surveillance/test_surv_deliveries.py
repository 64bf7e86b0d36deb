"""Doses delivered per 100 people (issue 4), from the real UNDP vaccine-equity ``Data.csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dosewise.cli import main
from dosewise.errors import InputError
from dosewise.surveillance.indicators import compute_indicators, week_of
from dosewise.surveillance.readers import read_undp_deliveries, read_who_vaccination

SNAPSHOT = "2023-11-15"  # the commit date of the copy in shared/data (see PROVENANCE.md)
COUNTRIES = ["KEN", "NGA", "IND", "AFG", "BRA"]


@pytest.fixture(scope="module")
def undp_path(shared_data: Path) -> Path:
    return shared_data / "vaccination" / "undp" / "Data.csv"


@pytest.fixture(scope="module")
def undp_raw(undp_path: Path) -> pd.DataFrame:
    """The file read independently of dosewise: plain pandas, codes as index."""
    raw = pd.read_csv(undp_path, keep_default_na=False, na_values={"vaccinesdelivered": [""], "pop_total": [""]})
    return raw.set_index("iso3")


@pytest.fixture(scope="module")
def deliveries(undp_path: Path) -> pd.DataFrame:
    return read_undp_deliveries(undp_path, as_of=SNAPSHOT)


def test_reader_columns_and_blanks(deliveries: pd.DataFrame, undp_raw: pd.DataFrame) -> None:
    assert list(deliveries.columns) == ["iso3", "date", "doses_delivered", "donations", "population"]
    assert (deliveries["date"] == pd.Timestamp(SNAPSHOT)).all()
    assert deliveries.attrs["dropped_no_code_rows"] == 1  # Sark, listed as N/A with every value blank
    assert len(deliveries) == len(undp_raw) - 1
    by = deliveries.set_index("iso3")
    assert by.loc["KEN", "doses_delivered"] == undp_raw.loc["KEN", "vaccinesdelivered"]
    # Anguilla has a population but no delivery figure: NaN, not 0
    assert np.isnan(by.loc["AIA", "doses_delivered"]) and by.loc["AIA", "population"] > 0
    blank = undp_raw["vaccinesdelivered"].isna().drop("N/A")
    assert by["doses_delivered"].isna().reindex(blank.index).equals(blank)
    assert not (by["doses_delivered"] == 0).any()


def test_delivered_per100_matches_direct(
    who_weekly: pd.DataFrame, deliveries: pd.DataFrame, undp_raw: pd.DataFrame
) -> None:
    pop = undp_raw["pop_total"].drop("N/A").astype(float)
    ind = compute_indicators(who_weekly, pop, deliveries=deliveries, participants=COUNTRIES)
    first = week_of(pd.Series([pd.Timestamp(SNAPSHOT)])).iloc[0]
    assert first == pd.Timestamp("2023-11-19")
    for iso3 in COUNTRIES:
        want = undp_raw.loc[iso3, "vaccinesdelivered"] / undp_raw.loc[iso3, "pop_total"] * 100
        one = ind[ind["iso3"] == iso3].set_index("week")["delivered_per100"]
        after = one[one.index >= first]
        assert len(after) > 50
        np.testing.assert_allclose(after.to_numpy(), want, rtol=1e-12)  # carried forward to the end
        assert one[one.index < first].isna().all()  # no look-ahead before the snapshot
    ken = ind[(ind["iso3"] == "KEN") & (ind["week"] == first)]["delivered_per100"].iloc[0]
    assert ken == pytest.approx(34_440_805 / 53_771_300 * 100, rel=1e-6)  # 64.05, as UNDP's deliveredpopulation


def test_utilisation_is_administered_over_delivered(
    shared_data: Path,
    who_weekly: pd.DataFrame,
    deliveries: pd.DataFrame,
    undp_raw: pd.DataFrame,
    population: pd.Series,
) -> None:
    vax = read_who_vaccination(shared_data / "vaccination" / "who" / "vaccination-data.csv")
    ind = compute_indicators(who_weekly, population, vaccination=vax, deliveries=deliveries, participants=COUNTRIES)
    last = ind["week"].max()
    for iso3 in COUNTRIES:
        v = vax[vax["iso3"] == iso3].iloc[0]
        both_from = max(week_of(pd.Series([v["date"], pd.Timestamp(SNAPSHOT)])))
        one = ind[ind["iso3"] == iso3].set_index("week")
        want = v["total_vaccinations"] / undp_raw.loc[iso3, "vaccinesdelivered"]
        assert one.loc[last, "utilisation"] == pytest.approx(want, rel=1e-12)
        assert one.loc[one.index < both_from, "utilisation"].isna().all()
        assert one.loc[one.index >= both_from, "utilisation"].notna().all()
    # without administration data there is no utilisation column at all
    ind2 = compute_indicators(who_weekly, population, deliveries=deliveries, participants=COUNTRIES)
    assert "utilisation" not in ind2.columns and "delivered_per100" in ind2.columns


def _copy(undp_path: Path, tmp_path: Path, edit: dict[str, object] | None = None, drop: str | None = None) -> Path:
    raw = pd.read_csv(undp_path, dtype=str, keep_default_na=False)
    if drop:
        raw = raw.drop(columns=drop)
    for key, value in (edit or {}).items():
        iso3, column = key.split(":")
        raw.loc[raw["iso3"] == iso3, column] = value
    path = tmp_path / "Data.csv"
    raw.to_csv(path, index=False)
    return path


def test_missing_column_is_named(undp_path: Path, tmp_path: Path) -> None:
    path = _copy(undp_path, tmp_path, drop="vaccinesdelivered")
    with pytest.raises(InputError, match=r"missing required column.*vaccinesdelivered") as info:
        read_undp_deliveries(path, as_of=SNAPSHOT)
    assert info.value.file == str(path) and info.value.field == "vaccinesdelivered"


def test_text_in_vaccinesdelivered_names_row_and_value(undp_path: Path, tmp_path: Path) -> None:
    path = _copy(undp_path, tmp_path, edit={"KEN:vaccinesdelivered": "34.4 million"})
    with pytest.raises(InputError, match="not a number") as info:
        read_undp_deliveries(path, as_of=SNAPSHOT)
    err = info.value
    line = pd.read_csv(path, dtype=str, keep_default_na=False)["iso3"].tolist().index("KEN") + 2
    assert (err.file, err.row, err.field, err.value) == (str(path), line, "vaccinesdelivered", "34.4 million")
    assert "34.4 million" in str(err) and "vaccinesdelivered" in str(err)


def test_bad_code_and_negative_and_date(undp_path: Path, tmp_path: Path) -> None:
    path = _copy(undp_path, tmp_path, edit={"NGA:total_donations": "-5"})
    with pytest.raises(InputError, match="negative") as info:
        read_undp_deliveries(path, as_of=SNAPSHOT)
    assert info.value.field == "total_donations" and info.value.value == "-5"
    path = _copy(undp_path, tmp_path, edit={"IND:iso3": "India"})
    with pytest.raises(InputError, match="alpha-3") as info:
        read_undp_deliveries(path, as_of=SNAPSHOT)
    assert info.value.value == "India"
    with pytest.raises(InputError, match="not a date"):
        read_undp_deliveries(undp_path, as_of="mid-November")


def test_need_cli_writes_delivered_per100(
    shared_data: Path, undp_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_csv = tmp_path / "need.csv"
    base = [
        "need",
        "--group",
        "AMC92",
        "--as-of",
        "2023-12-31",
        "--who",
        str(shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"),
        "--deliveries",
        str(undp_path),
    ]
    with pytest.raises(SystemExit) as info:
        main(base)
    assert info.value.code == 2 and "--deliveries-date" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([*base, "--deliveries-date", SNAPSHOT, "--top", "3", "--out", str(out_csv)])
        raise SystemExit(0)
    assert info.value.code in (0, None), capsys.readouterr().err
    frame = pd.read_csv(out_csv, index_col=0, keep_default_na=False, na_values={"delivered_per100": [""]})
    raw = pd.read_csv(undp_path, keep_default_na=False, na_values={"vaccinesdelivered": [""]}).set_index("iso3")
    from dosewise.world import participants_from_reference

    pop = participants_from_reference(["KEN"])["population"].iloc[0]
    assert frame.loc["KEN", "delivered_per100"] == pytest.approx(raw.loc["KEN", "vaccinesdelivered"] / pop * 100)
