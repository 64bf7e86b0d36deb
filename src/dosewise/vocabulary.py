"""Words with a fixed list of values, shared by scenarios, rounds and every interface.

Kept free of heavy imports so the command line can show them in ``--help``.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["DECLINE_REASONS", "DeclineReason"]

DeclineReason = Literal[
    "efficacy_concerns",
    "short_shelf_life",
    "cold_chain",
    "regulatory",
    "absorptive_capacity",
    "no_workforce",
    "other",
]
"""Why a participant declines an offer (the reasons COVAX participants gave, plus ``other``)."""

DECLINE_REASONS: tuple[str, ...] = get_args(DeclineReason)
