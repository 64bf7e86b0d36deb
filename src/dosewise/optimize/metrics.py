"""How unequal an allocation is, against a reference (normally ``covax-pro-rata``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.allocation import Allocation
from dosewise.scenario import policy_params
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]


def gini(values: FloatArray, weights: FloatArray | None = None) -> float:
    """Gini coefficient of ``values`` (≥ 0), each counted ``weights`` times (default once).

    0 when every unit gets the same, approaching 1 when one unit gets everything. With
    population weights and doses per capita as values, it is the Gini across people.
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    if v.size == 0 or w.sum() <= 0 or (v * w).sum() <= 0:
        return 0.0
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cw = np.cumsum(w) / w.sum()
    cv = np.cumsum(v * w) / (v * w).sum()
    # area under the Lorenz curve by trapezoids
    area = float(np.sum((cw - np.concatenate(([0.0], cw[:-1]))) * (cv + np.concatenate(([0.0], cv[:-1]))) / 2.0))
    return 1.0 - 2.0 * area


def inequality(world: World, allocation: Allocation, reference: Allocation) -> dict[str, float]:
    """Share of participants below their reference entitlement and the Gini of doses per capita.

    A participant is below its entitlement when it gets less than the reference minus one
    shipping unit (the largest among the lots), so rounding alone does not count.
    ``gini_doses_per_capita`` weighs participants by population (inequality across people);
    ``gini_participants`` counts each participant once.
    """
    pop = world.participants.loc[allocation.participants, "population"].to_numpy(dtype=np.float64)
    got = allocation.totals().astype(np.float64)
    ref = reference.totals().astype(np.float64)
    lot_products = allocation.lots["product"].to_numpy()
    tol = float(world.products.loc[lot_products, "shipping_unit"].max()) if len(lot_products) else 0.0
    entitled = ref > 0
    below = entitled & (got < ref - tol)
    per_capita = got / pop
    return {
        "share_below_pro_rata": float(below.sum() / max(entitled.sum(), 1)),
        "participants_below_pro_rata": float(below.sum()),
        "gini_doses_per_capita": gini(per_capita, pop),
        "gini_participants": gini(per_capita),
        "doses_per_100": float(100.0 * got.sum() / pop.sum()),
    }


def inequality_table(
    world: World, allocations: Mapping[str, Allocation], reference: Allocation | None = None
) -> pd.DataFrame:
    """:func:`inequality` for each named allocation (reference: ``covax-pro-rata`` of the same world)."""
    if reference is None:
        from dosewise.policies.pro_rata import allocate_pro_rata

        first = next(iter(allocations.values()), None)
        from dosewise.scenario import PolicyParams

        params = PolicyParams.model_validate(first.params) if first is not None and first.params else PolicyParams()
        reference = allocate_pro_rata(world, policy_params(params, name="covax-pro-rata"))
    rows = {name: inequality(world, alloc, reference) for name, alloc in allocations.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("policy")
