"""A round's offers by id: a mapping that holds a snapshot's offers as columns.

A long round holds hundreds of thousands of offers, and most of them are never looked at again
once answered. :class:`Offers` keeps the offers a snapshot held as one column per field (as the
snapshot stores them) and builds an offer's dict only when that offer is read; offers made after
the snapshot, and every offer read (and maybe changed) since, are plain dicts. Readers see a
mapping from offer id to that offer's dict, in the order the offers were made, as a ``dict``
would give them; the dict returned for an offer is the one the round's state changes, so a
change made through it is kept. Bulk readers ask for :meth:`Offers.column` instead, which reads
the columns without building any dict.
"""

from __future__ import annotations

import array
import base64
import bisect
import copy as _copy
import itertools
import operator
import sys
from collections.abc import ItemsView, Iterator, Mapping, Sequence, ValuesView
from typing import Any

from dosewise.errors import IntegrityError

__all__ = ["FIELDS", "Coded", "Ints", "Offers", "pack_column", "unpack_column"]

FIELDS: tuple[str, ...] = ("offer", "lot", "participant", "doses", "status", "deadline", "pass", "why", "reason",
                           "note", "wish", "answered_on", "seq")
"""The fields every offer has (in this order in a snapshot's columns); other fields (partial
acceptance, shipments, transfers) are kept with the few offers that have them."""

def _offer_row(offer: Any, lot: Any, participant: Any, doses: Any, status: Any, deadline: Any, pass_: Any,
               why: Any, reason: Any, note: Any, wish: Any, answered_on: Any, seq: Any) -> dict[str, Any]:
    """One offer's dict from its fields' values in :data:`FIELDS` order (a dict display: the fastest
    way CPython builds a dict of known keys)."""
    return {"offer": offer, "lot": lot, "participant": participant, "doses": doses, "status": status,
            "deadline": deadline, "pass": pass_, "why": why, "reason": reason, "note": note, "wish": wish,
            "answered_on": answered_on, "seq": seq}


class Coded(Sequence[Any]):
    """A column stored as its distinct values and, per row, the index of its value.

    Parameters
    ----------
    values : list
        The distinct values.
    codes : array.array
        Per row, an index into ``values`` (unsigned).

    Raises
    ------
    IntegrityError
        A code outside ``values``.

    Examples
    --------
    >>> col = Coded.unpack(Coded.pack(["accepted", "accepted", None]))
    >>> col[2], len(col), col.tolist()
    (None, 3, ['accepted', 'accepted', None])
    >>> Coded.pack(["accepted", "accepted", None])
    {'values': ['accepted', None], 'codes': 'AAAB', 'width': 1}
    """

    __slots__ = ("codes", "values")

    def __init__(self, values: list[Any], codes: array.array[int]) -> None:
        self.values, self.codes = values, codes
        if not codes:
            return
        if codes.itemsize == 1:  # a code of each byte: none may be left once the valid ones are deleted
            bad = bool(codes.tobytes().translate(None, bytes(range(min(len(values), 256)))))
        else:
            bad = max(codes) >= len(values)
        if bad:
            raise IntegrityError(f"a coded column refers to values beyond its {len(values)}")

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self.values[c] for c in self.codes[i]]
        return self.values[self.codes[i]]

    def tolist(self) -> list[Any]:
        """Every row's value."""
        return list(map(self.values.__getitem__, self.codes))

    @staticmethod
    def pack(column: list[Any], values: list[Any] | None = None) -> dict[str, Any]:
        """The column as JSON: its distinct values (in order of first appearance) and the codes, as
        little-endian unsigned integers of 1, 2 or 4 bytes, in base64.

        Parameters
        ----------
        column : list
            Strings and ``None`` (kept apart from each other by a dict, unlike ``1``, ``1.0`` and
            ``True``), or integers.
        values : list, optional
            The column's distinct values in order of first appearance, when already known.
        """
        if values is None:
            values = list(dict.fromkeys(column))
        index = {v: i for i, v in enumerate(values)}
        width = 1 if len(values) <= 1 << 8 else 2 if len(values) <= 1 << 16 else 4
        if width == 1:  # bytes from codes below 256, built in one pass
            return {"values": values, "codes": base64.b64encode(bytes(map(index.__getitem__, column))).decode("ascii"),
                    "width": 1}
        codes = array.array(_UNSIGNED[width], list(map(index.__getitem__, column)))
        return {"values": values, "codes": _b64(codes), "width": width}

    @staticmethod
    def unpack(stored: dict[str, Any]) -> Coded:
        """The column :meth:`pack` wrote."""
        width = stored["width"]
        if width not in _UNSIGNED:
            raise IntegrityError(f"a coded column of {width!r}-byte codes")
        return Coded(list(stored["values"]), _unb64(_UNSIGNED[width], stored["codes"]))


class Ints(Sequence[int]):
    """A column of 64-bit integers, one per row.

    Examples
    --------
    >>> col = Ints.unpack(Ints.pack([3, 1, 2**40]))
    >>> col[2], len(col), col.tolist()
    (1099511627776, 3, [3, 1, 1099511627776])
    """

    __slots__ = ("ints",)

    def __init__(self, ints: array.array[int]) -> None:
        self.ints = ints

    def __len__(self) -> int:
        return len(self.ints)

    def __getitem__(self, i: Any) -> Any:
        return self.ints.tolist()[i] if isinstance(i, slice) else self.ints[i]

    def tolist(self) -> list[int]:
        """Every row's value."""
        return self.ints.tolist()

    @staticmethod
    def pack(column: list[int], *, unsigned32: bool = False) -> dict[str, Any]:
        """The column as JSON: little-endian signed 64-bit integers (or, ``unsigned32``, unsigned
        32-bit ones), in base64."""
        if unsigned32:
            return {"uint32": _b64(array.array("I", column))}
        return {"int64": _b64(array.array("q", column))}

    @staticmethod
    def unpack(stored: dict[str, Any]) -> Ints:
        """The column :meth:`pack` wrote."""
        if "uint32" in stored:
            return Ints(_unb64("I", stored["uint32"]))
        return Ints(_unb64("q", stored["int64"]))


_UNSIGNED = {1: "B", 2: "H", 4: "I"}
_FIELD_SET = frozenset(FIELDS)
_INT64 = range(-(1 << 63), 1 << 63)


def _b64(values: array.array[int]) -> str:
    if sys.byteorder != "little":
        values = array.array(values.typecode, values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def _unb64(typecode: str, text: str) -> array.array[int]:
    out = array.array(typecode)
    try:
        out.frombytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise IntegrityError(f"a packed column that does not decode: {exc}") from None
    if sys.byteorder != "little":
        out.byteswap()
    return out


def pack_column(column: list[Any]) -> Any:
    """One offer column as a snapshot stores it: integers as 64-bit integers or codes, strings and
    ``None`` as codes when they repeat, anything else (or a column of mostly distinct strings)
    as a JSON list. :func:`unpack_column` reads it back.

    Examples
    --------
    >>> pack_column(["a", "a", "a", None])["values"], pack_column([7, 7, 7])["values"]
    (['a', None], [7])
    >>> pack_column([1, 2, 3]), pack_column(["x", "y"]), pack_column([1, True])
    ({'int64': 'AQAAAAAAAAACAAAAAAAAAAMAAAAAAAAA'}, ['x', 'y'], [1, True])
    >>> unpack_column(pack_column([1, 2, 3])).tolist()
    [1, 2, 3]
    """
    if not column:
        return column
    kinds = set(map(type, column))
    ints = kinds == {int}
    if not (ints or kinds <= {str, type(None)}):
        return column
    distinct = dict.fromkeys(column)
    if ints and not (min(distinct) in _INT64 and max(distinct) in _INT64):
        return column
    if 2 * len(distinct) <= len(column):
        return Coded.pack(column, list(distinct))
    return Ints.pack(column) if ints else column


def unpack_column(stored: Any) -> Sequence[Any]:
    """The column :func:`pack_column` wrote (a list as it is).

    Raises
    ------
    IntegrityError
        A column that is neither a list nor one :func:`pack_column` writes.
    """
    if isinstance(stored, list):
        return stored
    if isinstance(stored, dict) and "codes" in stored:
        return Coded.unpack(stored)
    if isinstance(stored, dict) and ("int64" in stored or "uint32" in stored):
        return Ints.unpack(stored)
    raise IntegrityError(f"an offer column of an unknown layout: {str(stored)[:80]!r}")


class Offers(Mapping[str, dict[str, Any]]):
    """A round's offers by id, in the order they were made.

    Behaves as a ``dict`` from offer id to the offer's dict (lot, participant, doses, status,
    deadline, pass, why, reason, note, wish, answered_on, seq, and the fields of partial
    acceptance, shipments and transfers some offers have). Offers are made, never removed: the
    mapping takes new entries (``offers[oid] = {...}``) and no deletion.

    The offers of a snapshot are held as columns (:meth:`from_columns`) until read.

    Parameters
    ----------
    rows : mapping of str to dict, optional
        Offers to start with.

    Examples
    --------
    >>> offers = Offers.from_columns(["A", "B"], {
    ...     "offer": ["A", "B"], "lot": ["L1", "L1"], "participant": ["KEN", "UGA"], "doses": [10, 20],
    ...     "status": ["offered", "accepted"], "deadline": ["2021-03-01"] * 2, "pass": [0, 0],
    ...     "why": ["policy", "policy"], "reason": [None, None], "note": [None, None], "wish": [None, None],
    ...     "answered_on": [None, "2021-02-20"], "seq": [5, 6]})
    >>> len(offers), list(offers), offers.built
    (2, ['A', 'B'], 0)
    >>> offers["B"]["status"], offers.built
    ('accepted', 1)
    >>> offers["A"]["status"] = "declined"
    >>> offers.column("status"), offers.built
    (['declined', 'accepted'], 2)
    """

    __slots__ = ("_cols", "_ids", "_new", "_order", "_pos", "_rows", "_sorted")

    def __init__(self, rows: Mapping[str, dict[str, Any]] | None = None) -> None:
        self._ids: list[str] = []
        """Ids of the offers held as columns (a snapshot's), in order."""
        self._cols: tuple[Sequence[Any], ...] = ()
        """One column per field of :data:`FIELDS`, each as long as ``_ids``; never changed in place
        (copies share them)."""
        self._pos: dict[str, int] | None = {}
        """Id → row of the columns; None when they are found by ``_sorted`` and ``_order``."""
        self._sorted: list[str] = []
        """The ids in sorted order (when ``_pos`` is None)."""
        self._order: Sequence[int] = []
        """Per id of ``_sorted``, its row of the columns."""
        self._rows: dict[str, dict[str, Any]] = {}
        """Every offer built from the columns so far, and every offer set since."""
        self._new: dict[str, None] = {}
        """Ids of the offers not in the columns, in the order they were set (only with columns)."""
        for key, row in (rows or {}).items():
            self[key] = row

    @classmethod
    def from_columns(cls, ids: list[str], columns: Mapping[str, Sequence[Any]],
                     order: Sequence[int] | None = None) -> Offers:
        """Offers held as columns, one per field of :data:`FIELDS`.

        Parameters
        ----------
        ids : list of str
            The offers' ids, in order (each once).
        columns : mapping of str to sequence
            Per field of :data:`FIELDS`, its value for every offer (a list, or a :class:`Coded`).
        order : sequence of int, optional
            The rows of the ids in sorted order (:meth:`sorted_rows`): offers are then found by
            bisection, without a dict of every id (a long round's largest cost to open).

        Returns
        -------
        Offers
            The mapping; no offer's dict is built yet.

        Raises
        ------
        IntegrityError
            An id given twice, a missing field, a column whose length is not the number of ids,
            or an ``order`` that does not sort them.
        """
        n = len(ids)
        missing = [f for f in FIELDS if f not in columns]
        if missing:
            raise IntegrityError(f"offers' columns lack {', '.join(missing)}")
        short = [f for f in FIELDS if len(columns[f]) != n]
        if short:
            raise IntegrityError(f"offers' columns {', '.join(short)} do not hold one value per offer ({n:,})")
        table = cls()
        if not n:
            return table
        table._ids, table._cols = ids, tuple(columns[f] for f in FIELDS)
        if order is None:
            pos = dict(zip(ids, range(n), strict=True))
            if len(pos) != n:
                raise IntegrityError("offers' columns hold an offer id twice")
            table._pos = pos
            return table
        if len(order) != n:
            raise IntegrityError(f"offers' order holds {len(order):,} rows, not one per offer ({n:,})")
        try:
            ranked = list(map(ids.__getitem__, order))
        except (IndexError, TypeError):
            raise IntegrityError("offers' order refers to rows beyond the columns") from None
        # strictly increasing: every id once, and the order a permutation (a row given as its
        # negative index would be the same row, so it still sorts the ids or is caught here)
        try:
            ascending = all(map(operator.lt, ranked, itertools.islice(ranked, 1, None)))
        except TypeError:  # ids that do not compare (not all text)
            ascending = False
        if not ascending:
            raise IntegrityError("offers' order does not sort their ids, or holds an id twice")
        table._pos, table._sorted, table._order = None, ranked, order
        return table

    @staticmethod
    def sorted_rows(ids: list[str]) -> list[int]:
        """The rows of ``ids`` in the order that sorts them (what :meth:`from_columns` takes)."""
        return sorted(range(len(ids)), key=ids.__getitem__)

    def _row_of(self, key: Any) -> int | None:
        """The row of the columns that holds offer ``key``, or None."""
        pos = self._pos
        if pos is not None:
            return pos.get(key)
        if not isinstance(key, str):
            return None
        ranked = self._sorted
        try:
            j = bisect.bisect_left(ranked, key)
        except TypeError:  # ids that are not text: none is this key
            return None
        return self._order[j] if j < len(ranked) and ranked[j] == key else None

    # -- the mapping ---------------------------------------------------------------------------
    def __getitem__(self, key: str) -> dict[str, Any]:
        try:
            return self._rows[key]
        except KeyError:
            if not self._ids:
                raise
        i = self._row_of(key)
        if i is None:
            raise KeyError(key)  # as a dict raises
        row = self._rows[key] = _offer_row(*[c[i] for c in self._cols])
        return row

    def __setitem__(self, key: str, row: dict[str, Any]) -> None:
        if self._ids and key not in self._rows and self._row_of(key) is None:
            self._new[key] = None
        self._rows[key] = row

    def __contains__(self, key: object) -> bool:
        return key in self._rows or (bool(self._ids) and self._row_of(key) is not None)

    def __iter__(self) -> Iterator[str]:
        if not self._ids:
            return iter(self._rows)
        return itertools.chain(self._ids, self._new)

    def __len__(self) -> int:
        return len(self._ids) + len(self._new) if self._ids else len(self._rows)

    def values(self) -> ValuesView[dict[str, Any]]:
        self._build_all()
        return self._rows.values()

    def items(self) -> ItemsView[str, dict[str, Any]]:
        self._build_all()
        return self._rows.items()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Offers):
            return isinstance(other, Mapping) and len(self) == len(other) and dict(self.items()) == dict(other.items())
        if len(self) != len(other):
            return False
        if list(self) != list(other):  # the same offers in another order: compare as dicts do
            return dict(self.items()) == dict(other.items())
        if any(self.column(f) != other.column(f) for f in FIELDS):
            return False
        return self._shapes() == other._shapes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._ids:
            return f"Offers({len(self):,} offers, {len(self._ids) - self.built:,} of them as columns)"
        return f"Offers({self._rows!r})"

    # -- bulk reads ----------------------------------------------------------------------------
    @property
    def built(self) -> int:
        """How many of the offers held as columns have their dict built."""
        return len(self._rows) - len(self._new) if self._ids else 0

    def column(self, field: str, default: Any = None) -> list[Any]:
        """One field of every offer, in order (``default`` for an offer without it), without
        building any offer's dict.

        Parameters
        ----------
        field : str
            A field (one of :data:`FIELDS`, or one some offers have).
        default : Any, optional
            The value for an offer without the field.

        Returns
        -------
        list
            One value per offer.
        """
        if not self._ids:
            if field in _FIELD_SET:
                try:
                    return list(map(operator.itemgetter(field), self._rows.values()))
                except KeyError:
                    pass
            return [row.get(field, default) for row in self._rows.values()]
        if field in FIELDS:
            col = self._cols[FIELDS.index(field)]
            out = col.tolist() if isinstance(col, (Coded, Ints)) else list(col)
        else:
            out = [default] * len(self._ids)
        if self._rows:
            new, row_of = self._new, self._row_of
            for key, row in self._rows.items():
                if key not in new:
                    out[row_of(key)] = row.get(field, default)  # type: ignore[index]
            out += [self._rows[key].get(field, default) for key in new]
        return out

    def extras(self) -> dict[str, dict[str, Any]]:
        """The fields beyond :data:`FIELDS` of the offers that have any, by offer id (an offer
        holds every field of :data:`FIELDS`, so one with more fields has some)."""
        n = len(FIELDS)
        return {key: {k: v for k, v in row.items() if k not in _FIELD_SET}
                for key, row in self._rows.items() if len(row) > n}

    def _shapes(self) -> dict[str, tuple[frozenset[str], tuple[tuple[str, Any], ...]]]:
        """Per offer with a dict, its fields and the values of those beyond :data:`FIELDS` (what
        :meth:`column` comparisons leave out)."""
        return {key: (frozenset(row), tuple(sorted((k, v) for k, v in row.items() if k not in FIELDS)))
                for key, row in self._rows.items() if set(row) != set(FIELDS)}

    def _build_all(self) -> None:
        """Build every offer's dict and hold them all as dicts from now on (a plain dict's speed
        for readers that go through them all)."""
        if not self._ids:
            return
        built = map(_offer_row, *[c.tolist() if isinstance(c, (Coded, Ints)) else c for c in self._cols])
        ordered = dict(zip(self._ids, built, strict=True))
        ordered.update(self._rows)  # those built or set before (new ones last, in the order they were set)
        self._rows, self._ids, self._cols, self._new = ordered, [], (), {}
        self._pos, self._sorted, self._order = {}, [], []

    # -- copies --------------------------------------------------------------------------------
    def copy(self) -> Offers:
        """A copy whose offers' dicts are copies (the columns, never changed, are shared)."""
        twin = Offers.__new__(Offers)
        twin._ids, twin._cols, twin._pos, twin._new = self._ids, self._cols, self._pos, dict(self._new)
        twin._sorted, twin._order = self._sorted, self._order
        twin._rows = {key: dict(row) for key, row in self._rows.items()}
        return twin

    def __copy__(self) -> Offers:
        twin = Offers.__new__(Offers)
        twin._ids, twin._cols, twin._pos, twin._new = self._ids, self._cols, self._pos, dict(self._new)
        twin._sorted, twin._order = self._sorted, self._order
        twin._rows = dict(self._rows)
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> Offers:
        twin = Offers.__new__(Offers)
        twin._ids, twin._cols, twin._pos, twin._new = self._ids, self._cols, self._pos, dict(self._new)
        twin._sorted, twin._order = self._sorted, self._order
        twin._rows = _copy.deepcopy(self._rows, memo)
        return twin

    def __reduce__(self) -> tuple[Any, ...]:
        return Offers, (dict(self.items()),)
