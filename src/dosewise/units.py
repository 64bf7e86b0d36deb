"""Sub-national participants (units) as columns, from a scenario's YAML list or a CSV/Parquet file.

A scenario can name its units inline (``participants.units``: a list of mappings) or in a
table file (``participants.units_file``: ``.csv`` or ``.parquet``, a path relative to the
scenario file's folder), optionally pinned by ``participants.units_sha256``. Either way the
units become one :class:`UnitTable`: a NumPy array per column, validated column by column
(no Python object per unit). Every problem names where it is: ``participants.units[7].population``
for inline units; the file, row, column and value for a table file.

Columns (all but ``id`` and ``population`` optional):

==========================  =========  ============================================================
column                      kind       rule
==========================  =========  ============================================================
``id``                      text       required, non-empty, unique among participants
``name``                    text
``parent``                  text       ISO 3166-1 alpha-3 code of the country the unit lies in
``population``              number     required, > 0
``population_source``       text
``age_structure_like``      text       ISO3 code whose WPP 2024 age structure the unit takes
``coverage_cap``            number     in (0, 1]
``capacity_per_week``       number     > 0
``min_shelf_life_days``     integer    >= 0
``lead_time_days``          integer    >= 0
``people_covered``          number     >= 0
``accepts`` … ``approved``  list       product ids or aliases; in a file: separated by ``;``
``cold_chain``              list       storage classes ``ultra-cold``, ``frozen``, ``2-8C``
==========================  =========  ============================================================

In a CSV file an empty cell means "not given" (the scenario's ``defaults`` apply); row numbers
in messages count the header as row 1, as a spreadsheet does. In a Parquet file rows are
counted from 1.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from dosewise.errors import InputError

STORAGE_CLASSES: tuple[str, ...] = ("ultra-cold", "frozen", "2-8C")

TEXT = ("id", "name", "parent", "population_source", "age_structure_like")
MAX_PEOPLE = 1e10
"""No participant has more people than this (as :data:`dosewise.scenario.MAX_PEOPLE`)."""
MAX_DAYS = 3650
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""As :data:`dosewise.scenario.ID_PATTERN`: letters, digits, ``.``, ``_``, ``-``; at most 64."""
IDENTIFIERS = ("id", "parent", "age_structure_like")
MAX_NAME = 200
NUMBER: dict[str, tuple[str, float, float | None]] = {
    # column: (rule as shown to a user, lower bound, upper bound); "gt" bounds are exclusive
    "population": ("gt", 0.0, MAX_PEOPLE),
    "coverage_cap": ("gt", 0.0, 1.0),
    "capacity_per_week": ("gt", 0.0, MAX_PEOPLE),
    "people_covered": ("ge", 0.0, MAX_PEOPLE),
}
INTEGER = ("min_shelf_life_days", "lead_time_days")
LISTS = ("accepts", "declines", "interested_in", "approved", "indemnified", "cold_chain")
COLUMNS: tuple[str, ...] = (*TEXT, *NUMBER, *INTEGER, *LISTS)
REQUIRED = ("id", "population")
SEPARATOR = ";"
MAX_SHOWN = 5
"""Problems listed per column before the rest are counted."""

Problem = tuple[int, str, str, Any]
"""(row index from 0, column, message, value)."""

ObjArray = npt.NDArray[np.object_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class UnitTable:
    """Units as columns, all of length ``len(self)``; a column nobody gave is absent.

    Text columns are object arrays (``None`` = not given), numbers float64 (``NaN`` = not
    given), lists object arrays of tuples (``None`` = not given). ``source`` and ``sha256``
    name the table file the units came from, if any.
    """

    columns: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)
    source: str | None = None
    sha256: str | None = None

    def __len__(self) -> int:
        ids = self.columns.get("id")
        return 0 if ids is None else len(ids)

    def __bool__(self) -> bool:
        return len(self) > 0

    @property
    def ids(self) -> ObjArray:
        return self.columns.get("id", np.empty(0, dtype=object))

    def get(self, name: str) -> npt.NDArray[Any] | None:
        return self.columns.get(name)

    def records(self) -> list[dict[str, Any]]:
        """One mapping per unit with the values it was given (the inline YAML form)."""
        names = list(self.columns)
        columns: list[list[Any]] = []
        for name in names:
            col = self.columns[name]
            if name in NUMBER or name in INTEGER:
                values = [None if math.isnan(v) else (int(v) if name in INTEGER else v) for v in col.tolist()]
            elif name in LISTS:
                values = [None if v is None else list(v) for v in col.tolist()]
            else:
                values = col.tolist()
            columns.append(values)
        return [{k: v for k, v in zip(names, row, strict=True) if v is not None} for row in zip(*columns, strict=True)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """One row per unit as a mapping of its set fields, for the few callers that want records
        (small tables only; the world is built from the columns)."""
        names = list(self.columns)
        for i in range(len(self)):
            row: dict[str, Any] = {}
            for name in names:
                v = self.columns[name][i]
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                row[name] = int(v) if name in INTEGER else v
            yield row

    @staticmethod
    def concat(tables: Sequence[UnitTable]) -> UnitTable:
        tables = [t for t in tables if len(t)]
        if len(tables) == 1:
            return tables[0]
        if not tables:
            return UnitTable()
        names = [c for c in COLUMNS if any(c in t.columns for t in tables)]
        cols = {c: np.concatenate([t.columns[c] if c in t.columns else _missing(c, len(t)) for t in tables])
                for c in names}
        files = [t for t in tables if t.source]
        return UnitTable(cols, source=files[0].source if files else None, sha256=files[0].sha256 if files else None)


def _missing(column: str, n: int) -> npt.NDArray[Any]:
    if column in NUMBER or column in INTEGER:
        return np.full(n, np.nan)
    return np.full(n, None, dtype=object)


# --- column checks -------------------------------------------------------------------------------
_BAD = object()


def _as_number(v: Any) -> Any:
    if v is None:
        return math.nan
    if isinstance(v, bool):
        return _BAD
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return _BAD
    return _BAD


_to_number = np.frompyfunc(_as_number, 1, 1)
_is_text_or_none = np.frompyfunc(lambda v: v is None or isinstance(v, str), 1, 1)


def _first(mask: npt.NDArray[np.bool_], column: str, message: str, values: npt.NDArray[Any]) -> list[Problem]:
    rows = np.flatnonzero(mask)
    out: list[Problem] = [(int(i), column, message, _plain(values[i])) for i in rows[:MAX_SHOWN]]
    if len(rows) > MAX_SHOWN:
        out.append((int(rows[MAX_SHOWN]), column, f"{message} ({len(rows) - MAX_SHOWN} more rows like this)",
                    _plain(values[rows[MAX_SHOWN]])))
    return out


def _plain(v: Any) -> Any:
    """A value as shown in a message: Python scalars, and None for an empty cell."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _text(col: npt.NDArray[Any], name: str, *, checked: bool, arrow: Any = None) -> tuple[ObjArray, list[Problem]]:
    """``arrow``: the same column as the table file's Arrow strings, checked as they are instead of
    converted back from ``col`` (Arrow's string kernels). Without it (inline units from YAML) each
    distinct text is checked once in Python: no pandas to import for a scenario without a table file."""
    col = np.asarray(col, dtype=object)
    problems: list[Problem] = []
    text = col
    if not checked:  # a table file's text columns hold str or None by construction; YAML's may not
        if set(map(type, col.tolist())) <= {str, type(None)}:  # the usual case, without a call per row
            ok = np.ones(len(col), dtype=bool)
        else:
            ok = _is_text_or_none(col).astype(bool) if len(col) else np.zeros(0, dtype=bool)
        problems = _first(~ok, name, "Input should be a valid string", col)
        if not ok.all():
            text = col.copy()
            text[~ok] = None
    if not len(col):
        return col, problems
    if arrow is not None:  # the file's own Arrow column: the same strings, no conversion
        import pandas as pd

        series = pd.Series(pd.arrays.ArrowStringArray(arrow))
        if name in IDENTIFIERS:
            bad = (~series.str.fullmatch(ID_PATTERN)).fillna(False).to_numpy(dtype=bool)
        else:
            bad = (series.str.len() > MAX_NAME).fillna(False).to_numpy(dtype=bool)
    else:
        bad = _bad_texts(text.tolist(), identifier=name in IDENTIFIERS)
    if name in IDENTIFIERS:
        problems += _first(bad, name, "Input should be an id of letters, digits, '.', '_' or '-' "
                           "(at most 64, starting with a letter or digit)", col)
    else:
        problems += _first(bad, name, f"Input should have at most {MAX_NAME} characters", col)
    return col, problems


_ID = re.compile(ID_PATTERN)
_IDS = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63}\n)*")
"""Ids one per line, each as :data:`ID_PATTERN` (which allows no line break in an id)."""


def _bad_texts(values: list[str | None], *, identifier: bool) -> npt.NDArray[np.bool_]:
    """Which texts break the column's rule (an id's pattern, or the length of other text); ``None``
    never does. Each distinct text is checked once (a unit's parent is one of a few countries)."""
    distinct = cast(set[str], set(values))
    distinct.discard(cast(str, None))
    if not distinct:
        wrong: set[Any] = set()
    elif identifier:
        joined = "\n".join(distinct) + "\n"
        if joined.count("\n") == len(distinct) and _IDS.fullmatch(joined):  # all good, in one C call
            wrong = set()
        else:
            match = _ID.fullmatch
            wrong = {v for v in distinct if match(v) is None}
    elif max(map(len, distinct)) <= MAX_NAME:
        wrong = set()
    else:
        wrong = {v for v in distinct if len(v) > MAX_NAME}
    if not wrong:
        return np.zeros(len(values), dtype=bool)
    return np.fromiter((v in wrong for v in values), dtype=bool, count=len(values))


def _number(col: npt.NDArray[Any], name: str, *, integer: bool) -> tuple[FloatArray, list[Problem]]:
    if col.dtype.kind in "iuf":
        vals = col.astype(np.float64)
        bad = np.zeros(len(col), dtype=bool)
    elif set(map(type, col.tolist())) <= {float, int}:  # numbers from YAML: no bools, text or gaps
        vals = np.asarray(col.tolist(), dtype=np.float64)
        bad = np.zeros(len(col), dtype=bool)
    else:
        conv = _to_number(np.asarray(col, dtype=object)) if len(col) else np.zeros(0, dtype=object)
        bad = np.fromiter((v is _BAD for v in conv), dtype=bool, count=len(conv))
        vals = np.where(bad, np.nan, conv).astype(np.float64)
    kind = "an integer" if integer else "a number"
    problems = _first(bad, name, f"Input should be {kind}", col)
    given = ~np.isnan(vals)
    problems += _first(given & ~np.isfinite(vals), name, "Input should be a finite number", col)
    if integer:
        problems += _first(given & np.isfinite(vals) & (vals != np.floor(vals)), name,
                           "Input should be a valid integer, got a number with a fractional part", col)
    rule = NUMBER.get(name, ("ge", 0.0, float(MAX_DAYS)))
    op, lo, hi = rule
    low = (vals <= lo) if op == "gt" else (vals < lo)
    with np.errstate(invalid="ignore"):
        rule_text = "greater than" if op == "gt" else "greater than or equal to"
        problems += _first(given & low, name, f"Input should be {rule_text} {lo:g}", col)
        if hi is not None:
            problems += _first(given & (vals > hi), name, f"Input should be less than or equal to {hi:g}", col)
    return vals, problems


def _split(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, str):
        parts = tuple(p.strip() for p in v.split(SEPARATOR))
        return tuple(p for p in parts if p) if v.strip() else None
    if isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
        return tuple(v)
    return _BAD


_to_list = np.frompyfunc(_split, 1, 1)


def _list(col: npt.NDArray[Any], name: str) -> tuple[ObjArray, list[Problem]]:
    obj = np.asarray(col, dtype=object) if col.dtype == object else col.astype(object)
    if len(obj) and all(isinstance(v, str) or v is None for v in obj[:1000].tolist()):
        # text from a file (or the same few lists over and over): split each distinct value once
        values = obj.tolist()
        try:
            split = {v: None if _is_nan(v) else _split(v) for v in set(values)}
        except TypeError:  # unhashable values (YAML lists): handled one by one below
            split = None
        if split is not None:
            out = np.empty(len(values), dtype=object)
            out[:] = [split[v] for v in values]
            return _checked_list(out, col, name)
    out = _to_list(obj) if len(obj) else np.empty(0, dtype=object)
    return _checked_list(np.asarray(out, dtype=object), col, name)


def _checked_list(out: ObjArray, col: npt.NDArray[Any], name: str) -> tuple[ObjArray, list[Problem]]:
    bad = np.fromiter((v is _BAD for v in out), dtype=bool, count=len(out))
    problems = _first(bad, name, f"Input should be a list of names (in a file: separated by '{SEPARATOR}')", col)
    out[bad] = None
    if name == "cold_chain" and len(out):
        uniq = {v for v in out if v is not None}
        wrong = {v for v in uniq if any(c not in STORAGE_CLASSES for c in v)}
        if wrong:
            mask = np.fromiter((v in wrong for v in out), dtype=bool, count=len(out))
            problems += _first(mask, name, f"Input should be storage classes among {', '.join(STORAGE_CLASSES)}", col)
    return out, problems


def validate_columns(
    raw: Mapping[str, npt.NDArray[Any]], n: int, *, text_checked: bool = False, arrow: Mapping[str, Any] | None = None
) -> tuple[dict[str, npt.NDArray[Any]], list[Problem]]:
    """Check and convert raw columns (any of :data:`COLUMNS`); return typed columns and problems.

    ``text_checked``: the text columns come from a typed table (Arrow strings), so hold only
    ``str`` or ``None``; ``arrow`` holds those Arrow columns, checked without a conversion.
    """
    problems: list[Problem] = []
    cols: dict[str, npt.NDArray[Any]] = {}
    for name in REQUIRED:
        if name not in raw:
            problems.append((-1, name, "Field required (a column every unit needs)", None))
    for name, col in raw.items():
        if name in TEXT:
            cols[name], more = _text(col, name, checked=text_checked, arrow=(arrow or {}).get(name))
        elif name in NUMBER or name in INTEGER:
            cols[name], more = _number(col, name, integer=name in INTEGER)
        elif name in LISTS:
            cols[name], more = _list(col, name)
        else:
            raise AssertionError(name)  # unknown columns are rejected by the callers
        problems += more
    if "id" in cols:
        ids = cols["id"]
        problems += _first(_missing_ids(ids), "id", "Field required: a non-empty id", ids)
    if "population" in cols:
        problems += _first(np.isnan(cols["population"]) & _given(raw["population"]), "population",
                           "Input should be a number", raw["population"])
        problems += _first(~_given(raw["population"]), "population", "Field required", raw["population"])
    problems.sort(key=lambda p: (p[0], COLUMNS.index(p[1]) if p[1] in COLUMNS else 0))
    return cols, _dedupe(problems)


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _missing_ids(ids: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Ids not given: ``None`` or NaN (what ``pandas.isna`` finds among the values YAML, CSV and Parquet
    give: text, numbers, booleans, dates, lists, mappings)."""
    values = ids.tolist()
    if set(map(type, values)) <= {str}:
        return np.zeros(len(values), dtype=bool)
    return np.fromiter((v is None or _is_nan(v) for v in values), dtype=bool, count=len(values))


def _given(col: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    if col.dtype.kind in "iuf":
        return np.asarray(~np.isnan(col.astype(np.float64)), dtype=bool)
    values = col.tolist()
    kinds = set(map(type, values))
    if kinds <= {str, int}:  # nothing missing
        return np.ones(len(col), dtype=bool)
    if kinds <= {float, int}:
        return np.asarray(~np.isnan(np.asarray(values, dtype=np.float64)), dtype=bool)
    return np.fromiter((v is not None and not (isinstance(v, float) and math.isnan(v)) for v in col), dtype=bool,
                       count=len(col))


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[int, str]] = set()
    out: list[Problem] = []
    for p in problems:
        if (p[0], p[1]) not in seen:
            seen.add((p[0], p[1]))
            out.append(p)
    return out


# --- inline units (YAML) -------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitColumns:
    """Inline units as a YAML reader found them, column by column: every unit gave the same keys in the
    same order (``columns`` maps each key to its ``n`` values, as the YAML reader typed them). What
    :func:`dosewise.yamlread.read_scenario_yaml` hands on for a large uniform ``participants.units`` list instead
    of ``n`` mappings; :func:`units_from_records` takes either and gives the same table and problems."""

    columns: Mapping[str, list[Any]]
    n: int


@dataclass(frozen=True)
class CheckedUnits:
    """Inline units already turned into a table, with the problems found: what :func:`units_from_records`
    gives for them (a process that only reads a scenario file sends this on, see
    :func:`dosewise.yamlread.read_scenario_file`). Problems name fields under ``participants.units``."""

    table: UnitTable
    problems: list[tuple[str, str, Any]]


def units_from_records(records: Any, where: str = "participants.units") -> tuple[UnitTable, list[tuple[str, str, Any]]]:
    """Inline units (a list of mappings, :class:`UnitColumns` or :class:`CheckedUnits`) → table and problems
    as ``(field path, message, value)``."""
    if isinstance(records, UnitColumns):
        return _units_from_columns(records, where)
    if isinstance(records, CheckedUnits):
        prefix = "participants.units"
        return records.table, [(where + f[len(prefix):] if f.startswith(prefix) else f, m, v)
                               for f, m, v in records.problems]
    if not isinstance(records, list | tuple):
        return UnitTable(), [(where, "Input should be a valid list of units", None)]
    n = len(records)
    problems: list[tuple[str, str, Any]] = []
    not_maps = [] if set(map(type, records)) <= {dict} else [
        i for i, r in enumerate(records) if not isinstance(r, dict)]
    for i in not_maps[:MAX_SHOWN]:
        problems.append((f"{where}[{i}]", "Input should be a mapping of unit fields", None))
    if not_maps:
        return UnitTable(), problems
    keys: set[Any] = set(itertools.chain.from_iterable(records))  # iterating a mapping gives its keys
    for k in sorted(keys - set(COLUMNS), key=str):
        i = next(j for j, r in enumerate(records) if k in r)
        problems.append((f"{where}[{i}].{k}", "Extra inputs are not permitted", records[i][k]))
    raw: dict[str, npt.NDArray[Any]] = {}
    for k in COLUMNS:
        if k in keys:
            col = np.empty(n, dtype=object)
            col[:] = list(map(dict.get, records, itertools.repeat(k)))
            raw[k] = col
    return _checked_units(raw, n, where, problems)


def _units_from_columns(units: UnitColumns, where: str) -> tuple[UnitTable, list[tuple[str, str, Any]]]:
    n = units.n
    problems: list[tuple[str, str, Any]] = []
    for k in sorted(set(units.columns) - set(COLUMNS), key=str):  # every unit gave every key: the first names it
        problems.append((f"{where}[0].{k}", "Extra inputs are not permitted", units.columns[k][0]))
    raw: dict[str, npt.NDArray[Any]] = {}
    for k in COLUMNS:
        if k in units.columns:
            col = np.empty(n, dtype=object)
            col[:] = units.columns[k]
            raw[k] = col
    return _checked_units(raw, n, where, problems)


def _checked_units(raw: dict[str, npt.NDArray[Any]], n: int, where: str,
                   problems: list[tuple[str, str, Any]]) -> tuple[UnitTable, list[tuple[str, str, Any]]]:
    if n == 0:
        return UnitTable(), problems
    cols, col_problems = validate_columns(raw, n)
    for i, column, message, value in col_problems:
        problems.append((f"{where}[{max(i, 0)}].{column}", message, value))
    return UnitTable(cols), problems


# --- table files (CSV, Parquet) ------------------------------------------------------------------
def _file_error(path: Path, problems: list[Problem], row_of: Callable[[int], int]) -> InputError:
    i, column, message, value = problems[0]
    rest = problems[1:]
    extra = ""
    if rest:
        shown = "; ".join(f"row {row_of(j)}, {c}: {m}" + (f" (value: {v!r})" if v is not None else "")
                          for j, c, m, v in rest[:MAX_SHOWN])
        extra = f"; also {shown}" + (f"; and {len(rest) - MAX_SHOWN} more" if len(rest) > MAX_SHOWN else "")
    return InputError(message + extra, file=str(path), row=row_of(i) if i >= 0 else None, field=column, value=value)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_units_file(path: Path, *, sha256: str | None = None) -> UnitTable:
    """Read and validate a ``.csv`` or ``.parquet`` table of units; raise :class:`InputError` naming
    the file, row, column and value of the first problem (and listing a few more)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError("a units file must end in .csv or .parquet", file=str(path), field="units_file",
                         value=path.suffix)
    if not path.is_file():
        raise InputError("units file not found", file=str(path), field="units_file")
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256.strip().lower():
        raise InputError(f"the units file has changed: its SHA-256 is {digest}", file=str(path),
                         field="units_sha256", value=sha256)
    if suffix == ".csv":
        names, raw, n, arrow = _read_csv(path)

        def row_of(i: int) -> int:
            return i + 2  # the header is row 1
    else:
        names, raw, n, arrow = _read_parquet(path)

        def row_of(i: int) -> int:
            return i + 1
    unknown = [c for c in names if c not in COLUMNS]
    if unknown:
        raise InputError(f"unknown column; known columns: {', '.join(COLUMNS)}", file=str(path), row=1
                         if suffix == ".csv" else None, field=unknown[0], value=unknown[0])
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise InputError("duplicate column", file=str(path), field=dup[0], value=dup[0])
    if n == 0:
        raise InputError("the units file has no rows", file=str(path))
    cols, problems = validate_columns(raw, n, text_checked=True, arrow=arrow)
    if problems:
        raise _file_error(path, problems, row_of)
    return UnitTable(cols, source=str(path), sha256=digest)


def _read_csv(path: Path) -> tuple[list[str], dict[str, npt.NDArray[Any]], int, dict[str, Any]]:
    import pyarrow as pa
    from pyarrow import csv as pacsv

    text_types = {c: pa.string() for c in (*TEXT, *LISTS)}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True),
            convert_options=pacsv.ConvertOptions(column_types=text_types, strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV file: {exc}", file=str(path)) from None
    return _columns(table, path)


def _read_parquet(path: Path) -> tuple[list[str], dict[str, npt.NDArray[Any]], int, dict[str, Any]]:
    import pyarrow as pa
    from pyarrow import parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable Parquet file: {exc}", file=str(path)) from None
    return _columns(table, path)


def _columns(table: Any, path: Path) -> tuple[list[str], dict[str, npt.NDArray[Any]], int, dict[str, Any]]:
    """The table's columns as NumPy arrays, and its text columns as they are in Arrow as well."""
    import pyarrow as pa

    names = [str(c) for c in table.column_names]
    raw: dict[str, npt.NDArray[Any]] = {}
    arrow: dict[str, Any] = {}
    for name in names:
        if name not in COLUMNS or names.count(name) > 1:
            continue  # reported by the caller
        col = table.column(name)
        if name in TEXT or name in LISTS:
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_null(col.type)):
                raise InputError(f"this column must hold text, not {col.type}", file=str(path), field=name)
            raw[name] = col.to_numpy(zero_copy_only=False).astype(object, copy=False)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                arrow[name] = col
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            raw[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            raw[name] = col.to_numpy(zero_copy_only=False).astype(object, copy=False)
    return names, raw, table.num_rows, arrow


__all__ = ["COLUMNS", "LISTS", "CheckedUnits", "UnitColumns", "UnitTable", "read_units_file", "units_from_records",
           "validate_columns"]
