"""The ``epidemic:`` section of a scenario: the setting the impact model simulates and the
``optimal`` policy optimises.

Everything is checked strictly (no NaN or infinity, every share in its range, dates in order),
so a bad value is reported with the scenario file, the field and the value, and never runs.
:meth:`EpidemicSettings.impact_params` turns the section into the engine's
:class:`~dosewise.impact.parameters.ImpactParams`, with the Rt schedule's dates counted in days
from the start of the simulation (by default the earliest lot availability, which is also day 0
of the dose schedule).

.. code-block:: yaml

   epidemic:
     r0: 2.5                      # or an Rt schedule:
     rt:                          # dated steps, piecewise constant from each date on
       - {from: 2021-02-22, value: 1.3}
       - {from: 2021-06-01, value: 1.1}
     prior_immunity: 0.2          # share immune at the start (or prior_immunity_by_age: 16 shares)
     seed_fraction: 0.0001        # share of every band latent at the start
     natural_immunity_days: 365   # mean duration of immunity after infection (omit: lifelong)
     vaccine_immunity_days: 365   # mean duration of vaccine protection (omit: lifelong)
     protection_delay_days: 14    # from (the last dose of) a course to protection
     rollout_days: 90             # or daily_doses_per_100: 0.3
     max_uptake: 0.8              # or 16 shares by age band
     days: 365                    # horizon
     ifr: odriscoll2021
     health_system: levin2022     # IFR by income group (none: switched off)
     priority: oldest-first       # or pro-rata
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

N_BANDS = 16



def check_prior_by_age(v: tuple[float, ...] | None) -> tuple[float, ...] | None:
    """``v`` if it is one share in [0, 1) per age band (or None), else ValueError saying why.

    The one check of immune shares by age, used by the scenario's ``epidemic:`` section and by
    the impact model's parameters alike."""
    if v is None:
        return v
    if len(v) != N_BANDS:
        raise ValueError(f"give {N_BANDS} shares, one per band 0-4 … 75+ (got {len(v)})")
    for x in v:
        if not (math.isfinite(x) and 0 <= x < 1):
            raise ValueError(f"every share must be in [0, 1), got {x}")
    return v


def check_max_uptake(v: float | tuple[float, ...] | None) -> float | tuple[float, ...] | None:
    """``v`` if it is one share in [0, 1] or one per age band (or None), else ValueError saying why.

    The one check of maximum uptake, used by the scenario and the impact model's parameters."""
    if v is None:
        return v
    vals = [v] if isinstance(v, int | float) else list(v)
    if isinstance(v, tuple) and len(v) != N_BANDS:
        raise ValueError(f"give one share or {N_BANDS} shares (bands 0-4 … 75+), got {len(v)}")
    for x in vals:
        if not (math.isfinite(x) and 0 <= x <= 1):
            raise ValueError(f"a share must be in [0, 1], got {x}")
    return v

class RtStep(BaseModel):
    """Rt (the reproduction number in a fully susceptible population) from a date or day on."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    start: dt.date | int = Field(alias="from")
    value: float = Field(ge=0, le=30)

    @field_validator("start")
    @classmethod
    def _day(cls, v: dt.date | int) -> dt.date | int:
        if isinstance(v, int) and v < 0:
            raise ValueError(f"a day must be >= 0, got {v}")
        return v


class EpidemicSettings(BaseModel):
    """The epidemic setting of a scenario (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    r0: float = Field(default=2.5, gt=0, le=30)
    rt: tuple[RtStep, ...] = ()
    start: dt.date | None = None
    days: int = Field(default=365, ge=1, le=3650)
    prior_immunity: float = Field(default=0.0, ge=0, lt=1)
    prior_immunity_by_age: tuple[float, ...] | None = None
    seed_fraction: float = Field(default=1e-4, gt=0, lt=1)
    natural_immunity_days: float | None = Field(default=None, gt=0, le=36500)
    vaccine_immunity_days: float | None = Field(default=None, gt=0, le=36500)
    protection_delay_days: float = Field(default=14.0, gt=0, le=365)
    rollout_days: int | None = Field(default=None, ge=1, le=3650)
    daily_doses_per_100: float | None = Field(default=None, gt=0, le=100)
    max_uptake: float | tuple[float, ...] | None = None
    ifr: Literal["odriscoll2021", "brazeau2020", "levin2020"] = "odriscoll2021"
    health_system: Literal["none", "levin2022"] = "levin2022"
    priority: Literal["oldest-first", "pro-rata"] = "oldest-first"

    @field_validator("prior_immunity_by_age")
    @classmethod
    def _prior_age(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return check_prior_by_age(v)

    @field_validator("max_uptake")
    @classmethod
    def _uptake(cls, v: float | tuple[float, ...] | None) -> float | tuple[float, ...] | None:
        return check_max_uptake(v)

    @model_validator(mode="after")
    def _consistent(self) -> EpidemicSettings:
        dated = [s.start for s in self.rt if isinstance(s.start, dt.date)]
        if dated and self.start is not None and min(dated) < self.start:
            raise ValueError(f"an Rt step starts on {min(dated)}, before the simulation start {self.start}")
        return self

    def start_date(self, fallback: dt.date | None) -> dt.date | None:
        return self.start or fallback

    def describe(self) -> str:
        """One line for table titles."""
        if self.rt:
            steps = ", ".join(f"{s.value:g} from {s.start}" for s in self.rt)
            r = f"R0 {self.r0:g}, Rt {steps}"
        else:
            r = f"R0 {self.r0:g}"
        prior = (f", prior immunity {self.prior_immunity:.0%}" if self.prior_immunity else
                 (", prior immunity by age" if self.prior_immunity_by_age else ""))
        return f"{r}{prior}, {self.days} days, IFR {self.ifr} × health system {self.health_system}"


CLI_FIELDS: dict[str, str] = {
    "r0": "--r0",
    "days": "--days",
    "prior_immunity": "--prior-immunity",
    "ifr": "--ifr",
    "health_system": "--health-system",
    "priority": "--priority",
    "max_uptake": "--max-uptake",
    "rollout_days": "--rollout-days",
    "daily_doses_per_100": "--daily-doses-per-100",
    "seed_fraction": "--seed-fraction",
}
"""Settings a command-line flag may override, and the flag's name (for error messages)."""


def with_overrides(base: EpidemicSettings | None, overrides: dict[str, Any], *, file: str | None = None
                   ) -> EpidemicSettings:
    """``base`` (default settings when None) with the non-None ``overrides``; a bad value raises an
    :class:`~dosewise.errors.InputError` naming the flag (or the scenario field) and the value."""
    from pydantic import ValidationError

    from dosewise.errors import InputError

    data = (base or EpidemicSettings()).model_dump(by_alias=True, exclude_unset=False)
    given = {k: v for k, v in overrides.items() if v is not None}
    data.update(given)
    try:
        return EpidemicSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        flag = CLI_FIELDS.get(key) if key in given else None
        msg = err["msg"].removeprefix("Value error, ")
        raise InputError(msg, file=None if flag else file, field=flag or f"epidemic.{key}",
                         value=given.get(key, data.get(key))) from None
