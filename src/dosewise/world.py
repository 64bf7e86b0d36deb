"""World: the columnar state a policy sees.

Participants are rows of a frame and of every array (same order); products and lots are
columns. Nothing here holds one Python object per participant.

======================  ==========================  =============================================
attribute               shape                       meaning
======================  ==========================  =============================================
``participants``        frame, n rows               name, population, share_65plus, income_level,
                                                    age_structure_like (proxy country for age data),
                                                    region, coverage_cap, capacity_per_week,
                                                    min_shelf_life_days, lead_time_days,
                                                    people_covered, parent
``pop_by_age``          (n, 21) float               WPP 2024 bands 0-4 … 100+ (NaN row: no age data)
``products``            frame, m rows               catalogue columns (doses_per_course, …)
``accepts``             (n, m) bool                 standing acceptance, regulatory approval and
                                                    indemnity for a product
``interested``          (n, m) bool                 products a participant has asked for
``storage_ok``          (n, m) bool                 the participant's cold chain can hold the product
``lots``                frame, L rows               product, doses, available, expiry, source,
                                                    available_day, expiry_day (day offsets)
======================  ==========================  =============================================

One time axis: day ``d`` is ``day0 + d`` days, ``day0`` being the scenario's ``as_of`` (else the
earliest lot availability). Rounds, the impact model's roll-out and the LP count days on it
(:meth:`World.days`, :meth:`World.date`, :meth:`World.lot_days`); dates are converted to it
where they enter (a scenario, a command, the ledger's recorded ISO dates) and back where they
leave.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.errors import ReferenceDataError
from dosewise.products import STORAGE_CLASSES, Product, catalogue, products_frame, resolve_product
from dosewise.reference.countries import country_info
from dosewise.reference.groups import group_members
from dosewise.reference.population import AGE_BANDS, population_by_age, wpp_coverage
from dosewise.scenario import Earmarks, ParticipantProfile, Scenario
from dosewise.units import UnitTable

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DateLike = dt.date | str | np.datetime64
"""A date as it enters: ``datetime.date`` (``datetime`` and ``pandas.Timestamp`` count by their
date), an ISO ``YYYY-MM-DD`` string (the ledger's recorded form) or ``numpy.datetime64``."""

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _ordinal(when: DateLike) -> int:
    if isinstance(when, dt.date):  # also datetime and pandas.Timestamp: their date
        return when.toordinal()
    if isinstance(when, str):
        return dt.date.fromisoformat(when[:10]).toordinal()
    if isinstance(when, np.datetime64):
        return int(when.astype("datetime64[D]").astype(np.int64)) + _EPOCH_ORDINAL
    raise TypeError(f"not a date: {when!r}")


def _ordinals(when: Any) -> IntArray:
    """Ordinals of many dates at once (one NumPy pass for datetime columns)."""
    if isinstance(when, pd.Series | pd.Index) or (isinstance(when, np.ndarray) and when.dtype.kind == "M"):
        values = np.asarray(pd.DatetimeIndex(when).values.astype("datetime64[D]").astype(np.int64))
        return values + _EPOCH_ORDINAL
    if not isinstance(when, Iterable):
        raise TypeError(f"not a date: {when!r}")
    return np.fromiter((_ordinal(w) for w in when), dtype=np.int64)

DEFAULT_MIN_SHELF_LIFE_DAYS = 70
"""10 weeks: from 2022 COVAX asked that donated doses arrive with at least 10 weeks of shelf life."""


@dataclass(frozen=True)
class World:
    """The columnar state a policy sees: participants as rows, products and lots as columns.

    Made by :func:`build_world` from a scenario; every array's rows follow
    ``participants.index`` (see the table at the top of :mod:`dosewise.world`).

    Parameters
    ----------
    participants : pandas.DataFrame
        One row per participant (ISO3 code or unit id): name, population, share_65plus,
        income_level, region, coverage_cap, capacity_per_week, min_shelf_life_days,
        lead_time_days, people_covered, parent, age_structure_like.
    pop_by_age : numpy.ndarray
        (n, 21) people by WPP 2024 age band (a NaN row: no age data).
    products : pandas.DataFrame
        The catalogue's columns, one row per product id.
    product_catalogue : dict of str to Product
        The products themselves, with sources.
    accepts : numpy.ndarray
        (n, m) bool: standing acceptance, approval and indemnity for a product.
    interested : numpy.ndarray
        (n, m) bool: products a participant has asked for.
    storage_ok : numpy.ndarray
        (n, m) bool: the participant's cold chain can hold the product.
    lots : pandas.DataFrame
        One row per lot id: product, doses, available, expiry, source; ``available_day`` and
        ``expiry_day`` (day offsets on the world's axis) are added when missing.
    as_of : datetime.date, optional
        The scenario's ``as_of``.
    name : str, default "scenario"
        The scenario's name.
    meta : dict
        Extra settings carried along (e.g. ``meta["epidemic"]``).
    earmarked : numpy.ndarray, optional
        (n, L) bool: a donor's earmarks let the participant receive the lot (None: no earmarks).
    bilateral : numpy.ndarray, optional
        (L,) bool: the lot is a bilateral donation, offered outside the facility's policy.
    day0 : datetime.date, optional
        Day 0 of the time axis (default: ``as_of``, else the earliest lot availability).

    Examples
    --------
    >>> from dosewise import build_world, load_demo
    >>> world = build_world(load_demo())
    >>> world.n, world.pop_by_age.shape, list(world.lots.index)
    (92, (92, 21), ['SII-AZ-2021H1', 'AZ-2021H1'])
    """
    participants: pd.DataFrame
    pop_by_age: FloatArray
    products: pd.DataFrame
    product_catalogue: dict[str, Product]
    accepts: BoolArray
    interested: BoolArray
    storage_ok: BoolArray
    lots: pd.DataFrame
    as_of: dt.date | None = None
    name: str = "scenario"
    meta: dict[str, Any] = field(default_factory=dict)
    earmarked: BoolArray | None = None
    """(n, L): the donor's earmarks let the participant receive the lot (None: no earmarks)."""
    bilateral: BoolArray | None = None
    """(L,): the lot is a bilateral donation, offered to its recipient outside the facility's policy."""
    day0: dt.date | None = None
    """Day 0 of the world's time axis: the scenario's ``as_of``, else the earliest lot availability."""

    def __post_init__(self) -> None:
        """The time axis is built once: day 0 fixed, and each lot's dates as day offsets."""
        day0 = self.day0
        if day0 is None:
            day0 = self.as_of if self.as_of is not None else (
                dt.date.fromordinal(int(_ordinals(self.lots["available"]).min())) if len(self.lots) else None)
            object.__setattr__(self, "day0", day0)
        if day0 is not None and not {"available_day", "expiry_day"} <= set(self.lots.columns):
            origin = day0.toordinal()
            object.__setattr__(self, "lots", self.lots.assign(
                available_day=_ordinals(self.lots["available"]) - origin,
                expiry_day=_ordinals(self.lots["expiry"]) - origin))

    @overload
    def days(self, when: DateLike) -> int: ...

    @overload
    def days(self, when: pd.Series | pd.Index | npt.NDArray[Any] | list[DateLike] | tuple[DateLike, ...],
             ) -> IntArray: ...

    def days(self, when: Any) -> int | IntArray:
        """Day offsets on the world's axis: days from :attr:`day0` to ``when``.

        Parameters
        ----------
        when : date, str, numpy.datetime64, or a sequence, Series or Index of them
            A date (``datetime``/``Timestamp`` count by their date; strings are ISO
            ``YYYY-MM-DD``), or many.

        Returns
        -------
        int or numpy.ndarray
            The offset (negative before day 0), or an int64 array of them for many dates.

        Raises
        ------
        TypeError
            A value that is not a date.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import build_world, load_demo
        >>> world = build_world(load_demo())
        >>> world.day0, world.days(dt.date(2021, 2, 22)), world.days("2021-02-01")
        (datetime.date(2021, 2, 3), 19, -2)
        >>> world.days(world.lots["expiry"]).tolist()
        [292, 200]
        """
        origin = self._origin()
        if isinstance(when, dt.date | str | np.datetime64):
            return _ordinal(when) - origin
        return _ordinals(when) - origin

    def date(self, offset: int | np.integer[Any]) -> dt.date:
        """The date of a day offset on the world's axis.

        Parameters
        ----------
        offset : int
            Days from :attr:`day0`.

        Returns
        -------
        datetime.date
            ``day0 + offset`` days.

        Examples
        --------
        >>> from dosewise import build_world, load_demo
        >>> world = build_world(load_demo())
        >>> world.date(19), world.date(world.days("2021-08-22"))
        (datetime.date(2021, 2, 22), datetime.date(2021, 8, 22))
        """
        return dt.date.fromordinal(self._origin() + int(offset))

    def lot_days(self, start: dt.date | None = None, lots: pd.DataFrame | None = None,
                 ) -> tuple[dt.date, IntArray, IntArray]:
        """Each lot's available and expiry day counted from ``start``, on the world's axis.

        What the impact model's roll-out and the LP count their days from.

        Parameters
        ----------
        start : datetime.date, optional
            The day to count from (default: the earliest availability of the lots).
        lots : pandas.DataFrame, optional
            Lots with ``available`` and ``expiry`` (e.g. an allocation's); default this world's,
            whose day offsets are read from its columns.

        Returns
        -------
        tuple of (datetime.date, numpy.ndarray, numpy.ndarray)
            ``start`` (or the earliest availability), and the (L,) int64 available and expiry
            days from it.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import build_world, load_demo
        >>> world = build_world(load_demo())
        >>> start, available, expiry = world.lot_days()
        >>> start, available.tolist(), expiry.tolist()
        (datetime.date(2021, 2, 22), [0, 0], [273, 181])
        >>> world.lot_days(dt.date(2021, 3, 1))[1].tolist()
        [-7, -7]
        """
        if lots is None or lots is self.lots:
            lots = self.lots
            available = lots["available_day"].to_numpy(dtype=np.int64)
            expiry = lots["expiry_day"].to_numpy(dtype=np.int64)
        else:
            available = self.days(lots["available"])
            expiry = self.days(lots["expiry"])
        first = self.days(start) if start is not None else int(available.min())
        return self.date(first), available - first, expiry - first

    def _origin(self) -> int:
        if self.day0 is None:
            raise ValueError("the world has no lots and no as_of: it has no time axis")
        return self.day0.toordinal()

    @property
    def codes(self) -> pd.Index:
        """The participants' codes, in row order.

        Returns
        -------
        pandas.Index
            ISO3 codes (or unit ids).

        Examples
        --------
        >>> from dosewise import build_world, load_demo
        >>> list(build_world(load_demo()).codes[:3])
        ['AFG', 'AGO', 'BDI']
        """
        return self.participants.index

    @property
    def n(self) -> int:
        """The number of participants.

        Returns
        -------
        int
            Rows of every participant array.

        Examples
        --------
        >>> from dosewise import build_world, load_demo
        >>> build_world(load_demo()).n
        92
        """
        return len(self.participants)

    @property
    def population(self) -> FloatArray:
        """Population per participant, in row order.

        Returns
        -------
        numpy.ndarray
            (n,) float, people.

        Examples
        --------
        >>> from dosewise import build_world, load_demo
        >>> world = build_world(load_demo())
        >>> bool(world.population.min() > 10_000)
        True
        """
        return self.participants["population"].to_numpy(dtype=np.float64)

    def product_index(self, product_id: str) -> int:
        """The row of a product in :attr:`products` (and the column of ``accepts``, ``storage_ok``…).

        Parameters
        ----------
        product_id : str
            A product id of the world.

        Returns
        -------
        int
            Its position.

        Examples
        --------
        >>> from dosewise import build_world, load_demo
        >>> world = build_world(load_demo())
        >>> world.products.index[world.product_index("AZD1222")]
        'AZD1222'
        """
        return int(np.flatnonzero(self.products.index == product_id)[0])

    def lot_products(self) -> npt.NDArray[np.intp]:
        """Index into ``products`` of each lot's product.

        Returns
        -------
        numpy.ndarray
            (L,) int positions.

        Examples
        --------
        >>> from dosewise import build_world, load_demo
        >>> world = build_world(load_demo())
        >>> list(world.products.index[world.lot_products()])
        ['Covishield', 'AZD1222']
        """
        return self.products.index.get_indexer(pd.Index(self.lots["product"])).astype(np.intp)

    def usable(self) -> BoolArray:
        """Which participant may receive which lot.

        Returns
        -------
        numpy.ndarray
            (n, L) bool: the participant accepts, is approved for and can store the lot's product,
            within any donor earmarks; bilateral lots are never usable by the facility's policy.

        Examples
        --------
        >>> from dosewise import build_world, load_demo
        >>> world = build_world(load_demo())
        >>> world.usable().shape, bool(world.usable().all())
        ((92, 2), True)
        """
        idx = self.lot_products()
        out = self.accepts[:, idx] & self.storage_ok[:, idx]
        if self.earmarked is not None:  # a donor's earmarks are hard constraints for every policy
            out = out & self.earmarked
        if self.bilateral is not None:  # bilateral lots are outside the facility's allocation
            out = out & ~self.bilateral[None, :]
        return np.asarray(out, dtype=np.bool_)

    def with_participants(self, participants: pd.DataFrame) -> World:
        """The same world with another participants frame (same rows, e.g. edited columns).

        Parameters
        ----------
        participants : pandas.DataFrame
            The new frame, in the same row order as the arrays.

        Returns
        -------
        World
            A new world; this one is unchanged.

        Examples
        --------
        >>> from dosewise import build_world, load_demo
        >>> world = build_world(load_demo())
        >>> capped = world.with_participants(world.participants.assign(coverage_cap=0.2))
        >>> float(capped.participants["coverage_cap"].max()), world is capped
        (0.2, False)
        """
        return World(**{**self.__dict__, "participants": participants})


def _merge(defaults: ParticipantProfile, override: ParticipantProfile | None) -> dict[str, Any]:
    out = defaults.model_dump()
    if override is not None:
        for k, v in override.model_dump(exclude_unset=True).items():
            out[k] = v
    return out


def _product_mask(names: tuple[str, ...] | None, prods: dict[str, Product], ids: list[str]) -> BoolArray:
    mask = np.zeros(len(ids), dtype=np.bool_)
    for name in names or ():
        pid = resolve_product(name, prods)
        if pid is not None:
            mask[ids.index(pid)] = True
    return mask


def _min_shelf_life(own: int | None, rule: int) -> int:
    return rule if own is None else int(own)


_COLUMNS = ("name", "parent", "age_structure_like", "population", "population_source", "share_65plus",
            "income_level", "region", "coverage_cap", "capacity_per_week", "min_shelf_life_days",
            "lead_time_days", "people_covered")


@dataclass
class _Block:
    """Columns, age rows and product masks for a run of participants, joined at the end."""

    codes: list[str] | npt.NDArray[np.object_]
    cols: dict[str, Any]
    pop_by_age: FloatArray
    accepts: BoolArray
    interested: BoolArray
    storage_ok: BoolArray
    coded: dict[str, tuple[npt.NDArray[np.intp], list[Any]]] = field(default_factory=dict)
    """Text columns also held as (row → index into values, -1 = none; the values), for a block of units: the
    world's string columns are built from these without a pass over the rows (:func:`_text_columns`)."""


def _country_block(sc: Scenario, codes: list[str], prods: dict[str, Product], ids: list[str],
                   storage: npt.NDArray[np.intp], covered: frozenset[str]) -> _Block:
    """Countries (at most a few hundred): one pass over them, overrides applied per country."""
    p = sc.participants
    overrides = {k.upper(): v for k, v in p.overrides.items()}
    n, m = len(codes), len(ids)
    rows: list[dict[str, Any]] = []
    pop_by_age = np.full((n, len(AGE_BANDS)), np.nan)
    accepts = np.ones((n, m), dtype=np.bool_)
    interested = np.zeros((n, m), dtype=np.bool_)
    storage_ok = np.ones((n, m), dtype=np.bool_)
    missing: list[str] = []
    wpp_codes = [c for c in codes if c in covered]
    wpp = dict(zip(wpp_codes, population_by_age(wpp_codes, sc.year), strict=True)) if wpp_codes else {}
    for i, code in enumerate(codes):
        prof = _merge(p.defaults, overrides.get(code))
        info = country_info(code)
        like = prof.get("age_structure_like")
        population = prof.get("population")
        base = wpp.get(code)
        # `age_structure_like` lends the age SHAPE only: the head count comes from WPP or the scenario
        if population is None and base is None:
            missing.append(code)
            continue
        shape = base
        if base is None and like is not None:
            like = like.upper()
            if like not in covered:
                raise ReferenceDataError(f"{code}: age_structure_like {like} has no UN WPP 2024 population")
            shape = population_by_age([like], sc.year)[0]
        if shape is not None:
            pop_by_age[i] = shape * (population / float(shape.sum())) if population is not None else shape
        pop = float(population) if population is not None else float(base.sum())  # type: ignore[union-attr]
        share65 = float(pop_by_age[i, 13:].sum() / pop) if shape is not None else np.nan
        if prof.get("accepts") is not None:
            accepts[i] = _product_mask(prof["accepts"], prods, ids)
        # regulatory approval and indemnity agreements, when listed, restrict what can be offered
        for listed in ("approved", "indemnified"):
            if prof.get(listed) is not None:
                accepts[i] &= _product_mask(prof[listed], prods, ids)
        accepts[i] &= ~_product_mask(prof.get("declines"), prods, ids)
        interested[i] = _product_mask(prof.get("interested_in"), prods, ids)
        if prof.get("cold_chain") is not None:
            coldest = min(STORAGE_CLASSES.index(c) for c in prof["cold_chain"])
            storage_ok[i] = storage >= coldest
        cap = prof.get("coverage_cap")
        rows.append(
            {
                "name": info.name,
                "parent": None,
                "age_structure_like": like.upper() if isinstance(like, str) else None,
                "population": pop,
                "population_source": prof.get("population_source")
                or ("UN WPP 2024 (starsim-data)" if code in covered and population is None else None),
                "share_65plus": share65,
                "income_level": info.income_level,
                "region": info.region,
                "coverage_cap": np.nan if cap is None else float(cap),
                "capacity_per_week": float(prof.get("capacity_per_week") or np.inf),
                "min_shelf_life_days": _min_shelf_life(prof.get("min_shelf_life_days"), sc.round.min_shelf_life_days),
                "lead_time_days": int(prof.get("lead_time_days") or 0),  # no lead time unless stated
                "people_covered": float(prof.get("people_covered") or 0.0),
            }
        )
    if missing:
        lent = [c for c in missing if _merge(p.defaults, overrides.get(c)).get("age_structure_like")]
        raise ReferenceDataError(
            "no population for "
            + ", ".join(f"{c} ({country_info(c).name})" for c in missing)
            + ": UN WPP 2024 in starsim-data does not cover them; supply `population:` with its source under "
            + ", ".join(f"participants.overrides.{c}" for c in missing[:5])
            + " in the scenario"
            + (f" (`age_structure_like:` lends {', '.join(lent[:5])} an age shape only, never a head count)"
               if lent else " (and `age_structure_like:` for the impact model)")
        )
    cols = {c: [r[c] for r in rows] for c in _COLUMNS}
    return _Block(codes, cols, pop_by_age, accepts, interested, storage_ok)


def _none(col: npt.NDArray[Any]) -> BoolArray:
    """Where an object column holds None."""
    return np.asarray(pd.isna(col), dtype=np.bool_)


def _factor_codes(col: npt.NDArray[Any] | None, n: int) -> tuple[npt.NDArray[np.intp], list[str]]:
    """Upper-cased, stripped text column as (row → index into distinct values, -1 = none; the values)."""
    if col is None:
        return np.full(n, -1, dtype=np.intp), []
    idx, uniques = pd.factorize(col)
    values = [str(v).strip().upper() for v in uniques]
    distinct = list(dict.fromkeys(values))
    if len(distinct) != len(values):  # "ken" and "KEN": one value
        remap = np.array([distinct.index(v) for v in values] + [-1], dtype=np.intp)
        idx = remap[idx]
    return np.asarray(idx, dtype=np.intp), distinct


def _isin(col: npt.NDArray[Any], values: frozenset[str]) -> BoolArray:
    return np.asarray(pd.Index(col).isin(list(values)), dtype=np.bool_)


def _text_column(units: UnitTable, name: str, default: Any, n: int) -> npt.NDArray[np.object_]:
    col = units.get(name)
    if col is None:
        return np.full(n, default, dtype=object)
    if default is None:
        return col
    return np.where(_none(col), default, col)


def _number_column(units: UnitTable, name: str, default: float | None, n: int) -> FloatArray:
    col = units.get(name)
    fill = np.nan if default is None else float(default)
    if col is None:
        return np.full(n, fill)
    return np.where(np.isnan(col), fill, col)


def _factorize(col: npt.NDArray[np.object_] | None, default: tuple[str, ...] | None,
               n: int) -> tuple[npt.NDArray[np.intp], list[tuple[str, ...] | None]]:
    """A list column as (row → index into its distinct values, the values); a row with nothing
    given takes ``default`` (index 0)."""
    if col is None:
        return np.zeros(n, dtype=np.intp), [default]
    idx, uniques = pd.factorize(col)
    return np.asarray(idx, dtype=np.intp) + 1, [default, *uniques.tolist()]


def _unit_block(sc: Scenario, units: UnitTable, prods: dict[str, Product], ids: list[str],
                storage: npt.NDArray[np.intp], covered: frozenset[str]) -> _Block:
    """Units, any number: every column at once; per-unit overrides (rare) applied afterwards."""
    p = sc.participants
    d = p.defaults
    n, m = len(units), len(ids)
    codes = units.ids
    population = units.get("population")
    assert population is not None  # a required column
    # text columns are factorised (hash tables in C): per-row work is integer indexing only
    parent_idx, parents = _factor_codes(units.get("parent"), n)
    like_idx, likes = _factor_codes(units.get("age_structure_like"), n)
    if d.age_structure_like is not None:  # the scenario's default stands in where a unit names none
        likes.append(d.age_structure_like.strip().upper())
        like_idx = np.where(like_idx < 0, len(likes) - 1, like_idx)
    # the age-structure key: the unit's own id if WPP covers it, else its `like`, else its parent
    own = _isin(codes, covered)
    used_like = np.bincount(like_idx[(like_idx >= 0) & ~own], minlength=len(likes)) > 0
    via_parent = (like_idx < 0) & (parent_idx >= 0) & ~own
    used_parent = np.bincount(parent_idx[via_parent], minlength=len(parents)) > 0
    for distinct, used, idx in ((likes, used_like, like_idx), (parents, used_parent, parent_idx)):
        for j, v in enumerate(distinct):
            if used[j] and v not in covered:
                first = codes[int(np.flatnonzero((idx == j) & ~own)[0])]
                raise ReferenceDataError(f"{first}: age_structure_like {v} has no UN WPP 2024 population")
    names = sorted(covered.intersection(likes) | covered.intersection(parents) | set(codes[own].tolist()))
    position = {c: i for i, c in enumerate(names)}
    like_key = np.array([position.get(v, -1) for v in likes] + [-1], dtype=np.intp)[like_idx]
    parent_key = np.array([position.get(v, -1) for v in parents] + [-1], dtype=np.intp)[parent_idx]
    key = np.where(like_key >= 0, like_key, parent_key)
    if own.any():
        key[own] = [position[c] for c in codes[own].tolist()]
    has_key = key >= 0
    if names:
        base = population_by_age(names, sc.year)
        shares = base / base.sum(axis=1, keepdims=True)
        # one (n, 21) array, filled in place: no (n, 21) temporaries for a million units
        pop_by_age = np.take(shares, np.where(has_key, key, 0), axis=0)
        pop_by_age *= population[:, None]
        pop_by_age[~has_key] = np.nan
        share65 = np.where(has_key, shares[:, 13:].sum(axis=1)[np.where(has_key, key, 0)], np.nan)
    else:
        pop_by_age = np.full((n, len(AGE_BANDS)), np.nan)
        share65 = np.full(n, np.nan)
    parent = np.array([*parents, None], dtype=object)[parent_idx]
    like_out = np.where(like_idx >= 0, np.array([*likes, None], dtype=object)[like_idx], parent)

    def mask_of(names: tuple[str, ...] | None) -> BoolArray:
        return _product_mask(names, prods, ids)

    accepts = np.ones((n, m), dtype=np.bool_)
    for field_name in ("accepts", "approved", "indemnified"):
        col = units.get(field_name)
        default = getattr(d, field_name)
        if col is None and default is None:
            continue
        rows, values = _factorize(col, default, n)
        accepts &= np.stack([np.ones(m, dtype=np.bool_) if v is None else mask_of(v) for v in values])[rows]
    rows, values = _factorize(units.get("declines"), d.declines, n)
    accepts &= ~np.stack([mask_of(v) for v in values])[rows]
    rows, values = _factorize(units.get("interested_in"), d.interested_in, n)
    interested = np.stack([mask_of(v) for v in values])[rows]

    def storage_of(classes: tuple[str, ...] | None) -> BoolArray:
        if classes is None:
            return np.ones(m, dtype=np.bool_)
        return np.asarray(storage >= min(STORAGE_CLASSES.index(c) for c in classes), dtype=np.bool_)

    rows, values = _factorize(units.get("cold_chain"), d.cold_chain, n)
    storage_ok = np.stack([storage_of(v) for v in values])[rows]

    # income level and region from the parent country, once per distinct parent
    infos = [country_info(c) for c in parents]
    incomes = [i.income_level for i in infos]
    regions = [i.region for i in infos]
    income = np.array([*incomes, None], dtype=object)[parent_idx]
    region = np.array([*regions, None], dtype=object)[parent_idx]

    cap = _number_column(units, "coverage_cap", d.coverage_cap, n)
    caps = sc.policy.caps
    if caps:  # a policy cap on the participant's code (or its lower case) wins over coverage_cap
        for i, code in enumerate(codes.tolist()):
            if code in caps:
                cap[i] = float(caps[code])
            elif code.lower() in caps:
                cap[i] = float(caps[code.lower()])
    name = units.get("name")
    cols: dict[str, Any] = {
        "name": codes if name is None else np.where(_none(name), codes, name),
        "parent": parent,
        "age_structure_like": like_out,
        "population": population,
        "population_source": _text_column(units, "population_source", d.population_source, n),
        "share_65plus": share65,
        "income_level": income,
        "region": region,
        "coverage_cap": cap,
        "capacity_per_week": _number_column(units, "capacity_per_week", d.capacity_per_week or np.inf, n),
        "min_shelf_life_days": _number_column(
            units, "min_shelf_life_days",
            sc.round.min_shelf_life_days if d.min_shelf_life_days is None else d.min_shelf_life_days, n
        ).astype(np.int64),
        "lead_time_days": _number_column(units, "lead_time_days", d.lead_time_days or 0, n).astype(np.int64),
        "people_covered": _number_column(units, "people_covered", d.people_covered or 0.0, n),
    }
    like_codes = np.where(like_idx >= 0, like_idx, np.where(parent_idx >= 0, len(likes) + parent_idx, -1))
    coded: dict[str, tuple[npt.NDArray[np.intp], list[Any]]] = {
        "parent": (parent_idx, list(parents)),
        "age_structure_like": (like_codes, [*likes, *parents]),
        "income_level": (parent_idx, incomes), "region": (parent_idx, regions)}
    block = _Block(codes, cols, pop_by_age, accepts, interested, storage_ok, coded)
    _apply_unit_overrides(sc, block, prods, ids, storage, covered)
    return block


def _apply_unit_overrides(sc: Scenario, block: _Block, prods: dict[str, Product], ids: list[str],
                          storage: npt.NDArray[np.intp], covered: frozenset[str]) -> None:
    """``participants.overrides`` keyed by a unit id: applied on top of the unit's own columns."""
    overrides = {k.upper(): v for k, v in sc.participants.overrides.items()}
    if not overrides:
        return
    position = {str(c).upper(): i for i, c in enumerate(block.codes)}
    hits = [(position[k], prof) for k, prof in overrides.items() if k in position]
    if not hits:
        return
    block.coded.clear()  # the columns change below: the coded form no longer holds
    # the columns may be the scenario's own arrays: change copies
    c = block.cols
    for name in _COLUMNS:
        c[name] = np.array(c[name], copy=True)
    caps = sc.policy.caps
    for i, prof in hits:
        given = prof.model_dump(exclude_unset=True)
        code = str(block.codes[i])
        if "population" in given:
            old = float(c["population"][i])
            c["population"][i] = float(given["population"])
            if not np.isnan(block.pop_by_age[i, 0]):
                block.pop_by_age[i] *= float(given["population"]) / old
        if "age_structure_like" in given and given["age_structure_like"] is not None:
            like = str(given["age_structure_like"]).upper()
            if like not in covered:
                raise ReferenceDataError(f"{block.codes[i]}: age_structure_like {like} has no UN WPP 2024 population")
            base = population_by_age([like], sc.year)[0]
            block.pop_by_age[i] = base / base.sum() * c["population"][i]
            c["age_structure_like"][i] = like
        if not np.isnan(block.pop_by_age[i, 0]):
            c["share_65plus"][i] = block.pop_by_age[i, 13:].sum() / c["population"][i]
        for name in ("population_source",):
            if name in given:
                c[name][i] = given[name]
        for name, fill in (("coverage_cap", np.nan), ("capacity_per_week", np.inf), ("people_covered", 0.0)):
            if name in given and not (name == "coverage_cap" and (code in caps or code.lower() in caps)):
                c[name][i] = fill if given[name] is None else float(given[name])
        if "min_shelf_life_days" in given:
            c["min_shelf_life_days"][i] = _min_shelf_life(given["min_shelf_life_days"], sc.round.min_shelf_life_days)
        if "lead_time_days" in given:
            c["lead_time_days"][i] = int(given["lead_time_days"] or 0)
        for name in ("accepts", "approved", "indemnified"):
            if given.get(name) is not None:
                block.accepts[i] &= _product_mask(given[name], prods, ids)
        if given.get("declines"):
            block.accepts[i] &= ~_product_mask(given["declines"], prods, ids)
        if "interested_in" in given:
            block.interested[i] = _product_mask(given["interested_in"], prods, ids)
        if given.get("cold_chain") is not None:
            block.storage_ok[i] = storage >= min(STORAGE_CLASSES.index(x) for x in given["cold_chain"])


def build_world(sc: Scenario) -> World:
    """Resolve a validated scenario against the reference data into columnar state.

    Countries (from ``group`` and ``include``) are resolved one by one (there are at most a few
    hundred); units are resolved column by column, so a million of them cost what a few NumPy
    passes cost.

    Parameters
    ----------
    sc : Scenario
        A validated scenario.

    Returns
    -------
    World
        Participants, products, lots and the masks between them.

    Raises
    ------
    ReferenceDataError
        A participant without a UN WPP 2024 population and none given in the scenario.

    Examples
    --------
    >>> from dosewise import build_world, load_demo
    >>> world = build_world(load_demo())
    >>> world.participants.loc["PRK", "income_level"], int(world.lots.loc["AZ-2021H1", "doses"])
    ('Low', 96000000)
    """
    prods = catalogue(sc.products)
    ids = list(prods)
    p = sc.participants
    excluded = {c.upper() for c in p.exclude}
    codes = [c for c in (group_members(p.group) if p.group else []) if c not in excluded]
    codes += [c.upper() for c in p.include if c.upper() not in excluded]
    covered = wpp_coverage()
    storage = np.array([STORAGE_CLASSES.index(prods[i].storage_class) for i in ids], dtype=np.intp)
    blocks = [_country_block(sc, codes, prods, ids, storage, covered)]
    if p.units:
        blocks.append(_unit_block(sc, p.units, prods, ids, storage, covered))
    blocks = [b for b in blocks if len(b.codes)] or blocks[:1]
    text = ("name", "parent", "age_structure_like", "population_source", "income_level", "region")

    def joined(get: Any, dtype: Any = None) -> Any:
        parts = [np.asarray(get(b), dtype=dtype) for b in blocks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    columns = {c: joined(lambda b, c=c: b.cols[c], object if c in text else None) for c in _COLUMNS}
    all_codes = joined(lambda b: b.codes, object)
    if len(all_codes) >= _CODED_MIN_ROWS:
        columns.update(_text_columns(blocks, columns, all_codes))
    pop_by_age = joined(lambda b: b.pop_by_age)
    accepts = joined(lambda b: b.accepts)
    interested = joined(lambda b: b.interested)
    storage_ok = joined(lambda b: b.storage_ok)
    frame = pd.DataFrame(
        {
            "name": columns["name"],
            "parent": columns["parent"],
            "age_structure_like": columns["age_structure_like"],
            "population": columns["population"].astype(np.float64),
            "population_source": columns["population_source"],
            "share_65plus": columns["share_65plus"].astype(np.float64),
            "income_level": columns["income_level"],
            "region": columns["region"],
            "coverage_cap": columns["coverage_cap"].astype(np.float64),
            "capacity_per_week": columns["capacity_per_week"].astype(np.float64),
            "min_shelf_life_days": columns["min_shelf_life_days"].astype(np.int64),
            "lead_time_days": columns["lead_time_days"].astype(np.int64),
            "people_covered": columns["people_covered"].astype(np.float64),
        },
        index=pd.Index(columns.pop("_index", all_codes), name="code"),
    )
    lots = pd.DataFrame(
        [
            {
                "lot": lot.id,
                "product": resolve_product(lot.product, prods),
                "doses": int(lot.doses),
                "available": pd.Timestamp(lot.available),
                "expiry": pd.Timestamp(lot.expiry),
                "source": lot.source,
            }
            for lot in sc.lots
        ]
    ).set_index("lot")
    earmarked = np.column_stack([earmark_mask(frame, lot.earmarks) for lot in sc.lots])
    bilateral = np.array([lot.bilateral for lot in sc.lots], dtype=np.bool_)
    return World(
        participants=frame,
        pop_by_age=pop_by_age,
        products=products_frame(prods),
        product_catalogue=prods,
        accepts=accepts,
        interested=interested,
        storage_ok=storage_ok,
        lots=lots,
        as_of=sc.as_of,
        name=sc.name,
        meta={"year": sc.year, "sources": dict(sc.sources), "epidemic": sc.epidemic},
        earmarked=earmarked if not earmarked.all() else None,
        bilateral=bilateral if bilateral.any() else None,
    )


_CODED_MIN_ROWS = 10_000
"""Below this many participants the text columns are converted as they are (a few milliseconds)."""


@functools.cache
def _arrow_str() -> Any:
    """pandas' default string dtype when it is Arrow-backed (pandas 3: ``str``), else None."""
    dtype = pd.Series(["a"]).dtype
    return dtype if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow" else None


def _text_columns(blocks: list[_Block], columns: dict[str, Any], codes: npt.NDArray[np.object_]) -> dict[str, Any]:
    """The world's string columns built as pandas would build them from the object columns (its default
    string dtype), but from the blocks' coded form where there is one: a dictionary-encoded Arrow array
    decoded in C, instead of a check and copy of every row's text (a third of the world's build at
    100,000 units). The codes are converted once, for the index and for a ``name`` column that repeats
    them. Under a pandas without an Arrow string default, nothing changes."""
    import pyarrow as pa

    dtype = _arrow_str()
    if dtype is None:
        return {}
    out: dict[str, Any] = {}
    index = pd.array(pa.array(codes, type=pa.large_string()), dtype=dtype)
    out["_index"] = index
    if columns["name"] is codes:  # units without names: the name column is the codes array itself
        out["name"] = index
    for name in ("parent", "age_structure_like", "income_level", "region"):
        pairs = [b.coded.get(name) or _factorized(b.cols[name]) for b in blocks]
        values_all = [v for _, values in pairs for v in values]
        if any(v is not None and type(v) is not str for v in values_all):
            continue  # not text: pandas decides as before
        offsets = np.cumsum([0, *(len(values) for _, values in pairs)])
        rows = np.concatenate([np.where(idx >= 0, idx + off, -1)
                               for (idx, _), off in zip(pairs, offsets, strict=False)])
        if all(values_all[i] is None for i in np.unique(rows[rows >= 0]).tolist()):
            continue  # no text in the column at all: pandas keeps it as objects (None), so do we
        dictionary = pa.array(values_all, type=pa.large_string())
        encoded = pa.DictionaryArray.from_arrays(pa.array(rows.astype(np.int32), mask=rows < 0), dictionary)
        out[name] = pd.array(encoded.dictionary_decode(), dtype=dtype)
    return out


def _factorized(col: Any) -> tuple[npt.NDArray[np.intp], list[Any]]:
    idx, uniques = pd.factorize(np.asarray(col, dtype=object))
    return np.asarray(idx, dtype=np.intp), list(uniques)


def earmark_mask(participants: pd.DataFrame, earmarks: Earmarks | Mapping[str, Any] | None) -> BoolArray:
    """(n,): which participants a lot's earmarks let receive it. Unit participants match regions
    and income levels through their parent country."""
    n = len(participants)
    if earmarks is None:
        return np.ones(n, dtype=np.bool_)
    e = earmarks if isinstance(earmarks, Earmarks) else Earmarks.model_validate(dict(earmarks))
    codes = np.asarray([str(c).upper() for c in participants.index], dtype=object)
    ok = np.ones(n, dtype=np.bool_)
    if e.recipients:
        ok &= np.isin(codes, [c.upper() for c in e.recipients])
    if e.regions:
        ok &= participants["region"].isin(list(e.regions)).to_numpy()
    if e.income_levels:
        ok &= participants["income_level"].isin(list(e.income_levels)).to_numpy()
    if e.exclude:
        ok &= ~np.isin(codes, [c.upper() for c in e.exclude])
    return ok


def participants_from_reference(codes: Sequence[str], year: int = 2020) -> pd.DataFrame:
    """Participants frame (name, population, share_65plus, income_level) from dosewise.reference:
    UN WPP 2024 population and the OCHA/World Bank income level. Codes WPP lacks get NaN
    population (flagged ``population_missing`` by the need score), never zero."""
    covered = wpp_coverage()
    have = [c for c in codes if c in covered]
    by_age = population_by_age(have, year)
    old = AGE_BANDS.index("65-69")
    frame = pd.DataFrame(index=pd.Index(list(codes), name="participant"))
    frame["name"] = [country_info(c).name for c in codes]
    total = pd.Series(by_age.sum(axis=1), index=have, dtype=float)
    frame["population"] = total.reindex(frame.index)
    frame["share_65plus"] = (pd.Series(by_age[:, old:].sum(axis=1), index=have, dtype=float) / total).reindex(
        frame.index
    )
    frame["income_level"] = [country_info(c).income_level for c in codes]
    return frame
