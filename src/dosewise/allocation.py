"""The result of a policy: doses of each lot to each participant, plus what was held back."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.errors import AllocationError
from dosewise.world import World


@dataclass(frozen=True)
class Allocation:
    """A policy's result: ``doses[i, l]``, whole doses of lot ``l`` for participant ``i``.

    Per lot: ``doses.sum(0) + buffer + remainder == lots.doses`` (checked on construction).

    Parameters
    ----------
    policy : str
        The policy's name.
    participants : pandas.Index
        The participants, in row order.
    lots : pandas.DataFrame
        The lots (``product``, ``doses``…), in column order.
    doses : numpy.ndarray
        (n, L) int64 doses.
    buffer : numpy.ndarray
        (L,) int64 doses held back in the humanitarian buffer.
    remainder : numpy.ndarray
        (L,) int64 doses that rounding to shipping units, caps or ceilings left unallocated.
    params : dict, optional
        The parameters the policy ran with.
    notes : dict, optional
        What the policy reports (e.g. the optimiser's iterations).

    Raises
    ------
    AllocationError
        A shape that does not match, negative doses, or doses not accounted for.

    Examples
    --------
    >>> from dosewise import app
    >>> a = app.allocate(app.load("demo")).allocation
    >>> a.doses.shape, bool((a.doses.sum(0) + a.buffer + a.remainder == a.lots["doses"]).all())
    ((92, 2), True)
    """

    policy: str
    participants: pd.Index
    lots: pd.DataFrame
    doses: npt.NDArray[np.int64]
    buffer: npt.NDArray[np.int64]
    remainder: npt.NDArray[np.int64]
    params: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        supply = self.lots["doses"].to_numpy(dtype=np.int64)
        if self.doses.shape != (len(self.participants), len(self.lots)):
            raise AllocationError(f"allocation shape {self.doses.shape} does not match participants × lots")
        if (self.doses < 0).any() or (self.buffer < 0).any() or (self.remainder < 0).any():
            raise AllocationError("negative doses in an allocation")
        total = self.doses.sum(axis=0) + self.buffer + self.remainder
        if not np.array_equal(total, supply):
            raise AllocationError(f"allocation does not account for every dose: {total} != {supply}")

    def by_participant_product(self, world: World) -> pd.DataFrame:
        """Long frame: one row per participant and product.

        Parameters
        ----------
        world : World
            The world the allocation was made on (populations, names, courses).

        Returns
        -------
        pandas.DataFrame
            participant, name, product, population (people), doses, doses_per_100 (doses per 100
            people) and coverage (share of the population a full course would cover, 0–1).

        Examples
        --------
        >>> from dosewise import app
        >>> result = app.allocate(app.load("demo"))
        >>> frame = result.allocation.by_participant_product(result.world)
        >>> list(frame.columns)
        ['participant', 'name', 'product', 'population', 'doses', 'doses_per_100', 'coverage']
        """
        products = self.lots["product"].to_numpy()
        uniq = list(dict.fromkeys(products))
        per = np.stack([self.doses[:, products == p].sum(axis=1) for p in uniq], axis=1)
        pop = world.participants.loc[self.participants, "population"].to_numpy(dtype=np.float64)
        course = world.products.loc[uniq, "doses_per_course"].to_numpy(dtype=np.float64)
        frame = pd.DataFrame(
            {
                "participant": np.repeat(self.participants.to_numpy(), len(uniq)),
                "name": np.repeat(world.participants.loc[self.participants, "name"].to_numpy(), len(uniq)),
                "product": np.tile(np.asarray(uniq, dtype=object), len(self.participants)),
                "population": np.repeat(pop, len(uniq)),
                "doses": per.ravel(),
            }
        )
        frame["doses_per_100"] = 100.0 * frame["doses"] / frame["population"]
        frame["coverage"] = frame["doses"] / np.tile(course, len(self.participants)) / frame["population"]
        return frame

    def per_lot(self) -> pd.DataFrame:
        """Where each lot went.

        Returns
        -------
        pandas.DataFrame
            One row per lot: product, supply, allocated, buffer, remainder (doses) and recipients
            (participants with at least one dose).

        Examples
        --------
        >>> from dosewise import app
        >>> lots = app.allocate(app.load("demo")).allocation.per_lot()
        >>> bool((lots["allocated"] + lots["buffer"] + lots["remainder"] == lots["supply"]).all())
        True
        """
        return pd.DataFrame(
            {
                "product": self.lots["product"],
                "supply": self.lots["doses"].to_numpy(dtype=np.int64),
                "allocated": self.doses.sum(axis=0),
                "buffer": self.buffer,
                "remainder": self.remainder,
                "recipients": (self.doses > 0).sum(axis=0),
            },
            index=self.lots.index,
        )

    def to_frame(self, world: World | None = None) -> pd.DataFrame:
        """One row per participant and lot with doses.

        Parameters
        ----------
        world : World, optional
            The world the allocation was made on; with it, ``population`` (people) and
            ``doses_per_100`` (doses per 100 people) are added.

        Returns
        -------
        pandas.DataFrame
            Columns ``participant``, ``lot``, ``product``, ``doses`` (and the two above); every
            participant appears, with 0 doses where it gets none. ``frame.attrs["units"]`` names
            the unit of each numeric column.

        Examples
        --------
        >>> from dosewise import app
        >>> result = app.allocate(app.load("demo"))
        >>> frame = result.allocation.to_frame(result.world)
        >>> int(frame["doses"].sum()) == int(result.allocation.doses.sum())
        True
        >>> frame.attrs["units"]["doses_per_100"]
        'doses per 100 people'
        """
        n, n_lots = self.doses.shape
        frame = pd.DataFrame({
            "participant": np.repeat(self.participants.to_numpy(), n_lots),
            "lot": np.tile(self.lots.index.to_numpy(), n),
            "product": np.tile(self.lots["product"].to_numpy(), n),
            "doses": self.doses.ravel(),
        })
        units = {"doses": "doses"}
        if world is not None:
            pop = world.participants.loc[self.participants, "population"].to_numpy(dtype=np.float64)
            frame["population"] = np.repeat(np.round(pop), n_lots).astype(np.int64)
            frame["doses_per_100"] = 100.0 * frame["doses"] / np.repeat(pop, n_lots)
            units |= {"population": "people", "doses_per_100": "doses per 100 people"}
        frame.attrs["units"] = units
        return frame

    def _repr_html_(self) -> str:
        """A notebook summary: supply and where it went, per lot."""
        lots = self.per_lot()
        head = (f"<p><b>Allocation</b> by <code>{escape(self.policy)}</code>: "
                f"{int(self.doses.sum()):,} doses to {int((self.totals() > 0).sum())} of "
                f"{len(self.participants)} participants</p>")
        return head + lots.to_html(float_format=lambda x: f"{x:,.0f}", escape=True)

    def totals(self) -> npt.NDArray[np.int64]:
        """Doses per participant, over all lots.

        Returns
        -------
        numpy.ndarray
            (n,) int64 doses.

        Examples
        --------
        >>> from dosewise import app
        >>> a = app.allocate(app.load("demo")).allocation
        >>> int(a.totals().sum()) == int(a.doses.sum())
        True
        """
        return np.asarray(self.doses.sum(axis=1), dtype=np.int64)
