"""Scenario files (YAML) → validated objects.

A scenario names the participants (a group such as ``AMC92``, ISO3 codes, or sub-national
units with their own populations), per-participant overrides, supply lots, the policy and
its parameters, and the rules of a round. Every problem is reported with the file, the
field path (``lots[2].doses``) and the bad value, as a :class:`~dosewise.errors.ScenarioError`.

Units may be listed inline (``participants.units``) or, for large sets, kept in a CSV or
Parquet file named by ``participants.units_file`` (relative to the scenario file's folder,
optionally pinned by ``participants.units_sha256``); both become one columnar
:class:`~dosewise.units.UnitTable`, validated column by column (see :mod:`dosewise.units`).
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import itertools
import re
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from dosewise.epidemic import EpidemicSettings
from dosewise.errors import InputError, ScenarioError
from dosewise.products import STORAGE_CLASSES, Product, StorageClass, catalogue, resolve_product
from dosewise.units import LISTS, UnitTable, read_units_file, units_from_records
from dosewise.vocabulary import DECLINE_REASONS, DeclineReason

MAX_SCENARIO_BYTES = 16 * 1024 * 1024
"""A scenario file larger than this is refused (its text is recorded in the ledger when a round opens;
participants by the hundred thousand belong in a units file)."""
MAX_YAML_NODES = 2_000_000
"""YAML values after expanding aliases; more is refused (an alias bomb is a few hundred bytes)."""
MAX_YAML_DEPTH = 50
MAX_DOSES = 10**15
"""No lot holds more doses than this (sums of lots stay far inside 64-bit integers)."""
MAX_PEOPLE = 1e10
"""No participant has more people than this (about the world's population)."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""Lot, unit and round ids: letters, digits, ``.``, ``_`` and ``-``, at most 64, starting with a letter
or digit (``:`` is kept for the ids dosewise composes, such as offer ids)."""

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Name = Annotated[str, StringConstraints(max_length=200)]
Text = Annotated[str, StringConstraints(max_length=20_000)]
Doses = Annotated[int, Strict(), Field(gt=0, le=MAX_DOSES)]
People = Annotated[float, Field(gt=0, le=MAX_PEOPLE, allow_inf_nan=False)]
Days = Annotated[int, Strict(), Field(ge=0, le=3650)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ParticipantProfile(_Model):
    """What a participant can and will take; every field optional, defaults from ``defaults``."""

    population: People | None = None
    population_source: Name | None = None
    age_structure_like: Identifier | None = None
    coverage_cap: float | None = Field(default=None, gt=0, le=1)
    accepts: tuple[str, ...] | None = None
    declines: tuple[str, ...] = ()
    interested_in: tuple[str, ...] = ()
    approved: tuple[str, ...] | None = None
    indemnified: tuple[str, ...] | None = None
    cold_chain: tuple[StorageClass, ...] | None = None
    capacity_per_week: float | None = Field(default=None, gt=0, le=MAX_PEOPLE)
    min_shelf_life_days: Days | None = None
    lead_time_days: Days | None = None
    people_covered: float = Field(default=0.0, ge=0, le=MAX_PEOPLE)


class Unit(ParticipantProfile):
    """A sub-national participant (province, district, facility) with its own population."""

    id: Identifier
    name: Name | None = None
    parent: Identifier | None = None
    population: People  # type: ignore[assignment]


class Participants(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, arbitrary_types_allowed=True)

    group: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    units: UnitTable = Field(default_factory=UnitTable)
    units_file: Name | None = None
    units_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    units_source: Text | None = None
    """Where recorded units came from (``file sha256:…``); set when a scenario is dumped, informational."""
    defaults: ParticipantProfile = ParticipantProfile()
    overrides: dict[str, ParticipantProfile] = Field(default_factory=dict)

    @field_serializer("units")
    def _units_records(self, units: UnitTable) -> list[dict[str, Any]]:
        """Dumped, the units are records (a file's rows included), so a recorded scenario stands alone."""
        return units.records()

    @field_serializer("units_file", "units_sha256")
    def _file_embedded(self, value: str | None) -> str | None:
        return None if self.units.source is not None else value

    @field_serializer("units_source")
    def _source(self, value: str | None) -> str | None:
        if self.units.source is not None:
            return f"{self.units_file} sha256:{self.units.sha256}"
        return value

    @field_validator("units", mode="before")
    @classmethod
    def _units_table(cls, v: Any) -> UnitTable:
        """Inline units (a list of mappings) become a table; :func:`parse_scenario` does this itself
        first, to name each bad field, so this path serves callers of ``model_validate``."""
        if isinstance(v, UnitTable):
            return v
        table, problems = units_from_records(v, where="units")
        if problems:
            raise ValueError("; ".join(f"{f}: {m}" + (f" (value: {val!r})" if val is not None else "")
                                       for f, m, val in problems[:5]))
        return table

    @model_validator(mode="after")
    def _not_empty(self) -> Participants:
        if not (self.group or self.include or self.units or self.units_file):
            raise ValueError("name participants with `group`, `include`, `units` or `units_file`")
        return self

    @model_validator(mode="after")
    def _read_units_file(self, info: ValidationInfo) -> Participants:
        """Read ``units_file`` (relative to ``context["base_dir"]``, the scenario file's folder) once,
        appending its units to the inline ones; its problems raise :class:`InputError` naming the
        file, row, column and value."""
        if self.units_file is None or self.units.source is not None:
            return self
        base = (info.context or {}).get("base_dir") if info is not None else None
        path = Path(self.units_file).expanduser()
        if not path.is_absolute():
            path = Path(base or ".") / path
        table = read_units_file(path, sha256=self.units_sha256)
        self.__dict__["units"] = UnitTable.concat([self.units, table])  # frozen model: set once, here
        return self


Channel = Literal["covax", "bilateral", "avat", "dose-sharing", "other"]
"""How donated doses travel: through the COVAX facility, bilaterally from donor to recipient, the
African Vaccine Acquisition Trust, another dose-sharing arrangement."""


class Earmarks(_Model):
    """A donor's hard constraints on who may receive a lot: listed recipients (ISO3 codes or unit
    ids), excluded recipients, UN M49 regions, World Bank income levels. Every given list must
    match (recipients ∩ regions ∩ income levels), minus the excluded."""

    recipients: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    regions: tuple[Name, ...] = ()
    income_levels: tuple[Name, ...] = ()

    def as_payload(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.model_dump().items() if v}


class Lot(_Model):
    id: Identifier
    product: Name
    doses: Doses
    available: dt.date
    expiry: dt.date
    source: Name = ""
    donor: Name | None = None
    channel: Channel | None = None
    earmarks: Earmarks | None = None
    pledged: dt.date | None = None

    @model_validator(mode="after")
    def _dates(self) -> Lot:
        if self.expiry <= self.available:
            raise ValueError(f"expiry {self.expiry} is not after available {self.available}")
        if self.pledged is not None and self.pledged > self.available:
            raise ValueError(f"pledged {self.pledged} is after available {self.available}")
        if self.channel == "bilateral" and (self.earmarks is None or len(self.earmarks.recipients) != 1):
            raise ValueError("a bilateral lot names its one recipient in earmarks.recipients")
        return self

    @model_serializer(mode="wrap")
    def _terms_when_given(self, handler: Any) -> Any:
        """Donor terms appear in the recorded scenario only when given (so lots without them
        serialise as before)."""
        data = handler(self)
        if isinstance(data, dict):
            for k in ("donor", "channel", "earmarks", "pledged"):
                if data.get(k) is None:
                    data.pop(k, None)
        return data

    @property
    def bilateral(self) -> bool:
        return self.channel == "bilateral"


class SmallStateFloor(_Model):
    """Participants at or below ``max_population`` get at least ``min_doses_per_100`` doses per 100 people."""

    max_population: People
    min_doses_per_100: float = Field(gt=0, le=200)


def _flatten_options(data: Any) -> Any:
    """``{..., options: {k: v}}`` → ``{..., k: v}`` (older files nest policy parameters there)."""
    if isinstance(data, dict) and "options" in data:
        options = data["options"]
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise ValueError("policy.options must be a mapping")
        clash = sorted(set(options) & (set(data) - {"options"}))
        if clash:
            raise ValueError(f"given both in policy and policy.options: {', '.join(clash)}")
        data = {**{k: v for k, v in data.items() if k != "options"}, **options}
    return data


class PolicyParams(_Model):
    """What every policy shares: the COVAX phase-1 machinery.

    Each policy has its own parameter model below (a discriminated union on ``name``), so an
    unknown or misspelt key is an error naming it. Older files that put policy parameters under
    ``options:`` are read the same way (the keys are checked just as strictly).
    """

    name: str = "covax-pro-rata"
    tranches: tuple[float, ...] = (0.03, 0.20)
    buffer: float = Field(default=0.05, ge=0, lt=1)
    small_state_floor: SmallStateFloor | None = None
    caps: dict[str, float] = Field(default_factory=dict)
    round_to_shipping_unit: bool = True

    @model_validator(mode="before")
    @classmethod
    def _flatten_options(cls, data: Any) -> Any:
        return _flatten_options(data)

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

    @property
    def options(self) -> dict[str, Any]:
        """The policy's own parameters (those beyond the phase-1 machinery) that are set."""
        common = set(PolicyParams.model_fields)
        return self.model_dump(exclude=common, exclude_none=True)


class ProRataParams(PolicyParams):
    """``covax-pro-rata``: phase 1, pro rata to population."""

    name: Literal["covax-pro-rata"] = "covax-pro-rata"


class NeedWeightedParams(PolicyParams):
    """``covax-need-weighted``: population × need score; need from ``need`` or a WHO file."""

    name: Literal["covax-need-weighted"] = "covax-need-weighted"
    need: dict[str, float] | None = None
    who: str | None = None
    as_of: dt.date | None = None
    vaccination: str | None = None
    missing_need: Literal["error", "exclude"] = "error"

    @field_validator("need")
    @classmethod
    def _finite(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for k, x in (v or {}).items():
            if not (x == x and 0 <= x < float("inf")):
                raise ValueError(f"need score of {k} must be a finite number >= 0, got {x}")
        return v


class FixedParams(PolicyParams):
    """``fixed``: amounts already decided, ``{participant: doses}`` or ``{lot: {participant: doses}}``."""

    name: Literal["fixed"] = "fixed"
    amounts: dict[str, Any] | None = None


SolverName = Literal["auto", "simplex", "ipm", "pdlp"]


class OptimalParams(PolicyParams):
    """``optimal`` and its equity-floor variants: deaths averted maximised on HiGHS.

    Modelling parameters first; ``solver``, ``threads`` and ``time_limit`` only tell HiGHS how
    to solve (they never change the optimum's definition).
    """

    name: Literal["optimal", "optimal-floor-50", "optimal-floor-100"] = "optimal"
    equity_floor: float = Field(default=0.0, ge=0, le=1)
    max_share: float | None = Field(default=None, gt=0, le=1)
    weeks: int = Field(default=52, ge=1, le=520)
    tiers: int = Field(default=4, ge=1, le=16)
    late_discount: float = Field(default=0.5, ge=0, lt=1)
    mip: bool = False
    start: dt.date | None = None
    values: Literal["model", "tiers"] = "model"
    """``model``: value curves simulated by the impact model, re-linearised (the default);
    ``tiers``: the weekly LP on tier values at 1 % coverage."""
    max_iter: int = Field(default=6, ge=1, le=50)
    """Most LP solves on re-linearised value curves."""
    solver: SolverName = "auto"
    threads: int | None = Field(default=None, ge=1, le=256)
    time_limit: float | None = Field(default=None, gt=0, le=86_400)


class PriorityGroupsParams(PolicyParams):
    """``priority-groups`` and its presets (``pro-rata-65+``, ``high-income-first``,
    ``low-income-first``): named groups served in order, pro rata within a group to the
    population of an age group (see :mod:`dosewise.policies.targeted`)."""

    name: Literal["priority-groups", "pro-rata-65+", "high-income-first", "low-income-first"] = "priority-groups"
    order: tuple[str | tuple[str, ...], ...] | None = None
    age: str | None = None
    ceiling: float | None = Field(default=None, gt=0, le=1)


POLICY_MODELS: dict[str, type[PolicyParams]] = {
    "covax-pro-rata": ProRataParams,
    "covax-need-weighted": NeedWeightedParams,
    "fixed": FixedParams,
    "optimal": OptimalParams,
    "optimal-floor-50": OptimalParams,
    "optimal-floor-100": OptimalParams,
    "priority-groups": PriorityGroupsParams,
    "pro-rata-65+": PriorityGroupsParams,
    "high-income-first": PriorityGroupsParams,
    "low-income-first": PriorityGroupsParams,
}
"""The parameter model of every policy a scenario may name."""

AnyPolicyParams = Annotated[
    ProRataParams | NeedWeightedParams | FixedParams | OptimalParams | PriorityGroupsParams,
    Field(discriminator="name"),
]


def policy_params(data: Mapping[str, Any] | PolicyParams | None = None, /, **update: Any) -> PolicyParams:
    """Validated parameters of the policy ``data["name"]`` (default ``covax-pro-rata``), with
    ``update`` applied (e.g. another ``name`` keeps the shared phase-1 parameters)."""
    if isinstance(data, PolicyParams):
        base = data.model_dump(exclude_none=True)
        if "name" in update and update["name"] != data.name:  # another policy: keep the shared part only
            base = {k: v for k, v in base.items() if k in PolicyParams.model_fields}
        data = base
    merged: dict[str, Any] = {**dict(data or {}), **update}
    try:
        merged = _flatten_options(merged)
    except ValueError as exc:
        raise InputError(str(exc), field="policy.options") from None
    name = merged.setdefault("name", "covax-pro-rata")
    model = POLICY_MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        known = ", ".join(sorted(POLICY_MODELS))
        raise InputError(f"unknown policy; known: {known}", field="policy.name", value=name)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "policy." + ".".join(str(p) for p in first["loc"])
        raise InputError(first["msg"], field=where, value=first.get("input")) from None


class ScriptedResponse(_Model):
    """A response the demo or a test scripts into a round."""

    participant: str
    lot: str | None = None
    action: Literal["accept", "decline"]
    reason: DeclineReason | None = None
    note: Text | None = None
    wish: Name | None = None


class ReadinessRule(_Model):
    """Shipment waits until the participant meets every listed condition for the product; an
    accepted offer whose participant is not ready ``days`` after accepting lapses back to the pool."""

    conditions: tuple[Literal["deployment_plan", "indemnity", "import_permit", "cold_chain"], ...] = (
        "deployment_plan", "indemnity", "import_permit")
    days: int = Field(default=30, ge=0, le=3650)


class RoundRules(_Model):
    id: Identifier | None = None
    opens: dt.date | None = None
    response_days: int = Field(default=7, ge=0, le=3650)
    min_shelf_life_days: int = Field(default=70, ge=0, le=3650)
    reallocation: Literal["need", "pro-rata", "optimal"] = "need"
    max_passes: int = Field(default=10, ge=1, le=1000)
    recipients_per_pass: int = Field(default=3, ge=1, le=100_000)
    default_response: Literal["accept", "lapse"] = "accept"
    responses: tuple[ScriptedResponse, ...] = ()
    readiness: ReadinessRule | None = None


class Scenario(_Model):
    """A validated scenario: who takes part, which lots, by which policy, under which round rules.

    Built from YAML by :func:`load_scenario` or from a mapping by :func:`parse_scenario`; frozen,
    and every unknown key is an error (see the README for the file format).

    Parameters
    ----------
    name : str, default "scenario"
        A title (at most 200 characters).
    description : str, default ""
        Free text.
    year : int, default 2020
        The year of the population estimates (UN WPP 2024).
    as_of : datetime.date, optional
        The scenario's day 0: rounds open and need is ranked as of this date, and day offsets
        (:meth:`World.days`) count from it.
    participants : Participants
        A named group and/or ISO3 codes, per-participant overrides, or sub-national units.
    products : tuple of Product, default ()
        Products added to or overriding the built-in catalogue.
    lots : tuple of Lot
        At least one lot: product, doses, available and expiry dates.
    policy : ProRataParams or NeedWeightedParams or FixedParams or OptimalParams or PriorityGroupsParams
        The policy and its own typed parameters (a discriminated union on ``name``).
    round : RoundRules
        Response days, minimum shelf life, reallocation order and scripted answers.
    epidemic : EpidemicSettings, optional
        What ``compare`` and ``optimal`` simulate.
    sources : dict of str to str
        The source of each figure, by topic.

    Examples
    --------
    >>> from dosewise import parse_scenario
    >>> sc = parse_scenario({
    ...     "as_of": "2021-08-30",
    ...     "participants": {"include": ["KEN", "UGA"]},
    ...     "lots": [{"id": "CV", "product": "CoronaVac", "doses": 100000,
    ...               "available": "2021-08-30", "expiry": "2022-02-28"}],
    ... })
    >>> sc.as_of, sc.policy.name, sc.lots[0].doses
    (datetime.date(2021, 8, 30), 'covax-pro-rata', 100000)
    """
    @model_validator(mode="before")
    @classmethod
    def _policy_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("policy"), dict) and "name" not in data["policy"]:
            data = {**data, "policy": {**data["policy"], "name": "covax-pro-rata"}}
        return data

    name: Name = "scenario"
    description: Text = ""
    year: int = Field(default=2020, ge=1950, le=2100, strict=True)
    as_of: dt.date | None = None
    participants: Participants
    products: tuple[Product, ...] = ()
    lots: tuple[Lot, ...] = Field(min_length=1)
    policy: AnyPolicyParams = ProRataParams()
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


def _unit_where(units: UnitTable, i: int, column: str) -> str:
    if units.source is not None:
        return f"participants.units_file ({units.source}) id {units.ids[i]!s}, column {column}"
    return f"participants.units[{i}].{column}"


def _unit_problems(units: UnitTable, prods: dict[str, Product], problems: list[tuple[str, str, Any]]) -> list[str]:
    """Codes of reference data and catalogue named by units, checked once per distinct value."""
    from dosewise.reference.countries import iso3_codes

    if not units:
        return []
    known_iso3 = iso3_codes()
    for column in ("parent", "age_structure_like"):
        col = units.get(column)
        if col is None:
            continue
        for value in sorted(v for v in set(col.tolist()) if v is not None):  # each distinct value once
            if value.strip().upper() not in known_iso3:
                i = int(np.flatnonzero(col == value)[0])
                problems.append((_unit_where(units, i, column), "unknown ISO 3166-1 alpha-3 code", value))
    for column in LISTS:
        col = units.get(column)
        if col is None or column == "cold_chain":
            continue
        names = {name for v in col.tolist() if v is not None for name in v}
        for name in sorted(names):
            if resolve_product(name, prods) is None:
                i = next(j for j, v in enumerate(col.tolist()) if v is not None and name in v)
                problems.append((f"{_unit_where(units, i, column)}", "unknown product", name))
    ids: list[str] = units.ids.tolist()
    return ids


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
    codes += _unit_problems(p.units, prods, problems)
    known = set(codes)
    if len(known) != len(codes):
        for k, n in Counter(codes).items():
            if n > 1:
                problems.append(("participants", "duplicate participant", k))
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
    problems += earmark_problems(sc.lots, known)
    if sc.round.reallocation == "optimal" and not sc.policy.name.startswith("optimal"):
        problems.append(("round.reallocation", "optimal reallocation re-optimises an optimal allocation; "
                         "set policy.name to optimal, optimal-floor-50 or optimal-floor-100", "optimal"))
    for i, r in enumerate(sc.round.responses):
        if r.participant.upper() not in known:
            problems.append((f"round.responses[{i}].participant", "not a participant of the scenario", r.participant))
        if r.action == "decline" and r.reason is None:
            problems.append((f"round.responses[{i}].reason", "a decline needs a reason", None))
    return problems


def earmark_problems(lots: tuple[Lot, ...], known: set[str], *, where: str = "lots") -> list[tuple[str, str, Any]]:
    """Earmarks naming a code that is not a participant, a region or income level no country
    has; a bilateral recipient outside the scenario."""
    from dosewise.reference.countries import known_income_levels, known_regions, validate_iso3

    problems: list[tuple[str, str, Any]] = []
    regions, incomes = known_regions(), known_income_levels()
    for i, lot in enumerate(lots):
        e = lot.earmarks
        if lot.donor is not None and len(lot.donor) == 3 and lot.donor.isupper():
            try:
                validate_iso3(lot.donor)
            except InputError:
                problems.append((f"{where}[{i}].donor", "unknown ISO 3166-1 alpha-3 code", lot.donor))
        if e is None:
            continue
        for field in ("recipients", "exclude"):
            for j, code in enumerate(getattr(e, field)):
                if code.upper() not in known:
                    problems.append((f"{where}[{i}].earmarks.{field}[{j}]", "not a participant of the scenario",
                                     code))
        for j, r in enumerate(e.regions):
            if r not in regions:
                problems.append((f"{where}[{i}].earmarks.regions[{j}]",
                                 f"unknown region; known: {', '.join(sorted(regions))}", r))
        for j, r in enumerate(e.income_levels):
            if r not in incomes:
                problems.append((f"{where}[{i}].earmarks.income_levels[{j}]",
                                 f"unknown income level; known: {', '.join(sorted(incomes))}", r))
    return problems


def parse_scenario(data: Any, *, file: str | None = None, base_dir: str | Path | None = None) -> Scenario:
    """Validate a parsed YAML mapping.

    Parameters
    ----------
    data : Any
        The mapping (as ``yaml.safe_load`` returns it); anything else is an error.
    file : str, optional
        The file it came from, named in every error.
    base_dir : str or pathlib.Path, optional
        Where a relative ``participants.units_file`` is looked for: by default the folder of
        ``file`` when that names an existing file, else the current folder.

    Returns
    -------
    Scenario
        The validated scenario.

    Raises
    ------
    ScenarioError
        Listing every problem, each with its field path and value.

    Examples
    --------
    >>> from dosewise import parse_scenario, ScenarioError
    >>> sc = parse_scenario({"participants": {"include": ["KEN"]},
    ...                      "lots": [{"id": "L1", "product": "AZD1222", "doses": 24000,
    ...                                "available": "2021-03-01", "expiry": "2021-09-01"}]})
    >>> sc.participants.include
    ('KEN',)
    >>> try:
    ...     parse_scenario({"participants": {"include": ["KEN"]}, "lots": [], "polcy": {}})
    ... except ScenarioError as exc:
    ...     print(sorted(field for field, _, _ in exc.problems))
    ['lots', 'polcy']
    """
    if not isinstance(data, dict):
        raise ScenarioError(file, [("(top level)", "a scenario is a mapping of fields", type(data).__name__)])
    if base_dir is None and file is not None and Path(file).is_file():
        base_dir = Path(file).resolve().parent
    problems: list[tuple[str, str, Any]] = []
    part = data.get("participants")
    if isinstance(part, dict) and "units" in part and not isinstance(part["units"], UnitTable):
        table, problems = units_from_records(part["units"])
        data = {**data, "participants": {**part, "units": table}}
    try:
        sc = Scenario.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        errors = exc.errors()
        for err in errors:
            loc = tuple(err["loc"])
            if len(loc) > 1 and loc[0] == "policy" and loc[1] in POLICY_MODELS:
                loc = (loc[0], *loc[2:])  # the union's tag says nothing the name does not
            if err["type"] == "too_short" and any(tuple(e["loc"][:len(loc)]) == loc and len(e["loc"]) > len(loc)
                                                  for e in errors):
                continue  # "at least one lot" when the lot given is itself invalid
            value = _lookup(data, loc) if err["type"] != "missing" else None
            if isinstance(value, dict | list):  # a whole mapping says nothing the message does not
                value = None
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((_loc(loc), msg, value))
        raise ScenarioError(file, problems) from None
    if problems:
        raise ScenarioError(file, problems)
    problems = _semantic_problems(sc)
    if problems:
        raise ScenarioError(file, problems)
    return sc


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 1 MB scalars in ms


class _StrictLoader(_Base):  # type: ignore[misc]
    """Safe YAML that refuses duplicate keys (a later key would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _timestamp_or_text(loader: _StrictLoader, node: yaml.ScalarNode) -> Any:
    """A date that does not exist (``2021-02-30``) stays text, so that validation names its field and value."""
    try:
        return loader.construct_yaml_timestamp(node)  # type: ignore[no-untyped-call]
    except (ValueError, OverflowError):
        return str(node.value)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _node_limits(root: yaml.Node) -> tuple[int, int]:
    """(values after expanding aliases, depth) of a composed YAML document, in one pass over its
    distinct nodes (an alias is the same node object, counted as often as it is used)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    seen: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            size[key] = min(1 + sum(size.get(id(k), 1) for k in kids), MAX_YAML_NODES + 1)
            depth[key] = 1 + max((depth.get(id(k), 1) for k in kids), default=0)
            continue
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > MAX_YAML_NODES:
            return MAX_YAML_NODES + 1, 0
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in seen)
    return size.get(id(root), 1), depth.get(id(root), 1)


class _Fallback(Exception):
    """The document uses something the event reader leaves to the node reader (anchors, aliases,
    tags on collections, merge keys, complex keys, several documents)."""


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
"""Integers that YAML 1.1's constructor reads exactly as :func:`int` does (no ``_``, octal, hex, ``:``)."""
_PLAIN_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?")
"""Floats that YAML 1.1's constructor reads exactly as :func:`float` does."""
_NO_KEY = object()


def _limits_error(file: str | None, *, depth: bool) -> InputError:
    if depth:
        return InputError(f"nested more than {MAX_YAML_DEPTH} levels deep", file=file)
    return InputError(f"more than {MAX_YAML_NODES:,} values once aliases are expanded", file=file)


def _read_events(loader: Any, file: str | None) -> Any:
    """Build the document straight from libyaml's event stream, in one pass that counts values and
    levels (refusing past :data:`MAX_YAML_NODES` or :data:`MAX_YAML_DEPTH` at once) and refuses
    duplicate keys: no node graph, no second walk. Scalars resolve with the loader's own implicit
    resolvers and constructors (the common ones inlined), so the values are those
    ``construct_document`` gives. Raises :class:`_Fallback` for what only the node reader handles."""
    if loader.yaml_path_resolvers:
        raise _Fallback
    get = loader.get_event
    resolvers = loader.yaml_implicit_resolvers
    if None in resolvers:
        raise _Fallback
    resolve = loader.resolve
    bools = loader.bool_values
    plain_int, plain_float = _PLAIN_INT.fullmatch, _PLAIN_FLOAT.fullmatch
    scalar_ev, map_start, map_end = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.MappingEndEvent
    seq_start, seq_end = yaml.SequenceStartEvent, yaml.SequenceEndEvent
    get()  # StreamStartEvent
    event = get()
    if isinstance(event, yaml.StreamEndEvent):
        return None
    # the open collection (container, whether a mapping, its pending key or _NO_KEY, its mark), and
    # those around it on the stack
    stack: list[tuple[Any, bool, Any, Any]] = []
    container: Any = None
    in_map = False
    pending: Any = _NO_KEY
    mark: Any = None
    root: Any = None
    count = 0
    duplicate: yaml.constructor.ConstructorError | None = None
    while True:
        event = get()
        cls = event.__class__
        if cls is scalar_ev:
            if event.anchor is not None:
                raise _Fallback
            count += 1
            value = event.value
            tag = event.tag
            if tag is None and not (event.implicit[0] and (not value or value[0] in resolvers)):
                obj: Any = value  # quoted, or plain that no implicit resolver can claim: a string
            else:
                if tag is None or tag == "!":
                    tag = resolve(yaml.ScalarNode, value, event.implicit)
                if tag == _STR_TAG:
                    obj = value
                elif tag == _FLOAT_TAG and plain_float(value):
                    obj = float(value)
                elif tag == _INT_TAG and plain_int(value):
                    obj = int(value)
                elif tag == _NULL_TAG:
                    obj = None
                elif tag == _BOOL_TAG:
                    obj = bools[value.lower()]
                elif tag == _MERGE_TAG:
                    raise _Fallback
                else:
                    obj = loader.construct_object(yaml.ScalarNode(tag, value, event.start_mark, event.end_mark,
                                                                  event.style), deep=True)
            if in_map:
                if pending is _NO_KEY:
                    try:
                        seen = obj in container
                    except TypeError:
                        raise _Fallback from None
                    if seen and duplicate is None:
                        duplicate = yaml.constructor.ConstructorError(
                            "while reading a mapping", mark, f"duplicate key {obj!r}", event.start_mark)
                    pending = obj
                else:
                    container[pending] = obj
                    pending = _NO_KEY
            elif container is not None:
                container.append(obj)
            else:
                root = obj
            if len(stack) >= MAX_YAML_DEPTH:
                raise _limits_error(file, depth=True)
        elif cls is map_start or cls is seq_start:
            if event.anchor is not None or event.tag not in (None, "!", _MAP_TAG if cls is map_start else _SEQ_TAG):
                raise _Fallback
            count += 1
            if len(stack) >= MAX_YAML_DEPTH:
                raise _limits_error(file, depth=True)
            new: Any = {} if cls is map_start else []
            if in_map:
                if pending is _NO_KEY:
                    raise _Fallback  # a collection as a key
                container[pending] = new
                pending = _NO_KEY
            elif container is not None:
                container.append(new)
            else:
                root = new
            stack.append((container, in_map, pending, mark))
            container, in_map, pending, mark = new, cls is map_start, _NO_KEY, event.start_mark
        elif cls is map_end or cls is seq_end:
            container, in_map, pending, mark = stack.pop()
        elif cls is yaml.DocumentEndEvent:
            if not isinstance(get(), yaml.StreamEndEvent):
                raise _Fallback  # several documents: the node reader says so
            break
        else:  # an alias
            raise _Fallback
        if count > MAX_YAML_NODES:
            raise _limits_error(file, depth=False)
    if duplicate is not None:
        raise duplicate
    return root


FAST_YAML_MIN_CHARS = 256 * 1024
"""Texts at least this long are first offered to the Rust reader (``yaml_rs``, see :func:`_read_fast`):
below it PyYAML's event reader takes a few milliseconds and the screen would cost as much as it saves
(every hand-written scenario is far smaller; 100,000 inline units are about 5.7 MB)."""

_SPECIAL_WORD = r"(?i:yes|no|on|off|y|n|true|false|null|nan|inf|infinity)"
_PLAIN_CHAR = r"A-Za-z0-9_,.()/+\-';\"$^"
_QUOTED = r"""'(?:[\x20-\x26\x28-\x7e]|'')*'|"[\x20\x21\x23-\x5b\x5d-\x7e]*\""""
_FAST_VALUE = (
    r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]+(?:e[-+][0-9]{1,3})?)?|-?\.inf|\.nan"  # numbers as safe_dump writes them
    r"|true|True|TRUE|false|False|FALSE|null|Null|NULL|~|\[\]|\{\}"
    f"|{_QUOTED}"
    f"|(?!{_SPECIAL_WORD}(?: *$| +#))[A-Za-z][{_PLAIN_CHAR} ]*"  # text starting with a letter
    f"|[0-9][{_PLAIN_CHAR}]*(?: +[{_PLAIN_CHAR}]+)+"  # words starting with a digit ("100,000 units")
)
_FAST_LINE = (
    r" *(?:-(?: +|$))*"  # indentation, sequence entries
    # key: value (a key's first character but "_" is a letter: yaml_rs reads "_1", "_1.5" as numbers)
    f"(?:(?:(?!{_SPECIAL_WORD}:)_*[A-Za-z][A-Za-z0-9_.\\-]*|{_QUOTED}):(?: +(?:{_FAST_VALUE}))?"
    f"|(?:{_FAST_VALUE}))?"
    r"(?: +#[\x20-\x7e]*)? *"  # a comment
    r"|#[\x20-\x7e]*")
"""One line of the block-style YAML both readers read alike (see :func:`_fast_screen`), in ASCII."""
_FAST_NON_ASCII_REFUSED = (
    "[\x80-\xa0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ud800-\udfff\ufeff\ufff0-\uffff]")
"""Characters outside ASCII that send a text to PyYAML: not printable for YAML 1.1 (C1 controls, NEL,
surrogates, U+FFFE/U+FFFF), line and paragraph separators, byte-order marks, and the no-break and
other Unicode spaces and format characters a reader might take for whitespace."""
_SHAPE = bytes.maketrans(b"23456789" + bytes(range(0x80, 0x100)), b"11111111" + b"Q" * 0x80)
"""Digits 2-9 become ``1`` and every byte of a character outside ASCII ``Q`` (a letter in no YAML 1.1
boolean or null word): the line grammar treats each group alike, ``0`` stays (leading zeros)."""


@functools.cache
def _fast_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    return re.compile(_FAST_LINE), re.compile(_FAST_NON_ASCII_REFUSED)


def _fast_screen(text: str) -> bool:
    """Whether ``text`` passes :func:`_screened_shapes` (every line in the subset both readers read alike)."""
    return _screened_shapes(text) is not None


def _screened_shapes(text: str) -> set[bytes] | None:
    """The distinct line shapes of ``text`` (:data:`_SHAPE`) when every line keeps to the subset of block-style
    YAML on which ``yaml_rs`` (YAML 1.2, saphyr) and PyYAML's safe loader (YAML 1.1, with dosewise's
    constructors) give identical documents: plain keys that are no YAML 1.1 boolean or null word and start with
    a letter after any ``_`` (yaml_rs reads ``_1`` or ``_1.5`` as a number, dropping the underscore); values that
    are decimal numbers as ``yaml.safe_dump`` writes them (no octal, hex, ``_``, sexagesimal, exponent without
    sign: ``1e3`` is text for PyYAML and a number for yaml_rs), ``true``/``false``/``null`` in the three
    spellings both read alike, quoted text without escapes, plain text of safe characters starting with a letter
    (no ``yes``/``no``/``on``/``off``, which are booleans only in YAML 1.1) or several words starting with a
    digit; comments. Anything else (flow collections but ``[]`` and ``{}``, unquoted dates and times, anchors,
    aliases, tags, directives, ``<<``, ``=``, ``?`` keys, block scalars, several documents, tabs, carriage
    returns, control characters, Unicode line breaks and spaces) sends the text to PyYAML. Over-approximates by
    design: a line refused only costs time.

    Lines are checked once per distinct shape (:data:`_SHAPE`): 100,000 units make about a hundred. None when a
    line is outside the subset."""
    line, refused = _fast_patterns()
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return None
    if not raw.isascii() and refused.search(text):
        return None
    match = line.fullmatch
    shapes = set(raw.translate(_SHAPE).split(b"\n"))
    return shapes if all(match(shape.decode("ascii")) for shape in shapes) else None


def _surely_within_limits(text: str, shapes: set[bytes]) -> bool:
    """Whether a text of these screened line shapes must stay inside :data:`MAX_YAML_NODES` values and
    :data:`MAX_YAML_DEPTH` levels, read from the text alone (no walk over the document).

    In the screened subset every value PyYAML counts sits on its own line: a sequence is opened by a
    ``-``, a mapping by a line with a key, and each line adds at most a key (before a ``:``) and a
    value (after a ``:`` or a ``-``); so there are at most ``1 + 2 × (count of "-") + 3 × (count of
    ":")`` values, whatever else those characters are. Levels: a nested mapping starts at least one
    column to the right, a sequence under a key may start in the key's column but its items' content
    starts two columns on, so each column of indentation and ``- `` markers adds at most two levels,
    plus the root, an empty ``[]`` or ``{}`` and a scalar."""
    values = 1 + 2 * text.count("-") + 3 * text.count(":")
    return values < MAX_YAML_NODES and _levels_at_most(shapes) < MAX_YAML_DEPTH - 1


def _levels_at_most(shapes: set[bytes]) -> int:
    """How deep a text of these screened line shapes may nest (see :func:`_surely_within_limits`)."""
    widest = max(len(shape) - len(shape.lstrip(b" -")) for shape in shapes)
    return 2 * widest + 3


_FAST_MAX_LEVELS = 2 * MAX_YAML_DEPTH
"""A screened text that may nest deeper is not offered to ``yaml_rs`` at all: its reader recurses once
per level, and a text nested deep enough (100,000 ``- `` on a line, 200 KB) overflows the thread's
stack and ends the process; PyYAML refuses it past :data:`MAX_YAML_DEPTH`. At 100 levels the Rust
reader keeps inside a 128 KiB thread stack."""


def _within_limits(root: Any) -> bool:
    """Whether a document yaml_rs built has only string keys and stays clearly inside :data:`MAX_YAML_NODES`
    values (keys, values and collections, counted as the PyYAML reader counts them) and
    :data:`MAX_YAML_DEPTH` levels. One walk over the collections, a level at a time, with the per-item
    work in C (``map``, ``chain``): 100,000 units take a few tens of milliseconds."""
    count = 1
    level: list[Any] = [root]
    depth = 1
    while level:
        if depth >= MAX_YAML_DEPTH - 1:
            return False
        kinds = set(map(type, level))
        dicts = level if kinds == {dict} else [c for c in level if type(c) is dict]
        lists = [] if kinds == {dict} else [c for c in level if type(c) is not dict]
        count += 2 * sum(map(len, dicts)) + sum(map(len, lists))
        if count >= MAX_YAML_NODES or not set(map(type, itertools.chain.from_iterable(dicts))) <= {str}:
            return False
        values = [*itertools.chain.from_iterable(map(dict.values, dicts)), *itertools.chain.from_iterable(lists)]
        kinds = set(map(type, values))
        if not kinds <= _FAST_TYPES:
            return False
        level = [v for v in values if type(v) is dict or type(v) is list] if kinds & {dict, list} else []
        depth += 1
    return True


_FAST_TYPES = {str, int, float, bool, type(None), dict, list}
"""What a document read by PyYAML's safe loader from the screened subset may hold."""


_NO_FAST_RESULT = object()


def _read_fast(text: str, *, min_chars: int | None = None) -> Any:
    """The document ``yaml_rs`` reads from ``text``, or :data:`_NO_FAST_RESULT` when the PyYAML reader must
    read it instead: text shorter than ``min_chars`` (default :data:`FAST_YAML_MIN_CHARS`), ``yaml_rs``
    not installed, anything outside :func:`_fast_screen`'s subset or indented so far that it may nest past
    :data:`_FAST_MAX_LEVELS` levels, any error (PyYAML then gives its own
    message with line and column), a result beyond the limits or with keys or values PyYAML would not
    give. Never a different document."""
    if len(text) < (FAST_YAML_MIN_CHARS if min_chars is None else min_chars):
        return _NO_FAST_RESULT
    try:
        import yaml_rs
    except Exception:  # missing or broken: the PyYAML reader is the reference anyway
        return _NO_FAST_RESULT
    shapes = _screened_shapes(text)
    if shapes is None or _levels_at_most(shapes) > _FAST_MAX_LEVELS:
        return _NO_FAST_RESULT
    paused = gc.isenabled()
    gc.disable()  # a million new containers, none in a cycle: no collection would find anything to free
    try:
        data = yaml_rs.loads(text, parse_datetime=False, duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error)
    except Exception:
        return _NO_FAST_RESULT
    finally:
        if paused:
            gc.enable()
    if type(data) is not dict and type(data) is not list:
        return _NO_FAST_RESULT
    if _surely_within_limits(text, shapes):  # keys and values of the screened subset are of PyYAML's types
        return data
    return data if _within_limits(data) else _NO_FAST_RESULT


def read_yaml(text: str, *, file: str | None = None) -> Any:
    """Parse YAML strictly: safe types only, no duplicate keys, at most :data:`MAX_YAML_NODES` values
    after expanding aliases and :data:`MAX_YAML_DEPTH` levels. Problems are one clear
    :class:`~dosewise.errors.InputError` naming the file and line.

    Large texts in the plain block style ``yaml.safe_dump`` writes (100,000 inline units) are read by
    ``yaml_rs`` when they pass a screen that guarantees the same document (:func:`_read_fast`); every
    other text, and any that screen or reader declines, is read by PyYAML, which stays the reference
    (values, errors and their messages). Documents without anchors, aliases or tagged collections
    (every scenario dosewise writes) are built in one pass over libyaml's events; the others go
    through the composed node graph, whose distinct nodes are counted before anything is built (an
    alias bomb is refused in milliseconds)."""
    if len(text) > MAX_SCENARIO_BYTES:
        raise InputError(f"file larger than {MAX_SCENARIO_BYTES // (1024 * 1024)} MiB; put participants in a "
                         "units file", file=file, value=f"{len(text):,} characters")
    try:
        data = _read_fast(text)
        if data is not _NO_FAST_RESULT:
            return data
        loader = _StrictLoader(text)
        try:
            return _read_events(loader, file)
        except _Fallback:
            pass
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()  # type: ignore[no-untyped-call]
            if node is None:
                return None
            count, levels = _node_limits(node)
            if count > MAX_YAML_NODES:
                raise _limits_error(file, depth=False)
            if levels > MAX_YAML_DEPTH:
                raise InputError(f"nested more than {MAX_YAML_DEPTH} levels deep", file=file, value=levels)
            return loader.construct_document(node)  # type: ignore[no-untyped-call]
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", file=file) from None
    except RecursionError:
        raise InputError(f"nested more than {MAX_YAML_DEPTH} levels deep", file=file) from None
    except (ValueError, OverflowError) as exc:
        raise InputError(f"not a valid value: {exc}", file=file) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file.

    Parameters
    ----------
    path : str or pathlib.Path
        A UTF-8 YAML file (at most 16 MiB).

    Returns
    -------
    Scenario
        The validated scenario.

    Raises
    ------
    InputError
        The file is missing, a folder, too large or not UTF-8 (:class:`ScenarioError`, a kind of
        :class:`InputError`, when its content does not validate).

    Examples
    --------
    >>> from pathlib import Path
    >>> from dosewise import load_scenario
    >>> import yaml
    >>> scenario = {"participants": {"include": ["KEN", "UGA"]},
    ...             "lots": [{"id": "L1", "product": "AZD1222", "doses": 24000,
    ...                       "available": "2021-03-01", "expiry": "2021-09-01"}]}
    >>> _ = Path("tiny.yaml").write_text(yaml.safe_dump(scenario), encoding="utf-8")
    >>> sc = load_scenario("tiny.yaml")
    >>> [lot.id for lot in sc.lots]
    ['L1']
    """
    p = Path(path)
    text = read_text_file(p, "scenario", MAX_SCENARIO_BYTES, f"file larger than "
                          f"{MAX_SCENARIO_BYTES // (1024 * 1024)} MiB; put participants in a units file")
    return _resolve_paths(parse_scenario_text(text, file=str(p)), p.parent)


def read_text_file(p: Path, kind: str, max_bytes: int, too_large: str) -> str:
    """The UTF-8 text of the ``kind`` file (``"scenario"``, ``"sweep"``) at ``p``, or one clear
    :class:`InputError` naming it: missing, a folder, larger than ``max_bytes`` (``too_large``
    says so), not UTF-8, unreadable, or holding NUL bytes."""
    try:
        if p.stat().st_size > max_bytes:
            raise InputError(too_large, file=str(p), value=f"{p.stat().st_size:,} bytes")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{kind} file not found", file=str(p)) from None
    except IsADirectoryError:
        raise InputError(f"a folder, not a {kind} file", file=str(p)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start})",
                         file=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read {kind} file: {exc.strerror or exc}", file=str(p)) from None
    if "\x00" in text:
        raise InputError("not a text file (it contains NUL bytes)", file=str(p))
    return text


def _resolve_paths(sc: Scenario, folder: Path) -> Scenario:
    """Files a scenario names (surveillance feeds) are relative to the scenario file, not the
    folder the command runs in."""
    updates = {}
    for key in ("who", "vaccination"):
        value = getattr(sc.policy, key, None)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            updates[key] = str((folder / value).resolve())
    if not updates:
        return sc
    return sc.model_copy(update={"policy": policy_params(sc.policy, **updates)})


def parse_scenario_text(text: str, *, file: str | None = None) -> Scenario:
    """Parse YAML text strictly (:func:`read_yaml`) and validate it; YAML errors (and impossible dates
    such as 2021-02-30, which the YAML loader rejects) are reported with their line."""
    data = read_yaml(text, file=file)
    return parse_scenario(data, file=file)


def demo_scenario_path() -> Path:
    return Path(str(resources.files("dosewise") / "data" / "demo_amc92.yaml"))


def load_demo() -> Scenario:
    """The built-in demo scenario: the first COVAX AstraZeneca round among the 92 AMC economies.

    Returns
    -------
    Scenario
        ``src/dosewise/data/demo_amc92.yaml``, validated (sources in the file).

    Examples
    --------
    >>> from dosewise import load_demo
    >>> sc = load_demo()
    >>> sc.as_of, [lot.id for lot in sc.lots], sc.policy.name
    (datetime.date(2021, 2, 3), ['SII-AZ-2021H1', 'AZ-2021H1'], 'covax-pro-rata')
    """
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
