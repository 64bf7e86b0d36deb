"""Impact model: deaths averted by an allocation, for all participants at once.

``prepare`` (population, contacts, IFR, β) → ``simulate`` (SEIR with vaccination, vectorised
over participants) → ``ImpactResult`` (frames and a summary). ``doses_from_allocation`` turns an
allocation into doses per day; ``tier_values`` gives the optimiser the marginal value of a dose
by priority tier.
:mod:`dosewise.compare` runs several policies on one world.
"""

from dosewise.impact.engine import (
    Layout,
    Setup,
    Trajectory,
    Vaccines,
    administer,
    prepare,
    product_vaccines,
    simulate,
)
from dosewise.impact.outcomes import ImpactResult, run_impact
from dosewise.impact.parameters import BANDS, IFR_SOURCES, ImpactParams, ifr_by_band
from dosewise.impact.tiers import TIER_PRESETS, TierValues, tier_values
from dosewise.impact.vaccination import DoseSchedule, doses_from_allocation

__all__ = [
    "BANDS",
    "IFR_SOURCES",
    "TIER_PRESETS",
    "DoseSchedule",
    "ImpactParams",
    "ImpactResult",
    "Layout",
    "Setup",
    "TierValues",
    "Trajectory",
    "Vaccines",
    "administer",
    "doses_from_allocation",
    "ifr_by_band",
    "prepare",
    "product_vaccines",
    "run_impact",
    "simulate",
    "tier_values",
]
