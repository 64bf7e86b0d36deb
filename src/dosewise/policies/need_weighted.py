"""COVAX phase 2 as designed: shares in proportion to population × need.

The phase-2 threat-and-vulnerability formula was never published; this policy uses the
documented need score of :mod:`dosewise.surveillance.need` (threat, vulnerability and coverage
gap, weights after Jain et al. 2022) and otherwise the phase-1 machinery: humanitarian buffer,
tranche ceiling, caps, small-state floors and shipping units.

Need scores come from the policy's ``need``, or ``who`` and ``as_of`` (in a scenario, directly
under ``policy:``):

* ``need``: a mapping ``{participant: score in [0, 1]}``, or
* ``who`` (a WHO weekly cases/deaths CSV) and ``as_of`` (a date), optionally ``vaccination``
  (OWID ``vaccinations.csv``): the score is computed from those files.

A participant with no need score is an error naming it (never a silent zero), unless
``missing_need: exclude`` says it gets nothing from this policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np

from dosewise.allocation import Allocation
from dosewise.errors import InputError
from dosewise.policies.pro_rata import allocate_weighted
from dosewise.scenario import PolicyParams
from dosewise.world import World


def need_from_files(world: World, who: str, as_of: dt.date | str, vaccination: str | None = None) -> dict[str, float]:
    """Need scores of the world's participants from a WHO weekly file (and OWID vaccinations)."""
    from dosewise.surveillance.need import need_from_feed
    from dosewise.surveillance.readers import read_owid, read_who_weekly

    day = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))
    weekly = read_who_weekly(who)
    vacc = read_owid(vaccination) if vaccination else None
    scores = need_from_feed(world.participants, weekly, as_of=day, vaccination=vacc)
    need = scores["need"].dropna()
    return {str(k): float(v) for k, v in need.items()}


def need_scores_for(world: World, options: Mapping[str, Any]) -> dict[str, float]:
    if "need" in options:
        need = options["need"]
        if not isinstance(need, Mapping):
            raise InputError("must map participants to need scores", field="policy.need", value=need)
        return {str(k): float(v) for k, v in need.items()}
    if "who" in options and "as_of" in options:
        return need_from_files(world, str(options["who"]), options["as_of"], options.get("vaccination"))
    raise InputError(
        "covax-need-weighted needs need scores: give policy.need, or policy.who "
        "(a WHO weekly CSV) with policy.as_of",
        field="policy.need",
    )


def allocate_need_weighted(world: World, params: PolicyParams) -> Allocation:
    """Shares of every lot in proportion to population × need score (see the module docstring)."""
    need_map = need_scores_for(world, params.options)
    need = np.array([need_map.get(str(c), np.nan) for c in world.codes], dtype=np.float64)
    missing = [str(c) for c, x in zip(world.codes, need, strict=True) if not np.isfinite(x)]
    if missing:
        if params.options.get("missing_need") != "exclude":
            raise InputError(
                "no need score for " + ", ".join(missing)
                + "; supply scores or set policy.missing_need: exclude",
                field="policy.need",
            )
        need = np.where(np.isfinite(need), need, 0.0)
    if (need < 0).any() or not (need > 0).any():
        raise InputError("need scores must be >= 0 with at least one > 0", field="policy.need")
    alloc = allocate_weighted(world, params, need, policy="covax-need-weighted")
    alloc.notes["need"] = need
    return alloc
