"""Run several allocation policies on one world and compare the deaths each averts and how
unequal each allocation is.

Three separate steps, so other parts can extend any of them: :func:`run_policies` (policy →
allocation → :class:`ImpactResult`, sharing one setup and one no-vaccine run, and for the
``optimal`` variants one set of tier values computed with the same impact parameters),
:func:`comparison_table` (runs → frame, one row per policy, with inequality and the LP's own
estimate beside the simulated deaths averted) and :func:`plot_comparison` (frame → PNG/SVG).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
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
from dosewise.impact.tiers import TierValues
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
    """Unused since the optimal variants optimise the simulation itself (kept for callers)."""
    seconds: dict[str, float] = field(default_factory=dict)


def like_from_scenario(sc: Scenario) -> dict[str, str]:
    """Participants' ``age_structure_like`` (and units' parents): the stand-ins for contact matrices."""
    p = sc.participants
    out = {str(u["id"]): str(u.get("age_structure_like") or u.get("parent")).upper() for u in p.units
           if u.get("age_structure_like") or u.get("parent")}
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
    start: dt.date | None = None,
    allocations: Mapping[str, Allocation] | None = None,
    leave_out: Sequence[str] = (),
) -> PolicyRuns:
    """Allocate by each named policy (from :data:`dosewise.policies.POLICIES`) and run the impact model.

    ``params`` default to the world's epidemic settings (the scenario's ``epidemic:`` section);
    ``start`` is day 0 of the simulation (default: the settings' start, else the earliest lot).
    ``policy_options`` adds options for single policies (``{"covax-need-weighted": {"need": ...}}``);
    ``allocations`` adds allocations made elsewhere (a round's holdings), valued under their labels.
    ``leave_out`` names products whose doses are not valued: their lots' columns are emptied (the
    doses counted as unallocated) in every allocation before the impact model runs.
    The ``optimal`` variants (:data:`dosewise.policies.OPTIMAL_FLOORS`) optimise this very
    simulation (:mod:`dosewise.optimize.model`: value curves from the same setup, epidemic and
    priority order), sharing one set of curves; ``optimal`` is solved last with every other
    policy's allocation as a candidate, so no policy in the comparison beats it in simulation.
    """
    from dosewise.impact.settings import impact_setting
    from dosewise.optimize.model import Curves, make_context
    from dosewise.optimize.policy import solve_optimal
    from dosewise.policies import allocate_pro_rata
    from dosewise.registry import OPTIMAL_FLOORS, get_policy, optimal_params

    if not policies and not allocations:
        raise InputError("name at least one policy", field="--policies")
    for name in policies:
        get_policy(name)  # unknown names fail before any work
    if params is None:
        params, day0 = impact_setting(world)
        start = start or day0
    base = policy_params or PolicyParams()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    setup = prepare(world, params, like=like)
    baseline = simulate(setup)
    reference = allocate_pro_rata(world, params_for(base, name="covax-pro-rata"))
    ctx = make_context(world, params, start, setup=setup, baseline=baseline)
    seconds["setup"] = time.perf_counter() - t0
    extra = dict(allocations or {})
    made: dict[str, Allocation] = {}
    for name in [p for p in policies if p not in OPTIMAL_FLOORS]:
        t = time.perf_counter()
        pp = _options_for(base, name, policy_options)
        if name == "covax-pro-rata" and not (policy_options or {}).get(name):
            made[name] = reference
        else:
            made[name] = get_policy(name)(world, pp)
        seconds[name] = time.perf_counter() - t
    rules = {"covax-pro-rata": reference, **made, **extra}
    curves: Curves | None = None

    def optimal(name: str, candidates: Mapping[str, Allocation]) -> Allocation:
        nonlocal curves
        t = time.perf_counter()
        pp = optimal_params(name, _options_for(base, name, policy_options))
        state = solve_optimal(world, pp, entitlement=reference.totals().astype(np.float64), candidates=candidates,
                              context=ctx, curves=None if curves is None else Curves(curves.people.copy(),
                                                                                     curves.averted.copy()))
        curves = state.allocation.notes["curves"]
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
        return dataclasses.replace(state.allocation, policy=name)

    wanted = [p for p in OPTIMAL_FLOORS if p in policies]
    if "optimal" in wanted:
        made["optimal"] = optimal("optimal", rules)
    for name in wanted:
        if name != "optimal":
            made[name] = optimal(name, rules)
    if "optimal" in wanted:
        from dosewise.optimize.model import simulate_allocation

        best = simulate_allocation(ctx, made["optimal"])
        beaten = {k: a for k, a in made.items() if k != "optimal" and simulate_allocation(ctx, a) > best}
        if beaten:  # a variant found a better point: solve again from the richer curves with it as a candidate
            made["optimal"] = optimal("optimal", {**rules, **beaten})
    made.update(extra)
    if leave_out:
        made = {name: without_products(a, leave_out) for name, a in made.items()}
    labels = [*policies, *[k for k in extra if k not in policies]]
    out: dict[str, ImpactResult] = {}
    for name in labels:
        t = time.perf_counter()
        out[name] = run_impact(world, made[name], params, start=start, setup=setup, baseline=baseline)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
    return PolicyRuns(
        world=world,
        results=out,
        allocations={name: made[name] for name in labels},
        reference=reference,
        tier_values=None,
        seconds=seconds,
    )


def without_products(allocation: Allocation, products: Sequence[str]) -> Allocation:
    """``allocation`` with the columns of lots of ``products`` emptied: those doses count as unallocated."""
    mask = allocation.lots["product"].astype(str).isin(list(products)).to_numpy()
    if not mask.any():
        return allocation
    doses = allocation.doses.copy()
    removed = doses[:, mask].sum(axis=0)
    doses[:, mask] = 0
    remainder = allocation.remainder.copy()
    remainder[mask] += removed
    return dataclasses.replace(allocation, doses=doses, remainder=remainder)


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


def income_table(runs: PolicyRuns) -> pd.DataFrame:
    """Deaths without vaccine per million, and deaths averted by each policy, by World Bank income group."""
    first = next(iter(runs.results.values()))
    per = first.by_participant
    income = runs.world.participants["income_level"].reindex(per.index).fillna("(no income level)")
    frame = pd.DataFrame({"population": per["population"], "deaths_no_vaccine": per["deaths_no_vaccine"]})
    for name, res in runs.results.items():
        frame[name] = res.by_participant["deaths_averted"]
    grouped = frame.groupby(income.to_numpy()).sum()
    order = [g for g in ("High", "Upper middle", "Lower middle", "Low") if g in grouped.index]
    grouped = grouped.loc[order + [g for g in grouped.index if g not in order]]
    grouped.insert(2, "deaths_no_vaccine_per_million", 1e6 * grouped["deaths_no_vaccine"] / grouped["population"])
    grouped.index.name = "income_level"
    return grouped


def doses_per_100_frame(runs: PolicyRuns) -> pd.DataFrame:
    """Doses allocated per 100 people, participant × policy, most populous participant first."""
    pop = runs.world.participants["population"].sort_values(ascending=False)
    return pd.DataFrame(
        {name: 100.0 * pd.Series(a.totals(), index=a.participants).reindex(pop.index) / pop
         for name, a in runs.allocations.items()}
    )


def _label(ax: Any, bars: Any, texts: Sequence[str]) -> None:
    for bar, text in zip(bars, texts, strict=True):
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize="x-small", xytext=(0, 2), textcoords="offset points")


def plot_comparison(
    frame: pd.DataFrame, path: Path, *, title: str = "", doses_per_100: pd.DataFrame | None = None,
    reference: str = "covax-pro-rata", countries: int = 40,
) -> Path:
    """Deaths averted (labelled), the difference from ``reference`` (pro rata), deaths averted per
    100 doses and inequality per policy; with ``doses_per_100``, a second row shows doses per 100
    people by participant and policy (the ``countries`` most populous). Saved as PNG or SVG."""
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise InputError("plot must end in .png or .svg", file=str(path), field="--plot", value=suffix)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(i) for i in frame.index]
    x = np.arange(len(names))
    averted = frame["deaths_averted"].to_numpy(dtype=np.float64)
    ref = float(frame["deaths_averted"].get(reference, float("nan")))
    rows = 2 if doses_per_100 is not None else 1
    width = max(12.0, 1.0 * len(names) * 4 + 3)
    fig = plt.figure(figsize=(width, 4.8 * rows))
    grid = fig.add_gridspec(rows, 4)
    axes = [fig.add_subplot(grid[0, k]) for k in range(4)]
    bars = axes[0].bar(x, averted, color="#2b6cb0")
    _label(axes[0], bars, [f"{v:,.0f}" for v in averted])
    axes[0].set_ylabel("deaths averted")
    if np.isfinite(ref) and ref > 0:
        diff = 100.0 * (averted - ref) / ref
        colors = ["#38a169" if d >= 0 else "#e53e3e" for d in diff]
        bars = axes[1].bar(x, diff, color=colors)
        _label(axes[1], bars, [f"{d:+.1f}%" for d in diff])
        axes[1].axhline(0, color="black", linewidth=0.8)
        axes[1].set_ylabel(f"deaths averted vs {reference} (%)")
    else:
        axes[1].set_visible(False)
    per100 = frame["deaths_averted_per_100_doses"].to_numpy(dtype=np.float64)
    bars = axes[2].bar(x, per100, color="#dd6b20")
    _label(axes[2], bars, [f"{v:.3f}" for v in per100])
    axes[2].set_ylabel("deaths averted per 100 doses")
    if "gini_doses_per_capita" in frame:
        w = 0.38
        below = frame["share_below_pro_rata"].to_numpy(dtype=np.float64)
        gini = frame["gini_doses_per_capita"].to_numpy(dtype=np.float64)
        b1 = axes[3].bar(x - w / 2, below, w, color="#805ad5", label="share below pro rata")
        b2 = axes[3].bar(x + w / 2, gini, w, color="#38a169", label="Gini of doses per capita")
        _label(axes[3], b1, [f"{v:.0%}" for v in below])
        _label(axes[3], b2, [f"{v:.2f}" for v in gini])
        axes[3].set_ylim(0, 1.1)
        axes[3].set_ylabel("inequality (0 = equal)")
        axes[3].legend(fontsize="x-small", loc="upper left")
    else:
        axes[3].set_visible(False)
    for ax in axes:
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    if doses_per_100 is not None:
        ax = fig.add_subplot(grid[1, :])
        table = doses_per_100
        shown = table.iloc[:countries]
        cx = np.arange(len(shown))
        markers = "osD^vP*Xh<>"
        for k, name in enumerate(shown.columns):
            ax.plot(cx, shown[name].to_numpy(dtype=np.float64), markers[k % len(markers)], label=name, alpha=0.8)
        ax.set_xticks(cx, [str(c) for c in shown.index], rotation=90, fontsize="x-small")
        ax.set_ylabel("doses per 100 people")
        more = f" ({countries} most populous of {len(table)})" if len(table) > countries else ""
        ax.set_title(f"doses per 100 people by participant and policy{more}", fontsize="small")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="x-small", ncol=min(len(shown.columns), 6), loc="upper right")
    if title:
        fig.suptitle(title, fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
