"""dosewise: an open, auditable engine for allocating scarce vaccine supply.

The public surface is re-exported here; implementation lives in the submodules::

    scenario (YAML → validated Scenario) → world (columnar World) → policies (World → Allocation)
    → rounds (offers, declines, reallocation as ledger events) → ledger (hash-chained store)
    surveillance (feeds → indicators, flags, need score)    impact (SEIR-V → deaths averted)
    optimize (HiGHS LP: the ``optimal`` policy)
"""

from dosewise.allocation import Allocation
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
from dosewise.policies import POLICIES, get_policy
from dosewise.products import Product, catalogue
from dosewise.rounds import Rounds, RoundState, project
from dosewise.scenario import Scenario, load_demo, load_scenario, parse_scenario
from dosewise.world import World, build_world

__version__ = "0.1.0"

__all__ = [
    "POLICIES",
    "Allocation",
    "AllocationError",
    "ConflictError",
    "DataSourceError",
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
