"""dosewise: an open, auditable engine for allocating scarce vaccine supply.

The public surface is re-exported here and loaded on first use (PEP 562), so ``import
dosewise`` and ``dosewise --help`` stay fast; implementation lives in the submodules, in one
direction of flow::

    errors, reference → yamlread → scenario → world → policies → impact → optimize → registry
    → ledger → rounds → compare → app → cli

    yamlread (strict YAML → document) → scenario (validated Scenario) → world (columnar World)
    → policies (World → Allocation) → rounds (offers, declines, reallocation as ledger events)
    → ledger (hash-chained store)
    surveillance (feeds → indicators, flags, need score)    impact (SEIR-V → deaths averted)
    optimize (HiGHS LP: the ``optimal`` policy)    app (the one API the interfaces call)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from dosewise.allocation import Allocation
    from dosewise.app import Allocated, Comparison, Desk
    from dosewise.errors import (
        AllocationError,
        ConflictError,
        DataSourceError,
        DosewiseError,
        InputError,
        IntegrityError,
        LedgerError,
        ReferenceDataError,
        RoundError,
        ScenarioError,
    )
    from dosewise.ledger import open_store
    from dosewise.ledger.signing import Signer
    from dosewise.products import Product, catalogue
    from dosewise.registry import POLICIES, get_policy
    from dosewise.rounds import Rounds, RoundState, project
    from dosewise.scenario import Scenario, load_demo, load_scenario, parse_scenario
    from dosewise.world import World, build_world

_WHERE: dict[str, str] = {
    "POLICIES": "dosewise.registry",
    "Allocated": "dosewise.app",
    "Allocation": "dosewise.allocation",
    "AllocationError": "dosewise.errors",
    "Comparison": "dosewise.app",
    "ConflictError": "dosewise.errors",
    "DataSourceError": "dosewise.errors",
    "Desk": "dosewise.app",
    "DosewiseError": "dosewise.errors",
    "InputError": "dosewise.errors",
    "IntegrityError": "dosewise.errors",
    "LedgerError": "dosewise.errors",
    "Product": "dosewise.products",
    "ReferenceDataError": "dosewise.errors",
    "RoundError": "dosewise.errors",
    "RoundState": "dosewise.rounds",
    "Rounds": "dosewise.rounds",
    "Scenario": "dosewise.scenario",
    "ScenarioError": "dosewise.errors",
    "Signer": "dosewise.ledger.signing",
    "World": "dosewise.world",
    "build_world": "dosewise.world",
    "catalogue": "dosewise.products",
    "get_policy": "dosewise.registry",
    "load_demo": "dosewise.scenario",
    "load_scenario": "dosewise.scenario",
    "open_store": "dosewise.ledger",
    "parse_scenario": "dosewise.scenario",
    "project": "dosewise.rounds",
}

__all__ = [
    "POLICIES",
    "Allocated",
    "Allocation",
    "AllocationError",
    "Comparison",
    "ConflictError",
    "DataSourceError",
    "Desk",
    "DosewiseError",
    "InputError",
    "IntegrityError",
    "LedgerError",
    "Product",
    "ReferenceDataError",
    "RoundError",
    "RoundState",
    "Rounds",
    "Scenario",
    "ScenarioError",
    "Signer",
    "World",
    "build_world",
    "catalogue",
    "get_policy",
    "load_demo",
    "load_scenario",
    "open_store",
    "parse_scenario",
    "project",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dosewise' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
