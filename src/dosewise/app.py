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

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from dosewise.errors import InputError

_T = TypeVar("_T")

if TYPE_CHECKING:
    import pandas as pd

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
]

FULL_CHECK_EVENTS = 200_000
"""Up to this many events, a process checks the whole chain before its first write."""

DEMO_NEED_AS_OF = dt.date(2021, 8, 29)
"""The week before the demo's CoronaVac round opened: the need ranking its reallocation uses."""


def load(scenario: Scenario | str | Path) -> Scenario:
    """A validated scenario: an object as it is, ``"demo"`` for the built-in demo, or a YAML file."""
    from dosewise.scenario import Scenario, load_demo, load_scenario

    if isinstance(scenario, Scenario):
        return scenario
    if str(scenario) == "demo":
        return load_demo()
    return load_scenario(scenario)


MAX_SCENARIO_CHARS = 2_000_000
"""A scenario sent as text (e.g. to the service) is refused beyond this length."""


def load_text(text: str, *, file: str | None = None) -> Scenario:
    """A validated scenario from YAML text (``"demo"`` for the built-in demo)."""
    from dosewise.scenario import load_demo, parse_scenario_text

    if text.strip() == "demo":
        return load_demo()
    if len(text) > MAX_SCENARIO_CHARS:
        raise InputError(f"a scenario is at most {MAX_SCENARIO_CHARS:,} characters", file=file, field="scenario",
                         value=len(text))
    return parse_scenario_text(text, file=file)


@dataclass(frozen=True)
class Allocated:
    """A scenario's world and the allocation a policy made of its lots."""

    scenario: Scenario
    world: World
    allocation: Allocation

    def frame(self) -> pd.DataFrame:
        """One row per participant and product (doses, doses per 100 people); participants with no
        dose are kept, so a file written from it lists every participant."""
        frame = self.allocation.by_participant_product(self.world).reset_index(drop=True)
        frame["population"] = frame["population"].round().astype("int64")  # people are whole
        return frame


def allocate(scenario: Scenario, *, policy: str | None = None, need: Mapping[str, float] | None = None,
             epidemic: EpidemicSettings | None = None) -> Allocated:
    """Allocate ``scenario``'s lots by its policy (or by ``policy``, with the same parameters).

    ``need`` gives need scores to ``covax-need-weighted`` when the scenario carries none;
    ``epidemic`` replaces the scenario's ``epidemic:`` section (what ``optimal`` optimises).
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
    """The WHO weekly file that ``dosewise data pull who`` keeps in the user cache, if present."""
    from dosewise.surveillance.pull import SOURCES, default_cache_dir

    path = default_cache_dir() / SOURCES["who"].filename
    return path if path.exists() else None


def participants_for_group(group: str, year: int = 2020) -> pd.DataFrame:
    """A named group's participants with population (UN WPP 2024), share aged 65+ and income level."""
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
    """Need scores with every component and data-quality flag, ranked (see :mod:`dosewise.surveillance.need`).

    ``who`` is a WHO weekly cases/deaths CSV; ``vaccination`` a WHO vaccination or OWID file;
    ``sitreps`` a situation-report CSV or ``"demo"`` for the DPRK records; ``deliveries`` the UNDP
    vaccine-equity file with its publication date.
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
    """Need scores of a world's participants as a mapping (participants without a score left out)."""
    scores = need(world.participants, who, as_of)
    return {str(k): float(v) for k, v in scores["need"].dropna().items()}


# -- compare ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Deaths averted by several policies on one scenario, with the notes a reader needs."""

    scenario: Scenario
    frame: pd.DataFrame
    runs: PolicyRuns
    params: ImpactParams
    notes: list[str] = field(default_factory=list)
    epidemic: EpidemicSettings | None = None


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

    Without ``policies``, :data:`~dosewise.compare.DEFAULT_POLICIES`; ``covax-need-weighted``
    takes need scores from ``who`` (or the cached WHO file) as of ``as_of`` and is left out of the
    default list, with a note, when there are none. ``allocations`` adds allocations made
    elsewhere (e.g. a round's holdings, :meth:`Desk.round_allocation`) under their own labels.
    The epidemic is ``params`` if given, else ``epidemic`` (the scenario's ``epidemic:`` section
    with any overrides), else the scenario's own section, else the defaults; the ``optimal``
    variants optimise that same setting.
    """
    from dosewise.compare import DEFAULT_POLICIES, comparison_table, like_from_scenario, run_policies
    from dosewise.epidemic import EpidemicSettings
    from dosewise.impact.settings import impact_setting
    from dosewise.registry import POLICIES, get_policy
    from dosewise.world import build_world

    names = [p for p in DEFAULT_POLICIES if p in POLICIES] if policies is None else list(policies)
    for name in names:
        get_policy(name)
    world = build_world(scenario)
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
            if policies is not None:
                raise InputError("covax-need-weighted needs need scores: pass --who FILE or run "
                                 "`dosewise data pull who`", field="--who")
            names.remove("covax-need-weighted")
            notes.append("covax-need-weighted left out: it needs need scores "
                         "(pass --who FILE, or run `dosewise data pull who`)")
        else:
            day = as_of or scenario.as_of or min(lot.available for lot in scenario.lots)
            extra["covax-need-weighted"] = {"need": need_for_world(world, source, day)}
            notes.append(f"need scores as of {day} from {source}")
    runs = run_policies(world, names, params, policy_params=scenario.policy, like=like_from_scenario(scenario),
                        policy_options=extra, allocations=allocations, start=start)
    return Comparison(scenario, comparison_table(runs), runs, params, notes, settings)


# -- rounds and the ledger ------------------------------------------------------------------------


class Desk:
    """Rounds and the ledger behind one open store: what a coordinator, a participant or an
    observer does, as calls. Keep one for as long as the process serves requests."""

    def __init__(self, store: Store, *, actor: str = "dosewise", url: str | None = None) -> None:
        from dosewise.rounds import Rounds

        self.store = store
        self.actor = actor
        self.url = url
        """Where the ledger lives (None: in memory); keys the last point verified on this machine."""
        self.rounds: Rounds = Rounds(store, actor=actor)
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
        """Open the ledger at ``db`` (SQLite path or URL; ``"memory"`` for a throwaway one).

        Only ``create=True`` may make a new SQLite file; otherwise a missing file is an error,
        so a mistyped path never yields an empty ledger. ``group_commit`` lets single appends
        from concurrent threads share batches (:class:`~dosewise.ledger.group.GroupCommit`), as a
        server answering many participants at once wants.
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
        :data:`FULL_CHECK_EVENTS` events (well under a second), else everything after the point last
        verified on this machine (which must still be there unchanged); later calls check only what
        was recorded since. Raises :class:`~dosewise.errors.IntegrityError` pointing to ``dosewise
        ledger verify``; a ledger in memory is trusted.
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
        if self._unsaved and self.url is not None and self._verified is not None:
            from dosewise.ledger.trust import remember_verified

            remember_verified(self.url, *self._verified)
            self._unsaved = False
        self.store.close()

    def __enter__(self) -> Desk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

        ``need`` is the need vector the round's reallocation ranks by (recorded in the ledger);
        opening the same round again with the same scenario records nothing.
        """
        self.ensure_intact()
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
        """Propose a round (two-person rule): the allocation and the offers it would make are
        recorded as ``round.proposed``; nothing is offered until another identity approves."""
        self.ensure_intact()
        rid = self.rounds.propose(scenario, identity=identity, actor=actor, round_id=round_id, need=need,
                                  need_source=need_source, file=file, idempotency_key=key)
        self._recorded()
        return self.rounds.view(rid)

    def approve_round(self, round_id: str, *, identity: str, actor: str | None = None,
                      key: str | None = None) -> RoundState:
        """Approve a proposed round: its offers are recorded. The proposer's identity cannot
        approve (:class:`~dosewise.errors.ForbiddenError`)."""
        self.ensure_intact()
        self.rounds.approve(round_id, identity=identity, actor=actor, idempotency_key=key)
        self._recorded()
        return self.rounds.view(round_id)

    def view(self, round_id: str) -> RoundState:
        """A private copy of the round's current state (safe to read while other threads write)."""
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
        """Accept or decline an open offer; a retry with the same ``key`` returns the first answer.
        With ``participant``, only an offer made to that participant may be answered; ``doses`` below
        the offer accepts that part (the rest returns to the pool at once); ``sign`` attaches the
        answering party's signature (e.g. ``Signer.from_file(path).sign``)."""
        self.ensure_intact()
        ev = self.rounds.respond(offer_id, action, reason=reason, note=note, wish=wish, on=on,
                                 idempotency_key=key, actor=actor, participant=participant, doses=doses,
                                 sign=sign)
        self._recorded()
        return ev

    def advance(self, round_id: str, to: dt.date, *, need: Mapping[str, float] | None = None,
                need_source: str = "", actor: str | None = None, key: str | None = None) -> list[Event]:
        """Move the round's date to ``to``: overdue offers lapse, unusable doses expire, one
        reallocation pass re-offers the pool. A date already reached records nothing new.
        ``need`` replaces the need vector recorded in the round (recorded in turn); a retry with
        the same ``key`` returns the batch first recorded."""
        if need is None:
            state = self.round(round_id)
            source = cached_who() if state.need is None and state.opened.get("reallocation") == "need" else None
            if source is not None:  # the file `dosewise data pull who` keeps: rank by need, as the round asks
                need = need_for_world(self.world(round_id), source, to)
                need_source = f"{source.name} (cache) as of {to}"
        self.ensure_intact()
        events = self.rounds.advance(round_id, to, need=need, need_source=need_source, actor=actor,
                                     idempotency_key=key)
        self._recorded()
        return events

    def ship(self, offer_id: str, *, on: dt.date, delivered: bool = False, actor: str | None = None,
             key: str | None = None, doses: int | None = None, shipment: str | None = None) -> Event:
        """Record shipment (or delivery) of a whole accepted offer; with ``doses`` or ``shipment``,
        one shipment of part of it."""
        self.ensure_intact()
        ev = self.rounds.ship(offer_id, on=on, delivered=delivered, actor=actor, idempotency_key=key, doses=doses,
                              shipment=shipment)
        self._recorded()
        return ev

    def offer(self, offer_id: str) -> dict[str, Any]:
        """One offer as the round's state holds it (a copy), with its round id."""
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
        """Accept ``doses`` of an open offer; the rest goes back to the pool at once."""
        return self._write(lambda: self.rounds.accept_part(offer_id, doses, on=on, note=note, actor=actor))

    def opt_out(self, round_id: str, participant: str, product: str, *, on: dt.date | None = None,
                note: str | None = None, actor: str | None = None) -> list[Event]:
        """The participant takes no more of ``product`` in the round (its open offers are declined)."""
        return self._write(lambda: self.rounds.opt_out(round_id, participant, product, on=on, note=note,
                                                       actor=actor))

    def delay(self, offer_id: str, until: dt.date, *, on: dt.date | None = None, note: str | None = None,
              actor: str | None = None) -> Event:
        """Ship an accepted offer no earlier than ``until``."""
        return self._write(lambda: self.rounds.delay(offer_id, until, on=on, note=note, actor=actor))

    def transfer(self, offer_id: str, to: str, doses: int, *, on: dt.date | None = None, note: str | None = None,
                 actor: str | None = None, key: str | None = None) -> Event:
        """Offer accepted, unshipped doses on to another participant (the doses move when it accepts);
        a retry with the same ``key`` returns the first proposal."""
        return self._write(lambda: self.rounds.transfer(offer_id, to, doses, on=on, note=note, actor=actor,
                                                        idempotency_key=key))

    def answer_transfer(self, round_id: str, transfer_id: str, accept: bool, *, on: dt.date | None = None,
                        note: str | None = None, actor: str | None = None, key: str | None = None,
                        participant: str | None = None) -> Event:
        """The receiving participant accepts or refuses a transfer (with ``participant``, only a
        transfer offered to that participant)."""
        return self._write(lambda: self.rounds.answer_transfer(round_id, transfer_id, accept, on=on, note=note,
                                                               actor=actor, idempotency_key=key,
                                                               participant=participant))

    def ready(self, round_id: str, participant: str, product: str, condition: str, on: dt.date, *,
              note: str | None = None, actor: str | None = None) -> Event:
        """Record a readiness condition met (deployment_plan, indemnity, import_permit, cold_chain)."""
        return self._write(lambda: self.rounds.record_readiness(round_id, participant, product, condition, on,
                                                                note=note, actor=actor))

    def donate(self, round_id: str, lot: Lot | Mapping[str, Any], *, on: dt.date | None = None,
               actor: str | None = None, key: str | None = None) -> list[Event]:
        """Add a donor's lot (channel, earmarks, pledge date) to a running round; refused with the
        reason when no earmarked participant can use it in time."""
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
        """Apply to a lot's humanitarian buffer: who, how many, for whom, why."""
        return self._write(lambda: self.rounds.request_buffer(round_id, lot, participant, doses, for_whom=for_whom,
                                                              why=why, on=on, request=request, actor=actor))

    def decide_buffer(self, round_id: str, request: str, approve: bool, *, on: dt.date | None = None,
                      reason: str | None = None, actor: str | None = None) -> Event:
        """Approve or refuse (with a reason) a buffer request."""
        return self._write(lambda: self.rounds.decide_buffer(round_id, request, approve, on=on, reason=reason,
                                                             actor=actor))

    def send(self, offer_id: str, doses: int | None, *, on: dt.date, shipment: str | None = None) -> Event:
        """One shipment of part (or the rest) of an accepted offer."""
        return self._write(lambda: self.rounds.send(offer_id, doses, on=on, shipment=shipment))

    def deliver(self, round_id: str, shipment: str, *, on: dt.date) -> Event:
        """Confirm a shipment's delivery (records the shelf life left on arrival)."""
        return self._write(lambda: self.rounds.deliver(round_id, shipment, on=on))

    def expire_unused(self, round_id: str, shipment: str, doses: int, *, on: dt.date) -> Event:
        """Delivered doses that expired unused at the participant."""
        return self._write(lambda: self.rounds.expire_unused(round_id, shipment, doses, on=on))

    def delivery_report(self, round_id: str) -> pd.DataFrame:
        """Per participant and product: offered, accepted, shipped, delivered, expired unused."""
        return self.round(round_id).delivery_report()

    def round(self, round_id: str) -> RoundState:
        """The round's state, brought up to date with every recorded event."""
        return self.rounds.state(round_id)

    def round_ids(self) -> list[str]:
        return self.rounds.rounds()

    def world(self, round_id: str) -> World:
        """The world the round was opened on."""
        return self.rounds.world(round_id)

    def round_allocation(self, round_id: str, *, include_open: bool = False) -> Allocated:
        """What participants hold in the round (accepted, shipped, delivered; with
        ``include_open`` also offers still open) as an allocation the impact model can value."""
        from dosewise.rounds import held_allocation

        state = self.round(round_id)
        sc, world = self.rounds.scenario_world(round_id)
        return Allocated(sc, world, held_allocation(state, world, include_open=include_open))

    def offered_allocation(self, round_id: str, *, passes: Sequence[int] = (0,)) -> Allocated:
        """The offers made in the given passes (0: the policy's first offers), whatever their answer."""
        from dosewise.rounds import offered_allocation

        state = self.round(round_id)
        sc, world = self.rounds.scenario_world(round_id)
        return Allocated(sc, world, offered_allocation(state, world, passes=passes))

    # ledger ------------------------------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Walk the whole hash chain; when it verifies, its head becomes this machine's last verified point."""
        report = self.store.verify()
        if report.ok and self.url is not None and report.head_seq and report.head_hash:
            from dosewise.ledger.trust import remember_verified

            self._verified = (report.head_seq, report.head_hash)
            remember_verified(self.url, report.head_seq, report.head_hash)
        return report

    def audit_rounds(self) -> dict[str, list[str]]:
        """Every round replayed from the ledger (see :func:`audit_rounds`)."""
        return audit_rounds(self.store)

    def export(self, path: str | Path, fmt: ExportFormat = "jsonl") -> int:
        return self.store.export(path, fmt)

    def log(self, *, round_id: str | None = None, limit: int = 50) -> list[Event]:
        from collections import deque

        return list(deque(self.store.read(round_id=round_id), maxlen=limit))

    def head(self) -> Event | None:
        """The last event recorded, or None for an empty ledger."""
        return self.store.head()

    def events(self, *, after: int = 0, limit: int = 100, round_id: str | None = None,
               participant: str | None = None) -> list[Event]:
        """Up to ``limit`` events after sequence ``after`` (a cursor), in order; with ``participant``
        only the events about that participant's offers."""
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
        """The ledger's API keys (SQL ledgers only)."""
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
        """Create an API key; returns the identity and the token, to show once. The key's
        creation is recorded as an ``identity.created`` event (without the secret)."""
        from dosewise.ledger import NewEvent

        self.ensure_intact()
        ident, token = self.keys.create(role, name=name, participant=participant)
        self.store.append_one(NewEvent(type="identity.created", actor=by or self.actor, payload={
            "key_id": ident.key_id, "name": ident.name, "role": ident.role, "participant": ident.participant}))
        return ident, token

    def revoke_key(self, key_id: str, *, by: str | None = None) -> Identity:
        """Revoke an API key at once; recorded as an ``identity.revoked`` event."""
        from dosewise.ledger import NewEvent

        before = self.keys.get(key_id)
        self.ensure_intact()
        ident = self.keys.revoke(key_id)
        if before.revoked_at is None:
            self.store.append_one(NewEvent(type="identity.revoked", actor=by or self.actor,
                                           payload={"key_id": key_id, "name": ident.name, "role": ident.role}))
        return ident


def audit_rounds(store: Store) -> dict[str, list[str]]:
    """Every round replayed from the ledger: the balance problems of each (empty when every dose is
    accounted for), or why its events cannot be replayed (e.g. an offer made twice); and every
    stored snapshot of a round must equal the replay at its point."""
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
                if event.seq in wanted and wanted.pop(event.seq) != state.to_json():
                    problems.append(f"the snapshot stored at event {event.seq} differs from the replay")
            problems += state.problems()
        except IntegrityError as exc:
            problems.append(str(exc))
        problems += [f"a snapshot at event {seq} does not match any event of the round" for seq in wanted]
        out[rid] = problems
    return out


def remember_head(db: str | None, seq: int | None, hash_: str | None) -> None:
    """Record a head that verified as this machine's last verified point for the ledger at ``db``."""
    from dosewise.ledger import default_db
    from dosewise.ledger.trust import remember_verified

    url = db or default_db()
    if seq and hash_ and url != "memory":
        remember_verified(url if "://" in url else str(Path(url).expanduser().resolve()), seq, hash_)


# -- the demo -----------------------------------------------------------------------------------


def demo_texts() -> tuple[str, str]:
    """The demo's two scenario files (the AMC92 AstraZeneca round; DPRK's CoronaVac)."""
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
    """The demo's two rounds as played, and where the need scores came from."""

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
    """Record the demo for the dashboard: the AMC92 AstraZeneca round played out as scripted, and
    the CoronaVac round for DPRK opened with its offer awaiting DPRK's answer (to be given with
    DPRK's own key). With a WHO weekly file (``who``, else the cached one) the round records need
    scores as of :data:`DEMO_NEED_AS_OF`, and a decline is re-offered by need."""
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
        desk.store.append_one(registration(signer, "PRK", "participant"))
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
    from dosewise.scenario import read_yaml

    text = (resources.files("dosewise") / "data" / "demo_sputnik.yaml").read_text(encoding="utf-8")
    data = read_yaml(text, file="demo_sputnik.yaml")
    lot = data["lot"]
    if lot["id"] not in desk.round(round_id).lots:
        desk.donate(round_id, lot)
    state = desk.round(round_id)
    offer = next(o for o in state.offers.values() if o["lot"] == lot["id"])
    return {"name": data["name"], "status": data["status"], "sources": data["sources"], "lot": lot["id"],
            "terms": state.lot_terms[lot["id"]], "offer": dict(offer)}

