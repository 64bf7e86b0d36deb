"""Round commands: open, respond, advance, ship, and scripted play, each recorded on the ledger.

A round is opened over a scenario's lots with a policy (or an allocation decided elsewhere);
the allocation becomes offers. Each offer is accepted, declined with a reason (and optionally a
wish for where the doses should go), or lapses at its deadline. Declined and lapsed doses
return to the pool and are re-offered, one pass per :meth:`Rounds.advance`, by the order in
:mod:`dosewise.rounds.reallocate`.

Commands that re-offer doses (:meth:`Rounds.advance`) are serialised per round across
processes: the batch is computed from the round's state at its last sequence number and
appended only if no event of the round was recorded since (a compare-and-set checked inside
the ledger's write lock); otherwise the state is read again and the batch recomputed. Answers
and shipments hold a unique slot per offer, so the first answer wins.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from dosewise.errors import ConflictError, ForbiddenError, InputError, IntegrityError, NotFoundError, RoundError
from dosewise.ledger import Event, LedgerView, NewEvent, Store
from dosewise.rounds.events import (
    BufferHeld,
    LotAdded,
    NeedRecorded,
    OfferAnswered,
    OfferMade,
    OfferMoved,
    ProposedEvent,
    ReallocationPass,
    RoundAdvanced,
    RoundApproved,
    RoundOpened,
    RoundProposed,
    new_event,
)
from dosewise.rounds.mechanism import (
    Mechanism,
    bilateral_offer,
    donation_refusal,
    lot_allowed,
    readiness_lapses,
    terms_of,
)
from dosewise.rounds.reallocate import LotPool, plan_pass
from dosewise.rounds.state import NEXT, RoundState
from dosewise.vocabulary import DECLINE_REASONS

if TYPE_CHECKING:
    from dosewise.allocation import Allocation
    from dosewise.scenario import Scenario
    from dosewise.world import World

__all__ = ["DECLINE_REASONS", "LATEST_DATE", "Rounds", "Signer"]

from dosewise.rounds.events import LATEST_DATE

_RETRIES = 100
SNAPSHOT_EVERY = 20_000
"""A round's state is snapshotted after this many of its events (0: never)."""

Signer = Callable[[NewEvent], NewEvent]
"""Turns an event into the same event carrying its actor's signature."""


class _RoundMoved(ConflictError):
    """The round recorded events after the state a batch was computed from."""


def _d(value: str | dt.date) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _check_day(day: dt.date, field: str) -> dt.date:
    if day > LATEST_DATE:
        raise InputError(f"dates after {LATEST_DATE} are not accepted", field=field, value=day.isoformat())
    return day


def scenario_text(sc: Scenario) -> str:
    """The canonical JSON text a round records of its scenario (replayed to rebuild the world)."""
    return json.dumps(sc.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _need_payload(need: Mapping[str, float], source: str, as_of: dt.date | None) -> NeedRecorded:
    scores: dict[str, str] = {}
    for code, value in sorted(need.items()):
        x = float(value)
        if x != x or x in (float("inf"), float("-inf")):
            raise InputError("need scores must be finite numbers", field=f"need.{code}", value=value)
        scores[str(code)] = f"{x:.6f}"
    return NeedRecorded(scores=scores, source=source, as_of=as_of)


class Rounds(Mechanism):
    """Runs rounds against a ledger store.

    The ledger is the state; the caches here (projections, worlds, the live optimal solution)
    are brought up to date from it on every call, so several processes may share one ledger.
    Every command checks its input against the round's state first and records nothing when it
    is refused.

    Parameters
    ----------
    store : Store
        The ledger (:func:`~dosewise.open_store`).
    actor : str, default "dosewise"
        Who the recorded events name, unless a command names another.
    need : mapping of str to float, optional
        A need vector for rounds opened or advanced without one.

    Attributes
    ----------
    store : Store
        As given.
    actor : str
        As given.

    Examples
    --------
    >>> from dosewise import Rounds, load_demo, open_store
    >>> rounds = Rounds(open_store("memory"))
    >>> rid = rounds.open(load_demo())
    >>> state = rounds.state(rid)
    >>> state.phase, len(state.offers), state.problems()
    ('open', 165, [])
    """

    def __init__(self, store: Store, *, actor: str = "dosewise", need: Mapping[str, float] | None = None) -> None:
        self.store = store
        self.actor = actor
        self.need = dict(need) if need is not None else None
        self._worlds: dict[str, tuple[Scenario, World]] = {}
        self._states: dict[str, RoundState] = {}
        self._offer_round: dict[str, str] = {}
        self._optimal: dict[str, Any] = {}  # round id -> OptimalState kept for warm re-solves
        self._lock = threading.RLock()  # guards the caches when threads of one process share this object
        self._snapshot_seq: dict[str, int] = {}
        self.snapshot_every = SNAPSHOT_EVERY
        self._refresh = threading.Condition(threading.Lock())  # shared reads of new events (see _refreshed)
        self._tickets = 0
        self._reading: dict[str, int] = {}
        self._fresh: dict[str, int] = {}

    # -- reading -------------------------------------------------------------------------------
    def state(self, round_id: str) -> RoundState:
        """The round's projection, brought up to date with the events recorded since the last call.

        Events recorded by this process or any other are read and applied; the first call starts
        from the round's newest valid snapshot, when there is one.

        Parameters
        ----------
        round_id : str
            The round.

        Returns
        -------
        RoundState
            The live state (shared by later calls: use :meth:`view` for a private copy).

        Raises
        ------
        NotFoundError
            The ledger holds no such round.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> rounds.state(rid).today
        datetime.date(2021, 2, 3)
        """
        if round_id in self._states:
            return self._refreshed(round_id)
        with self._lock:
            state = self._states.get(round_id) or self._from_snapshot(round_id) or RoundState(round_id)
            try:
                self._apply(state, self.store.read(after_seq=state.last_seq, round_id=round_id))
            except IntegrityError:
                if round_id not in self._snapshot_seq:
                    raise
                # the events after the snapshot do not apply to it (a snapshot that reads but does
                # not hold what the events say): the snapshot is set aside and the round replayed
                del self._snapshot_seq[round_id]
                state = RoundState(round_id)
                self._apply(state, self.store.read(round_id=round_id))
            if not state.opened and state.proposal is None:
                raise NotFoundError("no such round in the ledger", field="round", value=round_id)
            self._states[round_id] = state
            return state

    def _refreshed(self, round_id: str) -> RoundState:
        """The cached projection brought up to date by a read that began after this call did.

        Concurrent calls share reads: while one thread reads the round's new events (outside the
        lock, so others do not queue on the database), the threads arriving meanwhile wait for the
        next read, which begins after they arrived, instead of each issuing its own. Each call
        still returns a state holding every event recorded before it was made.
        """
        owns = getattr(self._lock, "_is_owned", None)
        if owns is not None and owns():  # the caller holds the lock a sharing reader needs: read alone
            state = self._states[round_id]
            self._apply(state, self.store.read(after_seq=state.last_seq, round_id=round_id))
            return state
        with self._refresh:
            self._tickets += 1
            arrived = self._tickets
            while self._fresh.get(round_id, 0) <= arrived:
                if round_id not in self._reading:
                    self._tickets += 1
                    ticket = self._reading[round_id] = self._tickets
                    break
                self._refresh.wait()
            else:
                return self._states[round_id]
        try:
            fresh = list(self.store.read(after_seq=self._states[round_id].last_seq, round_id=round_id))
            with self._lock:
                state = self._states[round_id]
                self._apply(state, [ev for ev in fresh if ev.seq > state.last_seq])
            with self._refresh:
                self._fresh[round_id] = max(self._fresh.get(round_id, 0), ticket)
            return state
        finally:
            with self._refresh:
                del self._reading[round_id]
                self._refresh.notify_all()

    def _apply(self, state: RoundState, events: Iterable[Event]) -> None:
        for ev in events:  # every event of the round after state.last_seq, in order (seq follows commit order)
            state.apply(ev)
            if ev.type == "offer.made" and ev.offer_id:
                self._offer_round[ev.offer_id] = state.round_id

    def view(self, round_id: str) -> RoundState:
        """A copy of the round's up-to-date state that no other thread changes while it is read.

        Parameters
        ----------
        round_id : str
            The round.

        Returns
        -------
        RoundState
            A private copy.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> view = rounds.view(rid)
        >>> view == rounds.state(rid), view is rounds.state(rid)
        (True, False)
        """
        self.state(round_id)  # brought up to date first, outside the lock
        with self._lock:
            return self._states[round_id].copy()

    def _from_snapshot(self, round_id: str) -> RoundState | None:
        from dosewise.ledger import snapshots

        found = snapshots.latest(self.store, self.store, round_id)
        if found is None:
            return None
        seq, body = found
        try:
            state = RoundState.from_json(body)
        except (IntegrityError, ValueError, KeyError, TypeError):  # a snapshot that does not read: replay instead
            return None
        if state.round_id != round_id or state.last_seq != seq:
            return None
        self._snapshot_seq[round_id] = seq  # its offers are found through the loaded state (see _offer)
        return state

    def snapshot(self, round_id: str) -> int:
        """Store a snapshot of the round's state now.

        Parameters
        ----------
        round_id : str
            The round.

        Returns
        -------
        int
            The sequence number of the last event the snapshot includes.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> rounds.snapshot(rid) == rounds.store.head().seq
        True
        """
        from dosewise.ledger import snapshots

        state = self.state(round_id)
        ev = next(iter(self.store.read(after_seq=state.last_seq - 1)), None)
        if ev is None or ev.seq != state.last_seq:
            raise RoundError(f"round {round_id}: event {state.last_seq} is not in the ledger")
        snapshots.save(self.store, round_id, state.last_seq, ev.hash, state.to_json())
        self._snapshot_seq[round_id] = state.last_seq
        return state.last_seq

    def _maybe_snapshot(self, round_id: str, seq: int | None = None) -> None:
        """Snapshot the round once :data:`SNAPSHOT_EVERY` events passed since its last snapshot;
        ``seq`` (an event just recorded in the round) spares reading the round to know where it is."""
        if self.snapshot_every <= 0:
            return
        last = seq if seq is not None else self.state(round_id).last_seq
        if last - self._snapshot_seq.get(round_id, 0) >= self.snapshot_every:
            self.snapshot(round_id)

    def rounds(self) -> list[str]:
        """Every round the ledger holds, opened or proposed.

        Returns
        -------
        list of str
            Round ids, in the order they were recorded.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> rounds.rounds() == [rid]
        True
        """
        seen: dict[str, None] = {}
        for ev in self.store.read(types=["round.proposed", "round.opened"]):
            if ev.round_id:
                seen.setdefault(ev.round_id)
        return list(seen)

    def world(self, round_id: str) -> World:
        """The world the round was opened on, rebuilt from the scenario recorded in the ledger.

        Parameters
        ----------
        round_id : str
            The round.

        Returns
        -------
        World
            Its participants, products and lots.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> rounds.world(rid).n
        92
        """
        return self.scenario_world(round_id)[1]

    def scenario_world(self, round_id: str) -> tuple[Scenario, World]:
        """The scenario recorded when the round opened, and its world.

        Parameters
        ----------
        round_id : str
            The round.

        Returns
        -------
        tuple of (Scenario, World)
            As recorded, and as built from it.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> scenario, world = rounds.scenario_world(rid)
        >>> scenario.name == load_demo().name, world.n
        (True, 92)
        """
        rid = round_id
        if not (self._states.get(rid) or self.state(rid)).opened:
            raise RoundError(f"round {rid} is proposed and awaits a reviewer's approval")
        if rid not in self._worlds:
            state = self._states.get(rid) or self.state(rid)
            from dosewise.scenario import parse_scenario
            from dosewise.world import build_world

            sc = parse_scenario(json.loads(state.opened["scenario"]), file=f"ledger round {rid}")
            self._worlds[rid] = (sc, build_world(sc))
        sc, world = self._worlds[rid]
        known = self._states.get(rid)
        if known is not None and len(known.lots) > len(world.lots):  # lots donated while the round ran
            from dosewise.rounds.mechanism import extend_world

            world = extend_world(world, known)
            self._worlds[rid] = (sc, world)
        return sc, world

    def _offer(self, offer_id: str) -> tuple[RoundState, dict[str, Any]]:
        rid = self._offer_round.get(offer_id) or next(
            (r for r, known in list(self._states.items()) if offer_id in known.offers), None)
        if rid is None:
            first = next(iter(self.store.read(offer_id=offer_id, types=["offer.made"])), None)
            if first is None:  # doses held by an approved buffer request or a transfer
                first = next(iter(self.store.read(offer_id=offer_id.rsplit(":T", 1)[0])), None)
            if first is None or first.round_id is None:
                raise NotFoundError("no such offer in the ledger", field="offer", value=offer_id)
            rid = first.round_id
        state = self.state(rid)
        with self._lock:
            if offer_id not in state.offers:
                raise NotFoundError("no such offer in the ledger", field="offer", value=offer_id)
            return state, dict(state.offers[offer_id])

    # -- opening -------------------------------------------------------------------------------
    def open(
        self,
        scenario: Scenario | str,
        *,
        file: str | None = None,
        round_id: str | None = None,
        allocation: Allocation | None = None,
        need: Mapping[str, float] | None = None,
        need_source: str = "",
    ) -> str:
        """Open a round: allocate the scenario's lots and record the round, its lots, the buffer and
        the offers as one batch.

        Opening the same round again with the same scenario changes nothing and returns its id; a
        round awaiting approval cannot be opened directly.

        Parameters
        ----------
        scenario : Scenario or str
            The scenario, or its YAML text.
        file : str, optional
            The file the text came from (named in errors).
        round_id : str, optional
            The round's id (else the scenario's ``round.id``, else one derived from its content).
        allocation : Allocation, optional
            Offer this allocation instead of running the scenario's policy.
        need : mapping of str to float, optional
            The need vector the round's reallocation ranks by (else the one this object was made
            with); recorded in the ledger.
        need_source : str, default ""
            Where the need vector came from (recorded with it).

        Returns
        -------
        str
            The round's id.

        Raises
        ------
        ConflictError
            The same id was opened with another scenario.
        InputError
            A scenario that does not validate.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> rounds.open(load_demo()) == rid  # again: nothing new recorded
        True
        """
        from dosewise.scenario import parse_scenario_text

        sc = parse_scenario_text(scenario, file=file) if isinstance(scenario, str) else scenario
        text = scenario_text(sc)
        rid = round_id or sc.round.id or "R-" + hashlib.sha256(text.encode()).hexdigest()[:10]
        if self._already_open(rid, text):
            return rid
        events, world = self._plan_open(sc, text, rid, allocation, need, need_source, self.actor)
        try:
            self.store.append(events)
        except ConflictError:
            if self._already_open(rid, text):  # another process opened it first
                return rid
            raise
        self._worlds[rid] = (sc, world)
        return rid

    def _plan_open(self, sc: Scenario, text: str, rid: str, allocation: Allocation | None,
                   need: Mapping[str, float] | None, need_source: str, actor: str) -> tuple[list[NewEvent], World]:
        """The batch that opens a round: the round, its need vector, lots, buffer and offers."""
        from dosewise.world import build_world

        world = build_world(sc)
        rules = sc.round
        opens = _check_day(rules.opens or sc.as_of or min(lot.available for lot in sc.lots), "round.opens")
        if allocation is None:
            if rules.reallocation == "optimal":
                from dosewise.optimize.policy import solve_optimal
                from dosewise.registry import optimal_params

                opt = solve_optimal(world, optimal_params(sc.policy.name, sc.policy))
                self._optimal[rid] = opt
                allocation = opt.allocation
            else:
                from dosewise.registry import get_policy

                allocation = get_policy(sc.policy.name)(world, sc.policy)
        deadline = opens + dt.timedelta(days=rules.response_days)
        import numpy as np

        bilateral = world.bilateral if world.bilateral is not None else np.zeros(len(world.lots), dtype=np.bool_)
        for j, given in enumerate(sc.lots):  # a donation no earmarked participant can use in time is refused
            if given.donor is None and given.earmarks is None:
                continue
            allowed = world.earmarked[:, j] if world.earmarked is not None else np.ones(world.n, dtype=np.bool_)
            why = donation_refusal(world, allowed, str(world.lots["product"].iloc[j]), given.available,
                                   given.expiry, opens, rules.response_days)
            if why is not None:
                raise InputError(f"donation refused: {why}", field=f"lots[{j}]", value=given.id)
        events = [
            new_event("round.opened", RoundOpened(
                opens=opens, policy=sc.policy.name, name=sc.name, response_days=rules.response_days,
                reallocation=rules.reallocation, min_shelf_life_days=rules.min_shelf_life_days, scenario=text,
                participants=[str(c) for c in world.codes]),
                actor=actor, round_id=rid, unique_slot=f"round:{rid}:opened"),
        ]
        need = need if need is not None else self.need
        if need is not None:
            events.append(new_event("need.recorded", _need_payload(need, need_source, sc.as_of), actor=actor,
                                    round_id=rid))
        for j, (lot_id, lot) in enumerate(world.lots.iterrows()):
            lid = str(lot_id)
            events.append(new_event("lot.added", LotAdded(
                lot=lid, product=str(lot["product"]), doses=int(lot["doses"]),
                available=world.date(lot["available_day"]), expiry=world.date(lot["expiry_day"]),
                source=str(lot["source"]), **terms_of(sc.lots[j])), actor=actor,
                round_id=rid, lot_id=lid))
            if bilateral[j]:
                events.append(bilateral_offer(rid, sc.lots[j], str(lot["product"]), max(opens, sc.lots[j].available),
                                              rules.response_days, actor, OfferMade))
            elif allocation.buffer[j]:
                events.append(new_event("buffer.held", BufferHeld(lot=lid, doses=int(allocation.buffer[j])),
                                        actor=actor, round_id=rid, lot_id=lid))
        rows, cols = np.nonzero(allocation.doses)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            if bilateral[j]:
                continue
            code, lot_id = str(world.codes[i]), str(world.lots.index[j])
            oid = f"{rid}:{lot_id}:{code}:0"
            events.append(new_event("offer.made", OfferMade(
                offer=oid, lot=lot_id, participant=code, doses=int(allocation.doses[i, j]), deadline=deadline,
                pass_=0, why=f"{allocation.policy} allocation"), actor=actor, round_id=rid, offer_id=oid,
                lot_id=lot_id, participant=code))
        return events, world

    def _already_open(self, rid: str, text: str) -> bool:
        first = next(iter(self.store.read(round_id=rid, types=["round.opened", "round.proposed"])), None)
        if first is None:
            return False
        if first.type == "round.proposed":
            raise ConflictError(f"round {rid} was proposed and is opened by a reviewer's approval, not directly")
        if first.payload.get("scenario") != text:
            raise ConflictError(f"round {rid} is already open with another scenario; give the new round another id")
        return True

    # -- two-person rule -----------------------------------------------------------------------
    def _replayed(self, round_id: str, key: str | None, type_: str) -> Event | None:
        """The event recorded earlier under idempotency ``key`` in this round, if any."""
        if key is None:
            return None
        stored = next((ev for ev in self.store.read(round_id=round_id) if ev.idempotency_key == key), None)
        if stored is not None and stored.type != type_:
            raise ConflictError(f"idempotency key {key!r} was used for {stored.type}, not {type_}")
        return stored

    def propose(
        self,
        scenario: Scenario | str,
        *,
        identity: str,
        actor: str | None = None,
        file: str | None = None,
        round_id: str | None = None,
        need: Mapping[str, float] | None = None,
        need_source: str = "",
        idempotency_key: str | None = None,
    ) -> str:
        """Propose a round (two-person rule): the allocation and the offers it would make are
        recorded as ``round.proposed``; no offer goes out until another identity approves it
        (:meth:`approve`). Proposing the same round again with the same scenario records nothing.

        Parameters
        ----------
        scenario : Scenario or str
            The scenario, or its YAML text.
        identity : str
            Who proposes (the two-person rule compares it).
        actor : str, optional
            Who the event names (default: this object's actor).
        file : str, optional
            The file the text came from.
        round_id : str, optional
            The round's id.
        need : mapping of str to float, optional
            The need vector to record.
        need_source : str, default ""
            Where it came from.
        idempotency_key : str, optional
            A retry with the same key returns the first proposal.

        Returns
        -------
        str
            The round's id.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.propose(load_demo(), identity="coordinator-1")
        >>> rounds.state(rid).phase, len(rounds.state(rid).offers)
        ('proposed', 0)
        """
        from dosewise.scenario import parse_scenario_text

        sc = parse_scenario_text(scenario, file=file) if isinstance(scenario, str) else scenario
        text = scenario_text(sc)
        rid = round_id or sc.round.id or "R-" + hashlib.sha256(text.encode()).hexdigest()[:10]
        if self._replayed(rid, idempotency_key, "round.proposed") is not None:
            return rid
        first = next(iter(self.store.read(round_id=rid, types=["round.opened", "round.proposed"])), None)
        if first is not None:
            if first.type == "round.opened":
                raise ConflictError(f"round {rid} is already open; give the new round another id")
            if _proposed_text(first) != text:
                raise ConflictError(f"round {rid} is already proposed with another scenario; give the new round "
                                    "another id")
            return rid
        actor = actor or self.actor
        planned, world = self._plan_open(sc, text, rid, None, need, need_source, actor)
        proposal = RoundProposed(proposed_by=identity, events=[
            ProposedEvent(type=ne.type, payload=dict(ne.payload)) for ne in planned])  # type: ignore[arg-type]
        ev = new_event("round.proposed", proposal, actor=actor, round_id=rid, idempotency_key=idempotency_key,
                       unique_slot=f"round:{rid}:proposed")
        try:
            self.store.append_one(ev)
        except ConflictError:
            if self._replayed(rid, idempotency_key, "round.proposed") is not None:
                return rid
            raise
        self._worlds[rid] = (sc, world)
        return rid

    def approve(self, round_id: str, *, identity: str, actor: str | None = None,
                idempotency_key: str | None = None) -> list[Event]:
        """Approve a proposed round: record ``round.approved`` and the proposal's events (the round,
        lots, buffer, offers) as one batch.

        Parameters
        ----------
        round_id : str
            The proposed round.
        identity : str
            Who approves; not the proposer.
        actor : str, optional
            Who the event names.
        idempotency_key : str, optional
            A retry with the same key returns the first approval's events.

        Returns
        -------
        list of Event
            The events recorded.

        Raises
        ------
        ForbiddenError
            The proposer's identity approving its own proposal.
        ConflictError
            A second approval.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.propose(load_demo(), identity="coordinator-1")
        >>> events = rounds.approve(rid, identity="reviewer-1")
        >>> events[0].type, rounds.state(rid).phase, len(rounds.state(rid).offers)
        ('round.approved', 'open', 165)
        """
        stored = self._replayed(round_id, idempotency_key, "round.approved")
        if stored is not None:
            return [stored]
        with self._lock:
            state = self.state(round_id)
            proposal = copy.deepcopy(state.proposal)
            opened = bool(state.opened)
        if proposal is None:
            raise RoundError(f"round {round_id} was opened directly; there is no proposal to approve")
        if opened:
            raise ConflictError(f"round {round_id} is already approved and open")
        if proposal["proposed_by"] == identity:
            raise ForbiddenError(f"round {round_id} was proposed by {identity}; another identity must approve it "
                                 "(two-person rule)")
        actor = actor or self.actor
        events = [new_event("round.approved", RoundApproved(
            proposal_seq=proposal["seq"], proposal_hash=proposal["hash"], proposed_by=proposal["proposed_by"],
            approved_by=identity), actor=actor, round_id=round_id, idempotency_key=idempotency_key,
            unique_slot=f"round:{round_id}:approved")]
        for item in proposal["events"]:
            events.append(new_event(item["type"], item["payload"], actor=actor, round_id=round_id,
                                    **_columns(item["type"], item["payload"], round_id)))
        try:
            return self.store.append(events)
        except ConflictError:
            again = self._replayed(round_id, idempotency_key, "round.approved")
            if again is not None:
                return [again]
            raise

    # -- responses -----------------------------------------------------------------------------
    def respond(
        self,
        offer_id: str,
        action: Literal["accept", "decline"],
        *,
        reason: str | None = None,
        note: str | None = None,
        wish: str | None = None,
        on: dt.date | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
        sign: Signer | None = None,
        participant: str | None = None,
        doses: int | None = None,
    ) -> Event:
        """Accept or decline an open offer, before its deadline.

        Parameters
        ----------
        offer_id : str
            The offer (``ROUND:LOT:PARTICIPANT:PASS``).
        action : {"accept", "decline"}
            The answer.
        reason : str, optional
            Why it is declined (one of the decline reasons).
        note : str, optional
            Free text.
        wish : str, optional
            Where a declining participant wishes the doses to go.
        on : datetime.date, optional
            The date of the answer (default: the round's date).
        idempotency_key : str, optional
            A retry with the same key returns the first answer, whatever the round's date by then.
        actor : str, optional
            Who answers.
        sign : Signer, optional
            Attaches the answering party's signature before the event is recorded.
        participant : str, optional
            Refuse the answer unless the offer is made to this participant.
        doses : int, optional
            Accept only this part; the rest goes back to the pool at once.

        Returns
        -------
        Event
            The recorded answer.

        Raises
        ------
        ConflictError
            The offer was answered already.
        RoundError
            After the deadline, or an answer the rules forbid.
        ForbiddenError
            An offer made to another participant than ``participant``.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> event = rounds.respond(f"{rid}:AZ-2021H1:PRK:0", "decline", reason="efficacy_concerns",
        ...                        wish="severely affected countries")
        >>> event.type, rounds.state(rid).offers[f"{rid}:AZ-2021H1:PRK:0"]["status"]
        ('offer.declined', 'declined')
        """
        if doses is not None:
            if action != "accept":
                raise InputError("only an acceptance takes a number of doses", field="doses", value=doses)
            if participant is not None and self._offer(offer_id)[1]["participant"] != participant:
                raise ForbiddenError(f"offer {offer_id} is made to another participant; a participant key for "
                                     f"{participant} may not see or answer it")
            return self.accept_part(offer_id, doses, on=on, note=note, actor=actor, idempotency_key=idempotency_key)
        if action not in ("accept", "decline"):
            raise InputError("action must be accept or decline", field="action", value=action)
        if action == "decline":
            if reason not in DECLINE_REASONS:
                raise InputError(f"decline reason must be one of {', '.join(DECLINE_REASONS)}", field="reason",
                                 value=reason)
        elif reason is not None or wish is not None:
            raise InputError("only a decline takes a reason and a wish", field="reason" if reason else "wish",
                             value=reason or wish)
        state, offer = self._offer(offer_id)
        if participant is not None and offer["participant"] != participant:
            raise ForbiddenError(f"offer {offer_id} is made to {offer['participant']}; a participant key for "
                                 f"{participant} may not see or answer it")
        target = "accepted" if action == "accept" else "declined"
        # an answer recorded under this key would have closed the offer: look it up only then
        if idempotency_key is not None and offer["status"] != "offered":
            stored = self._offer_replay(offer_id, idempotency_key, f"offer.{target}")
            if stored is not None:
                return stored
        day = _check_day(on or state.today or _d(state.opened["opens"]), "on")
        status = offer["status"]
        if status != "offered":
            raise ConflictError(f"offer {offer_id} is already {status}; cannot mark it {target}")
        if day > _d(offer["deadline"]):
            raise RoundError(f"offer {offer_id}: response on {day} is after the deadline {offer['deadline']}")
        if day < _d(state.opened["opens"]):
            raise RoundError(f"offer {offer_id}: response on {day} is before the round opened on "
                             f"{state.opened['opens']}")
        payload = OfferAnswered(offer=offer_id, on=day, reason=reason, note=note, wish=wish)
        ev = new_event(f"offer.{target}", payload, actor=actor or offer["participant"], round_id=state.round_id,
                       offer_id=offer_id, lot_id=offer["lot"], participant=offer["participant"],
                       idempotency_key=idempotency_key, unique_slot=f"offer:{offer_id}:response")
        stored = self.store.append_one(sign(ev) if sign is not None else ev)
        self._maybe_snapshot(state.round_id, stored.seq)
        return stored

    def ship(self, offer_id: str, *, on: dt.date, delivered: bool = False, actor: str | None = None,
             idempotency_key: str | None = None, doses: int | None = None, shipment: str | None = None) -> Event:
        """Record shipment (or delivery) of a whole accepted offer; with ``doses`` or ``shipment``, one
        shipment of part of it (:meth:`send`).

        Parameters
        ----------
        offer_id : str
            An accepted offer.
        on : datetime.date
            The date of shipment (or delivery).
        delivered : bool, default False
            Record delivery of a shipped offer instead.
        actor : str, optional
            Who records it.
        idempotency_key : str, optional
            A retry with the same key returns the first event.
        doses : int, optional
            Ship this part only.
        shipment : str, optional
            The shipment's id (for a part).

        Returns
        -------
        Event
            The recorded event.

        Raises
        ------
        RoundError
            An offer not accepted, before its delay, or past the lot's usable date.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> oid = f"{rid}:AZ-2021H1:KEN:0"
        >>> _ = rounds.respond(oid, "accept")
        >>> rounds.ship(oid, on=dt.date(2021, 2, 22)).type
        'offer.shipped'
        >>> rounds.ship(oid, on=dt.date(2021, 2, 26), delivered=True).type
        'offer.delivered'
        """
        if doses is not None or shipment is not None:
            if delivered:
                raise InputError("deliver a shipment by its id (round deliver)", field="--delivered")
            return self.send(offer_id, doses, on=on, shipment=shipment)
        state, offer = self._offer(offer_id)
        if offer.get("shipped") or (not delivered and (offer.get("reserved") or offer.get("ship_after"))):
            raise RoundError(f"offer {offer_id} has shipments, a pending transfer or a delay; ship it by "
                                 "shipment with a number of doses")
        target = "delivered" if delivered else "shipped"
        if idempotency_key is not None:
            stored = self._offer_replay(offer_id, idempotency_key, f"offer.{target}")
            if stored is not None:
                return stored
        if target not in NEXT.get(offer["status"], ()):
            raise RoundError(f"offer {offer_id} is {offer['status']}; it cannot be {target}")
        return self.store.append_one(
            new_event(f"offer.{target}", OfferMoved(offer=offer_id, on=_check_day(on, "on")),
                      actor=actor or self.actor, round_id=state.round_id, offer_id=offer_id, lot_id=offer["lot"],
                      participant=offer["participant"], idempotency_key=idempotency_key,
                      unique_slot=f"offer:{offer_id}:{target}")
        )

    def _offer_replay(self, offer_id: str, key: str, type_: str) -> Event | None:
        """The event recorded for ``offer_id`` under idempotency ``key``, if any; one of another type
        means the key was reused for another command (a :class:`~dosewise.errors.ConflictError`)."""
        stored = next((ev for ev in self.store.read(offer_id=offer_id) if ev.idempotency_key == key), None)
        if stored is not None and stored.type != type_:
            raise ConflictError(f"idempotency key {key!r} was used for {stored.type} of {offer_id}, not {type_}")
        return stored

    # -- time and reallocation -----------------------------------------------------------------
    def _append_for_round(self, round_id: str, build: Callable[[RoundState], list[NewEvent]]) -> list[Event]:
        """Compute a batch from the round's state and append it only if the round has not moved
        since (compare-and-set on the round's last sequence, inside the ledger's write lock)."""
        for _ in range(_RETRIES):
            with self._lock:
                state = self.state(round_id)
                seen = state.last_seq  # before building: the batch is computed from exactly this state
                events = build(state)
            if not events:
                return []

            def unchanged(view: LedgerView, seen: int = seen) -> None:
                if next(iter(view.read(after_seq=seen, round_id=round_id)), None) is not None:
                    raise _RoundMoved(f"round {round_id} moved on while this command ran")

            try:
                stored = self.store.append(events, precondition=unchanged)
            except _RoundMoved:
                self._optimal.pop(round_id, None)  # its live model may hold this batch's re-solves
                time.sleep(0.001)
                continue
            self._maybe_snapshot(round_id)
            return stored
        raise ConflictError(f"round {round_id} kept changing while this command ran; try again")

    def advance(self, round_id: str, to: dt.date, *, need: Mapping[str, float] | None = None,
                need_source: str = "", actor: str | None = None, idempotency_key: str | None = None) -> list[Event]:
        """Move the round's clock to ``to``: lapse overdue offers, expire unusable doses, and run one
        reallocation pass over the pool, all as one atomic batch.

        A date the round has already reached with a pass records nothing (so a retry after a crash
        or a second process advancing to the same date adds no second pass).

        Parameters
        ----------
        round_id : str
            The round.
        to : datetime.date
            The new date (not before the round's date).
        need : mapping of str to float, optional
            Replaces the round's recorded need vector (else the one this object was made with; else
            the one recorded earlier in the round).
        need_source : str, default ""
            Where the need vector came from.
        actor : str, optional
            Who advances.
        idempotency_key : str, optional
            A retry with the same key returns the batch first recorded.

        Returns
        -------
        list of Event
            The events recorded (empty when the date was reached already).

        Raises
        ------
        RoundError
            A date before the round's date, or a closed round.

        Examples
        --------
        >>> import datetime as dt
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> events = rounds.advance(rid, dt.date(2021, 2, 11))  # every offer's deadline has passed
        >>> events[0].type, rounds.state(rid).today, rounds.state(rid).problems()
        ('round.advanced', datetime.date(2021, 2, 11), [])
        >>> rounds.advance(rid, dt.date(2021, 2, 11))
        []
        """
        _check_day(to, "--to")
        stored = self._replayed(round_id, idempotency_key, "round.advanced")
        if stored is not None:  # the first answer: the batch that advance recorded
            batch: list[Event] = []
            for ev in self.store.read(after_seq=stored.seq - 1, round_id=round_id):
                batch.append(ev)
                if ev.type == "reallocation.pass":
                    break
            return batch
        need = need if need is not None else self.need
        return self._append_for_round(round_id, lambda state: self._advance_batch(
            state, to, need, need_source, actor or self.actor, idempotency_key))

    def _advance_batch(self, state: RoundState, to: dt.date, need: Mapping[str, float] | None,
                       need_source: str, actor: str, key: str | None) -> list[NewEvent]:
        rid = state.round_id
        if not state.opened:
            raise RoundError(f"round {rid} is proposed and awaits a reviewer's approval")
        if state.closed:
            raise RoundError(f"round {rid} is closed")
        if state.today is not None and to < state.today:
            raise RoundError(f"round {rid} is already at {state.today}; cannot go back to {to}")
        if state.today == to and any(p.get("on") == to.isoformat() for p in state.passes):
            return []
        sc, world = self.scenario_world(rid)
        events: list[NewEvent] = [new_event("round.advanced", RoundAdvanced(to=to, from_=str(state.today)),
                                            actor=actor, round_id=rid, idempotency_key=key)]
        if need is not None:
            payload = _need_payload(need, need_source, to)
            if state.need is None or {k: f"{v:.6f}" for k, v in state.need.items()} != payload.scores:
                events.append(new_event("need.recorded", payload, actor=actor, round_id=rid))
        offers = state.offers  # by column: a long round's answered offers need no dict each
        for oid, status, deadline, lot, code in zip(offers, offers.column("status"), offers.column("deadline"),
                                                    offers.column("lot"), offers.column("participant"), strict=True):
            if status == "offered" and _d(deadline) < to:
                events.append(new_event("offer.lapsed", OfferAnswered(offer=oid, on=to, reason="deadline passed"),
                                        actor=actor, round_id=rid, offer_id=oid, lot_id=lot,
                                        participant=code, unique_slot=f"offer:{oid}:response"))
        events += readiness_lapses(state, sc, to, actor)
        # apply the batch so far to a scratch projection so the pass sees lapsed doses in the pool
        scratch = copy.deepcopy(state)
        for k, ne in enumerate(events):
            scratch.apply(_as_event(ne, scratch.last_seq + 1 + k))
        pass_no = len(state.passes) + 1
        deadline = to + dt.timedelta(days=sc.round.response_days)
        order = sc.round.reallocation
        extra: dict[str, Any] = {}
        targets = None
        if order == "optimal":
            targets, extra = self._reoptimize(scratch, sc, world)
        expiry = world.lots["expiry_day"]  # the pass counts days on the world's time axis
        pools = [LotPool(lot_id, lot["product"], int(lot["pool"]),
                         int(expiry[lot_id]) if lot_id in expiry.index else world.days(lot["expiry"]),
                         *lot_allowed(world, lot_id))
                 for lot_id, lot in scratch.lots.items()]
        plan = plan_pass(world, pools, holdings=scratch.holdings(), refused=scratch.refused(), today=world.days(to),
                         deadline=world.days(deadline), order=order, need=scratch.need,
                         recipients_per_pass=sc.round.recipients_per_pass, ceiling=float(sc.policy.tranches[-1]),
                         pass_no=pass_no, targets=targets)
        for lot_id, doses, why in plan.expired:
            events.append(new_event("lot.expired", {"lot": lot_id, "doses": doses, "why": why}, actor=actor,
                                    round_id=rid, lot_id=lot_id))
        for lot_id, code, doses, why in plan.offers:
            oid = f"{rid}:{lot_id}:{code}:{pass_no}"
            events.append(new_event("offer.made", OfferMade(offer=oid, lot=lot_id, participant=code, doses=doses,
                                                            deadline=deadline, pass_=pass_no, why=why),
                                    actor=actor, round_id=rid, offer_id=oid, lot_id=lot_id, participant=code))
        events.append(new_event("reallocation.pass", ReallocationPass.model_validate(
            {"pass": pass_no, "on": to.isoformat(), **plan.explain, **extra}), actor=actor, round_id=rid))
        return events

    def _optimal_state(self, state: RoundState, sc: Scenario, world: World) -> Any:
        """The live optimal solution of the round; after a restart, solved again and brought to
        the ledger's state by replaying the recorded re-optimisations in order."""
        from dosewise.optimize.policy import solve_optimal
        from dosewise.optimize.reoptimize import reoptimize_after_decline
        from dosewise.registry import optimal_params

        opt = self._optimal.get(state.round_id)
        if opt is None:
            opt = solve_optimal(world, optimal_params(sc.policy.name, sc.policy))
            for p in state.passes:
                for participant, lot, doses in p.get("reoptimized", []):
                    reoptimize_after_decline(opt, participant, lot, doses)
            self._optimal[state.round_id] = opt
        return opt

    def _reoptimize(self, state: RoundState, sc: Scenario,
                    world: World) -> tuple[dict[str, dict[str, int]], dict[str, Any]]:
        """Re-optimise each declined or lapsed offer not yet handled, on the live HiGHS model
        (warm start); returns the new targets per lot and participant, and what to record."""
        from dosewise.optimize.reoptimize import reoptimize_after_decline

        opt = self._optimal_state(state, sc, world)
        handled = {oid for p in state.passes for oid in p.get("handled", [])}
        done: list[list[Any]] = []
        handled_now: list[str] = []
        targets: dict[str, dict[str, int]] = {}
        t0 = time.perf_counter()
        offers = state.offers
        for oid, status, code, lot, doses in zip(offers, offers.column("status"), offers.column("participant"),
                                                 offers.column("lot"), offers.column("doses"), strict=True):
            if status not in ("declined", "lapsed") or oid in handled:
                continue
            new = reoptimize_after_decline(opt, code, lot, int(doses))
            done.append([code, lot, int(doses)])
            handled_now.append(oid)
            lot_targets = targets.setdefault(lot, {})
            for code, d in new[new > 0].items():
                lot_targets[str(code)] = lot_targets.get(str(code), 0) + int(d)
        ms = round((time.perf_counter() - t0) * 1e3)
        return targets, {"reoptimized": done, "handled": handled_now, "reoptimize_ms": int(ms)}

    # -- scripted play (demo, tests) -----------------------------------------------------------
    def play(self, round_id: str, *, until_passes: int | None = None,
             signers: Mapping[str, Signer] | None = None) -> RoundState:
        """Answer offers as the scenario scripts them (others by ``default_response``; bilateral offers
        only when scripted), advancing past each deadline until the pool is empty or ``max_passes``
        is reached.

        Parameters
        ----------
        round_id : str
            The round.
        until_passes : int, optional
            Stop after this many reallocation passes.
        signers : mapping of str to Signer, optional
            A scripted answer of a participant in it is signed with its key.

        Returns
        -------
        RoundState
            The state at the end.

        Examples
        --------
        >>> from dosewise import Rounds, load_demo, open_store
        >>> rounds = Rounds(open_store("memory"))
        >>> rid = rounds.open(load_demo())
        >>> state = rounds.play(rid)
        >>> state.problems(), sum(1 for o in state.offers.values() if o["status"] == "offered")
        ([], 0)
        """
        state = self.state(round_id)
        sc, _ = self.scenario_world(round_id)
        script = {(r.participant.upper(), r.lot): r for r in sc.round.responses}
        for _ in range(until_passes or sc.round.max_passes):
            for oid, o in list(state.offers.items()):
                if o["status"] != "offered":
                    continue
                bilateral = state.lot_terms.get(o["lot"], {}).get("channel") == "bilateral"
                if bilateral and (o["participant"], o["lot"]) not in script:
                    continue  # a bilateral offer is its recipient's to answer, not the round's default
                r = script.get((o["participant"], o["lot"])) or script.get((o["participant"], None))
                if r is not None and o["pass"] == 0:
                    self.respond(oid, r.action, reason=r.reason, note=r.note, wish=r.wish,
                                 idempotency_key=f"{oid}:script", sign=(signers or {}).get(o["participant"]))
                elif sc.round.default_response == "accept":
                    self.respond(oid, "accept", idempotency_key=f"{oid}:script")
            state = self.state(round_id)
            if sum(lot["pool"] for lid, lot in state.lots.items()
                   if state.lot_terms.get(lid, {}).get("channel") != "bilateral") == 0:
                break
            latest = max((_d(o["deadline"]) for o in state.offers.values()), default=state.today)
            assert latest is not None
            self.advance(round_id, max(latest + dt.timedelta(days=1), state.today or latest))
            state = self.state(round_id)
        return state


def _proposed_text(ev: Event) -> str | None:
    for item in ev.payload.get("events", []):
        if item.get("type") == "round.opened":
            return str(item["payload"].get("scenario"))
    return None


def _columns(type_: str, payload: Mapping[str, Any], round_id: str) -> dict[str, Any]:
    """The indexed columns of a proposed event, derived from its payload."""
    if type_ == "round.opened":
        return {"unique_slot": f"round:{round_id}:opened"}
    if type_ in ("lot.added", "buffer.held"):
        return {"lot_id": payload["lot"]}
    if type_ == "offer.made":
        return {"offer_id": payload["offer"], "lot_id": payload["lot"], "participant": payload["participant"]}
    return {}


def _as_event(ne: NewEvent, seq: int) -> Event:
    """A provisional event for the scratch projection (never stored)."""
    import uuid

    return Event(seq, str(uuid.uuid4()), ne.type, ne.round_id, ne.offer_id, ne.lot_id, ne.participant,
                 dict(ne.payload), ne.actor, dt.datetime.now(dt.UTC), ne.idempotency_key, ne.unique_slot, "", "")
