"""The application layer: the one Python API that the CLI, the REST service and sweeps call.

Every operation takes and returns typed objects (:class:`~dosewise.scenario.Scenario`,
:class:`~dosewise.world.World`, :class:`~dosewise.allocation.Allocation`,
:class:`~dosewise.rounds.RoundState`, data frames) and never prints. Interfaces parse their
input, call one function here, and render the result.

Stateless operations are functions (:func:`allocate`, :func:`compare`, :func:`need`);
operations on a ledger go through :class:`Desk`, which holds one open store and the round
layer's caches for as long as the caller keeps it (a CLI command, a service process).

Examples
--------
>>> from dosewise import app
>>> result = app.allocate(app.load("demo"))
>>> int(result.allocation.doses.sum()) > 0
True
>>> desk = app.Desk.open("memory")
>>> state = desk.open_round(app.load("demo"), round_id="R1")
>>> state.balance_ok()
True
>>> desk.close()
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from dosewise.errors import InputError

_T = TypeVar("_T")

if TYPE_CHECKING:
    import pandas as pd
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from dosewise.allocation import Allocation
    from dosewise.compare import PolicyRuns
    from dosewise.epidemic import EpidemicSettings
    from dosewise.impact.parameters import ImpactParams
    from dosewise.ledger import Event, LedgerView, NewEvent, Store, VerifyReport
    from dosewise.ledger.identities import Identity, KeyRing
    from dosewise.ledger.store import ExportFormat
    from dosewise.rounds import Rounds, RoundState
    from dosewise.scenario import Lot, Scenario
    from dosewise.world import World

__all__ = [
    "DEMO_KEYS",
    "DEMO_NEED_AS_OF",
    "FULL_CHECK_EVENTS",
    "Allocated",
    "Comparison",
    "DemoResult",
    "Desk",
    "allocate",
    "audit_rounds",
    "cached_who",
    "compare",
    "demo_texts",
    "load",
    "load_text",
    "need",
    "need_for_world",
    "participants_for_group",
    "remember_head",
    "stage_demo",
    "sweep",
]

FULL_CHECK_EVENTS = 200_000
"""Up to this many events, a process checks the whole chain before its first write."""

DEMO_NEED_AS_OF = dt.date(2021, 8, 29)
"""The week before the demo's CoronaVac round opened: the need ranking its reallocation uses."""


def load(scenario: Scenario | str | Path) -> Scenario:
    """A validated scenario from an object, the demo's name, or a YAML file.

    Parameters
    ----------
    scenario : Scenario or str or pathlib.Path
        A :class:`~dosewise.Scenario` (returned as it is), ``"demo"`` for the built-in demo, or
        the path of a scenario file.

    Returns
    -------
    Scenario
        The validated scenario.

    Raises
    ------
    InputError
        A missing or unreadable file, or one that does not validate (:class:`ScenarioError`).

    Examples
    --------
    >>> from dosewise import app
    >>> sc = app.load("demo")
    >>> app.load(sc) is sc, len(sc.lots)
    (True, 2)
    """
    from dosewise.scenario import Scenario, load_demo, load_scenario

    if isinstance(scenario, Scenario):
        return scenario
    if str(scenario) == "demo":
        return load_demo()
    return load_scenario(scenario)


MAX_SCENARIO_CHARS = 2_000_000
"""A scenario sent as text (e.g. to the service) is refused beyond this length."""


def load_text(text: str, *, file: str | None = None) -> Scenario:
    """A validated scenario from YAML text (``"demo"`` for the built-in demo).

    Parameters
    ----------
    text : str
        YAML text, at most :data:`MAX_SCENARIO_CHARS` characters.
    file : str, optional
        A name for the text, used in error messages.

    Returns
    -------
    Scenario
        The validated scenario.

    Raises
    ------
    InputError
        Text too long, YAML that does not parse, or a scenario that does not validate.

    Examples
    --------
    >>> from dosewise import app
    >>> sc = app.load_text("{participants: {include: [KEN]}, lots: [{id: L1, product: AZD1222,"
    ...                    " doses: 24000, available: 2021-03-01, expiry: 2021-09-01}]}")
    >>> sc.lots[0].doses
    24000
    """
    from dosewise.scenario import load_demo, parse_scenario_text

    if text.strip() == "demo":
        return load_demo()
    if len(text) > MAX_SCENARIO_CHARS:
        raise InputError(f"a scenario is at most {MAX_SCENARIO_CHARS:,} characters", file=file, field="scenario",
                         value=len(text))
    return parse_scenario_text(text, file=file)


@dataclass(frozen=True)
class Allocated:
    """A scenario's world and the allocation a policy made of its lots.

    Parameters
    ----------
    scenario : Scenario
        The scenario.
    world : World
        Its world.
    allocation : Allocation
        The allocation.

    Examples
    --------
    >>> from dosewise import app
    >>> result = app.allocate(app.load("demo"))
    >>> result.allocation.policy, result.world.n
    ('covax-pro-rata', 92)
    """

    scenario: Scenario
    world: World
    allocation: Allocation

    def frame(self) -> pd.DataFrame:
        """One row per participant and product; participants with no dose are kept, so a file written
        from it lists every participant.

        Returns
        -------
        pandas.DataFrame
            participant, name, product, population (people, whole), population_source, doses,
            doses_per_100 (doses per 100 people) and coverage (0–1).

        Examples
        --------
        >>> from dosewise import app
        >>> frame = app.allocate(app.load("demo")).frame()
        >>> row = frame[(frame["participant"] == "PRK") & (frame["product"] == "Covishield")].iloc[0]
        >>> int(row["doses"]), round(float(row["doses_per_100"]), 2)
        (1617600, 6.19)
        """
        frame = self.allocation.by_participant_product(self.world).reset_index(drop=True)
        frame["population"] = frame["population"].round().astype("int64")  # people are whole
        import numpy as np

        # rows are participant-major (every product of a participant in turn), as by_participant_product makes them
        parts = self.world.participants
        codes = self.allocation.participants
        source = parts["population_source"] if codes.equals(parts.index) else parts.loc[codes, "population_source"]
        source = np.repeat(source.to_numpy(dtype=object), len(frame) // max(len(codes), 1))
        frame.insert(list(frame.columns).index("population") + 1, "population_source", source)
        return frame


def allocate(scenario: Scenario, *, policy: str | None = None, need: Mapping[str, float] | None = None,
             epidemic: EpidemicSettings | None = None) -> Allocated:
    """Allocate the scenario's lots by its policy (or by ``policy``, with the same parameters).

    Parameters
    ----------
    scenario : Scenario
        The scenario.
    policy : str, optional
        Another policy's name (a key of :data:`~dosewise.POLICIES`).
    need : mapping of str to float, optional
        Need scores for ``covax-need-weighted`` when the scenario carries none (else those of the
        cached WHO file, when there is one).
    epidemic : EpidemicSettings, optional
        Replaces the scenario's ``epidemic:`` section (what ``optimal`` optimises).

    Returns
    -------
    Allocated
        The scenario, its world and the allocation.

    Raises
    ------
    InputError
        An unknown policy name (before any work).

    Examples
    --------
    >>> from dosewise import app
    >>> sc = app.load("demo")
    >>> result = app.allocate(sc)
    >>> int(result.allocation.doses.sum()), int(result.allocation.buffer.sum())
    (319200000, 16800000)
    >>> older = app.allocate(sc, policy="pro-rata-65+")
    >>> older.allocation.policy
    'pro-rata-65+'
    """
    from dosewise.registry import get_policy
    from dosewise.scenario import policy_params
    from dosewise.world import build_world

    if policy is not None:
        get_policy(policy)  # an unknown name fails before any work
    params = scenario.policy if policy is None else policy_params(scenario.policy, name=policy)
    world = build_world(scenario)
    if epidemic is not None:
        world.meta["epidemic"] = epidemic
    opts = params.options
    if params.name == "covax-need-weighted" and "need" not in opts and not ("who" in opts and "as_of" in opts):
        if need is None:
            source = cached_who()
            if source is not None:  # the file `dosewise data pull who` keeps, as compare and need use it
                day = scenario.as_of or min(lot.available for lot in scenario.lots)
                need = need_for_world(world, source, day)
        if need is not None:
            params = policy_params(params, need=dict(need))
    return Allocated(scenario, world, get_policy(params.name)(world, params))


# -- surveillance -------------------------------------------------------------------------------


def cached_who() -> Path | None:
    """The WHO weekly file that ``dosewise data pull who`` keeps in the user cache, if present.

    Returns
    -------
    pathlib.Path or None
        Its path, or None when nothing was pulled.

    Examples
    --------
    >>> from dosewise import app
    >>> path = app.cached_who()
    >>> path is None or path.name == "WHO-COVID-19-global-data.csv"
    True
    """
    from dosewise.surveillance.pull import SOURCES, default_cache_dir

    path = default_cache_dir() / SOURCES["who"].filename
    return path if path.exists() else None


def participants_for_group(group: str, year: int = 2020) -> pd.DataFrame:
    """A named group's participants with population, share aged 65+ and income level.

    Parameters
    ----------
    group : str
        ``AMC92``, ``ALL``, an income level (``HIC``…) or a WHO region (``AFRO``…).
    year : int, default 2020
        The year of the UN WPP 2024 estimates.

    Returns
    -------
    pandas.DataFrame
        Indexed by ISO3 code: name, population (people), share_65plus (0–1), income_level.

    Raises
    ------
    InputError
        An unknown group.

    Examples
    --------
    >>> from dosewise import app
    >>> frame = app.participants_for_group("AMC92")
    >>> len(frame), frame.loc["KEN", "name"]
    (92, 'Kenya')
    """
    from dosewise.reference.groups import group_members
    from dosewise.world import participants_from_reference

    return participants_from_reference(group_members(group), year)


def need(
    participants: pd.DataFrame,
    who: str | Path,
    as_of: dt.date,
    *,
    vaccination: str | Path | None = None,
    sitreps: str | Path | None = None,
    deliveries: str | Path | None = None,
    deliveries_date: str | None = None,
    no_report_weeks: int = 4,
) -> pd.DataFrame:
    """Need scores with every component and data-quality flag, ranked (see
    :mod:`dosewise.surveillance.need`).

    Parameters
    ----------
    participants : pandas.DataFrame
        Indexed by ISO3 code with population, share_65plus and income_level
        (:func:`participants_for_group`, or ``world.participants``).
    who : str or pathlib.Path
        A WHO weekly cases/deaths CSV.
    as_of : datetime.date
        The date the scores describe (a figure counts only from its date on).
    vaccination : str or pathlib.Path, optional
        A WHO vaccination or OWID file.
    sitreps : str or pathlib.Path, optional
        A situation-report CSV, or ``"demo"`` for the DPRK records.
    deliveries : str or pathlib.Path, optional
        The UNDP vaccine-equity file.
    deliveries_date : str, optional
        Its publication date (required with ``deliveries``).
    no_report_weeks : int, default 4
        Weeks without a report before a participant is flagged.

    Returns
    -------
    pandas.DataFrame
        One row per participant, by rank: the components (deaths and cases per 100k, growth…),
        their percentile scores, threat, vulnerability, coverage, ``need`` (0–1), ``rank`` and
        ``flags``.

    Raises
    ------
    InputError
        A file that cannot be read, or ``deliveries`` without ``deliveries_date``.

    Examples
    --------
    >>> import datetime as dt
    >>> from dosewise import app
    >>> import pandas as pd
    >>> weeks = pd.date_range("2021-07-04", periods=9, freq="7D").strftime("%Y-%m-%d")
    >>> rows = [(w, c, c, "AFRO", cases, 0, deaths, 0) for c, cases, deaths in (("KE", 5000, 80), ("UG", 900, 20))
    ...         for w in weeks]  # a tiny WHO weekly file: Kenya and Uganda, nine weeks
    >>> columns = ["Date_reported", "Country_code", "Country", "WHO_region", "New_cases", "Cumulative_cases",
    ...            "New_deaths", "Cumulative_deaths"]
    >>> pd.DataFrame(rows, columns=columns).to_csv("who.csv", index=False)
    >>> people = app.participants_for_group("AMC92").loc[["KEN", "UGA", "NPL"]]
    >>> scores = app.need(people, "who.csv", dt.date(2021, 8, 29))
    >>> list(scores.index), list(scores["rank"])
    (['NPL', 'KEN', 'UGA'], [1, 2, 3])
    >>> scores.loc["NPL", "flags"]
    'not_in_feed'
    """
    from dosewise.surveillance.demo import DPRK_SITREPS
    from dosewise.surveillance.need import need_from_feed
    from dosewise.surveillance.readers import (
        read_owid,
        read_sitreps,
        read_undp_deliveries,
        read_who_vaccination,
        read_who_weekly,
    )

    weekly = read_who_weekly(who)
    vax = None
    if vaccination is not None:
        with open(vaccination, encoding="utf-8") as fh:
            header = fh.readline()
        vax = read_who_vaccination(vaccination) if "ISO3" in header.split(",") else read_owid(vaccination)
    reports = read_sitreps(DPRK_SITREPS if str(sitreps) == "demo" else Path(sitreps)) if sitreps else None
    supply = None
    if deliveries is not None:
        if deliveries_date is None:
            raise InputError(
                "the deliveries file has no date: pass --deliveries-date YYYY-MM-DD (its publication date)",
                file=str(deliveries),
                field="--deliveries-date",
            )
        supply = read_undp_deliveries(deliveries, as_of=deliveries_date)
    scores = need_from_feed(
        participants,
        weekly,
        as_of=as_of,
        vaccination=vax,
        sitreps=reports,
        deliveries=supply,
        no_report_weeks=no_report_weeks,
    )
    return scores.sort_values("rank", kind="stable")


def need_for_world(world: World, who: str | Path, as_of: dt.date) -> dict[str, float]:
    """Need scores of a world's participants as a mapping.

    Parameters
    ----------
    world : World
        The world whose participants are scored.
    who : str or pathlib.Path
        A WHO weekly cases/deaths CSV.
    as_of : datetime.date
        The date the scores describe.

    Returns
    -------
    dict of str to float
        Need (0–1) by participant code; participants without a score are left out.

    Examples
    --------
    >>> import datetime as dt
    >>> from dosewise import app
    >>> import pandas as pd
    >>> weeks = pd.date_range("2021-07-04", periods=9, freq="7D").strftime("%Y-%m-%d")
    >>> rows = [(w, c, c, "AFRO", cases, 0, deaths, 0) for c, cases, deaths in (("KE", 5000, 80), ("UG", 900, 20))
    ...         for w in weeks]  # a tiny WHO weekly file: Kenya and Uganda, nine weeks
    >>> columns = ["Date_reported", "Country_code", "Country", "WHO_region", "New_cases", "Cumulative_cases",
    ...            "New_deaths", "Cumulative_deaths"]
    >>> pd.DataFrame(rows, columns=columns).to_csv("who.csv", index=False)
    >>> world = app.allocate(app.load("demo")).world
    >>> scores = app.need_for_world(world, "who.csv", dt.date(2021, 8, 29))
    >>> len(scores) == world.n, all(0 <= v <= 1 for v in scores.values())
    (True, True)
    """
    scores = need(world.participants, who, as_of)
    return {str(k): float(v) for k, v in scores["need"].dropna().items()}


# -- compare ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Deaths averted by several policies on one scenario, with the notes a reader needs.

    Parameters
    ----------
    scenario : Scenario
        The scenario compared.
    frame : pandas.DataFrame
        One row per policy: doses allocated and administered, deaths without vaccine, deaths,
        deaths averted (also per 100 doses and per million people) and the equity measures.
    runs : PolicyRuns
        Each policy's allocation and impact-model outcome.
    params : ImpactParams
        The impact model's parameters.
    notes : list of str
        What a reader must know (e.g. a policy left out and why).
    epidemic : EpidemicSettings, optional
        The epidemic simulated.

    Examples
    --------
    >>> from dosewise import app, parse_scenario
    >>> sc = parse_scenario({"participants": {"include": ["KEN", "UGA"]},
    ...                      "lots": [{"id": "L1", "product": "AZD1222", "doses": 2_000_000,
    ...                                "available": "2021-03-01", "expiry": "2021-09-01"}]})
    >>> result = app.compare(sc, policies=["covax-pro-rata"])
    >>> list(result.frame.index), bool(result.frame.loc["covax-pro-rata", "deaths_averted"] > 0)
    (['covax-pro-rata'], True)
    >>> print(result)  # short: the whole table is result.frame
    Comparison(scenario='scenario', deaths_averted={'covax-pro-rata': ...})
    """

    scenario: Scenario
    frame: pd.DataFrame
    runs: PolicyRuns
    params: ImpactParams
    notes: list[str] = field(default_factory=list)
    epidemic: EpidemicSettings | None = None

    def __repr__(self) -> str:
        """A few lines: the scenario, deaths averted per allocation, the notes (the full table is ``frame``)."""
        rows = ", ".join(f"{name!r}: {float(v):,.0f}" for name, v in self.frame["deaths_averted"].items())
        notes = f", notes={self.notes!r}" if self.notes else ""
        return f"Comparison(scenario={self.scenario.name!r}, deaths_averted={{{rows}}}{notes})"


def compare(
    scenario: Scenario,
    *,
    policies: Sequence[str] | None = None,
    params: ImpactParams | None = None,
    who: str | Path | None = None,
    as_of: dt.date | None = None,
    allocations: Mapping[str, Allocation] | None = None,
    epidemic: EpidemicSettings | None = None,
) -> Comparison:
    """Run each policy on the same scenario and the impact model on each allocation.

    The epidemic is ``params`` if given, else ``epidemic``, else the scenario's own section, else
    the defaults; the ``optimal`` variants optimise that same setting.

    Parameters
    ----------
    scenario : Scenario
        The scenario.
    policies : sequence of str, optional
        Policy names (default :data:`~dosewise.compare.DEFAULT_POLICIES`).
    params : ImpactParams, optional
        The impact model's parameters, as they are.
    who : str or pathlib.Path, optional
        A WHO weekly file for ``covax-need-weighted`` (else the cached one; without either, the
        policy is left out of the default list with a note).
    as_of : datetime.date, optional
        The date of those need scores (default: the scenario's ``as_of``).
    allocations : mapping of str to Allocation, optional
        Allocations made elsewhere (e.g. a round's holdings, :meth:`Desk.round_allocation`),
        valued under their own labels.
    epidemic : EpidemicSettings, optional
        The epidemic to simulate (the scenario's section with any overrides).

    Returns
    -------
    Comparison
        The table and each run.

    Raises
    ------
    InputError
        An unknown policy, or ``covax-need-weighted`` asked for without need scores.

    Examples
    --------
    >>> from dosewise import app, parse_scenario
    >>> sc = parse_scenario({"participants": {"include": ["KEN", "UGA"]},
    ...                      "lots": [{"id": "L1", "product": "AZD1222", "doses": 2_000_000,
    ...                                "available": "2021-03-01", "expiry": "2021-09-01"}]})
    >>> held = app.allocate(sc).allocation
    >>> result = app.compare(sc, policies=["covax-pro-rata"], allocations={"as allocated": held})
    >>> rows = result.frame["deaths_averted"]
    >>> list(rows.index), bool(rows.iloc[0] == rows.iloc[1])
    (['covax-pro-rata', 'as allocated'], True)
    """
    from dosewise.compare import DEFAULT_POLICIES
    from dosewise.registry import POLICIES, get_policy
    from dosewise.world import build_world

    names = [p for p in DEFAULT_POLICIES if p in POLICIES] if policies is None else list(policies)
    for name in names:
        get_policy(name)
    return _compare_on(scenario, build_world(scenario), names, policies_given=policies is not None, params=params,
                       who=who, as_of=as_of, allocations=allocations, epidemic=epidemic)


def _compare_on(
    scenario: Scenario,
    world: World,
    names: list[str],
    *,
    policies_given: bool,
    params: ImpactParams | None = None,
    who: str | Path | None = None,
    as_of: dt.date | None = None,
    allocations: Mapping[str, Allocation] | None = None,
    epidemic: EpidemicSettings | None = None,
) -> Comparison:
    """:func:`compare` on the scenario's world already built (``names`` checked); a sweep's cells
    share one world per worker."""
    from dosewise.compare import comparison_table, like_from_scenario, run_policies
    from dosewise.epidemic import EpidemicSettings
    from dosewise.impact.settings import impact_setting

    settings = epidemic or scenario.epidemic or EpidemicSettings()
    world.meta["epidemic"] = settings
    start = None
    if params is None:
        params, start = impact_setting(world, settings)
    notes: list[str] = []
    extra: dict[str, dict[str, Any]] = {}
    opts = scenario.policy.options
    if "covax-need-weighted" in names and not ("need" in opts or ("who" in opts and "as_of" in opts)):
        source = who if who is not None else cached_who()
        if source is None:
            if policies_given:
                raise InputError("covax-need-weighted needs need scores: pass --who FILE or run "
                                 "`dosewise data pull who`", field="--who")
            names.remove("covax-need-weighted")
            notes.append("covax-need-weighted left out: it needs need scores "
                         "(pass --who FILE, or run `dosewise data pull who`)")
        else:
            day = as_of or scenario.as_of or min(lot.available for lot in scenario.lots)
            extra["covax-need-weighted"] = {"need": need_for_world(world, source, day)}
            notes.append(f"need scores as of {day} from {source}")
    import pandas as pd

    lots = pd.concat([world.lots[["product", "doses"]]]
                     + [a.lots[["product", "doses"]] for a in (allocations or {}).values()])
    lots = lots[~lots.index.duplicated()]
    unvalued = _unvalued_products(world, params, lots["product"].astype(str))
    if unvalued:
        # a product without a sourced efficacy is not valued: its doses are left out, and said so
        params = params.model_copy(update={"efficacy": {**params.efficacy, **dict.fromkeys(unvalued, (0.0, 0.0))}})
        for pid, missing in unvalued.items():
            mine = lots[lots["product"].astype(str) == pid]
            label = str(world.products.at[pid, "name"]) if "name" in world.products.columns else pid
            what = {"efficacy_severe": "efficacy against severe disease (efficacy_severe)",
                    "efficacy_symptomatic": "efficacy against symptomatic disease (efficacy_symptomatic)"}
            notes.append(f"{label}: no sourced {' or '.join(what[m] for m in missing)} in the catalogue; its "
                         f"{int(mine['doses'].sum()):,} doses (lot {', '.join(map(str, mine.index))}) are not valued "
                         f"(give {missing[0]} with its source under `products:` in the scenario to value them)")
    runs = run_policies(world, names, params, policy_params=scenario.policy, like=like_from_scenario(scenario),
                        policy_options=extra, allocations=allocations, start=start, leave_out=list(unvalued))
    return Comparison(scenario, comparison_table(runs), runs, params, notes, settings)


def _unvalued_products(world: World, params: ImpactParams, products: Iterable[str]) -> dict[str, list[str]]:
    """Of ``products``, those the impact model cannot value: no finite efficacy against
    symptomatic or severe disease in the world's catalogue and none given in ``params.efficacy``.

    Returns
    -------
    dict of str to list of str
        Product id → the missing catalogue fields (``efficacy_severe``…), in lot order.
    """
    import numpy as np
    import pandas as pd

    cat = world.products
    out: dict[str, list[str]] = {}
    for pid in dict.fromkeys(products):
        if pid in params.efficacy or pid not in cat.index:
            continue
        fields = ["efficacy_severe", "efficacy_symptomatic"]
        values = pd.to_numeric(pd.Series(cat.loc[pid, fields].to_numpy(), index=fields), errors="coerce")
        missing = [f for f in fields if not np.isfinite(float(values[f]))]
        if missing:
            out[pid] = missing
    return out


# -- sweeps ---------------------------------------------------------------------------------------

SWEEP_COLUMNS = ("doses_allocated", "deaths_no_vaccine", "deaths", "deaths_averted", "deaths_averted_per_100_doses")
"""The columns of :func:`compare`'s table a sweep keeps for each (cell, policy), before the income groups'."""

_SWEEP_WORLDS: dict[tuple[str, float], World] = {}
"""This process's worlds for the sweep running now: (sweep token, supply scale) → world."""


def sweep(
    spec: str | Path | Mapping[str, Any],
    *,
    scheduler: str = "processes",
    workers: int | None = None,
    chunk_size: int | None = None,
) -> pd.DataFrame:
    """Run every policy on every cell of a sweep's grid, on Dask, one row per (cell, policy).

    Each cell is what :func:`compare` gives with the same settings (the CLI's ``compare`` with
    the same flags): the scenario's ``epidemic:`` section with the cell's values over it, and
    every lot's doses times the cell's ``supply_scale``. Cells run in chunks, each chunk one
    Dask task; a worker builds the scenario's world once per supply scale. Rows come in grid
    order whatever the scheduler.

    Parameters
    ----------
    spec : str or pathlib.Path or mapping
        A sweep file (YAML; its scenario path is relative to it) or its content as a mapping
        (``scenario``, ``policies``, ``grid``; see :mod:`dosewise.sweep`).
    scheduler : str, default "processes"
        ``processes``, ``threads`` or ``synchronous`` (Dask's local schedulers), or the address
        of a running ``distributed`` cluster (``tcp://host:port``).
    workers : int, optional
        Local worker processes or threads (default: one per core); a cluster has its own.
    chunk_size : int, optional
        Cells per task (default: about four tasks per worker, at most 64 cells each).

    Returns
    -------
    pandas.DataFrame
        One row per cell and policy: ``cell``, the cell's grid values, ``policy``,
        :data:`SWEEP_COLUMNS`, then deaths without vaccine and deaths averted by World Bank
        income group (``deaths_no_vaccine_low``, ``deaths_averted_low``…). ``frame.attrs``
        holds ``seconds`` (wall time), ``cells`` and ``scheduler``.

    Raises
    ------
    InputError
        A sweep file that does not validate (unknown policy or field, a bad value, an empty
        grid, more than :data:`dosewise.sweep.MAX_CELLS` cells), or a cluster that cannot be reached.

    Examples
    --------
    >>> from dosewise import app
    >>> rows = app.sweep({"scenario": "demo", "policies": ["covax-pro-rata", "pro-rata-65+"],
    ...                   "grid": {"r0": [1.5, 3.0], "days": [60]}}, scheduler="synchronous")
    >>> rows[["cell", "r0", "policy"]].to_records(index=False).tolist()
    [(0, 1.5, 'covax-pro-rata'), (0, 1.5, 'pro-rata-65+'), (1, 3.0, 'covax-pro-rata'), (1, 3.0, 'pro-rata-65+')]
    >>> bool((rows["deaths_averted"] > 0).all())
    True
    """
    import time
    import uuid

    import pandas as pd

    from dosewise import sweep as sw
    from dosewise.impact.workers import available_cores

    t0 = time.perf_counter()
    if isinstance(spec, Mapping):
        parsed, folder, file = sw.parse_sweep(spec), Path.cwd(), None
    else:
        parsed, folder = sw.read_sweep(spec)
        file = str(spec)
    target = parsed.scenario if parsed.scenario == "demo" else folder / parsed.scenario
    scenario = load(target)
    cells = sw.expand(parsed, scenario, file=file)
    if chunk_size is not None and chunk_size < 1:
        raise InputError("a chunk has at least one cell", field="--chunk-size", value=chunk_size)
    n_workers = 1 if scheduler == "synchronous" else (workers or available_cores())
    parts = sw.chunks(cells, chunk_size or sw.chunk_size(len(cells), n_workers))
    shared = (scenario, list(parsed.policies), uuid.uuid4().hex)
    try:
        results = sw.run_chunks(_sweep_chunk, shared, parts, scheduler=scheduler, workers=workers)
    finally:
        _SWEEP_WORLDS.clear()
    frame = pd.DataFrame([row for part in results for row in part])
    frame.attrs.update(seconds=time.perf_counter() - t0, cells=len(cells), scheduler=scheduler)
    return frame


def _sweep_value(v: Any) -> Any:
    """A grid value as a table cell: numbers and text as they are, anything else as JSON text."""
    import json

    if isinstance(v, bool | int | float | str):
        return v
    return json.dumps(v, default=str, sort_keys=True)


def _group_slug(group: object) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "_", str(group).lower()).strip("_")


def _sweep_chunk(shared: tuple[Scenario, list[str], str], cells: list[Any]) -> list[dict[str, Any]]:
    """One Dask task: :func:`compare` on each cell of ``cells``, the rows of :func:`sweep`."""
    import dataclasses

    from dosewise import sweep as sw
    from dosewise.compare import income_table
    from dosewise.world import build_world

    sw.single_worker()
    scenario, policies, token = shared
    rows: list[dict[str, Any]] = []
    for cell in cells:
        sc = sw.scaled(scenario, cell.supply_scale)
        key = (token, cell.supply_scale)
        world = _SWEEP_WORLDS.get(key)
        if world is None:
            if any(k[0] != token for k in _SWEEP_WORLDS):
                _SWEEP_WORLDS.clear()  # a worker that ran an earlier sweep
            world = _SWEEP_WORLDS.setdefault(key, build_world(sc))
        mine = dataclasses.replace(world, meta=dict(world.meta))  # compare sets meta["epidemic"]
        result = _compare_on(sc, mine, list(policies), policies_given=True, epidemic=cell.epidemic)
        income = income_table(result.runs)
        values = {k: _sweep_value(v) for k, v in cell.values.items()}
        for name, row in result.frame.iterrows():
            out: dict[str, Any] = {"cell": cell.index, **values, "policy": str(name)}
            out.update({c: float(row[c]) for c in SWEEP_COLUMNS})
            for group, g in income.iterrows():
                slug = _group_slug(group)
                out[f"deaths_no_vaccine_{slug}"] = float(g["deaths_no_vaccine"])
                out[f"deaths_averted_{slug}"] = float(g[str(name)])
            rows.append(out)
    return rows


# -- rounds and the ledger ------------------------------------------------------------------------


class Desk:
    """Rounds and the ledger behind one open store: what a coordinator, a participant or an observer
    does, as calls.

    Keep one for as long as the process serves requests; every write first checks the chain
    (:meth:`ensure_intact`). Usually made by :meth:`open`.

    Parameters
    ----------
    store : Store
        The ledger.
    actor : str, default "dosewise"
        Who the recorded events name, unless a call names another.
    url : str, optional
        Where the ledger lives (None: in memory); keys the last point verified on this machine.

    Attributes
    ----------
    store : Store
        As given.
    rounds : Rounds
        The round commands on that store.

    Examples
    --------
    >>> import datetime as dt
    >>> from dosewise import app
    >>> desk = app.Desk.open("memory")
    >>> rid = desk.open_round(app.load("demo")).round_id
    >>> oid = f"{rid}:AZ-2021H1:PRK:0"
    >>> _ = desk.respond(oid, "decline", reason="efficacy_concerns", wish="severely affected countries")
    >>> _ = desk.advance(rid, dt.date(2021, 2, 11))
    >>> held = desk.round_allocation(rid)
    >>> int(held.allocation.doses[:, 1].sum()) <= int(held.allocation.lots["doses"].iloc[1])
    True
    >>> desk.verify().ok
    True
    >>> desk.close()
    """

    def __init__(self, store: Store, *, actor: str = "dosewise", url: str | None = None) -> None:
        from dosewise.ledger.gate import SignatureGate
        from dosewise.rounds import Rounds

        self.store = store
        self.actor = actor
        self.url = url
        """Where the ledger lives (None: in memory); keys the last point verified on this machine."""
        # every decision goes through the gate: an event in the name of an identity with a registered
        # signing key is refused, before anything is recorded, unless that key signed it (the rule
        # `ledger verify` applies afterwards)
        self.rounds: Rounds = Rounds(SignatureGate(store), actor=actor)  # type: ignore[arg-type]
        self._verified: tuple[int, str] | None = None
        self._unsaved = False
        import threading

        self._checking = threading.Lock()
        from dosewise.ledger.group import GroupCommit

        self._guarded = isinstance(store, GroupCommit) and url is not None
        """Every append checks the chain inside its own write lock (group commit): once the chain has
        been checked in this process, :meth:`ensure_intact` has nothing left to do before a write."""
        if self._guarded:
            assert isinstance(store, GroupCommit)
            store.guard = self._chain_guard
            store.on_written = self._batch_written

    @classmethod
    def open(cls, db: str | None = None, *, create: bool = False, actor: str = "dosewise",
             group_commit: bool = False) -> Desk:
        """Open the ledger at ``db``.

        Parameters
        ----------
        db : str, optional
            A SQLite path or a database URL; ``"memory"`` for a throwaway ledger; default
            ``$DOSEWISE_DB`` or ``dosewise.db``.
        create : bool, default False
            Only then may a new SQLite file be made, so a mistyped path never yields an empty ledger.
        actor : str, default "dosewise"
            Who the recorded events name.
        group_commit : bool, default False
            Let single appends from concurrent threads share batches, as a server answering many
            participants at once wants.

        Returns
        -------
        Desk
            Use it as a context manager, or call :meth:`close`.

        Raises
        ------
        LedgerError
            No ledger at ``db`` (without ``create``), or one that cannot be opened.

        Examples
        --------
        >>> import os, tempfile
        >>> from dosewise import app
        >>> path = os.path.join(tempfile.mkdtemp(), "ledger.db")  # a new file: any folder will do
        >>> with app.Desk.open(path, create=True) as desk:
        ...     print(desk.head())
        None
        >>> with app.Desk.open(path) as desk:
        ...     desk.url.endswith("ledger.db")
        True
        """
        from dosewise.ledger import default_db, existing_db, open_store

        if db == "memory":
            store = open_store("memory")
            key = None
        else:
            url = (db or default_db()) if create else existing_db(db)
            key = url if "://" in url else str(Path(url).expanduser().resolve())
            store = open_store(url)
        if group_commit:
            from dosewise.ledger.group import GroupCommit

            store = GroupCommit(store)
        return cls(store, actor=actor, url=key)

    def ensure_intact(self) -> None:
        """Before recording anything: check the chain, so nothing is ever appended to a broken one.

        The first time in a process, the whole chain is checked when it holds at most
        :data:`FULL_CHECK_EVENTS` events, else everything after the point last verified on this
        machine (which must still be there unchanged); later calls check only what was recorded since.
        A ledger in memory is trusted.

        Raises
        ------
        IntegrityError
            The chain does not verify (pointing to ``dosewise ledger verify``).

        Examples
        --------
        >>> from dosewise import app
        >>> with app.Desk.open("ledger.db", create=True) as desk:
        ...     _ = desk.open_round(app.load("demo"))
        ...     desk.ensure_intact()  # nothing to report: the chain verifies
        """
        if self.url is None or (self._guarded and self._verified is not None):
            return
        with self._checking:  # concurrent first writes of a server share one check
            if not (self._guarded and self._verified is not None):
                self._check_chain()

    def _check_chain(self) -> None:
        assert self.url is not None
        from dosewise.ledger.trust import check_since, last_verified

        point = self._verified
        if point is None:
            head_event = self.store.head()
            point = last_verified(self.url)
            if head_event is None or head_event.seq <= FULL_CHECK_EVENTS:
                check_since(self.store, None)  # raises on any break, wherever it is
                if point is not None and (head_event is None or head_event.seq < point[0]):
                    check_since(self.store, point)  # the ledger lost events: say so
        head = check_since(self.store, point)
        if head != point:
            self._unsaved = True
        self._verified = head

    def _chain_guard(self, view: LedgerView) -> None:
        """The chain check of a group-commit batch, run inside its write lock before anything is
        inserted: the point verified last is still the head, unchanged, or every event other writers
        appended after it links and hashes correctly (:class:`~dosewise.errors.IntegrityError`
        otherwise, and nothing of the batch is recorded)."""
        from dosewise.ledger.trust import check_since

        point = self._verified
        if point is not None:
            head = view.head()
            if head is not None and (head.seq, head.hash) == point:
                return
        self._verified = check_since(view, point)
        self._unsaved = True

    def _batch_written(self, last: Event) -> None:
        """A batch this process appended on the chain its guard checked: its last event is verified."""
        self._verified = (last.seq, last.hash)
        self._unsaved = True

    def _recorded(self) -> None:
        """After a write on a verified chain, the new head is the point to check from next time (kept
        in memory; written to the state folder once, when the desk closes, not on every answer)."""
        if self.url is None or self._guarded:
            return
        head = self.store.head()
        if head is not None:
            self._verified = (head.seq, head.hash)
            self._unsaved = True

    def close(self) -> None:
        """Close the store; the last point verified is kept on this machine for the next process.

        Examples
        --------
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> desk.close()
        """
        if self._unsaved and self.url is not None and self._verified is not None:
            from dosewise.ledger.trust import remember_verified

            remember_verified(self.url, *self._verified)
            self._unsaved = False
        self.store.close()

    def __enter__(self) -> Desk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # checkpoints at every round step -----------------------------------------------------------
    def _ledger_key(self) -> Ed25519PrivateKey | None:
        """The ledger's own private key (the file ``$DOSEWISE_LEDGER_KEY`` names), loaded once; None
        when the ledger has none. A named file that cannot be used is an :class:`InputError`."""
        if not hasattr(self, "_checkpoint_key"):
            import os

            from dosewise.ledger.keys import LEDGER_KEY_ENV, load_private

            path = os.environ.get(LEDGER_KEY_ENV)
            self._checkpoint_key: Ed25519PrivateKey | None = load_private(path) if path else None
        return self._checkpoint_key

    @contextlib.contextmanager
    def _round_step(self) -> Iterator[None]:
        """A round step (open, propose, approve, advance): when the ledger has its own key and the
        step recorded something, a checkpoint of the new head is signed and stored after it. The
        key is loaded before the step, so a bad key file stops the step before anything is written."""
        key = self._ledger_key()
        before = self.store.head() if key is not None else None
        yield
        if key is None:
            return
        after = self.store.head()
        if after is not None and (before is None or after.seq != before.seq):
            from dosewise.ledger.checkpoints import checkpoint
            from dosewise.ledger.group import GroupCommit

            checkpoint(self.store.store if isinstance(self.store, GroupCommit) else self.store, key)

    # rounds ------------------------------------------------------------------------------------
    def open_round(
        self,
        scenario: Scenario,
        *,
        round_id: str | None = None,
        need: Mapping[str, float] | None = None,
        need_source: str = "",
        file: str | None = None,
    ) -> RoundState:
        """Allocate the scenario's lots by its policy and record the round and its offers.

        Opening the same round again with the same scenario records nothing.

        Parameters
        ----------
        scenario : Scenario
            The scenario (with its ``round:`` rules).
        round_id : str, optional
            The round's id (else the scenario's ``round.id``, else one derived from its content).
        need : mapping of str to float, optional
            The need vector the round's reallocation ranks by (recorded in the ledger).
        need_source : str, default ""
            Where it came from.
        file : str, optional
            The scenario's file name, for messages and the record.

        Returns
        -------
        RoundState
            The round as opened.

        Raises
        ------
        ConflictError
            The id is taken by a round opened with another scenario.

        Examples
        --------
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> state = desk.open_round(app.load("demo"), round_id="amc92-1")
        >>> state.round_id, state.today, len(state.offers)
        ('amc92-1', datetime.date(2021, 2, 3), 165)
        """
        self.ensure_intact()
        with self._round_step():
            rid = self.rounds.open(scenario, round_id=round_id, need=need, need_source=need_source, file=file)
        self._recorded()
        return self.rounds.state(rid)

    def propose_round(
        self,
        scenario: Scenario,
        *,
        identity: str,
        actor: str | None = None,
        round_id: str | None = None,
        need: Mapping[str, float] | None = None,
        need_source: str = "",
        file: str | None = None,
        key: str | None = None,
    ) -> RoundState:
        """Propose a round (two-person rule): the allocation and the offers it would make are recorded
        as ``round.proposed``; nothing is offered until another identity approves.

        Parameters
        ----------
        scenario : Scenario
            The scenario.
        identity : str
            Who proposes.
        actor : str, optional
            Who the event names.
        round_id : str, optional
            The round's id.
        need : mapping of str to float, optional
            The need vector to record.
        need_source : str, default ""
            Where it came from.
        file : str, optional
            The scenario's file name.
        key : str, optional
            Idempotency key: a retry with it returns the first proposal.

        Returns
        -------
        RoundState
            The round, in phase ``proposed``.

        Examples
        --------
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> desk.propose_round(app.load("demo"), identity="coordinator-1").phase
        'proposed'
        """
        self.ensure_intact()
        with self._round_step():
            rid = self.rounds.propose(scenario, identity=identity, actor=actor, round_id=round_id, need=need,
                                      need_source=need_source, file=file, idempotency_key=key)
        self._recorded()
        return self.rounds.view(rid)

    def approve_round(self, round_id: str, *, identity: str, actor: str | None = None,
                      key: str | None = None) -> RoundState:
        """Approve a proposed round: its offers are recorded.

        Parameters
        ----------
        round_id : str
            The proposed round.
        identity : str
            Who approves (not the proposer).
        actor : str, optional
            Who the event names.
        key : str, optional
            Idempotency key.

        Returns
        -------
        RoundState
            The round, now open.

        Raises
        ------
        ForbiddenError
            The proposer approving its own proposal.

        Examples
        --------
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.propose_round(app.load("demo"), identity="coordinator-1").round_id
        >>> desk.approve_round(rid, identity="reviewer-1").phase
        'open'
        """
        self.ensure_intact()
        with self._round_step():
            self.rounds.approve(round_id, identity=identity, actor=actor, idempotency_key=key)
        self._recorded()
        return self.rounds.view(round_id)

    def view(self, round_id: str) -> RoundState:
        """A private copy of the round's current state (safe to read while other threads write).

        Parameters
        ----------
        round_id : str
            The round.

        Returns
        -------
        RoundState
            The copy.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> desk.view(rid) == desk.round(rid)
        True
        """
        return self.rounds.view(round_id)

    def respond(
        self,
        offer_id: str,
        action: Literal["accept", "decline"],
        *,
        reason: str | None = None,
        note: str | None = None,
        wish: str | None = None,
        on: dt.date | None = None,
        key: str | None = None,
        actor: str | None = None,
        participant: str | None = None,
        doses: int | None = None,
        sign: Callable[[NewEvent], NewEvent] | None = None,
    ) -> Event:
        """Accept or decline an open offer.

        Parameters
        ----------
        offer_id : str
            The offer.
        action : {"accept", "decline"}
            The answer.
        reason : str, optional
            Why it is declined.
        note : str, optional
            Free text.
        wish : str, optional
            Where a declining participant wishes the doses to go.
        on : datetime.date, optional
            The date of the answer (default: the round's date).
        key : str, optional
            Idempotency key: a retry with it returns the first answer.
        actor : str, optional
            Who answers.
        participant : str, optional
            Only an offer made to this participant may be answered.
        doses : int, optional
            Accept this part only; the rest returns to the pool at once.
        sign : callable, optional
            Attaches the answering party's signature (e.g. ``dosewise.Signer.from_file(path).sign``).

        Returns
        -------
        Event
            The recorded answer.

        Raises
        ------
        ConflictError
            The offer was answered already.
        RoundError
            After the deadline.
        ForbiddenError
            An offer made to another participant than ``participant``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> event = desk.respond(f"{rid}:AZ-2021H1:PRK:0", "decline", reason="efficacy_concerns",
        ...                      wish="severely affected countries", key="prk-1")
        >>> event.type, event.participant
        ('offer.declined', 'PRK')
        >>> desk.respond(f"{rid}:AZ-2021H1:PRK:0", "decline", reason="efficacy_concerns", key="prk-1").seq == event.seq
        True
        """
        self.ensure_intact()
        ev = self.rounds.respond(offer_id, action, reason=reason, note=note, wish=wish, on=on,
                                 idempotency_key=key, actor=actor, participant=participant, doses=doses,
                                 sign=sign)
        self._recorded()
        return ev

    def advance(self, round_id: str, to: dt.date, *, need: Mapping[str, float] | None = None,
                need_source: str = "", actor: str | None = None, key: str | None = None) -> list[Event]:
        """Move the round's date to ``to``: overdue offers lapse, unusable doses expire, one
        reallocation pass re-offers the pool.

        A date already reached records nothing new. Without ``need``, a round that reallocates by
        need and has no need vector yet ranks by the cached WHO file, when there is one.

        Parameters
        ----------
        round_id : str
            The round.
        to : datetime.date
            The new date.
        need : mapping of str to float, optional
            Replaces the need vector recorded in the round (recorded in turn).
        need_source : str, default ""
            Where it came from.
        actor : str, optional
            Who advances.
        key : str, optional
            Idempotency key: a retry with it returns the batch first recorded.

        Returns
        -------
        list of Event
            The events recorded.

        Raises
        ------
        RoundError
            A date before the round's date.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> events = desk.advance(rid, dt.date(2021, 2, 11), need={"PRK": 0.9, "KEN": 0.5})
        >>> events[0].type, desk.round(rid).need == {"PRK": 0.9, "KEN": 0.5}
        ('round.advanced', True)
        """
        if need is None:
            state = self.round(round_id)
            source = cached_who() if state.need is None and state.opened.get("reallocation") == "need" else None
            if source is not None:  # the file `dosewise data pull who` keeps: rank by need, as the round asks
                need = need_for_world(self.world(round_id), source, to)
                need_source = f"{source.name} (cache) as of {to}"
        self.ensure_intact()
        with self._round_step():
            events = self.rounds.advance(round_id, to, need=need, need_source=need_source, actor=actor,
                                         idempotency_key=key)
        self._recorded()
        return events

    def ship(self, offer_id: str, *, on: dt.date, delivered: bool = False, actor: str | None = None,
             key: str | None = None, doses: int | None = None, shipment: str | None = None) -> Event:
        """Record shipment (or delivery) of a whole accepted offer; with ``doses`` or ``shipment``, one
        shipment of part of it.

        Parameters
        ----------
        offer_id : str
            An accepted offer.
        on : datetime.date
            The date.
        delivered : bool, default False
            Record delivery of a shipped offer.
        actor : str, optional
            Who records it.
        key : str, optional
            Idempotency key.
        doses : int, optional
            Ship this part only.
        shipment : str, optional
            The shipment's id.

        Returns
        -------
        Event
            The recorded event.

        Raises
        ------
        RoundError
            An offer not accepted, or a date the rules forbid.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> oid = f"{rid}:AZ-2021H1:KEN:0"
        >>> _ = desk.respond(oid, "accept")
        >>> desk.ship(oid, on=dt.date(2021, 2, 22)).type
        'offer.shipped'
        """
        self.ensure_intact()
        ev = self.rounds.ship(offer_id, on=on, delivered=delivered, actor=actor, idempotency_key=key, doses=doses,
                              shipment=shipment)
        self._recorded()
        return ev

    def offer(self, offer_id: str) -> dict[str, Any]:
        """One offer as the round's state holds it, with its round id.

        Parameters
        ----------
        offer_id : str
            The offer.

        Returns
        -------
        dict
            A copy: lot, participant, doses, status, deadline, pass, why, reason, note, wish,
            round_id.

        Raises
        ------
        NotFoundError
            No such offer.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> offer = desk.offer(f"{rid}:AZ-2021H1:KEN:0")
        >>> offer["status"], offer["deadline"], offer["round_id"] == rid
        ('offered', '2021-02-10', True)
        """
        state, offer = self.rounds._offer(offer_id)
        return {**offer, "round_id": state.round_id}
    # the rest of the mechanism ------------------------------------------------------------------
    def _write(self, record: Callable[[], _T]) -> _T:
        self.ensure_intact()
        out = record()
        self._recorded()
        return out

    def accept_part(self, offer_id: str, doses: int, *, on: dt.date | None = None, note: str | None = None,
                    actor: str | None = None) -> Event:
        """Accept part of an open offer; the rest goes back to the pool at once.

        Parameters
        ----------
        offer_id : str
            The offer.
        doses : int
            Doses accepted (fewer than offered).
        on : datetime.date, optional
            The date of the answer.
        note : str, optional
            Free text.
        actor : str, optional
            Who answers.

        Returns
        -------
        Event
            ``offer.accepted_in_part``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> desk.accept_part(f"{rid}:AZ-2021H1:KEN:0", 1000).payload["doses"]
        1000
        """
        return self._write(lambda: self.rounds.accept_part(offer_id, doses, on=on, note=note, actor=actor))

    def opt_out(self, round_id: str, participant: str, product: str, *, on: dt.date | None = None,
                note: str | None = None, actor: str | None = None) -> list[Event]:
        """The participant takes no more of ``product`` in the round (its open offers are declined).

        Parameters
        ----------
        round_id : str
            The round.
        participant : str
            Participant code.
        product : str
            Product id.
        on : datetime.date, optional
            The date.
        note : str, optional
            Free text.
        actor : str, optional
            Who records it.

        Returns
        -------
        list of Event
            ``product.opted_out`` and an ``offer.declined`` per open offer of the product.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> [e.type for e in desk.opt_out(rid, "PRK", "AZD1222")]
        ['product.opted_out', 'offer.declined']
        """
        return self._write(lambda: self.rounds.opt_out(round_id, participant, product, on=on, note=note,
                                                       actor=actor))

    def delay(self, offer_id: str, until: dt.date, *, on: dt.date | None = None, note: str | None = None,
              actor: str | None = None) -> Event:
        """Ship an accepted offer no earlier than ``until``.

        Parameters
        ----------
        offer_id : str
            An accepted offer.
        until : datetime.date
            The earliest shipment date.
        on : datetime.date, optional
            The date of the request.
        note : str, optional
            Free text.
        actor : str, optional
            Who asks.

        Returns
        -------
        Event
            ``offer.delayed``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> oid = f"{rid}:AZ-2021H1:KEN:0"
        >>> _ = desk.respond(oid, "accept")
        >>> desk.delay(oid, dt.date(2021, 3, 15)).payload["until"]
        '2021-03-15'
        """
        return self._write(lambda: self.rounds.delay(offer_id, until, on=on, note=note, actor=actor))

    def transfer(self, offer_id: str, to: str, doses: int, *, on: dt.date | None = None, note: str | None = None,
                 actor: str | None = None, key: str | None = None) -> Event:
        """Offer accepted, unshipped doses on to another participant (they move when it accepts).

        Parameters
        ----------
        offer_id : str
            An accepted offer.
        to : str
            The receiving participant.
        doses : int
            Doses to transfer.
        on : datetime.date, optional
            The date.
        note : str, optional
            Free text.
        actor : str, optional
            Who proposes it.
        key : str, optional
            Idempotency key: a retry with the same key returns the first proposal.

        Returns
        -------
        Event
            ``transfer.proposed``, with the transfer's id.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> oid = f"{rid}:SII-AZ-2021H1:UGA:0"
        >>> _ = desk.respond(oid, "accept")
        >>> desk.transfer(oid, "KEN", 5000).payload["transfer"] == oid + ":T1"
        True
        """
        return self._write(lambda: self.rounds.transfer(offer_id, to, doses, on=on, note=note, actor=actor,
                                                        idempotency_key=key))

    def answer_transfer(self, round_id: str, transfer_id: str, accept: bool, *, on: dt.date | None = None,
                        note: str | None = None, actor: str | None = None, key: str | None = None,
                        participant: str | None = None) -> Event:
        """The receiving participant accepts or refuses a transfer.

        Parameters
        ----------
        round_id : str
            The round.
        transfer_id : str
            The transfer.
        accept : bool
            Accept (True) or refuse.
        on : datetime.date, optional
            The date.
        note : str, optional
            Free text.
        actor : str, optional
            Who answers.
        key : str, optional
            Idempotency key: a retry with the same key returns the first answer.
        participant : str, optional
            Only a transfer offered to this participant may be answered
            (:class:`~dosewise.errors.ForbiddenError` otherwise).

        Returns
        -------
        Event
            ``transfer.accepted`` or ``transfer.refused``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> oid = f"{rid}:SII-AZ-2021H1:UGA:0"
        >>> _ = desk.respond(oid, "accept")
        >>> tid = desk.transfer(oid, "KEN", 5000).payload["transfer"]
        >>> desk.answer_transfer(rid, tid, True).type
        'transfer.accepted'
        """
        return self._write(lambda: self.rounds.answer_transfer(round_id, transfer_id, accept, on=on, note=note,
                                                               actor=actor, idempotency_key=key,
                                                               participant=participant))

    def ready(self, round_id: str, participant: str, product: str, condition: str, on: dt.date, *,
              note: str | None = None, actor: str | None = None) -> Event:
        """Record a readiness condition met.

        Parameters
        ----------
        round_id : str
            The round.
        participant : str
            Participant code.
        product : str
            Product id.
        condition : str
            ``deployment_plan``, ``indemnity``, ``import_permit`` or ``cold_chain``.
        on : datetime.date
            The date it was met.
        note : str, optional
            Free text.
        actor : str, optional
            Who records it.

        Returns
        -------
        Event
            ``readiness.recorded``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> _ = desk.ready(rid, "KEN", "AZD1222", "indemnity", dt.date(2021, 2, 5))
        >>> desk.round(rid).ready("KEN", "AZD1222", ["indemnity", "cold_chain"], dt.date(2021, 2, 6))
        ['cold_chain']
        """
        return self._write(lambda: self.rounds.record_readiness(round_id, participant, product, condition, on,
                                                                note=note, actor=actor))

    def donate(self, round_id: str, lot: Lot | Mapping[str, Any], *, on: dt.date | None = None,
               actor: str | None = None, key: str | None = None) -> list[Event]:
        """Add a donor's lot (channel, earmarks, pledge date) to a running round.

        Parameters
        ----------
        round_id : str
            The round.
        lot : Lot or mapping
            The lot, or its fields as in a scenario's ``lots:``.
        on : datetime.date, optional
            The date.
        actor : str, optional
            Who records it.
        key : str, optional
            Idempotency key: a retry with the same key returns the first event recorded.

        Returns
        -------
        list of Event
            ``lot.donated`` (and ``offer.made`` for a bilateral lot).

        Raises
        ------
        InputError
            A lot that does not validate (naming the field).
        RoundError
            No earmarked participant can use it in time.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> lot = {"id": "DON-1", "product": "AZD1222", "doses": 100000, "available": "2021-03-01",
        ...        "expiry": "2021-09-01", "donor": "NOR"}
        >>> [e.type for e in desk.donate(rid, lot)], desk.round(rid).lots["DON-1"]["pool"]
        (['lot.donated'], 100000)
        """
        from pydantic import ValidationError

        from dosewise.scenario import Lot

        if not isinstance(lot, Lot):
            try:
                lot = Lot.model_validate(dict(lot))
            except ValidationError as exc:
                first = exc.errors()[0]
                value = first.get("input")
                raise InputError(first["msg"].removeprefix("Value error, "),
                                 field="donation." + ".".join(str(x) for x in first["loc"]),
                                 value=None if isinstance(value, dict) else value) from None
        given = lot
        return self._write(lambda: self.rounds.donate(round_id, given, on=on, actor=actor, idempotency_key=key))

    def request_buffer(self, round_id: str, lot: str, participant: str, doses: int, *, for_whom: str, why: str,
                       on: dt.date | None = None, request: str | None = None, actor: str | None = None) -> Event:
        """Apply to a lot's humanitarian buffer: who, how many, for whom, why.

        Parameters
        ----------
        round_id : str
            The round.
        lot : str
            The lot.
        participant : str
            Who applies (or on whose behalf).
        doses : int
            Doses asked for.
        for_whom : str
            The people they are for.
        why : str
            The reason.
        on : datetime.date, optional
            The date.
        request : str, optional
            The request's id (default: the next ``B<n>``).
        actor : str, optional
            Who records it.

        Returns
        -------
        Event
            ``buffer.requested``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> event = desk.request_buffer(rid, "AZ-2021H1", "SYR", 10000, for_whom="displaced people", why="outbreak")
        >>> event.payload["request"]
        'B1'
        """
        return self._write(lambda: self.rounds.request_buffer(round_id, lot, participant, doses, for_whom=for_whom,
                                                              why=why, on=on, request=request, actor=actor))

    def decide_buffer(self, round_id: str, request: str, approve: bool, *, on: dt.date | None = None,
                      reason: str | None = None, actor: str | None = None) -> Event:
        """Approve or refuse (with a reason) a buffer request.

        Parameters
        ----------
        round_id : str
            The round.
        request : str
            The request's id.
        approve : bool
            Approve (True) or refuse.
        on : datetime.date, optional
            The date.
        reason : str, optional
            Why it is refused.
        actor : str, optional
            Who decides.

        Returns
        -------
        Event
            ``buffer.approved`` or ``buffer.refused``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> _ = desk.request_buffer(rid, "AZ-2021H1", "SYR", 10000, for_whom="displaced people", why="outbreak")
        >>> desk.decide_buffer(rid, "B1", True).type
        'buffer.approved'
        """
        return self._write(lambda: self.rounds.decide_buffer(round_id, request, approve, on=on, reason=reason,
                                                             actor=actor))

    def send(self, offer_id: str, doses: int | None, *, on: dt.date, shipment: str | None = None) -> Event:
        """One shipment of part (or the rest) of an accepted offer.

        Parameters
        ----------
        offer_id : str
            An accepted offer.
        doses : int or None
            Doses shipped (None: the rest).
        on : datetime.date
            The date.
        shipment : str, optional
            The shipment's id (default: the offer's next ``S<n>``).

        Returns
        -------
        Event
            ``shipment.sent``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> oid = f"{rid}:AZ-2021H1:KEN:0"
        >>> _ = desk.respond(oid, "accept")
        >>> desk.send(oid, 100000, on=dt.date(2021, 2, 22)).payload["shipment"] == oid + ":S1"
        True
        """
        return self._write(lambda: self.rounds.send(offer_id, doses, on=on, shipment=shipment))

    def deliver(self, round_id: str, shipment: str, *, on: dt.date) -> Event:
        """Confirm a shipment's delivery (records the shelf life left on arrival).

        Parameters
        ----------
        round_id : str
            The round.
        shipment : str
            The shipment.
        on : datetime.date
            The delivery date.

        Returns
        -------
        Event
            ``shipment.delivered``, with ``shelf_life_days``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> oid = f"{rid}:AZ-2021H1:KEN:0"
        >>> _ = desk.respond(oid, "accept")
        >>> shipment = desk.send(oid, 100000, on=dt.date(2021, 2, 22)).payload["shipment"]
        >>> desk.deliver(rid, shipment, on=dt.date(2021, 2, 26)).payload["shelf_life_days"]
        177
        """
        return self._write(lambda: self.rounds.deliver(round_id, shipment, on=on))

    def expire_unused(self, round_id: str, shipment: str, doses: int, *, on: dt.date) -> Event:
        """Delivered doses that expired unused at the participant.

        Parameters
        ----------
        round_id : str
            The round.
        shipment : str
            A delivered shipment.
        doses : int
            Doses that expired.
        on : datetime.date
            The date.

        Returns
        -------
        Event
            ``shipment.expired``.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> oid = f"{rid}:AZ-2021H1:KEN:0"
        >>> _ = desk.respond(oid, "accept")
        >>> shipment = desk.send(oid, 100000, on=dt.date(2021, 2, 22)).payload["shipment"]
        >>> _ = desk.deliver(rid, shipment, on=dt.date(2021, 2, 26))
        >>> desk.expire_unused(rid, shipment, 1000, on=dt.date(2021, 8, 23)).payload["doses"]
        1000
        """
        return self._write(lambda: self.rounds.expire_unused(round_id, shipment, doses, on=on))

    def delivery_report(self, round_id: str) -> pd.DataFrame:
        """Per participant and product: offered, accepted, shipped, delivered, expired unused.

        Parameters
        ----------
        round_id : str
            The round.

        Returns
        -------
        pandas.DataFrame
            See :meth:`RoundState.delivery_report`.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> list(desk.delivery_report(rid).columns[:4])
        ['participant', 'product', 'offered', 'accepted']
        """
        return self.round(round_id).delivery_report()

    def round(self, round_id: str) -> RoundState:
        """The round's state, brought up to date with every recorded event.

        Parameters
        ----------
        round_id : str
            The round.

        Returns
        -------
        RoundState
            The live state (see :meth:`view` for a private copy).

        Raises
        ------
        NotFoundError
            No such round.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> desk.round(rid).phase
        'open'
        """
        return self.rounds.state(round_id)

    def round_ids(self) -> list[str]:
        """Every round the ledger holds.

        Returns
        -------
        list of str
            Round ids.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> desk.round_ids() == [rid]
        True
        """
        return self.rounds.rounds()

    def world(self, round_id: str) -> World:
        """The world the round was opened on.

        Parameters
        ----------
        round_id : str
            The round.

        Returns
        -------
        World
            Rebuilt from the scenario recorded in the ledger.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> desk.world(rid).n
        92
        """
        return self.rounds.world(round_id)

    def round_allocation(self, round_id: str, *, include_open: bool = False) -> Allocated:
        """What participants hold in the round, as an allocation the impact model can value.

        Parameters
        ----------
        round_id : str
            The round.
        include_open : bool, default False
            Count offers still open too.

        Returns
        -------
        Allocated
            Accepted, shipped and delivered doses per participant and lot.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> _ = desk.respond(f"{rid}:AZ-2021H1:KEN:0", "accept")
        >>> held = desk.round_allocation(rid)
        >>> [code for code in held.allocation.participants[held.allocation.totals() > 0]]
        ['KEN']
        >>> int(desk.round_allocation(rid, include_open=True).allocation.doses.sum()) > int(held.allocation.doses.sum())
        True
        """
        from dosewise.rounds import held_allocation

        state = self.round(round_id)
        sc, world = self.rounds.scenario_world(round_id)
        return Allocated(sc, world, held_allocation(state, world, include_open=include_open))

    def offered_allocation(self, round_id: str, *, passes: Sequence[int] = (0,)) -> Allocated:
        """The offers made in the given passes, whatever their answer.

        Parameters
        ----------
        round_id : str
            The round.
        passes : sequence of int, default (0,)
            Reallocation passes (0: the policy's first offers).

        Returns
        -------
        Allocated
            Doses offered per participant and lot.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> first = desk.offered_allocation(rid).allocation
        >>> int(first.doses.sum()) == int(app.allocate(app.load("demo")).allocation.doses.sum())
        True
        """
        from dosewise.rounds import offered_allocation

        state = self.round(round_id)
        sc, world = self.rounds.scenario_world(round_id)
        return Allocated(sc, world, offered_allocation(state, world, passes=passes))

    # ledger ------------------------------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Walk the whole hash chain; when it verifies, its head becomes this machine's last verified
        point.

        Returns
        -------
        VerifyReport
            ``ok``, events checked, the head, and the first bad event and problem when it fails.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> report = desk.verify()
        >>> report.ok, report.checked == desk.head().seq
        (True, True)
        """
        report = self.store.verify()
        if report.ok and self.url is not None and report.head_seq and report.head_hash:
            from dosewise.ledger.trust import remember_verified

            self._verified = (report.head_seq, report.head_hash)
            remember_verified(self.url, report.head_seq, report.head_hash)
        return report

    def audit_rounds(self) -> dict[str, list[str]]:
        """Every round replayed from the ledger (see :func:`audit_rounds`).

        Returns
        -------
        dict of str to list of str
            The problems of each round (empty when every dose is accounted for).

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> desk.audit_rounds() == {rid: []}
        True
        """
        return audit_rounds(self.store)

    def export(self, path: str | Path, fmt: ExportFormat = "jsonl") -> int:
        """Write every event to a file.

        Parameters
        ----------
        path : str or pathlib.Path
            The file.
        fmt : {"jsonl", "csv", "parquet"}, default "jsonl"
            Its format.

        Returns
        -------
        int
            Events written.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> desk.export("events.jsonl") == desk.head().seq
        True
        """
        return self.store.export(path, fmt)

    def log(self, *, round_id: str | None = None, limit: int = 50) -> list[Event]:
        """The last events, oldest first.

        Parameters
        ----------
        round_id : str, optional
            Only this round's events.
        limit : int, default 50
            At most this many.

        Returns
        -------
        list of Event
            The events.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> events = desk.log(limit=3)
        >>> len(events), events[-1].seq == desk.head().seq
        (3, True)
        """
        from collections import deque

        return list(deque(self.store.read(round_id=round_id), maxlen=limit))

    def head(self) -> Event | None:
        """The last event recorded.

        Returns
        -------
        Event or None
            None for an empty ledger.

        Examples
        --------
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> desk.head() is None
        True
        >>> _ = desk.open_round(app.load("demo"))
        >>> desk.head().type
        'offer.made'
        """
        return self.store.head()

    def events(self, *, after: int = 0, limit: int = 100, round_id: str | None = None,
               participant: str | None = None) -> list[Event]:
        """Events after a cursor, in order.

        Parameters
        ----------
        after : int, default 0
            Sequence number to start after.
        limit : int, default 100
            At most this many.
        round_id : str, optional
            Only this round's events.
        participant : str, optional
            Only the events about this participant's offers.

        Returns
        -------
        list of Event
            The events.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import app
        >>> desk = app.Desk.open("memory")
        >>> rid = desk.open_round(app.load("demo")).round_id
        >>> [e.type for e in desk.events(participant="PRK")]
        ['offer.made', 'offer.made']
        >>> [e.seq for e in desk.events(after=3, limit=2)]
        [4, 5]
        """
        out: list[Event] = []
        if limit <= 0:
            return out
        for ev in self.store.read(after_seq=after, round_id=round_id):
            if participant is not None and ev.participant != participant:
                continue
            out.append(ev)
            if len(out) >= limit:
                break
        return out

    # identities --------------------------------------------------------------------------------
    @property
    def keys(self) -> KeyRing:
        """The ledger's API keys (SQL ledgers only).

        Returns
        -------
        KeyRing
            Create, look up and revoke keys.

        Raises
        ------
        LedgerError
            A ledger in memory.

        Examples
        --------
        >>> from dosewise import app
        >>> with app.Desk.open("ledger.db", create=True) as desk:
        ...     print(type(desk.keys).__name__)
        KeyRing
        """
        ring = getattr(self, "_keys", None)
        if ring is None:
            from dosewise.errors import LedgerError
            from dosewise.ledger.identities import KeyRing

            engine = getattr(self.store, "engine", None)
            if engine is None:
                raise LedgerError("API keys need a SQL ledger (a SQLite file or a PostgreSQL URL)")
            ring = KeyRing(engine)
            self._keys: KeyRing = ring
        return ring

    def create_key(self, role: str, *, name: str | None = None, participant: str | None = None,
                   by: str | None = None) -> tuple[Identity, str]:
        """Create an API key; its creation is recorded as an ``identity.created`` event (without the
        secret).

        Parameters
        ----------
        role : str
            ``admin``, ``coordinator``, ``reviewer``, ``participant``, ``donor`` or ``observer``.
        name : str, optional
            A name for the key's holder.
        participant : str, optional
            The participant a ``participant`` key acts for.
        by : str, optional
            Who creates it (the event's actor).

        Returns
        -------
        tuple of (Identity, str)
            The identity and the token, to show once.

        Examples
        --------
        >>> from dosewise import app
        >>> with app.Desk.open("ledger.db", create=True) as desk:
        ...     identity, token = desk.create_key("participant", participant="KEN")
        ...     print(identity.role, identity.participant, desk.head().type)
        participant KEN identity.created
        """
        from dosewise.ledger import NewEvent

        self.ensure_intact()
        ident, token = self.keys.create(role, name=name, participant=participant)
        self.store.append_one(NewEvent(type="identity.created", actor=by or self.actor, payload={
            "key_id": ident.key_id, "name": ident.name, "role": ident.role, "participant": ident.participant}))
        return ident, token

    def revoke_key(self, key_id: str, *, by: str | None = None) -> Identity:
        """Revoke an API key at once; recorded as an ``identity.revoked`` event.

        Parameters
        ----------
        key_id : str
            The key.
        by : str, optional
            Who revokes it.

        Returns
        -------
        Identity
            The key, with ``revoked_at`` set.

        Raises
        ------
        NotFoundError
            No such key.

        Examples
        --------
        >>> from dosewise import app
        >>> with app.Desk.open("ledger.db", create=True) as desk:
        ...     identity, _ = desk.create_key("observer", name="watcher")
        ...     print(desk.revoke_key(identity.key_id).revoked_at is not None, desk.head().type)
        True identity.revoked
        """
        from dosewise.ledger import NewEvent

        before = self.keys.get(key_id)
        self.ensure_intact()
        ident = self.keys.revoke(key_id)
        if before.revoked_at is None:
            self.store.append_one(NewEvent(type="identity.revoked", actor=by or self.actor,
                                           payload={"key_id": key_id, "name": ident.name, "role": ident.role}))
        return ident


def audit_rounds(store: Store) -> dict[str, list[str]]:
    """Every round replayed from the ledger, with its problems.

    Each round's balance problems are listed (empty when every dose is accounted for), or why its
    events cannot be replayed (e.g. an offer made twice); every stored snapshot of a round must
    equal the replay at its point.

    Parameters
    ----------
    store : Store
        The ledger.

    Returns
    -------
    dict of str to list of str
        Problems by round id.

    Examples
    --------
    >>> from dosewise import Rounds, app, load_demo, open_store
    >>> store = open_store("memory")
    >>> rid = Rounds(store).open(load_demo())
    >>> app.audit_rounds(store) == {rid: []}
    True
    """
    from dosewise.errors import IntegrityError
    from dosewise.ledger import snapshots
    from dosewise.rounds import RoundState

    stored: dict[str, dict[int, str]] = {}
    for row in snapshots.all_snapshots(store):
        stored.setdefault(str(row["round_id"]), {})[int(row["seq"])] = str(row["body"])
    out: dict[str, list[str]] = {}
    for ev in store.read(types=["round.opened"]):
        rid = ev.round_id
        if rid is None or rid in out:
            continue
        state = RoundState(rid)
        problems: list[str] = []
        wanted = stored.get(rid, {})
        try:
            for event in store.read(round_id=rid):
                state.apply(event)
                if event.seq in wanted and not _same_snapshot(wanted.pop(event.seq), state):
                    problems.append(f"the snapshot stored at event {event.seq} differs from the replay")
            problems += state.problems()
        except IntegrityError as exc:
            problems.append(str(exc))
        problems += [f"a snapshot at event {seq} does not match any event of the round" for seq in wanted]
        out[rid] = problems
    return out


def _same_snapshot(body: str, state: RoundState) -> bool:
    """Whether a stored snapshot's text describes ``state``: the same text as the state's, or (a
    snapshot written in an earlier layout) text that reads back to an equal state."""
    from dosewise.errors import IntegrityError
    from dosewise.rounds import RoundState

    if body == state.to_json():
        return True
    try:
        stored = RoundState.from_json(body)
    except (IntegrityError, ValueError, KeyError, TypeError):
        return False
    return stored == state and stored.to_json() == state.to_json()


def remember_head(db: str | None, seq: int | None, hash_: str | None) -> None:
    """Record a head that verified as this machine's last verified point for the ledger at ``db``.

    Parameters
    ----------
    db : str, optional
        The ledger's path or URL (default ``$DOSEWISE_DB`` or ``dosewise.db``); a ledger in
        memory is not remembered.
    seq : int, optional
        The head's sequence number (nothing is recorded without it).
    hash_ : str, optional
        The head's hash.

    Examples
    --------
    >>> from pathlib import Path
    >>> from dosewise import app
    >>> from dosewise.ledger.trust import last_verified
    >>> with app.Desk.open("ledger.db", create=True) as desk:
    ...     _ = desk.open_round(app.load("demo"))
    ...     head = desk.head()
    >>> app.remember_head("ledger.db", head.seq, head.hash)
    >>> last_verified(str(Path("ledger.db").resolve())) == (head.seq, head.hash)
    True
    """
    from dosewise.ledger import default_db
    from dosewise.ledger.trust import remember_verified

    url = db or default_db()
    if seq and hash_ and url != "memory":
        remember_verified(url if "://" in url else str(Path(url).expanduser().resolve()), seq, hash_)


# -- the demo -----------------------------------------------------------------------------------


def demo_texts() -> tuple[str, str]:
    """The demo's two scenario files.

    Returns
    -------
    tuple of (str, str)
        The AMC92 AstraZeneca round's YAML, and DPRK's CoronaVac round's (whose participants are
    the first round's, merged in by the demo).

    Examples
    --------
    >>> from dosewise import app
    >>> first, second = app.demo_texts()
    >>> app.load_text(first).policy.name, "product: CoronaVac" in second
    ('covax-pro-rata', True)
    """
    base = resources.files("dosewise") / "data"
    return ((base / "demo_amc92.yaml").read_text(encoding="utf-8"),
            (base / "demo_coronavac.yaml").read_text(encoding="utf-8"))


def coronavac_scenario() -> Scenario:
    """The CoronaVac round's scenario, with the AMC92 participants of the first round merged in."""
    import yaml

    from dosewise.scenario import parse_scenario

    first_text, second_text = demo_texts()
    first: dict[str, Any] = yaml.safe_load(first_text)
    second: dict[str, Any] = yaml.safe_load(second_text)
    second["participants"] = first["participants"]
    second["sources"] = {**first.get("sources", {}), **second.get("sources", {})}
    return parse_scenario(second, file="demo_coronavac.yaml")


@dataclass
class DemoResult:
    """The demo's two rounds as played, and where the need scores came from.

    Parameters
    ----------
    first : RoundState
        The AMC92 AstraZeneca round, played out.
    second : RoundState
        DPRK's CoronaVac round, declined and re-offered.
    need_source : str or None
        The WHO file the re-offer was ranked by (None: pro rata).
    verify : VerifyReport
        The chain check at the end.
    allocation : Allocated
        The first round's allocation.
    impact : Comparison, optional
        Deaths averted by the CoronaVac doses as first offered and as held after the re-offer.
    signed_answers : list of Event
        DPRK's answers, signed with its own key.
    bilateral : dict
        Russia's bilateral Sputnik V offer to DPRK as recorded.

    Examples
    --------
    >>> from dosewise import app
    >>> result = app.run_demo(app.Desk.open("memory"), impact=False)
    >>> result.verify.ok, result.second.offers["demo-coronavac-2021-08:SINOVAC-DPRK-2021-08:PRK:0"]["status"]
    (True, 'declined')
    """

    first: RoundState
    second: RoundState
    need_source: str | None
    verify: VerifyReport
    allocation: Allocated
    impact: Comparison | None = None
    signed_answers: list[Event] = field(default_factory=list)
    """DPRK's answers in the CoronaVac round, as recorded (signed with DPRK's own key)."""
    bilateral: dict[str, Any] = field(default_factory=dict)
    """The bilateral Sputnik V offer recorded beside the CoronaVac round: its lot, offer, status
    as reported and sources (``demo_sputnik.yaml``)."""


DEMO_KEYS: tuple[tuple[str, str | None, str | None], ...] = (
    ("coordinator", "secretariat", None),
    ("reviewer", "validation-group", None),
    ("observer", "observer", None),
    ("donor", "donor", None),
    ("participant", None, "PRK"),
    ("participant", None, "KEN"),
)
"""The API keys ``dosewise demo --serve`` makes for its own ledger: (role, name, participant)."""


def _open_demo_rounds(desk: Desk, who: str | Path | None) -> tuple[RoundState, RoundState, str | Path | None]:
    """The AMC92 round played out as scripted, and the CoronaVac round opened (with need scores as of
    :data:`DEMO_NEED_AS_OF` from ``who`` or the cached WHO file, when there is one)."""
    from dosewise.scenario import load_demo

    first = desk.open_round(load_demo(), round_id="demo-amc92-az-2021-02", file="demo_amc92.yaml")
    desk.rounds.play(first.round_id)
    second_sc = coronavac_scenario()
    source = who if who is not None else cached_who()
    need_vec = None
    if source is not None:
        from dosewise.world import build_world

        need_vec = need_for_world(build_world(second_sc), source, DEMO_NEED_AS_OF)
    second = desk.open_round(second_sc, need=need_vec, file="demo_coronavac.yaml",
                             need_source="" if source is None else f"{Path(source).name} as of {DEMO_NEED_AS_OF}")
    return first, second, source


def stage_demo(desk: Desk, *, who: str | Path | None = None) -> tuple[RoundState, RoundState]:
    """Record the demo for the dashboard.

    The AMC92 AstraZeneca round is played out as scripted, and the CoronaVac round for DPRK opened
    with its offer awaiting DPRK's answer (to be given with DPRK's own key). With a WHO weekly file
    (``who``, else the cached one) the round records need scores as of :data:`DEMO_NEED_AS_OF`,
    and a decline is re-offered by need.

    Parameters
    ----------
    desk : Desk
        Where to record it.
    who : str or pathlib.Path, optional
        A WHO weekly file.

    Returns
    -------
    tuple of (RoundState, RoundState)
        The two rounds.

    Examples
    --------
    >>> from dosewise import app
    >>> first, second = app.stage_demo(app.Desk.open("memory"))
    >>> first.round_id, second.offers["demo-coronavac-2021-08:SINOVAC-DPRK-2021-08:PRK:0"]["status"]
    ('demo-amc92-az-2021-02', 'offered')
    """
    first, second, _ = _open_demo_rounds(desk, who)
    return desk.round(first.round_id), desk.round(second.round_id)


def run_demo(desk: Desk, *, who: str | Path | None = None, impact: bool = True) -> DemoResult:
    """Record both demo rounds on ``desk``'s ledger and play them out as scripted.

    With a WHO weekly file (``who``, else the cached one), the CoronaVac doses DPRK declines are
    re-offered by need score as of :data:`DEMO_NEED_AS_OF`; without one, pro rata to population,
    and the round records that order. With ``impact``, the CoronaVac round is valued twice by the
    impact model: as first offered, and as held after DPRK's decline and the re-offer.
    """
    from dosewise.scenario import load_demo

    allocated = allocate(load_demo())
    first, second, source = _open_demo_rounds(desk, who)
    second_sc = desk.rounds.scenario_world(second.round_id)[0]
    # DPRK answers in its own name: a key made for this run (never written anywhere) is registered in
    # the ledger, and its decline carries DPRK's signature, which `ledger verify` checks
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from dosewise.ledger.signing import Signer, registration

    signers = None
    if not any(ev.payload.get("identity") == "PRK" for ev in desk.store.read(types=["key.registered"])):
        signer = Signer(Ed25519PrivateKey.generate())
        desk.ensure_intact()
        desk.rounds.store.append_one(registration(signer, "PRK", "participant"))  # through the signature gate
        desk._recorded()
        signers = {"PRK": signer}
    desk.rounds.play(second.round_id, signers=signers)
    comparison = None
    if impact:
        first_offers = desk.offered_allocation(second.round_id)
        held = desk.round_allocation(second.round_id)
        comparison = compare(second_sc, policies=[], allocations={
            "as first offered": first_offers.allocation, "held after decline and re-offer": held.allocation,
        })
    bilateral = record_bilateral_offer(desk, second.round_id)
    return DemoResult(first=desk.round(first.round_id), second=desk.round(second.round_id),
                      need_source=None if source is None else str(source), verify=desk.verify(),
                      allocation=allocated, impact=comparison, bilateral=bilateral,
                      signed_answers=[ev for ev in desk.store.read(round_id=second.round_id)
                                      if ev.participant == "PRK" and ev.type in ("offer.declined", "offer.accepted")])


def record_bilateral_offer(desk: Desk, round_id: str) -> dict[str, Any]:
    """Record Russia's bilateral Sputnik V offer to DPRK (``demo_sputnik.yaml``) in the CoronaVac
    round: a bilateral lot and its offer, outside the facility's pool. No answer is recorded, as
    none was reported. Recording it again changes nothing."""
    from dosewise.yamlread import read_yaml

    text = (resources.files("dosewise") / "data" / "demo_sputnik.yaml").read_text(encoding="utf-8")
    data = read_yaml(text, file="demo_sputnik.yaml")
    lot = data["lot"]
    if lot["id"] not in desk.round(round_id).lots:
        desk.donate(round_id, lot)
    state = desk.round(round_id)
    offer = next(o for o in state.offers.values() if o["lot"] == lot["id"])
    return {"name": data["name"], "status": data["status"], "sources": data["sources"], "lot": lot["id"],
            "terms": state.lot_terms[lot["id"]], "offer": dict(offer)}

