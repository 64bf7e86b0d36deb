"""The scenario's ``epidemic:`` section turned into the engine's parameters."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dosewise.epidemic import EpidemicSettings
from dosewise.errors import InputError
from dosewise.impact.parameters import ImpactParams

__all__ = ["impact_setting", "params_from_epidemic", "world_settings"]


def params_from_epidemic(settings: EpidemicSettings, start: dt.date | None = None, **extra: Any) -> ImpactParams:
    """The engine's parameters; ``start`` is day 0 (default: ``settings.start``), needed for dated Rt steps."""
    day0 = settings.start or start
    rt: dict[int, float] | None = None
    if settings.rt:
        rt = {}
        for i, step in enumerate(settings.rt):
            if isinstance(step.start, dt.date):
                if day0 is None:
                    raise InputError("a dated Rt step needs a start date", field=f"epidemic.rt[{i}].from",
                                     value=str(step.start))
                day = (step.start - day0).days
                if day < 0:
                    raise InputError(f"before the simulation start {day0}", field=f"epidemic.rt[{i}].from",
                                     value=str(step.start))
            else:
                day = int(step.start)
            rt[day] = float(step.value)
        if 0 not in rt:
            rt[0] = float(settings.r0)
    return ImpactParams(
        days=settings.days,
        r0=settings.r0,
        rt=rt,
        seed_fraction=settings.seed_fraction,
        prior_immunity=settings.prior_immunity,
        prior_immunity_by_age=settings.prior_immunity_by_age,
        ifr_source=settings.ifr,
        health_system=settings.health_system,
        delay_to_protection_days=settings.protection_delay_days,
        waning_days=settings.vaccine_immunity_days,
        natural_immunity_days=settings.natural_immunity_days,
        max_uptake=settings.max_uptake,
        rollout_days=settings.rollout_days,
        daily_doses_per_100=settings.daily_doses_per_100,
        priority=settings.priority,
        **extra,
    )


def world_settings(world: Any) -> EpidemicSettings:
    """The scenario's ``epidemic:`` section as carried by the world (defaults when it has none)."""
    found = getattr(world, "meta", {}).get("epidemic")
    return found if isinstance(found, EpidemicSettings) else EpidemicSettings()


def impact_setting(world: Any, settings: EpidemicSettings | None = None) -> tuple[ImpactParams, dt.date | None]:
    """(engine parameters, day 0) for a world: day 0 is ``start`` or the earliest lot availability,
    the same day the dose schedule counts from."""
    s = settings or world_settings(world)
    first = None
    lots = getattr(world, "lots", None)
    if lots is not None and len(lots):
        first = world.lot_days()[0]  # the earliest availability, on the world's time axis
    start = s.start or first
    return params_from_epidemic(s, start), start
