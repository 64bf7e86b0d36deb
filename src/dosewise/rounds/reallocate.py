"""One reallocation pass as a pure function of the pool, what participants hold, and a need vector.

Who may receive doses of a lot is decided once, the same way for every order
(:func:`eligibility`): a participant is skipped, with the reason recorded, when it does not
accept or is not approved for the product, its cold chain cannot hold it, the lot would
arrive with less than its minimum shelf life (which also keeps every answer deadline before
expiry), its absorptive capacity is exhausted before expiry, it already declined or let
lapse this lot (or opted out of its product, or took only part of an offer of it), it is at the
coverage ceiling, or the donor's earmarks exclude it. Bilateral lots are never re-offered.
Then the pool is split by the order:

* ``need``: the top ``recipients_per_pass`` candidates by need score, in proportion to
  population × need, capped by what each can absorb;
* ``pro-rata``: every candidate, in proportion to population;
* ``optimal``: the re-optimised targets first (capped the same way), then what is left by
  need (or pro rata without need scores), so no dose is stranded.

Doses that no participant can use before expiry are recorded as expired. Each participant
gets at most one offer per lot per pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dosewise.policies.pro_rata import round_to_units, water_fill_level
from dosewise.world import World

__all__ = ["LotPool", "PassPlan", "eligibility", "plan_pass"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LotPool:
    """A lot's doses in the pool, and what the pass needs to know of the lot."""

    lot: str
    product: str
    pool: int
    expiry: int
    """The lot's expiry, a day on the world's time axis (:meth:`~dosewise.world.World.days`)."""
    allowed: npt.NDArray[np.bool_] | None = None
    """(n,): who the donor's earmarks let receive the lot (None: anyone)."""
    bilateral: bool = False
    """A bilateral donation: offered to its recipient only, never re-offered by a pass."""


@dataclass
class PassPlan:
    """What one pass records: offers ``(lot, participant, doses, why)``, expiries ``(lot, doses,
    why)`` and an explanation (order, per lot: pool, offers, skip reasons)."""

    offers: list[tuple[str, str, int, str]] = field(default_factory=list)
    expired: list[tuple[str, int, str]] = field(default_factory=list)
    explain: dict[str, Any] = field(default_factory=dict)


def eligibility(
    world: World,
    lot: LotPool,
    *,
    held: FloatArray,
    refused: set[str],
    deadline: int,
    ceiling: float,
    need: FloatArray | None,
) -> tuple[FloatArray, npt.NDArray[np.object_], FloatArray]:
    """Per participant: room for more doses of ``lot``, the reason it is skipped ("" if not),
    and the shelf life in days the doses would have on arrival (``deadline``: the answer
    deadline, a day on the world's time axis)."""
    parts = world.participants
    k = world.product_index(lot.product)
    unit = int(world.products["shipping_unit"].to_numpy()[k])
    course = float(world.products["doses_per_course"].to_numpy()[k])
    pop = world.population
    shelf_days = ((lot.expiry - deadline) - parts["lead_time_days"].to_numpy(dtype=np.int64)).astype(np.float64)
    weeks_left = np.maximum(shelf_days, 0) / 7.0
    capacity = parts["capacity_per_week"].to_numpy(dtype=np.float64)
    finite = np.where(np.isinf(capacity), 0.0, capacity)
    room_capacity = np.where(np.isinf(capacity), np.inf, finite * weeks_left) - held
    room_ceiling = (ceiling * pop - parts["people_covered"].to_numpy(dtype=np.float64)) * course - held
    room = np.minimum(room_capacity, room_ceiling)
    reasons = np.full(world.n, "", dtype=object)
    reasons[room_ceiling < unit] = "at coverage ceiling"
    reasons[room_capacity < unit] = "absorptive capacity exhausted before expiry"
    reasons[shelf_days < parts["min_shelf_life_days"].to_numpy()] = "shelf life on arrival below minimum"
    reasons[~world.storage_ok[:, k]] = "cold chain"
    reasons[~world.accepts[:, k]] = "does not accept the product"
    if lot.allowed is not None:
        reasons[~lot.allowed] = "earmarked by the donor for others"
    if refused:
        reasons[np.isin(np.asarray(world.codes, dtype=object), list(refused))] = "declined or let lapse this lot"
    if need is not None:
        reasons[np.isnan(need) & (reasons == "")] = "no need score (not in surveillance)"
    return room, reasons, shelf_days


def _split(pool: int, unit: int, weight: FloatArray, room: FloatArray) -> npt.NDArray[np.int64]:
    """``pool`` in proportion to ``weight``, capped by ``room``, in whole shipping units."""
    cap = room / np.maximum(weight, 1e-12)
    _, raw = water_fill_level(weight, 1.0, np.zeros(len(weight)), np.zeros(len(weight)), cap, float(pool),
                              float(cap.max()))
    return round_to_units(raw, unit, pool, upper=room)


def plan_pass(
    world: World,
    pools: list[LotPool],
    *,
    holdings: Mapping[str, int],
    refused: Mapping[str, set[str]],
    today: int,
    deadline: int,
    order: str,
    need: Mapping[str, float] | None,
    recipients_per_pass: int,
    ceiling: float,
    pass_no: int,
    targets: Mapping[str, Mapping[str, int]] | None = None,
) -> PassPlan:
    """Plan one pass over the lots with doses in the pool; see the module docstring.

    ``today`` and ``deadline`` (the answer deadline of the pass's offers) are days on the world's
    time axis (:meth:`~dosewise.world.World.days`), like each lot's ``expiry``."""
    codes = [str(c) for c in world.codes]
    index = {c: i for i, c in enumerate(codes)}
    pop = world.population
    held = np.array([holdings.get(c, 0) for c in codes], dtype=np.float64)
    need_vec = None if need is None else np.array([need.get(c, np.nan) for c in codes], dtype=np.float64)
    by_need = need_vec is not None and order in ("need", "optimal")
    plan = PassPlan(explain={"order": order if order != "need" or need_vec is not None else "pro-rata",
                             "lots": {}})
    for lot in pools:
        if lot.pool <= 0:
            continue
        unit = int(world.products["shipping_unit"].to_numpy()[world.product_index(lot.product)])
        if today >= lot.expiry:
            plan.expired.append((lot.lot, lot.pool, "the lot reached its expiry date"))
            plan.explain["lots"][lot.lot] = {"pool": lot.pool, "offered": [], "skipped": {}}
            continue
        if lot.bilateral:
            plan.explain["lots"][lot.lot] = {"pool": lot.pool, "offered": [], "skipped": {},
                                             "kept": "bilateral donation: not re-offered by the facility"}
            continue
        room, reasons, shelf_days = eligibility(world, lot, held=held, refused=refused.get(lot.lot, set()),
                                                deadline=deadline, ceiling=ceiling,
                                                need=need_vec if by_need else None)
        skipped = {codes[i]: str(reasons[i]) for i in np.flatnonzero(reasons != "")}
        cand = np.flatnonzero(reasons == "")
        left = lot.pool
        given = np.zeros(len(codes), dtype=np.int64)
        whys: dict[int, str] = {}  # in the order doses were given: targets, then by rank
        if targets and lot.lot in targets and cand.size:
            want = np.zeros(len(codes), dtype=np.float64)
            for code, d in targets[lot.lot].items():
                if code in index:
                    want[index[code]] = d
            mask = np.zeros(len(codes), dtype=bool)
            mask[cand] = True
            want = np.where(mask, np.minimum(want, room), 0.0)
            if want.sum() > 0:
                got = round_to_units(want, unit, left, upper=np.maximum(room, 0))
                given += got
                left -= int(got.sum())
                for pos in np.flatnonzero(got).tolist():
                    whys[pos] = f"pass {pass_no}: re-optimised after a decline (HiGHS, warm start)"
        if left > 0 and cand.size:
            free = room[cand] - given[cand]
            ok = cand[free >= unit]
            if ok.size:
                if by_need:
                    assert need_vec is not None
                    ranked = ok[np.argsort(-need_vec[ok], kind="stable")][:recipients_per_pass]
                    weight = pop[ranked] * need_vec[ranked]
                else:
                    ranked = ok[np.argsort(-pop[ok], kind="stable")]
                    weight = pop[ranked]
                got = _split(left, unit, weight, room[ranked] - given[ranked])
                given[ranked] += got
                left -= int(got.sum())
                for rank, i in enumerate(ranked.tolist(), start=1):
                    if got[rank - 1] > 0 and i not in whys:
                        whys[i] = (f"pass {pass_no}: rank {rank} by need score {need_vec[i]:.3f}"
                                   if by_need and need_vec is not None
                                   else f"pass {pass_no}: pro rata to population among {len(ranked)} who can use it")
        offered: list[dict[str, Any]] = []
        for idx in [*whys, *(j for j in np.flatnonzero(given).tolist() if j not in whys)]:
            if not given[idx]:
                continue
            code = codes[idx]
            plan.offers.append((lot.lot, code, int(given[idx]), whys.get(idx, f"pass {pass_no}")))
            offered.append({"participant": code, "doses": int(given[idx]),
                            **({"need": f"{need_vec[idx]:.4f}"} if by_need and need_vec is not None else {})})
        if not offered and left == lot.pool:
            fresh = shelf_days >= world.participants["min_shelf_life_days"].to_numpy()
            k = world.product_index(lot.product)
            able = fresh & world.accepts[:, k] & world.storage_ok[:, k]
            if lot.allowed is not None:
                able &= lot.allowed
            anyone_later = bool(able.any())
            if not anyone_later:
                plan.expired.append((lot.lot, lot.pool, "no participant can use the doses before expiry"))
        plan.explain["lots"][lot.lot] = {"pool": lot.pool, "offered": offered, "skipped": _summarise(skipped)}
    return plan


def _summarise(skipped: Mapping[str, str]) -> dict[str, list[str]]:
    """Skip reasons with their participants (codes sorted) so the record says why, compactly."""
    out: dict[str, list[str]] = {}
    for code, why in skipped.items():
        out.setdefault(why, []).append(code)
    return {why: sorted(codes) for why, codes in sorted(out.items())}
