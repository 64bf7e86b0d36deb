"""One time axis: day offsets from the scenario's ``as_of``, built once in the world."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dosewise.scenario import load_demo, parse_scenario
from dosewise.world import build_world


def _scenario(as_of: dt.date | None, lots: list[tuple[dt.date, dt.date]]) -> dict[str, object]:
    return {
        **({"as_of": as_of.isoformat()} if as_of is not None else {}),
        "participants": {"include": ["KEN", "UGA"]},
        "lots": [{"id": f"L{i}", "product": "AZD1222", "doses": 24000, "available": a.isoformat(),
                  "expiry": e.isoformat()} for i, (a, e) in enumerate(lots)],
    }


def test_the_demo_world_counts_days_from_its_as_of() -> None:
    sc = load_demo()
    world = build_world(sc)
    assert sc.as_of is not None
    assert world.day0 == sc.as_of
    for lot in sc.lots:
        row = world.lots.loc[lot.id]
        assert row["available_day"] == (lot.available - sc.as_of).days
        assert row["expiry_day"] == (lot.expiry - sc.as_of).days
    assert world.lots["available_day"].dtype == np.int64 and world.lots["expiry_day"].dtype == np.int64


def test_every_form_of_a_date_lands_on_the_same_day() -> None:
    world = build_world(load_demo())
    day = dt.date(2021, 9, 7)
    want = (day - dt.date(2021, 2, 3)).days
    forms: list[object] = [day, dt.datetime(2021, 9, 7, 15, 30), pd.Timestamp("2021-09-07"), "2021-09-07",
                           np.datetime64("2021-09-07")]
    assert [world.days(f) for f in forms] == [want] * len(forms)  # type: ignore[call-overload]
    many = world.days(pd.Series(pd.to_datetime(["2021-02-03", "2021-09-07"])))
    assert many.tolist() == [0, want]
    assert world.days(["2021-02-02", day]).tolist() == [-1, want]
    assert world.days(pd.DatetimeIndex(["2021-09-07"])).tolist() == [want]
    assert world.date(want) == day and world.date(np.int64(-1)) == dt.date(2021, 2, 2)
    with pytest.raises(TypeError, match="not a date"):
        world.days(3.5)  # type: ignore[call-overload]


def test_without_as_of_day_zero_is_the_earliest_availability() -> None:
    world = build_world(parse_scenario(_scenario(None, [(dt.date(2021, 3, 10), dt.date(2021, 9, 1)),
                                                        (dt.date(2021, 3, 1), dt.date(2021, 6, 1))])))
    assert world.day0 == dt.date(2021, 3, 1)
    assert world.lots["available_day"].tolist() == [9, 0]


def test_lot_days_counts_from_a_start_and_reads_foreign_lots_on_the_same_axis() -> None:
    world = build_world(load_demo())
    start, available, expiry = world.lot_days()
    assert start == dt.date(2021, 2, 22) and available.tolist() == [0, 0]  # the demo's lots arrive 22 Feb
    later, available2, expiry2 = world.lot_days(dt.date(2021, 3, 1))
    assert later == dt.date(2021, 3, 1)
    assert (available - available2).tolist() == [7, 7] and (expiry - expiry2).tolist() == [7, 7]
    copy = world.lots.copy()  # another frame of the same lots (e.g. an allocation's) is converted, not trusted
    copy["expiry_day"] = -999
    assert world.lot_days(None, copy)[2].tolist() == expiry.tolist()


@settings(max_examples=30, deadline=None)
@given(
    as_of=st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2023, 12, 31)),
    offsets=st.lists(st.tuples(st.integers(-400, 400), st.integers(1, 700)), min_size=1, max_size=4),
)
def test_offsets_match_date_arithmetic(as_of: dt.date, offsets: list[tuple[int, int]]) -> None:
    lots = [(as_of + dt.timedelta(days=a), as_of + dt.timedelta(days=a + life)) for a, life in offsets]
    world = build_world(parse_scenario(_scenario(as_of, lots)))
    assert world.lots["available_day"].tolist() == [(a - as_of).days for a, _ in lots]
    assert world.lots["expiry_day"].tolist() == [(e - as_of).days for _, e in lots]
    for a, e in lots:
        assert world.date(world.days(a)) == a and world.date(world.days(e)) == e
    start, available, expiry = world.lot_days()
    first = min(a for a, _ in lots)
    assert start == first
    assert available.tolist() == [(a - first).days for a, _ in lots]
    assert expiry.tolist() == [(e - first).days for _, e in lots]
