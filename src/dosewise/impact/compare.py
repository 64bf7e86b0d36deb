"""Run several allocation policies on one world and compare the deaths each averts.

Three separate steps, so other parts can extend any of them (the optimiser adds rows for
``optimal`` at several equity floors and inequality columns): :func:`run_policies` (policy →
:class:`ImpactResult`, sharing one setup and one no-vaccine run), :func:`comparison_table`
(results → frame, one row per policy) and :func:`plot_comparison` (frame → PNG/SVG).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from dosewise.errors import InputError
from dosewise.impact.engine import prepare, simulate
from dosewise.impact.outcomes import ImpactResult, run_impact
from dosewise.impact.parameters import ImpactParams
from dosewise.scenario import PolicyParams
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


def run_policies(
    world: World,
    policies: Sequence[str],
    params: ImpactParams | None = None,
    *,
    policy_params: PolicyParams | None = None,
    like: Mapping[str, str] | None = None,
) -> dict[str, ImpactResult]:
    """Allocate by each named policy (from :data:`dosewise.policies.POLICIES`) and run the impact model."""
    from dosewise.policies import get_policy

    if not policies:
        raise InputError("name at least one policy", field="--policies")
    params = params or ImpactParams()
    base = policy_params or PolicyParams()
    setup = prepare(world, params, like=like)
    baseline = simulate(setup)
    out: dict[str, ImpactResult] = {}
    for name in policies:
        alloc = get_policy(name)(world, base.model_copy(update={"name": name}))
        out[name] = run_impact(world, alloc, params, setup=setup, baseline=baseline)
    return out


def comparison_table(results: Mapping[str, ImpactResult]) -> pd.DataFrame:
    """One row per policy with :data:`COLUMNS`, indexed by policy name."""
    rows = []
    for name, res in results.items():
        s = res.summary()
        rows.append({"policy": name, **{c: s.get(c, float("nan")) for c in COLUMNS}})
    return pd.DataFrame(rows).set_index("policy")


def compare_policies(
    world: World,
    policies: Sequence[str],
    params: ImpactParams | None = None,
    *,
    policy_params: PolicyParams | None = None,
    like: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Deaths averted by each policy on the same world, side by side (see :func:`comparison_table`)."""
    return comparison_table(run_policies(world, policies, params, policy_params=policy_params, like=like))


def plot_comparison(frame: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    """Bar charts of deaths averted and deaths averted per 100 doses, saved as PNG or SVG."""
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise InputError("plot must end in .png or .svg", file=str(path), field="--plot", value=suffix)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(i) for i in frame.index]
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.6 * len(names) + 4), 4.2))
    axes[0].bar(names, frame["deaths_averted"].to_numpy(), color="#2b6cb0")
    axes[0].set_ylabel("deaths averted")
    axes[1].bar(names, frame["deaths_averted_per_100_doses"].to_numpy(), color="#dd6b20")
    axes[1].set_ylabel("deaths averted per 100 doses")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=20)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
