"""Allocation rounds: offers, answers, deadlines and reallocation, recorded as ledger events.

* :mod:`~dosewise.rounds.events`: one payload schema per event type;
* :mod:`~dosewise.rounds.state`: the projection of a round's events (:class:`RoundState`) and
  the allocations it implies;
* :mod:`~dosewise.rounds.reallocate`: one reallocation pass as a pure function;
* :mod:`~dosewise.rounds.commands`: :class:`Rounds`, the commands that record events.
"""

from dosewise.rounds.commands import DECLINE_REASONS, LATEST_DATE, Rounds, Signer, scenario_text
from dosewise.rounds.events import PAYLOADS
from dosewise.rounds.reallocate import LotPool, PassPlan, eligibility, plan_pass
from dosewise.rounds.state import (
    HOLDING,
    RoundState,
    balances,
    held_allocation,
    offered_allocation,
    project,
)

__all__ = [
    "DECLINE_REASONS",
    "HOLDING",
    "LATEST_DATE",
    "PAYLOADS",
    "LotPool",
    "PassPlan",
    "RoundState",
    "Rounds",
    "Signer",
    "balances",
    "eligibility",
    "held_allocation",
    "offered_allocation",
    "plan_pass",
    "project",
    "scenario_text",
]
