"""A round's offers held as columns (as a snapshot stores them) read, change and copy exactly as a
dict of one dict per offer does; a snapshot opened with events after it equals the full replay."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.rounds.test_mechanism import OPS, _step, opened

from dosewise.errors import ConflictError, InputError, IntegrityError, RoundError
from dosewise.ledger import open_store
from dosewise.rounds import RoundState, project
from dosewise.rounds.offers import FIELDS, Coded, Ints, Offers, pack_column, unpack_column

D = dt.date.fromisoformat

# -- the columns ---------------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=6),
                    st.sampled_from(["offered", "accepted", "KEN", "2021-09-06"]),
                    st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(column=st.one_of(st.lists(SCALARS, max_size=40),
                        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40),
                        st.lists(st.sampled_from([None, "a", "b", "ü"]), max_size=600),
                        st.lists(st.integers(0, 400), min_size=300, max_size=700)))
def test_a_packed_column_reads_back_value_for_value_and_type_for_type(column: list[Any]) -> None:
    stored = json.loads(json.dumps(pack_column(column)))  # through the snapshot's text
    back = unpack_column(stored)
    values = back.tolist() if isinstance(back, (Coded, Ints)) else list(back)
    assert values == column
    assert [type(v) for v in values] == [type(v) for v in column]  # True stays True, 1 stays 1, 1.0 stays 1.0
    assert [back[i] for i in range(len(column))] == column


def test_bad_packed_columns_are_refused() -> None:
    with pytest.raises(IntegrityError, match="beyond"):
        unpack_column({"values": ["a"], "codes": "AAE=", "width": 1})  # codes 0, 1: one value only
    with pytest.raises(IntegrityError, match="beyond"):
        unpack_column({"values": ["a"], "codes": "AAABAA==", "width": 2})
    with pytest.raises(IntegrityError, match="does not decode"):
        unpack_column({"int64": "not base64!"})
    with pytest.raises(IntegrityError, match="-byte codes"):
        unpack_column({"values": ["a"], "codes": "", "width": 3})
    with pytest.raises(IntegrityError, match="unknown layout"):
        unpack_column({"rows": []})
    with pytest.raises(IntegrityError, match="lack"):
        Offers.from_columns(["A"], {"offer": ["A"]})
    cols: dict[str, Any] = {f: [None] for f in FIELDS}
    with pytest.raises(IntegrityError, match="one value per offer"):
        Offers.from_columns(["A", "B"], cols)
    two: dict[str, Any] = {f: [None, None] for f in FIELDS}
    with pytest.raises(IntegrityError, match="twice"):
        Offers.from_columns(["A", "A"], two)
    with pytest.raises(IntegrityError, match="twice"):
        Offers.from_columns(["A", "A"], two, [0, 1])
    for order in ([0, 1], [0, 0], [1, 1]):  # not sorting B, A; or a row twice
        with pytest.raises(IntegrityError, match="does not sort"):
            Offers.from_columns(["B", "A"], two, order)
    with pytest.raises(IntegrityError, match="beyond"):
        Offers.from_columns(["A", "B"], two, [0, 2])
    with pytest.raises(IntegrityError, match="one per offer"):
        Offers.from_columns(["A", "B"], two, [0])
    with pytest.raises(IntegrityError, match="does not sort"):
        Offers.from_columns(["A", 1], two, [0, 1])  # type: ignore[list-item]
    found = Offers.from_columns(["B", "A"], two, [-1, 0])  # a row by its negative index is the same row
    assert list(found) == ["B", "A"] and "A" in found and found["A"] == dict.fromkeys(FIELDS)


# -- the mapping, against a dict of dicts --------------------------------------------------------


def _row(i: int, rng: int) -> dict[str, Any]:
    return {"offer": f"O{i}", "lot": f"L{rng % 3}", "participant": ["KEN", "UGA", "PRK"][rng % 3],
            "doses": 100 * (1 + rng % 7), "status": ["offered", "accepted", "declined"][rng % 3],
            "deadline": "2021-09-06", "pass": rng % 2, "why": "", "reason": None if rng % 4 else "other",
            "note": None, "wish": None, "answered_on": None if rng % 3 == 0 else "2021-09-01", "seq": 10 + i}


def _columns(rows: dict[str, dict[str, Any]], sorted_ids: bool = True) -> Offers:
    """The offers as a snapshot holds them: packed, through JSON text, read back as columns (the
    offers with fields beyond :data:`FIELDS` built and given them); offers found by their ids in
    sorted order, or (``sorted_ids=False``, as a snapshot of the first layout) by a dict."""
    ids = list(rows)
    text = orjson.dumps({"order": Ints.pack(Offers.sorted_rows(ids), unsigned32=True),
                         **{f: pack_column([r[f] for r in rows.values()]) for f in FIELDS}})
    stored = orjson.loads(text)
    order = Ints.unpack(stored["order"]).ints if sorted_ids else None
    offers = Offers.from_columns(ids, {f: unpack_column(stored[f]) for f in FIELDS}, order)
    for oid, row in rows.items():  # the fields beyond FIELDS, as a snapshot adds them back
        if set(row) - set(FIELDS):
            offers[oid].update({f: v for f, v in row.items() if f not in FIELDS})
    return offers


OPS_ON_OFFERS = st.lists(st.tuples(st.sampled_from(["get", "set_field", "extra", "new", "replace", "contains",
                                                    "iter", "column", "copy", "deepcopy", "items", "eq"]),
                                   st.integers(0, 10**6)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 30), seed=st.integers(0, 10**6), ops=OPS_ON_OFFERS, sorted_ids=st.booleans())
def test_offers_held_as_columns_behave_as_a_dict_of_dicts(n: int, seed: int, ops: list[tuple[str, int]],
                                                          sorted_ids: bool) -> None:
    model = {f"O{(i * 37) % 101}": _row(i, seed + i * 7919) for i in range(n)}  # ids not made in sorted order
    offers = _columns(model, sorted_ids)
    assert offers.built == 0
    made = n
    for op, k in ops:
        keys = list(model)
        key = keys[k % len(keys)] if keys else "O0"
        if op == "get" and keys:
            assert offers[key] == model[key] and offers[key] is offers[key]
        elif op == "set_field" and keys:  # a change through the dict read is kept, as a dict's would be
            offers[key]["status"] = model[key]["status"] = "lapsed"
            offers[key]["doses"] -= 1
            model[key]["doses"] -= 1
        elif op == "extra" and keys:
            offers[key].update(refused_rest=True, shipped=k % 5)
            model[key].update(refused_rest=True, shipped=k % 5)
        elif op == "new":
            row = _row(made, k)
            offers[row["offer"]] = row
            model[row["offer"]] = dict(row)
            made += 1
        elif op == "replace" and keys:
            row = {**_row(k, k), "offer": key, "offered": 0}
            offers[key] = row
            model[key] = dict(row)
        elif op == "contains":
            assert (key in offers) == (key in model) and ("nope" in offers) is False and (5 in offers) is False
        elif op == "iter":
            assert list(offers) == list(model) and len(offers) == len(model)
        elif op == "column":
            for f in (*FIELDS, "refused_rest", "shipped"):
                assert offers.column(f) == [r.get(f) for r in model.values()], f
            assert offers.extras() == {o: {f: v for f, v in r.items() if f not in FIELDS}
                                       for o, r in model.items() if set(r) - set(FIELDS)}
        elif op in ("copy", "deepcopy") and keys:
            twin = offers.copy() if op == "copy" else copy.deepcopy(offers)
            twin[key]["status"] = "shipped"
            twin[f"T{k}"] = _row(k, k)
            assert offers[key] == model[key] and f"T{k}" not in offers
            assert twin[key]["status"] == "shipped" and len(twin) == len(model) + (f"T{k}" not in model)
        elif op == "items":
            assert list(offers.items()) == list(model.items()) and list(offers.values()) == list(model.values())
        elif op == "eq":
            assert offers == model and offers == _columns(model) and _columns(model) == offers
            if keys:
                other = _columns(model)
                other[key]["doses"] += 1
                assert offers != other
    assert dict(offers.items()) == model and list(offers) == list(model)
    with pytest.raises(KeyError):
        _ = offers["nope"]


# -- a round opened from a snapshot, with and without the events after it ------------------------


def _views(state: RoundState) -> tuple[Any, ...]:
    return (state.open_by_lot(), state.holdings(), state.refused(), state.problems(),
            state.offers_frame().to_dict("list"), state.delivery_report().to_dict("list"))


def _conserved(state: RoundState) -> None:
    for lot_id, lot in state.lots.items():
        parts = lot["open"] + lot["accepted"] + lot["pool"] + lot["expired"] + lot["buffer"]
        assert parts == lot["supply"], lot_id
    assert not state.problems()


STEPS = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50), st.integers(0, 10**6), st.integers(0, 40)),
                 min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, cuts=st.lists(st.floats(0, 1), min_size=1, max_size=3))
def test_a_snapshot_at_any_event_then_the_events_after_it_equals_the_full_replay(
        steps: list[tuple[str, int, int, int]], cuts: list[float]) -> None:
    r, rid = opened(open_store("memory"))
    r.snapshot_every = 0
    for op, pick, amount, days in steps:
        with contextlib.suppress(InputError, RoundError, ConflictError):  # refused steps record nothing
            _step(r, rid, op, pick, amount, D("2021-08-30") + dt.timedelta(days=days))
    events = list(r.store.read(round_id=rid))
    full = project(events, rid)
    _conserved(full)
    for cut in cuts:
        at = int(cut * (len(events) - 1))
        head = project(events[:at + 1], rid)
        loaded = RoundState.from_json(head.to_json())
        assert loaded == head and loaded.to_json() == head.to_json()  # without events after it
        _conserved(loaded)
        for ev in events[at + 1:]:  # with them: answers, parts, transfers, shipments on column-held offers
            loaded.apply(ev)
            _conserved(loaded)
        assert loaded == full
        assert loaded.to_json() == full.to_json()
        assert _views(loaded) == _views(full)
        twin = loaded.copy()  # a copy of a state opened from a snapshot is independent of it
        oid = next(iter(twin.offers), None)
        if oid is not None:
            twin.offers[oid]["doses"] = -1
            assert loaded.offers[oid] == full.offers[oid]


def test_opening_from_the_snapshot_builds_only_the_offers_the_later_events_touch() -> None:
    r, rid = opened(open_store("memory"))
    r.snapshot_every = 0
    state = r.state(rid)
    answered = [oid for oid, o in list(state.offers.items())[:3] if o["status"] == "offered"]
    r.snapshot(rid)
    for oid in answered:
        r.respond(oid, "accept")
    fresh = type(r)(r.store)
    loaded = fresh.state(rid)
    assert fresh._snapshot_seq[rid] < loaded.last_seq
    assert loaded.offers.built == len(answered) < len(loaded.offers)
    assert loaded == project(r.store.read(), rid)


def test_an_offer_built_from_columns_has_the_snapshot_fields_in_order() -> None:
    from dosewise.rounds.offers import FIELDS, _offer_row

    row = _offer_row(*range(len(FIELDS)))
    assert list(row) == list(FIELDS)
    assert [row[f] for f in FIELDS] == list(range(len(FIELDS)))
