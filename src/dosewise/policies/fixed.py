"""A fixed allocation: the amounts a facility has already decided (e.g. a published allocation
list), checked against supply and acceptance like any policy's output."""

from __future__ import annotations

import numpy as np

from dosewise.allocation import Allocation
from dosewise.errors import AllocationError, InputError
from dosewise.scenario import PolicyParams
from dosewise.world import World


def allocate_fixed(world: World, params: PolicyParams) -> Allocation:
    """``options.amounts``: ``{participant: doses}`` (one lot) or ``{lot: {participant: doses}}``."""
    amounts = params.options.get("amounts")
    if not isinstance(amounts, dict) or not amounts:
        raise InputError("the fixed policy needs policy.amounts", field="policy.amounts", value=amounts)
    lots = list(world.lots.index)
    if all(isinstance(v, dict) for v in amounts.values()):
        table = amounts
    elif len(lots) == 1:
        table = {lots[0]: amounts}
    else:
        raise InputError("with several lots, give policy.amounts per lot", field="policy.amounts")
    doses = np.zeros((world.n, len(lots)), dtype=np.int64)
    codes = {c: i for i, c in enumerate(world.codes)}
    for lot, per in table.items():
        if lot not in lots:
            raise InputError("unknown lot", field="policy.amounts", value=lot)
        j = lots.index(lot)
        for code, d in per.items():
            if code not in codes:
                raise InputError("not a participant of the scenario", field=f"policy.options.amounts.{code}",
                                 value=code)
            if not isinstance(d, int) or d < 0:
                raise InputError("doses must be a whole number >= 0", field=f"policy.options.amounts.{code}", value=d)
            if d and world.earmarked is not None and not world.earmarked[codes[code], j]:
                raise InputError(f"lot {lot} is earmarked by its donor; {code} may not receive it",
                                 field=f"policy.options.amounts.{code}", value=d)
            doses[codes[code], j] = d
    supply = world.lots["doses"].to_numpy(dtype=np.int64)
    buffer = np.floor(params.buffer * supply + 0.5).astype(np.int64)
    over = doses.sum(axis=0) + buffer - supply
    if (over > 0).any():
        j = int(np.argmax(over))
        raise AllocationError(f"fixed amounts for lot {lots[j]} exceed its supply by {int(over[j]):,} doses")
    return Allocation(policy="fixed", participants=world.codes, lots=world.lots, doses=doses, buffer=buffer,
                      remainder=supply - buffer - doses.sum(axis=0), params=params.model_dump())
