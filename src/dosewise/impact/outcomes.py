"""Outcomes of an allocation: infections, deaths and deaths averted against a no-vaccine run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.allocation import Allocation
from dosewise.impact.engine import Setup, Trajectory, Vaccines, prepare, product_vaccines, simulate
from dosewise.impact.parameters import BANDS, IFR_SOURCES, ImpactParams
from dosewise.impact.vaccination import DoseSchedule, doses_from_allocation
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ImpactResult:
    """One allocation's impact, with the no-vaccine run of the same scenario.

    Frames: :attr:`by_participant` (one row per participant), :attr:`by_age` (participant ×
    band), :attr:`by_week` (participant × week: deaths with and without vaccine, by date of
    death), and :meth:`summary` (one row of totals).
    """

    setup: Setup
    baseline: Trajectory
    vaccinated: Trajectory
    schedule: DoseSchedule | None
    policy: str = ""
    start: dt.date | None = None

    @property
    def codes(self) -> list[str]:
        return list(self.setup.codes)

    @property
    def deaths_averted(self) -> FloatArray:
        """(n, 16) by the end of the horizon."""
        return np.asarray(self.baseline.deaths[-1] - self.vaccinated.deaths[-1], dtype=np.float64)

    @property
    def doses_delivered(self) -> FloatArray:
        """(n,) doses ready for use during the horizon."""
        if self.schedule is not None:
            return np.asarray(self.schedule.doses.sum(axis=(1, 2)), dtype=np.float64)
        return np.asarray(self.vaccinated.doses_used.sum(axis=1) + self.vaccinated.doses_unused.sum(axis=1))

    @property
    def by_participant(self) -> pd.DataFrame:
        pop = self.setup.pop.sum(axis=1)
        used = self.vaccinated.doses_used.sum(axis=1)
        frame = pd.DataFrame(
            {
                "population": pop,
                "contact_matrix": list(self.setup.contact_source),
                "infections_no_vaccine": self.baseline.infections[-1].sum(axis=1),
                "infections": self.vaccinated.infections[-1].sum(axis=1),
                "deaths_no_vaccine": self.baseline.deaths[-1].sum(axis=1),
                "deaths": self.vaccinated.deaths[-1].sum(axis=1),
                "deaths_averted": self.deaths_averted.sum(axis=1),
                "doses_delivered": self.doses_delivered,
                "doses_administered": used,
                "doses_unused": self.vaccinated.doses_unused.sum(axis=1),
                "people_vaccinated": self.vaccinated.vaccinated.sum(axis=(0, 2)),
            },
            index=pd.Index(self.codes, name="participant"),
        )
        if self.schedule is not None:
            frame.insert(list(frame.columns).index("doses_delivered"), "doses_allocated",
                         self.schedule.allocated.sum(axis=1))
            frame["doses_wasted"] = self.schedule.wasted.sum(axis=1)
            frame["doses_after_horizon"] = self.schedule.after_horizon.sum(axis=1)
        frame["contact_proxy"] = frame["contact_matrix"].str.startswith(("proxy:", "income-mean:"))
        frame["deaths_averted_per_100_doses"] = 100 * frame["deaths_averted"] / frame["doses_administered"].where(
            frame["doses_administered"] > 0
        )
        frame["deaths_averted_per_million"] = 1e6 * frame["deaths_averted"] / frame["population"]
        return frame

    @property
    def by_age(self) -> pd.DataFrame:
        n = self.setup.n
        idx = pd.MultiIndex.from_product([self.codes, BANDS], names=["participant", "age"])
        return pd.DataFrame(
            {
                "population": self.setup.pop.ravel(),
                "ifr": self.setup.ifr.ravel(),
                "people_vaccinated": self.vaccinated.vaccinated.sum(axis=0).ravel(),
                "infections_no_vaccine": self.baseline.infections[-1].ravel(),
                "infections": self.vaccinated.infections[-1].ravel(),
                "deaths_no_vaccine": self.baseline.deaths[-1].ravel(),
                "deaths": self.vaccinated.deaths[-1].ravel(),
                "deaths_averted": self.deaths_averted.reshape(n * 16),
            },
            index=idx,
        )

    @property
    def by_week(self) -> pd.DataFrame:
        days = self.setup.days
        ends = np.append(np.arange(7, days, 7), days)
        starts = np.concatenate([[0], ends[:-1]])
        d0 = self.baseline.deaths.sum(axis=2)
        d1 = self.vaccinated.deaths.sum(axis=2)
        i0 = self.baseline.infections.sum(axis=2)
        i1 = self.vaccinated.infections.sum(axis=2)
        w0, w1 = d0[ends] - d0[starts], d1[ends] - d1[starts]
        weeks = np.arange(len(ends))
        idx = pd.MultiIndex.from_product([weeks, self.codes], names=["week", "participant"])
        frame = pd.DataFrame(
            {
                "infections_no_vaccine": (i0[ends] - i0[starts]).ravel(),
                "infections": (i1[ends] - i1[starts]).ravel(),
                "deaths_no_vaccine": w0.ravel(),
                "deaths": w1.ravel(),
                "deaths_averted": (w0 - w1).ravel(),
            },
            index=idx,
        )
        if self.start is not None:
            frame["week_start"] = np.repeat(
                pd.to_datetime(self.start) + pd.to_timedelta(starts * 1, unit="D"), self.setup.n
            )
        return frame

    def summary(self) -> dict[str, float | int | str]:
        per = self.by_participant
        used = float(per["doses_administered"].sum())
        averted = float(per["deaths_averted"].sum())
        pop = float(per["population"].sum())
        out: dict[str, float | int | str] = {
            "policy": self.policy,
            "participants": len(per),
            "days": self.setup.days,
            "population": pop,
            "infections_no_vaccine": float(per["infections_no_vaccine"].sum()),
            "infections": float(per["infections"].sum()),
            "deaths_no_vaccine": float(per["deaths_no_vaccine"].sum()),
            "deaths": float(per["deaths"].sum()),
            "deaths_averted": averted,
            "doses_administered": used,
            "doses_unused": float(per["doses_unused"].sum()),
            "deaths_averted_per_100_doses": 100 * averted / used if used > 0 else float("nan"),
            "deaths_averted_per_million": 1e6 * averted / pop,
            "contact_proxies": int(per["contact_proxy"].sum()),
            "ifr_source": IFR_SOURCES[self.setup.params.ifr_source],
        }
        if self.schedule is not None:
            out["doses_allocated"] = float(self.schedule.allocated.sum())
            out["doses_wasted"] = float(self.schedule.wasted.sum())
            out["doses_after_horizon"] = float(self.schedule.after_horizon.sum())
        return out


def vaccines_for(world: World, schedule: DoseSchedule, params: ImpactParams) -> Vaccines:
    return product_vaccines(world, list(schedule.products), schedule.doses, params)


def run_impact(
    world: World,
    allocation: Allocation,
    params: ImpactParams | None = None,
    *,
    start: dt.date | None = None,
    setup: Setup | None = None,
    baseline: Trajectory | None = None,
    like: Mapping[str, str] | None = None,
) -> ImpactResult:
    """Deaths averted by ``allocation`` (doses from its lots' dates, lead times, capacity, expiry).

    Pass ``setup``/``baseline`` to reuse them across several allocations of the same world.
    """
    params = params or ImpactParams()
    setup = setup or prepare(world, params, like=like)
    baseline = baseline or simulate(setup)
    from dosewise.impact.vaccination import daily_capacity

    cap = daily_capacity(world, allocation, params.rollout_days, params.daily_doses_per_100)
    schedule = doses_from_allocation(world, allocation, params.days, start, cap)
    vac = simulate(setup, vaccines_for(world, schedule, params))
    return ImpactResult(setup, baseline, vac, schedule, policy=allocation.policy, start=schedule.start)
