"""Parameters of the impact model, each with its source.

Infection fatality ratio (IFR) by age is typed in here from the publications (the package never
reads ``../shared`` at run time). Tables are given on the 21 UN WPP bands (0-4 … 95-99, 100+)
and folded to the 16 contact-matrix bands (75+ last) with each participant's own population
weights, so a participant with many very old people gets a higher 75+ IFR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dosewise.epidemic import check_max_uptake, check_prior_by_age
from dosewise.errors import InputError

FloatArray = npt.NDArray[np.float64]

N_BANDS = 16
"""Model age bands: 0-4 … 70-74, 75+ (the Prem matrices' bands)."""

BANDS: tuple[str, ...] = (*(f"{a}-{a + 4}" for a in range(0, 75, 5)), "75+")

# O'Driscoll M et al. Age-specific mortality and immunity patterns of SARS-CoV-2. Nature 590:140-145 (2021),
# doi:10.1038/s41586-020-2918-0, Supplementary Table S3, IFR (%) both sexes, bands 0-4 … 75-79, 80+.
ODRISCOLL2021_IFR_PCT: tuple[float, ...] = (
    0.003, 0.001, 0.001, 0.003, 0.006, 0.013, 0.024, 0.040, 0.075, 0.121,
    0.207, 0.323, 0.456, 1.075, 1.674, 3.203, 8.292,
)
# Brazeau NF et al. Report 34: COVID-19 infection fatality ratio estimates from seroprevalence, Imperial College
# London (29 Oct 2020), doi:10.25561/83545, Table 2 (with seroreversion), IFR (%) bands 0-4 … 85-89, 90+.
BRAZEAU2020_IFR_PCT: tuple[float, ...] = (
    0.00, 0.01, 0.01, 0.02, 0.02, 0.04, 0.06, 0.09, 0.15, 0.23,
    0.36, 0.57, 0.89, 1.39, 2.17, 3.39, 5.30, 8.28, 16.19,
)
# Levin AT et al. Assessing the age specificity of infection fatality rates for COVID-19. Eur J Epidemiol 35:1123
# (2020), doi:10.1007/s10654-020-00698-1: log10(IFR %) = -3.27 + 0.0524 · age, evaluated at band mid-points.
LEVIN2020_INTERCEPT, LEVIN2020_SLOPE = -3.27, 0.0524

IfrSource = Literal["odriscoll2021", "brazeau2020", "levin2020"]
HealthSystem = Literal["none", "levin2022"]
HEALTH_SYSTEMS: dict[str, str] = {
    "none": "no health-system adjustment: the age-specific IFR as published (high-income settings)",
    "levin2022": "IFR x 2 below high income (Levin et al. 2022, BMJ Glob Health 7:e008477), World Bank income group",
}
IFR_SOURCES: dict[str, str] = {
    "odriscoll2021": "O'Driscoll et al. 2021, Nature 590:140, Table S3 (both sexes)",
    "brazeau2020": "Brazeau et al. 2020, Imperial College Report 34, Table 2",
    "levin2020": "Levin et al. 2020, Eur J Epidemiol 35:1123, log-linear formula at band mid-points",
}

# Natural history, as in Imperial's squire/nimue defaults (squire `default_durations()`, from Lauer et al. 2020
# Ann Intern Med incubation and Verity et al. 2020 Lancet Infect Dis): mean latent period dur_E = 4.6 days,
# mean infectious period of mild infection dur_IMild = 2.1 days. R0 fixes beta, so these set the time scale only.
LATENT_DAYS = 4.6
INFECTIOUS_DAYS = 2.1
# Delay from course completion to protection: 14 days, the phase-3 trials' case-counting start
# (Polack et al. 2020: >=7 d after dose 2; Sadoff et al. 2021: >=14 d; Voysey et al. 2021: >14 d after dose 2).
DELAY_TO_PROTECTION_DAYS = 14.0


def ifr_wpp21(source: str) -> FloatArray:
    """IFR as a probability on the 21 WPP bands (0-4 … 95-99, 100+)."""
    if source == "odriscoll2021":
        pct = np.array(ODRISCOLL2021_IFR_PCT[:16] + (ODRISCOLL2021_IFR_PCT[16],) * 5)
    elif source == "brazeau2020":
        pct = np.array(BRAZEAU2020_IFR_PCT[:18] + (BRAZEAU2020_IFR_PCT[18],) * 3)
    elif source == "levin2020":
        mid = np.arange(21) * 5.0 + 2.5
        pct = 10.0 ** (LEVIN2020_INTERCEPT + LEVIN2020_SLOPE * mid)
    else:
        raise InputError(f"unknown IFR source; known: {', '.join(IFR_SOURCES)}", field="ifr_source", value=source)
    return np.asarray(np.minimum(pct / 100.0, 1.0), dtype=np.float64)


def health_system_multipliers() -> dict[str, tuple[float, str]]:
    """Income level → (IFR multiplier, source), from ``dosewise/data/ifr_health_system.csv``."""
    import csv
    from importlib import resources

    text = (resources.files("dosewise") / "data" / "ifr_health_system.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {r["income_level"]: (float(r["multiplier"]), r["source"]) for r in rows}


def health_multiplier(income_levels: list[str | None], codes: list[str], system: str) -> FloatArray:
    """(n,) IFR multiplier per participant; an unknown income level is an error, never a silent 1."""
    if system == "none":
        return np.ones(len(codes))
    table = health_system_multipliers()
    missing = [c for c, lev in zip(codes, income_levels, strict=True) if lev not in table]
    if missing:
        raise InputError(
            f"no World Bank income level for {', '.join(missing[:10])}: the health-system IFR adjustment needs "
            "it; set `health_system: none` in the scenario's epidemic section",
            field="epidemic.health_system", value=missing[0],
        )
    return np.array([table[str(lev)][0] for lev in income_levels], dtype=np.float64)


def fold_to_16(pop21: FloatArray) -> FloatArray:
    """(n, 21) WPP bands → (n, 16) with 75+ as the sum of the last six."""
    return np.concatenate([pop21[:, :15], pop21[:, 15:].sum(axis=1, keepdims=True)], axis=1)


def ifr_by_band(pop21: FloatArray, source: str = "odriscoll2021") -> FloatArray:
    """(n, 16) IFR per participant: bands below 75 as published; 75+ weighted by the participant's WPP population."""
    table = ifr_wpp21(source)
    old = pop21[:, 15:]
    tot = old.sum(axis=1)
    ifr75 = np.where(tot > 0, (old * table[15:]).sum(axis=1) / np.where(tot > 0, tot, 1.0), table[15])
    return np.concatenate([np.broadcast_to(table[:15], (pop21.shape[0], 15)), ifr75[:, None]], axis=1)


PriorityName = Literal["oldest-first", "pro-rata"]


class ImpactParams(BaseModel):
    """Everything the impact model needs besides the world and the doses.

    ``r0`` is a scalar or one value per participant code; ``rt`` an optional schedule of
    reproduction numbers in a fully susceptible population, ``{day: value}`` piecewise
    constant from that day on (it overrides ``r0`` from its first day). ``priority`` is
    ``oldest-first`` (75+, 70-74, … 0-4), ``pro-rata`` (all ages in proportion to the
    eligible) or a custom list of groups of model band indices (0 = 0-4 … 15 = 75+), served in
    order, pro rata within a group; bands left out are never vaccinated.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    days: int = Field(default=365, ge=1, le=3650)
    r0: float | dict[str, float] = 2.5
    rt: dict[int, float] | None = None
    seed_fraction: float = Field(default=1e-4, gt=0, lt=1)
    prior_immunity: float | dict[str, float] = 0.0
    prior_immunity_by_age: tuple[float, ...] | None = None
    """16 shares (0-4 … 75+) immune at the start, the same in every participant; overrides ``prior_immunity``."""
    latent_days: float = Field(default=LATENT_DAYS, gt=0)
    infectious_days: float = Field(default=INFECTIOUS_DAYS, gt=0)
    ifr_source: IfrSource = "odriscoll2021"
    health_system: HealthSystem = "none"
    delay_to_protection_days: float = Field(default=DELAY_TO_PROTECTION_DAYS, gt=0, le=365)
    include_interval_in_delay: bool = True
    waning_days: float | None = Field(default=None, gt=0)
    """Mean duration of vaccine protection (exponential waning); None: lifelong within the horizon."""
    natural_immunity_days: float | None = Field(default=None, gt=0)
    """Mean duration of immunity after infection (recovered → susceptible); None: lifelong."""
    max_uptake: float | tuple[float, ...] | None = None
    """Largest share of each band that accepts vaccination (one share, or 16 for 0-4 … 75+)."""
    rollout_days: int | None = Field(default=None, ge=1, le=3650)
    """Doses delivered to a participant are given evenly over this many days (overrides capacity)."""
    daily_doses_per_100: float | None = Field(default=None, gt=0, le=100)
    """Doses a participant can give per day per 100 people (overrides capacity)."""
    priority: PriorityName | tuple[tuple[int, ...], ...] = "oldest-first"
    efficacy: dict[str, tuple[float, float]] = Field(default_factory=dict)
    contact_setting: str = "all"
    steps_per_day: int = Field(default=1, ge=1, le=48)

    @field_validator("r0")
    @classmethod
    def _r0(cls, v: float | dict[str, float]) -> float | dict[str, float]:
        for x in [v] if isinstance(v, int | float) else list(v.values()):
            if not (np.isfinite(x) and 0 < x <= 30):
                raise ValueError(f"R0 must be a finite number in (0, 30], got {x}")
        return v

    @field_validator("rt")
    @classmethod
    def _rt(cls, v: dict[int, float] | None) -> dict[int, float] | None:
        for day, x in (v or {}).items():
            if day < 0:
                raise ValueError(f"Rt schedule day must be >= 0, got {day}")
            if not (np.isfinite(x) and 0 <= x <= 30):
                raise ValueError(f"Rt must be a finite number in [0, 30], got {x} on day {day}")
        return v

    @field_validator("prior_immunity")
    @classmethod
    def _prior(cls, v: float | dict[str, float]) -> float | dict[str, float]:
        for x in [v] if isinstance(v, int | float) else list(v.values()):
            if not (np.isfinite(x) and 0 <= x < 1):
                raise ValueError(f"prior immunity must be a share in [0, 1), got {x}")
        return v

    @field_validator("prior_immunity_by_age")
    @classmethod
    def _prior_age(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return check_prior_by_age(v)

    @field_validator("max_uptake")
    @classmethod
    def _uptake(cls, v: float | tuple[float, ...] | None) -> float | tuple[float, ...] | None:
        return check_max_uptake(v)

    def uptake_by_band(self) -> FloatArray | None:
        """(16,) maximum share vaccinated per band, or None when unlimited."""
        if self.max_uptake is None:
            return None
        return np.broadcast_to(np.asarray(self.max_uptake, dtype=np.float64), (N_BANDS,)).copy()

    @field_validator("priority")
    @classmethod
    def _groups(
        cls, v: PriorityName | tuple[tuple[int, ...], ...]
    ) -> PriorityName | tuple[tuple[int, ...], ...]:
        if isinstance(v, str):
            return v
        flat = [b for g in v for b in g]
        if not flat or any(not 0 <= b < N_BANDS for b in flat) or len(set(flat)) != len(flat):
            raise ValueError("custom priority: groups of distinct band indices 0..15")
        return v

    @field_validator("efficacy")
    @classmethod
    def _eff(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for k, (a, b) in v.items():
            if not (0 <= a <= 1 and 0 <= b <= 1):
                raise ValueError(f"efficacy for {k} must be in [0, 1], got {(a, b)}")
        return v


def priority_groups(priority: PriorityName | tuple[tuple[int, ...], ...]) -> npt.NDArray[np.intp]:
    """Group rank of each model band (-1 = never vaccinated); lower rank is served first."""
    rank = np.full(N_BANDS, -1, dtype=np.intp)
    if priority == "oldest-first":
        rank[:] = np.arange(N_BANDS)[::-1]
    elif priority == "pro-rata":
        rank[:] = 0
    else:
        for g, bands in enumerate(priority):
            rank[list(bands)] = g
    return rank


def per_participant(value: float | Mapping[str, float], codes: list[str], name: str) -> FloatArray:
    """A scalar or ``{code: value}`` mapping as an (n,) array; every code must be present in a mapping."""
    if isinstance(value, int | float):
        return np.full(len(codes), float(value))
    missing = [c for c in codes if c not in value]
    if missing:
        raise InputError(f"no {name} for {', '.join(missing[:10])}", field=name, value=missing[0])
    return np.array([float(value[c]) for c in codes])
