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
import itertools
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
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
from dosewise.yamlread import (
    read_scenario_file,
    read_scenario_yaml,
)

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
    return scenario_from_file_data(read_scenario_file(p), p)


def scenario_from_file_data(data: Any, p: Path) -> Scenario:
    """The scenario in ``data``, read from the file at ``p`` (:func:`~dosewise.yamlread.read_scenario_file`):
    validated, its files named relative to the file's folder."""
    return _resolve_paths(parse_scenario(data, file=str(p)), p.parent)


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
    """Parse YAML text strictly (:func:`~dosewise.yamlread.read_scenario_yaml`) and validate it; YAML errors
    (and impossible dates such as 2021-02-30, which the YAML loader rejects) are reported with their line."""
    data = read_scenario_yaml(text, file=file)
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
