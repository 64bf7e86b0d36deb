"""Inline units (from YAML) are checked in plain Python, table files with Arrow's string kernels:
both give the same problems for the same values, and a scenario with inline units is read without
importing pandas."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from dosewise.units import _BAD, _list, _missing_ids, _split, validate_columns

texts = st.one_of(
    st.none(),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,66}", fullmatch=True),  # ids, some too long
    st.text(max_size=70),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=195, max_size=205),  # about the limit
    st.sampled_from(["", " ", "KEN", "KEN\n", "\nKEN", "a b", "-x", ".x", "x" * 64, "x" * 65, "é", "Ａ1"]),
)


def column(values: list[Any]) -> np.ndarray[Any, Any]:
    col = np.empty(len(values), dtype=object)
    col[:] = values
    return col


@given(st.lists(st.tuples(texts, texts, texts), min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_text_checks_in_python_match_arrows(rows: list[tuple[Any, Any, Any]]) -> None:
    ids, names, parents = (list(c) for c in zip(*rows, strict=True))
    raw = {"id": column(ids), "name": column(names), "parent": column(parents),
           "population": np.full(len(rows), 5.0)}
    arrow = {k: pa.chunked_array([pa.array(v, pa.string())]) for k, v in
             (("id", ids), ("name", names), ("parent", parents))}
    in_python = validate_columns(raw, len(rows))
    with_arrow = validate_columns(raw, len(rows), text_checked=True, arrow=arrow)
    assert in_python[1] == with_arrow[1]
    assert all(np.array_equal(in_python[0][k], with_arrow[0][k]) for k in raw if k != "population")


def test_missing_ids_as_pandas_finds_them() -> None:
    values = [None, math.nan, float("nan"), np.float64("nan"), "", "x", 1, 0.0, True, dt.date(2021, 3, 1), [1],
              {"a": 1}, -0.0, math.inf]
    col = column(values)
    assert _missing_ids(col).tolist() == np.asarray(pd.isna(col), dtype=bool).tolist()
    assert _missing_ids(column(["a", "b"])).tolist() == [False, False]


@given(st.lists(st.one_of(st.none(), st.sampled_from(["AZD1222", "AZD1222; BNT162b2", " ; ", "", "x;;y"]),
                          st.just(math.nan), st.integers(), st.booleans(), st.floats()), min_size=1, max_size=40),
       st.integers(0, 3))
@settings(max_examples=200, deadline=None)
def test_list_columns_split_each_value_as_one_by_one(values: list[Any], text_rows: int) -> None:
    """The distinct-value path (taken when the first values are text, as in a table file) gives what
    splitting each value does, NaN counting as not given there (as a file's missing cell, and as
    ``pandas.factorize`` counted it); the one-by-one path calls NaN a bad value."""
    values = ["AZD1222"] * text_rows + values
    distinct = all(isinstance(v, str) or v is None for v in values)
    out, problems = _list(column(values), "accepts")
    expected = [None if (distinct and isinstance(v, float) and math.isnan(v)) else _split(v) for v in values]
    bad = [i for i, v in enumerate(expected) if v is _BAD]
    assert out.tolist() == [None if v is _BAD else v for v in expected]
    assert [p[0] for p in problems] == bad[:5] + (bad[5:6] if len(bad) > 5 else [])


PROBE = """
import json, sys
from dosewise.scenario import parse_scenario
units = [{"id": f"U{i}", "population": 1000.0 + i, "parent": "KEN", "accepts": ["AZD1222"]} for i in range(50)]
sc = parse_scenario({"participants": {"units": units}, "lots": [{"id": "L1", "product": "AZD1222",
                     "doses": 1000, "available": "2021-03-01", "expiry": "2021-12-31"}]})
print(json.dumps({"units": len(sc.participants.units), "pandas": "pandas" in sys.modules,
                  "pyarrow": "pyarrow" in sys.modules}))
"""


def test_inline_units_are_read_without_pandas() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"units": 50, "pandas": False, "pyarrow": False}


def test_list_values_past_the_first_thousand_as_pandas_factorize_grouped_them() -> None:
    values: list[Any] = ["AZD1222; BNT162b2"] * 1000 + [math.nan, None, 7, True, "", "BNT162b2"]
    out, problems = _list(column(values), "accepts")
    codes, uniques = pd.factorize(column(values))  # what the column was split by before
    before = [None if c < 0 else _split(uniques[c]) for c in codes]
    assert out.tolist() == [None if v is _BAD else v for v in before]
    assert out[1000] is None and out[1004] is None and out[1005] == ("BNT162b2",)
    assert [p[0] for p in problems] == [1002, 1003]
