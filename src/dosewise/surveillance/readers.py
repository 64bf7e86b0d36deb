"""Readers for the real surveillance and vaccination formats, returning tidy long frames.

Every reader checks the required columns and the type of every value it converts, and
raises :class:`~dosewise.errors.InputError` naming the file, the row (1-based line number
in the file, the header being line 1) and the column of the first bad value. Blank count
cells mean *not reported* and become NaN, never 0. Countries are joined on codes, never on
names (WHO's weekly file has U+FFFD in place of accented letters: ``C�te d'Ivoire``).

Formats
-------
- WHO weekly cases and deaths, ``WHO-COVID-19-global-data.csv`` (``Date_reported``,
  ``Country_code`` ISO 3166-1 alpha-2, ``Country``, ``WHO_region``, ``New_cases``,
  ``Cumulative_cases``, ``New_deaths``, ``Cumulative_deaths``): :func:`read_who_weekly`.
- WHO vaccination snapshot ``vaccination-data.csv`` and product list
  ``vaccination-metadata.csv``: :func:`read_who_vaccination`, :func:`read_who_vaccination_metadata`.
- OWID ``vaccinations.csv`` and the ``owid-covid-data.csv`` / ``compact.csv`` column sets:
  :func:`read_owid` (one reader; the recognised columns are :data:`OWID_COLUMNS`).
- UNDP–WHO–Oxford Global Dashboard for Vaccine Equity ``Data.csv`` (one snapshot per country:
  ``iso3``, ``vaccinesdelivered``, ``total_donations``, ``pop_total``; no date column):
  :func:`read_undp_deliveries`.
- Situation-report records (participant, period, people and samples tested, cases, deaths),
  from a CSV file or a list of mappings: :func:`read_sitreps`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pycountry
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dosewise.errors import InputError

__all__ = [
    "OWID_COLUMNS",
    "SitrepRecord",
    "iso2_to_iso3",
    "read_owid",
    "read_sitreps",
    "read_undp_deliveries",
    "read_who_vaccination",
    "read_who_vaccination_metadata",
    "read_who_weekly",
]

# ISO2 codes in use that ISO 3166-1 does not assign (user-assigned range).
_ISO2_EXTRA = {"XK": "XKX"}  # Kosovo, as WHO and the World Bank code it
_CONVEYANCE_PREFIX = "XX"  # WHO: international conveyances (cruise ships etc.)

WHO_WEEKLY_COLUMNS = (
    "Date_reported",
    "Country_code",
    "Country",
    "WHO_region",
    "New_cases",
    "Cumulative_cases",
    "New_deaths",
    "Cumulative_deaths",
)

# OWID columns recognised by :func:`read_owid` (numeric, per country and day). The first set
# is ``vaccinations.csv``; the rest are the ``owid-covid-data.csv`` columns dosewise uses
# (its ``compact.csv`` successor has the same names, with ``country`` and ``code``).
OWID_COLUMNS: tuple[str, ...] = (
    "total_vaccinations",
    "people_vaccinated",
    "people_fully_vaccinated",
    "total_boosters",
    "daily_vaccinations_raw",
    "daily_vaccinations",
    "total_vaccinations_per_hundred",
    "people_vaccinated_per_hundred",
    "people_fully_vaccinated_per_hundred",
    "total_boosters_per_hundred",
    "daily_vaccinations_per_million",
    "new_cases",
    "new_deaths",
    "total_cases",
    "total_deaths",
    "new_tests",
    "total_tests",
    "positive_rate",
    "population",
)


def _name(path: Path | str) -> str:
    return str(path)


def _read_text_csv(path: Path | str) -> pd.DataFrame:
    """Every cell as text, blanks as ``""`` (so Namibia's ``NA`` survives)."""
    return _read_csv(path, dtype=str, keep_default_na=False, na_filter=False)


def _read_csv(path: Path | str, **kwargs: Any) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = pd.read_csv(path, **kwargs)
        return frame
    except FileNotFoundError as exc:
        raise InputError("file not found", file=_name(path)) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV file: {exc}", file=_name(path)) from exc


def _require(df: pd.DataFrame, columns: Iterable[str], file: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"missing required column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}",
            file=file,
            field=missing[0],
        )


def _first_bad(mask: np.ndarray[Any, Any], df: pd.DataFrame, column: str) -> tuple[int, Any]:
    pos = int(np.flatnonzero(mask)[0])
    return pos + 2, df[column].iloc[pos]  # +1 for the header, +1 for 1-based lines


def _relocated(exc: InputError, lines: np.ndarray[Any, Any], file: str) -> InputError:
    """Map a row number counted in a filtered frame back to the line in the file."""
    if exc.row is None:
        return exc
    return InputError(exc.message, file=file, row=int(lines[exc.row - 2]), field=exc.field, value=exc.value)


def _numbers(df: pd.DataFrame, column: str, file: str, *, nonneg: bool = False) -> np.ndarray[Any, Any]:
    """Column as float64; blanks → NaN; any other non-number raises naming row and value."""
    if pd.api.types.is_numeric_dtype(df[column].dtype):
        values = df[column].to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = _parse_numbers(df, column, file)
    if nonneg:
        neg = values < 0
        if neg.any():
            row, value = _first_bad(neg, df, column)
            raise InputError("must not be negative", file=file, row=row, field=column, value=value)
    return values


def _parse_numbers(df: pd.DataFrame, column: str, file: str) -> np.ndarray[Any, Any]:
    text = df[column].astype(object).where(df[column].notna(), "").astype(str).str.strip()
    values = pd.to_numeric(text.where(text != ""), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(values) & (text != "").to_numpy()
    if bad.any():
        row, value = _first_bad(bad, df, column)
        raise InputError("not a number", file=file, row=row, field=column, value=value)
    return values


def _dates(df: pd.DataFrame, column: str, file: str, *, allow_blank: bool = False) -> pd.Series:
    text = df[column].astype(str).str.strip()
    parsed = pd.to_datetime(text.where(text != ""), format="%Y-%m-%d", errors="coerce")
    bad = parsed.isna().to_numpy() & ((text != "").to_numpy() | (not allow_blank))
    if bad.any():
        row, value = _first_bad(bad, df, column)
        raise InputError("not a date (YYYY-MM-DD)", file=file, row=row, field=column, value=value)
    return parsed


def iso2_to_iso3(codes: Sequence[str] | pd.Series) -> pd.Series:
    """ISO 3166-1 alpha-2 → alpha-3 (``XK`` → ``XKX``); unknown codes map to NaN."""
    uniq = pd.unique(pd.Series(codes, dtype=object))
    table: dict[str, str | None] = {}
    for code in uniq:
        rec = pycountry.countries.get(alpha_2=code) if isinstance(code, str) and len(code) == 2 else None
        table[code] = rec.alpha_3 if rec is not None else _ISO2_EXTRA.get(code)
    return pd.Series(codes, dtype=object).map(table)


def read_who_weekly(path: Path | str) -> pd.DataFrame:
    """Read WHO's weekly cases-and-deaths file.

    Returns one row per participant and week: ``iso3``, ``week`` (the Sunday reported,
    ``datetime64``), ``who_region``, ``new_cases``, ``new_deaths``, ``cumulative_cases``,
    ``cumulative_deaths`` (float; NaN = not reported). International conveyances (codes
    ``XX*``) are dropped and counted in ``frame.attrs["dropped_conveyance_rows"]``.
    """
    file = _name(path)
    counts = ("New_cases", "Cumulative_cases", "New_deaths", "Cumulative_deaths")
    # Fast path: text columns as text (keeping "NA"), count columns parsed by the C reader
    # with only "" as missing; a count column holding text comes back as text and is
    # checked cell by cell by _numbers, which names the first bad row.
    raw = _read_csv(
        path,
        dtype=dict.fromkeys(("Date_reported", "Country_code", "Country", "WHO_region"), str),
        keep_default_na=False,
        na_values={c: [""] for c in counts},
    )
    _require(raw, WHO_WEEKLY_COLUMNS, file)
    for c in ("Date_reported", "Country_code", "WHO_region"):
        raw[c] = raw[c].fillna("")
    code = raw["Country_code"].str.strip()
    conveyance = code.str.startswith(_CONVEYANCE_PREFIX).to_numpy()
    raw = raw.loc[~conveyance].reset_index(drop=True)
    code = code[~conveyance].reset_index(drop=True)
    iso3 = iso2_to_iso3(code)
    unknown = iso3.isna().to_numpy()
    if unknown.any():
        pos = int(np.flatnonzero(unknown)[0])
        row = int(np.flatnonzero(~conveyance)[pos]) + 2
        raise InputError(
            "unknown ISO 3166-1 alpha-2 code", file=file, row=row, field="Country_code", value=code.iloc[pos]
        )
    lines = np.flatnonzero(~conveyance) + 2
    try:
        out = pd.DataFrame(
            {
                "iso3": iso3.astype(str).to_numpy(),
                "week": _dates(raw, "Date_reported", file).to_numpy(),
                "who_region": raw["WHO_region"].str.strip().replace("", None).to_numpy(),
            }
        )
        for src, dst in (
            ("New_cases", "new_cases"),
            ("New_deaths", "new_deaths"),
            ("Cumulative_cases", "cumulative_cases"),
            ("Cumulative_deaths", "cumulative_deaths"),
        ):
            out[dst] = _numbers(raw, src, file)
    except InputError as exc:
        raise _relocated(exc, lines, file) from None
    dup = out.duplicated(["iso3", "week"]).to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        raise InputError(
            "duplicate row for this country and week",
            file=file,
            row=int(lines[pos]),
            field="Country_code",
            value=code.iloc[pos],
        )
    out.attrs["dropped_conveyance_rows"] = int(conveyance.sum())
    out.attrs["source"] = file
    return out


_WHO_VAX_NUMERIC = {
    "TOTAL_VACCINATIONS": "total_vaccinations",
    "PERSONS_VACCINATED_1PLUS_DOSE": "people_vaccinated",
    "PERSONS_LAST_DOSE": "people_fully_vaccinated",
    "PERSONS_BOOSTER_ADD_DOSE": "total_boosters",
    "TOTAL_VACCINATIONS_PER100": "total_vaccinations_per_hundred",
    "PERSONS_VACCINATED_1PLUS_DOSE_PER100": "people_vaccinated_per_hundred",
    "PERSONS_LAST_DOSE_PER100": "people_fully_vaccinated_per_hundred",
    "PERSONS_BOOSTER_ADD_DOSE_PER100": "total_boosters_per_hundred",
    "NUMBER_VACCINES_TYPES_USED": "number_vaccine_types_used",
}


def _iso3_column(raw: pd.DataFrame, column: str, file: str) -> np.ndarray[Any, Any]:
    code = raw[column].str.strip().str.upper()
    bad = ~code.str.fullmatch(r"[A-Z]{3}").to_numpy()
    if bad.any():
        row, value = _first_bad(bad, raw, column)
        raise InputError("not an ISO 3166-1 alpha-3 code", file=file, row=row, field=column, value=value)
    return code.to_numpy(dtype=object)


def read_who_vaccination(path: Path | str) -> pd.DataFrame:
    """Read WHO's vaccination snapshot (``vaccination-data.csv``), one row per country.

    Columns are renamed to the OWID names so both sources feed the same indicators:
    ``TOTAL_VACCINATIONS`` → ``total_vaccinations``, ``PERSONS_VACCINATED_1PLUS_DOSE`` →
    ``people_vaccinated``, ``PERSONS_LAST_DOSE`` (completed primary series) →
    ``people_fully_vaccinated``, ``PERSONS_BOOSTER_ADD_DOSE`` → ``total_boosters``, and the
    ``*_PER100`` columns likewise. ``date`` is ``DATE_UPDATED``.
    """
    file = _name(path)
    raw = _read_text_csv(path)
    _require(
        raw,
        ["ISO3", "DATE_UPDATED", "TOTAL_VACCINATIONS", "PERSONS_VACCINATED_1PLUS_DOSE", "PERSONS_LAST_DOSE"],
        file,
    )
    out = pd.DataFrame(
        {
            "iso3": _iso3_column(raw, "ISO3", file),
            "date": _dates(raw, "DATE_UPDATED", file, allow_blank=True).to_numpy(),
        }
    )
    for src, dst in _WHO_VAX_NUMERIC.items():
        if src in raw.columns:
            out[dst] = _numbers(raw, src, file, nonneg=True)
    for src, dst in (
        ("WHO_REGION", "who_region"),
        ("DATA_SOURCE", "data_source"),
        ("VACCINES_USED", "vaccines_used"),
    ):
        if src in raw.columns:
            out[dst] = raw[src].replace("", None).to_numpy()
    if "FIRST_VACCINE_DATE" in raw.columns:
        out["first_vaccine_date"] = _dates(raw, "FIRST_VACCINE_DATE", file, allow_blank=True).to_numpy()
    out.attrs["source"] = file
    return out


def read_who_vaccination_metadata(path: Path | str) -> pd.DataFrame:
    """Read WHO's ``vaccination-metadata.csv``: which product each country uses, and since when."""
    file = _name(path)
    raw = _read_text_csv(path)
    _require(raw, ["ISO3", "VACCINE_NAME", "PRODUCT_NAME", "COMPANY_NAME"], file)
    out = pd.DataFrame({"iso3": _iso3_column(raw, "ISO3", file)})
    for src in ("VACCINE_NAME", "PRODUCT_NAME", "COMPANY_NAME", "COMMENT", "DATA_SOURCE"):
        if src in raw.columns:
            out[src.lower()] = raw[src].str.strip().replace("", None).to_numpy()
    for src in ("AUTHORIZATION_DATE", "START_DATE", "END_DATE"):
        if src in raw.columns:
            out[src.lower()] = _dates(raw, src, file, allow_blank=True).to_numpy()
    out.attrs["source"] = file
    return out


def read_owid(path: Path | str, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read OWID's ``vaccinations.csv`` or ``owid-covid-data.csv`` / ``compact.csv``.

    Keeps ``iso3`` (from ``iso_code`` or ``code``), ``date`` and the recognised numeric
    columns present in the file (:data:`OWID_COLUMNS`, or ``columns``). A leading unnamed
    index column is dropped. OWID aggregates (``OWID_*`` codes such as ``OWID_WRL``) are
    dropped and counted in ``frame.attrs["dropped_aggregate_rows"]``.
    """
    file = _name(path)
    raw = _read_text_csv(path)
    first = str(raw.columns[0]) if len(raw.columns) else ""
    if first == "" or first.startswith("Unnamed"):
        raw = raw.drop(columns=raw.columns[0])
    code_col = "iso_code" if "iso_code" in raw.columns else "code" if "code" in raw.columns else "iso_code"
    _require(raw, [code_col, "date"], file)
    wanted = [c for c in (columns if columns is not None else OWID_COLUMNS) if c in raw.columns]
    if columns is not None:
        _require(raw, columns, file)
    code = raw[code_col].str.strip()
    keep = ~(code.str.startswith("OWID_") | (code == "")).to_numpy()
    lines = np.flatnonzero(keep) + 2
    sub = raw.loc[keep].reset_index(drop=True)
    try:
        out = pd.DataFrame({"iso3": _iso3_column(sub, code_col, file), "date": _dates(sub, "date", file).to_numpy()})
        for col in wanted:
            out[col] = _numbers(sub, col, file)
    except InputError as exc:
        raise _relocated(exc, lines, file) from None
    out.attrs["dropped_aggregate_rows"] = int((~keep).sum())
    out.attrs["source"] = file
    return out


UNDP_NO_CODE = ("", "N/A")
"""ISO3 cells that mean "no code" in UNDP's ``Data.csv`` (Sark is listed as ``N/A`` with every
value blank); such rows are dropped and counted, any other malformed code is an error."""


def read_undp_deliveries(path: Path | str, *, as_of: dt.date | str | pd.Timestamp) -> pd.DataFrame:
    """Doses delivered and donated per country, from the UNDP–WHO–Oxford Global Dashboard for
    Vaccine Equity ``Data.csv`` (UNDP-Data/Vaccine-Equity-Dashboard-Data).

    The file is one cumulative snapshot per country and carries **no date or update column**
    (its only date, ``first_vaccine_date``, is the start of vaccination), so the snapshot date
    is the required argument ``as_of``: the date the file was published. For the copy in
    ``shared/data/vaccination/undp`` that is 2023-11-15, the date of the repository commit it
    was taken from (the dashboard was updated every Wednesday; 2023-11-15 is one).

    Returns one row per country: ``iso3``, ``date`` (= ``as_of``, ``datetime64``),
    ``doses_delivered`` (``vaccinesdelivered``: doses delivered to the country, UNICEF
    COVID-19 Market Dashboard), ``donations`` (``total_donations``: doses received as bilateral
    or multilateral donations, UNICEF) and ``population`` (``pop_total``), all float with NaN
    where the file is blank, never 0. Rows without a code (``""`` or ``N/A``) are dropped and
    counted in ``frame.attrs["dropped_no_code_rows"]``.
    """
    file = _name(path)
    try:
        when = pd.Timestamp(as_of).normalize()
    except (ValueError, TypeError) as exc:
        raise InputError("not a date (YYYY-MM-DD)", file=file, field="as_of", value=as_of) from exc
    if pd.isna(when):
        raise InputError("a snapshot date is required", file=file, field="as_of", value=as_of)
    raw = _read_text_csv(path)
    _require(raw, ["iso3", "vaccinesdelivered", "total_donations", "pop_total"], file)
    keep = ~raw["iso3"].str.strip().str.upper().isin(UNDP_NO_CODE).to_numpy()
    lines = np.flatnonzero(keep) + 2
    sub = raw.loc[keep].reset_index(drop=True)
    try:
        out = pd.DataFrame({"iso3": _iso3_column(sub, "iso3", file)})
        out["date"] = np.full(len(sub), when.to_datetime64())
        out["doses_delivered"] = _numbers(sub, "vaccinesdelivered", file, nonneg=True)
        out["donations"] = _numbers(sub, "total_donations", file, nonneg=True)
        out["population"] = _numbers(sub, "pop_total", file, nonneg=True)
    except InputError as exc:
        raise _relocated(exc, lines, file) from None
    dup = out["iso3"].duplicated().to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        raise InputError(
            "duplicate row for this country", file=file, row=int(lines[pos]), field="iso3", value=out["iso3"].iloc[pos]
        )
    out.attrs["dropped_no_code_rows"] = int((~keep).sum())
    out.attrs["source"] = file
    return out


class SitrepRecord(BaseModel):
    """One situation-report figure for one participant over one period (both ends inclusive).

    ``people_tested`` and ``samples_tested`` are for the period, not cumulative unless the
    period starts at the start of reporting. ``cases`` are laboratory-confirmed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    participant: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 3166-1 alpha-3")
    period_start: dt.date
    period_end: dt.date
    people_tested: int | None = Field(default=None, ge=0)
    samples_tested: int | None = Field(default=None, ge=0)
    cases: int | None = Field(default=None, ge=0)
    deaths: int | None = Field(default=None, ge=0)
    source: str | None = None

    @field_validator("participant", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("people_tested", "samples_tested", "cases", "deaths", "source", mode="before")
    @classmethod
    def _blank(cls, v: object) -> object:
        return None if isinstance(v, str) and v.strip() == "" else v

    @model_validator(mode="after")
    def _period(self) -> SitrepRecord:
        if self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        return self


SITREP_COLUMNS = (
    "participant",
    "period_start",
    "period_end",
    "people_tested",
    "samples_tested",
    "cases",
    "deaths",
)


def read_sitreps(source: Path | str | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Situation-report records from a CSV file (columns :data:`SITREP_COLUMNS`, optional
    ``source``) or from a list of mappings, validated one by one.

    Returns ``participant``, ``period_start``, ``period_end`` (``datetime64``),
    ``people_tested``, ``samples_tested``, ``cases``, ``deaths`` (float, NaN = not given),
    ``days`` (period length, inclusive) and ``source``.
    """
    if isinstance(source, (str, Path)):
        name = _name(source)
        file: str | None = name
        raw = _read_text_csv(source)
        _require(raw, ["participant", "period_start", "period_end"], name)
        rows: list[Mapping[str, Any]] = [{str(k): v for k, v in r.items()} for r in raw.to_dict(orient="records")]
        first_line = 2
    else:
        file = None
        rows = list(source)
        first_line = 1
    records: list[SitrepRecord] = []
    for i, row in enumerate(rows):
        try:
            records.append(SitrepRecord.model_validate(dict(row)))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or None
            value = row.get(field) if field else None
            raise InputError(err["msg"], file=file, row=i + first_line, field=field, value=value) from None
    frame = pd.DataFrame(
        [r.model_dump() for r in records],
        columns=[*SITREP_COLUMNS, "source"],
    )
    for col in ("period_start", "period_end"):
        frame[col] = pd.to_datetime(frame[col])
    for col in ("people_tested", "samples_tested", "cases", "deaths"):
        frame[col] = frame[col].astype("float64")
    frame["days"] = (frame["period_end"] - frame["period_start"]).dt.days + 1
    frame.attrs["source"] = file or "<records>"
    return frame
