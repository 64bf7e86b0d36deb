"""Run several allocation policies on one world and compare the deaths each averts and how
unequal each allocation is.

Three separate steps, so other parts can extend any of them: :func:`run_policies` (policy →
allocation → :class:`ImpactResult`, sharing one setup and one no-vaccine run, and for the
``optimal`` variants one set of tier values computed with the same impact parameters),
:func:`comparison_table` (runs → frame, one row per policy, with inequality and the LP's own
estimate beside the simulated deaths averted) and :func:`plot_comparison` (frame → PNG/SVG).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dosewise.allocation import Allocation
from dosewise.errors import InputError
from dosewise.impact.engine import prepare, simulate
from dosewise.impact.outcomes import ImpactResult, run_impact
from dosewise.impact.parameters import ImpactParams
from dosewise.impact.tiers import TierValues, tier_values
from dosewise.scenario import PolicyParams, Scenario
from dosewise.scenario import policy_params as params_for
from dosewise.world import World

COLUMNS = (
    "doses_allocated",
    "doses_administered",
    "doses_unused",
    "doses_wasted",
    "doses_after_horizon",
    "deaths_no_vaccine",
    "deaths",
    "deaths_averted",
    "deaths_averted_per_100_doses",
    "deaths_averted_per_million",
)
INEQUALITY_COLUMNS = ("share_below_pro_rata", "participants_below_pro_rata", "gini_doses_per_capita")
"""From :func:`dosewise.optimize.inequality` against the ``covax-pro-rata`` allocation of the same world."""
LP_COLUMNS = ("lp_deaths_averted", "lp_gap", "lp_gap_share")
"""Closed loop for the ``optimal`` variants: the LP's estimate (after rounding), estimate − simulated,
and that gap as a share of the simulated deaths averted (NaN for rule-based policies)."""

DEFAULT_POLICIES = ("covax-pro-rata", "covax-need-weighted", "optimal", "optimal-floor-50", "optimal-floor-100")
"""What ``dosewise compare`` runs when ``--policies`` is not given (those registered at run time)."""


@dataclass(frozen=True)
class PolicyRuns:
    """Each policy's allocation and impact on one world, plus what the comparison shares."""

    world: World
    results: dict[str, ImpactResult]
    allocations: dict[str, Allocation]
    reference: Allocation
    """The ``covax-pro-rata`` allocation: the entitlement for equity floors and inequality."""
    tier_values: TierValues | None = None
    """Tier values the ``optimal`` variants used (compare's own impact parameters)."""
    seconds: dict[str, float] = field(default_factory=dict)


def like_from_scenario(sc: Scenario) -> dict[str, str]:
    """Participants' ``age_structure_like`` (and units' parents): the stand-ins for contact matrices."""
    p = sc.participants
    out = {u.id: str(u.age_structure_like or u.parent).upper() for u in p.units if u.age_structure_like or u.parent}
    for code, prof in p.overrides.items():
        if prof.age_structure_like:
            out[code.upper()] = prof.age_structure_like.upper()
    return out


def _options_for(base: PolicyParams, name: str, extra: Mapping[str, Mapping[str, Any]] | None) -> PolicyParams:
    return params_for(base, name=name, **dict((extra or {}).get(name, {})))


def run_policies(
    world: World,
    policies: Sequence[str],
    params: ImpactParams | None = None,
    *,
    policy_params: PolicyParams | None = None,
    like: Mapping[str, str] | None = None,
    policy_options: Mapping[str, Mapping[str, Any]] | None = None,
    allocations: Mapping[str, Allocation] | None = None,
) -> PolicyRuns:
    """Allocate by each named policy (from :data:`dosewise.policies.POLICIES`) and run the impact model.

    ``policy_options`` adds options for single policies (``{"covax-need-weighted": {"need": ...}}``);
    ``allocations`` adds allocations made elsewhere (a round's holdings), valued under their labels.
    The ``optimal`` variants (:data:`dosewise.policies.OPTIMAL_FLOORS`) are solved on tier values
    computed once with ``params`` (R0, IFR, horizon) and the shared setup, so the LP optimises
    the same epidemic the comparison simulates; the equity floors refer to the pro-rata
    allocation computed here.
    """
    from dosewise.optimize.policy import solve_optimal, tier_arrays
    from dosewise.optimize.problem import DEFAULT_TIERS
    from dosewise.policies import allocate_pro_rata
    from dosewise.registry import OPTIMAL_FLOORS, get_policy, optimal_params

    if not policies and not allocations:
        raise InputError("name at least one policy", field="--policies")
    for name in policies:
        get_policy(name)  # unknown names fail before any work
    params = params or ImpactParams()
    base = policy_params or PolicyParams()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    setup = prepare(world, params, like=like)
    baseline = simulate(setup)
    reference = allocate_pro_rata(world, params_for(base, name="covax-pro-rata"))
    seconds["setup"] = time.perf_counter() - t0
    tiers_cache: dict[int, TierValues] = {}
    out: dict[str, ImpactResult] = {}
    allocations_out: dict[str, Allocation] = {}
    for name in policies:
        t = time.perf_counter()
        pp = _options_for(base, name, policy_options)
        if name == "covax-pro-rata" and not (policy_options or {}).get(name):
            alloc = reference
        elif name in OPTIMAL_FLOORS:
            pp = optimal_params(name, pp)
            tiers = int(pp.options.get("tiers", DEFAULT_TIERS))
            if tiers not in tiers_cache:
                tiers_cache[tiers] = tier_values(world, params, tiers=tiers, setup=setup, baseline=baseline)
            sizes, dap, factor = tier_arrays(world, tiers_cache[tiers])
            state = solve_optimal(
                world,
                pp,
                tier_sizes=sizes,
                deaths_averted_per_dose=dap,
                product_factor=factor,
                entitlement=reference.totals().astype(np.float64),
            )
            alloc = state.allocation
        else:
            alloc = get_policy(name)(world, pp)
        allocations_out[name] = alloc
        out[name] = run_impact(world, alloc, params, setup=setup, baseline=baseline)
        seconds[name] = time.perf_counter() - t
    for label, alloc in (allocations or {}).items():
        t = time.perf_counter()
        allocations_out[label] = alloc
        out[label] = run_impact(world, alloc, params, setup=setup, baseline=baseline)
        seconds[label] = time.perf_counter() - t
    return PolicyRuns(
        world=world,
        results=out,
        allocations=allocations_out,
        reference=reference,
        tier_values=next(iter(tiers_cache.values()), None),
        seconds=seconds,
    )


def comparison_table(runs: PolicyRuns) -> pd.DataFrame:
    """One row per policy: :data:`COLUMNS`, :data:`INEQUALITY_COLUMNS` and :data:`LP_COLUMNS`."""
    from dosewise.optimize.metrics import inequality_table

    rows = []
    for name, res in runs.results.items():
        s = res.summary()
        row: dict[str, Any] = {"policy": name, **{c: s.get(c, float("nan")) for c in COLUMNS}}
        estimate = float(runs.allocations[name].notes.get("objective_rounded", float("nan")))
        simulated = float(row["deaths_averted"])
        row["lp_deaths_averted"] = estimate
        row["lp_gap"] = estimate - simulated
        row["lp_gap_share"] = (estimate - simulated) / simulated if simulated else float("nan")
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("policy")
    ineq = inequality_table(runs.world, runs.allocations, runs.reference)
    frame = frame.join(ineq[list(INEQUALITY_COLUMNS)])
    return frame[[*COLUMNS, *INEQUALITY_COLUMNS, *LP_COLUMNS]]


def compare_policies(
    world: World,
    policies: Sequence[str],
    params: ImpactParams | None = None,
    *,
    policy_params: PolicyParams | None = None,
    like: Mapping[str, str] | None = None,
    policy_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Deaths averted and inequality of each policy on the same world (see :func:`comparison_table`)."""
    return comparison_table(
        run_policies(world, policies, params, policy_params=policy_params, like=like, policy_options=policy_options)
    )


def plot_comparison(frame: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    """Deaths averted, deaths averted per 100 doses and inequality per policy, saved as PNG or SVG."""
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise InputError("plot must end in .png or .svg", file=str(path), field="--plot", value=suffix)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(i) for i in frame.index]
    x = np.arange(len(names))
    panels = 3 if "gini_doses_per_capita" in frame else 2
    fig, axes = plt.subplots(1, panels, figsize=(max(9.0, 1.1 * len(names) * panels + 3), 4.6))
    axes[0].bar(x, frame["deaths_averted"].to_numpy(), color="#2b6cb0")
    axes[0].set_ylabel("deaths averted")
    axes[1].bar(x, frame["deaths_averted_per_100_doses"].to_numpy(), color="#dd6b20")
    axes[1].set_ylabel("deaths averted per 100 doses")
    if panels == 3:
        width = 0.38
        axes[2].bar(x - width / 2, frame["share_below_pro_rata"].to_numpy(), width, color="#805ad5",
                    label="share below pro rata")
        axes[2].bar(x + width / 2, frame["gini_doses_per_capita"].to_numpy(), width, color="#38a169",
                    label="Gini of doses per capita")
        axes[2].set_ylim(0, 1)
        axes[2].set_ylabel("inequality (0 = equal)")
        axes[2].legend(fontsize="small", loc="upper left")
    for ax in axes:
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
