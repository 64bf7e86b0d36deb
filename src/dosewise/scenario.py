"""Scenario files (YAML) → validated objects.

A scenario names the participants (a group such as ``AMC92``, ISO3 codes, or sub-national
units with their own populations), per-participant overrides, supply lots, the policy and
its parameters, and the rules of a round. Every problem is reported with the file, the
field path (``lots[2].doses``) and the bad value, as a :class:`~dosewise.errors.ScenarioError`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dosewise.epidemic import EpidemicSettings
from dosewise.errors import InputError, ScenarioError
from dosewise.products import STORAGE_CLASSES, Product, StorageClass, catalogue, resolve_product
from dosewise.vocabulary import DECLINE_REASONS, DeclineReason


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParticipantProfile(_Model):
    """What a participant can and will take; every field optional, defaults from ``defaults``."""

    population: float | None = Field(default=None, gt=0)
    population_source: str | None = None
    age_structure_like: str | None = None
    coverage_cap: float | None = Field(default=None, gt=0, le=1)
    accepts: tuple[str, ...] | None = None
    declines: tuple[str, ...] = ()
    interested_in: tuple[str, ...] = ()
    approved: tuple[str, ...] | None = None
    indemnified: tuple[str, ...] | None = None
    cold_chain: tuple[StorageClass, ...] | None = None
    capacity_per_week: float | None = Field(default=None, gt=0)
    min_shelf_life_days: int | None = Field(default=None, ge=0)
    lead_time_days: int | None = Field(default=None, ge=0)
    people_covered: float = Field(default=0.0, ge=0)


class Unit(ParticipantProfile):
    """A sub-national participant (province, district, facility) with its own population."""

    id: str = Field(min_length=1)
    name: str | None = None
    parent: str | None = None
    population: float = Field(gt=0)  # type: ignore[assignment]


class Participants(_Model):
    group: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    units: tuple[Unit, ...] = ()
    defaults: ParticipantProfile = ParticipantProfile()
    overrides: dict[str, ParticipantProfile] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> Participants:
        if not (self.group or self.include or self.units):
            raise ValueError("name participants with `group`, `include` or `units`")
        return self


class Lot(_Model):
    id: str = Field(min_length=1)
    product: str
    doses: int = Field(gt=0)
    available: dt.date
    expiry: dt.date
    source: str = ""

    @model_validator(mode="after")
    def _dates(self) -> Lot:
        if self.expiry <= self.available:
            raise ValueError(f"expiry {self.expiry} is not after available {self.available}")
        return self


class SmallStateFloor(_Model):
    """Participants at or below ``max_population`` get at least ``min_doses_per_100`` doses per 100 people."""

    max_population: float = Field(gt=0)
    min_doses_per_100: float = Field(gt=0, le=200)


class PolicyParams(_Model):
    name: str = "covax-pro-rata"
    tranches: tuple[float, ...] = (0.03, 0.20)
    buffer: float = Field(default=0.05, ge=0, lt=1)
    small_state_floor: SmallStateFloor | None = None
    caps: dict[str, float] = Field(default_factory=dict)
    round_to_shipping_unit: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tranches")
    @classmethod
    def _increasing(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(not 0 < t <= 1 for t in v) or any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError("tranches must be increasing shares of population in (0, 1]")
        return v

    @field_validator("caps")
    @classmethod
    def _caps(cls, v: dict[str, float]) -> dict[str, float]:
        for k, c in v.items():
            if not 0 < c <= 1:
                raise ValueError(f"cap for {k} must be a share of population in (0, 1], got {c}")
        return v


class ScriptedResponse(_Model):
    """A response the demo or a test scripts into a round."""

    participant: str
    lot: str | None = None
    action: Literal["accept", "decline"]
    reason: DeclineReason | None = None
    note: str | None = None
    wish: str | None = None


class RoundRules(_Model):
    id: str | None = None
    opens: dt.date | None = None
    response_days: int = Field(default=7, ge=0)
    min_shelf_life_days: int = Field(default=70, ge=0)
    reallocation: Literal["need", "pro-rata", "optimal"] = "need"
    max_passes: int = Field(default=10, ge=1)
    default_response: Literal["accept", "lapse"] = "accept"
    responses: tuple[ScriptedResponse, ...] = ()


class Scenario(_Model):
    name: str = "scenario"
    description: str = ""
    year: int = Field(default=2020, ge=1950, le=2100)
    as_of: dt.date | None = None
    participants: Participants
    products: tuple[Product, ...] = ()
    lots: tuple[Lot, ...] = Field(min_length=1)
    policy: PolicyParams = PolicyParams()
    round: RoundRules = RoundRules()
    epidemic: EpidemicSettings | None = None
    sources: dict[str, str] = Field(default_factory=dict)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _lookup(data: Any, loc: tuple[int | str, ...]) -> Any:
    cur = data
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def _semantic_problems(sc: Scenario) -> list[tuple[str, str, Any]]:
    """Checks that need the catalogue and the ISO list: unknown products, codes, duplicates."""
    from dosewise.reference.countries import validate_iso3
    from dosewise.reference.groups import group_members

    problems: list[tuple[str, str, Any]] = []
    prods = catalogue(sc.products)
    for i, lot in enumerate(sc.lots):
        if resolve_product(lot.product, prods) is None:
            problems.append((f"lots[{i}].product", f"unknown product; known: {', '.join(prods)}", lot.product))
    dup_lots = [k for k, n in Counter(lot.id for lot in sc.lots).items() if n > 1]
    for k in dup_lots:
        problems.append(("lots", "duplicate lot id", k))
    p = sc.participants
    codes: list[str] = []
    if p.group:
        try:
            codes += group_members(p.group)
        except InputError as exc:
            problems.append(("participants.group", exc.message, p.group))
    for i, c in enumerate(p.include):
        try:
            codes.append(validate_iso3(c))
        except InputError:
            problems.append((f"participants.include[{i}]", "unknown ISO 3166-1 alpha-3 code", c))
    for i, c in enumerate(p.exclude):
        try:
            validate_iso3(c)
        except InputError:
            problems.append((f"participants.exclude[{i}]", "unknown ISO 3166-1 alpha-3 code", c))
    for i, u in enumerate(p.units):
        codes.append(u.id)
        if u.parent is not None:
            try:
                validate_iso3(u.parent)
            except InputError:
                problems.append((f"participants.units[{i}].parent", "unknown ISO 3166-1 alpha-3 code", u.parent))
    for k, n in Counter(codes).items():
        if n > 1:
            problems.append(("participants", "duplicate participant", k))
    known = set(codes)
    for k in p.overrides:
        if k.upper() not in known:
            problems.append((f"participants.overrides.{k}", "override for a participant not in the scenario", k))
    for k in sc.policy.caps:
        if k.upper() not in known:
            problems.append((f"policy.caps.{k}", "cap for a participant not in the scenario", k))

    def check_products(where: str, names: tuple[str, ...] | None) -> None:
        for j, name in enumerate(names or ()):
            if resolve_product(name, prods) is None:
                problems.append((f"{where}[{j}]", "unknown product", name))

    for where, prof in [("participants.defaults", p.defaults)] + [
        (f"participants.overrides.{k}", v) for k, v in p.overrides.items()
    ]:
        for field in ("accepts", "declines", "interested_in", "approved", "indemnified"):
            check_products(f"{where}.{field}", getattr(prof, field))
        if prof.age_structure_like is not None:
            try:
                validate_iso3(prof.age_structure_like)
            except InputError:
                problems.append((f"{where}.age_structure_like", "unknown ISO3 code", prof.age_structure_like))
    if sc.round.reallocation == "optimal" and not sc.policy.name.startswith("optimal"):
        problems.append(("round.reallocation", "optimal reallocation re-optimises an optimal allocation; "
                         "set policy.name to optimal, optimal-floor-50 or optimal-floor-100", "optimal"))
    for i, r in enumerate(sc.round.responses):
        if r.participant.upper() not in known:
            problems.append((f"round.responses[{i}].participant", "not a participant of the scenario", r.participant))
        if r.action == "decline" and r.reason is None:
            problems.append((f"round.responses[{i}].reason", "a decline needs a reason", None))
    return problems


def parse_scenario(data: Any, *, file: str | None = None) -> Scenario:
    """Validate a parsed YAML mapping; raise :class:`ScenarioError` listing every problem."""
    if not isinstance(data, dict):
        raise ScenarioError(file, [("(top level)", "a scenario is a mapping of fields", type(data).__name__)])
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            value = _lookup(data, loc) if err["type"] != "missing" else None
            if isinstance(value, dict | list):  # a whole mapping says nothing the message does not
                value = None
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((_loc(loc), msg, value))
        raise ScenarioError(file, problems) from None
    problems = _semantic_problems(sc)
    if problems:
        raise ScenarioError(file, problems)
    return sc


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("scenario file not found", file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read scenario file: {exc}", file=str(p)) from None
    return parse_scenario_text(text, file=str(p))


def parse_scenario_text(text: str, *, file: str | None = None) -> Scenario:
    """Parse YAML text and validate it; YAML errors (and impossible dates such as 2021-02-30,
    which the YAML loader rejects) are reported with their line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", file=file) from None
    except ValueError as exc:
        raise InputError(f"not a valid value: {exc}", file=file) from None
    return parse_scenario(data, file=file)


def demo_scenario_path() -> Path:
    return Path(str(resources.files("dosewise") / "data" / "demo_amc92.yaml"))


def load_demo() -> Scenario:
    return load_scenario(demo_scenario_path())


__all__ = [
    "DECLINE_REASONS",
    "STORAGE_CLASSES",
    "DeclineReason",
    "Lot",
    "ParticipantProfile",
    "Participants",
    "PolicyParams",
    "RoundRules",
    "Scenario",
    "ScriptedResponse",
    "SmallStateFloor",
    "Unit",
    "demo_scenario_path",
    "load_demo",
    "load_scenario",
    "parse_scenario",
    "parse_scenario_text",
]
