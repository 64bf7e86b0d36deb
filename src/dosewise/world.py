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
``lots``                frame, L rows               product, doses, available, expiry, source
======================  ==========================  =============================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.errors import ReferenceDataError
from dosewise.products import STORAGE_CLASSES, Product, catalogue, products_frame, resolve_product
from dosewise.reference.countries import country_info
from dosewise.reference.groups import group_members
from dosewise.reference.population import AGE_BANDS, population_by_age, wpp_coverage
from dosewise.scenario import ParticipantProfile, Scenario, Unit

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

DEFAULT_MIN_SHELF_LIFE_DAYS = 70
"""10 weeks: from 2022 COVAX asked that donated doses arrive with at least 10 weeks of shelf life."""


@dataclass(frozen=True)
class World:
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

    @property
    def codes(self) -> pd.Index:
        return self.participants.index

    @property
    def n(self) -> int:
        return len(self.participants)

    @property
    def population(self) -> FloatArray:
        return self.participants["population"].to_numpy(dtype=np.float64)

    def product_index(self, product_id: str) -> int:
        return int(np.flatnonzero(self.products.index == product_id)[0])

    def lot_products(self) -> npt.NDArray[np.intp]:
        """Index into ``products`` of each lot's product."""
        return self.products.index.get_indexer(pd.Index(self.lots["product"])).astype(np.intp)

    def usable(self) -> BoolArray:
        """(n, L): the participant accepts, is approved for and can store the lot's product."""
        idx = self.lot_products()
        return np.asarray(self.accepts[:, idx] & self.storage_ok[:, idx], dtype=np.bool_)

    def with_participants(self, participants: pd.DataFrame) -> World:
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


def build_world(sc: Scenario) -> World:
    """Resolve a validated scenario against the reference data into columnar state."""
    prods = catalogue(sc.products)
    ids = list(prods)
    p = sc.participants
    excluded = {c.upper() for c in p.exclude}
    codes = [c for c in (group_members(p.group) if p.group else []) if c not in excluded]
    codes += [c.upper() for c in p.include if c.upper() not in excluded]
    units: dict[str, Unit] = {u.id: u for u in p.units}
    codes += list(units)
    overrides = {k.upper(): v for k, v in p.overrides.items()}

    n, m = len(codes), len(ids)
    covered = wpp_coverage()
    rows: list[dict[str, Any]] = []
    pop_by_age = np.full((n, len(AGE_BANDS)), np.nan)
    accepts = np.ones((n, m), dtype=np.bool_)
    interested = np.zeros((n, m), dtype=np.bool_)
    storage_ok = np.ones((n, m), dtype=np.bool_)
    storage = np.array([STORAGE_CLASSES.index(prods[i].storage_class) for i in ids])
    missing: list[str] = []

    wpp_codes = [c for c in codes if c in covered]
    wpp = dict(zip(wpp_codes, population_by_age(wpp_codes, sc.year), strict=True)) if wpp_codes else {}

    for i, code in enumerate(codes):
        unit = units.get(code)
        prof = _merge(p.defaults, unit if unit is not None else overrides.get(code))
        if unit is not None:
            info_name = unit.name or unit.id
            parent = unit.parent.upper() if unit.parent else None
            pinfo = country_info(parent) if parent else None
            income, region = (pinfo.income_level, pinfo.region) if pinfo else (None, None)
            like = prof.get("age_structure_like") or parent
        else:
            info = country_info(code)
            info_name, parent, income, region = info.name, None, info.income_level, info.region
            like = prof.get("age_structure_like")
        population = prof.get("population")
        base = wpp.get(code)
        if base is None and like is not None:
            like = like.upper()
            if like not in covered:
                raise ReferenceDataError(f"{code}: age_structure_like {like} has no UN WPP 2024 population")
            base = population_by_age([like], sc.year)[0]
        if population is None and base is None:
            missing.append(code)
            continue
        if base is not None:
            total = float(base.sum())
            pop_by_age[i] = base * (population / total) if population is not None else base
        pop = float(population) if population is not None else float(base.sum())  # type: ignore[union-attr]
        share65 = float(pop_by_age[i, 13:].sum() / pop) if base is not None else np.nan
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
                "code": code,
                "name": info_name,
                "parent": parent,
                "age_structure_like": like.upper() if isinstance(like, str) else None,
                "population": pop,
                "population_source": prof.get("population_source")
                or ("UN WPP 2024 (starsim-data)" if code in covered and population is None else None),
                "share_65plus": share65,
                "income_level": income,
                "region": region,
                "coverage_cap": np.nan if cap is None else float(cap),
                "capacity_per_week": float(prof.get("capacity_per_week") or np.inf),
                "min_shelf_life_days": _min_shelf_life(prof.get("min_shelf_life_days"), sc.round.min_shelf_life_days),
                "lead_time_days": int(prof.get("lead_time_days") or 0),  # no lead time unless stated
                "people_covered": float(prof.get("people_covered") or 0.0),
            }
        )
    if missing:
        raise ReferenceDataError(
            "no population for "
            + ", ".join(f"{c} ({country_info(c).name})" if len(c) == 3 else c for c in missing)
            + ": UN WPP 2024 in starsim-data does not cover them; supply `population:` with its source under "
            "participants.overrides.<ISO3> in the scenario (and `age_structure_like:` for the impact model)"
        )
    frame = pd.DataFrame(rows).set_index("code")
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
    )


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
