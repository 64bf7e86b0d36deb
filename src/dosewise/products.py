"""Product catalogue: doses per course, interval, storage class, shelf life, shipping unit and
efficacy, each figure with its source (``data/products.yaml``). Scenarios may add or override
products; the result is a frame indexed by product id, which is what policies and the impact
model read.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    import pandas as pd

StorageClass = Literal["ultra-cold", "frozen", "2-8C"]
STORAGE_CLASSES: tuple[str, ...] = ("ultra-cold", "frozen", "2-8C")
"""Storage classes from the coldest up; a participant equipped for a colder class can store warmer ones."""


class Product(BaseModel):
    """A vaccine product with every figure's source.

    Parameters
    ----------
    id : str
        The product id scenarios name (e.g. ``AZD1222``).
    name : str
        Its name.
    aliases : tuple of str, default ()
        Other names it is known by (matched case-insensitively).
    platform : str, default ""
        Vaccine platform (viral vector, mRNA, inactivated…).
    doses_per_course : int
        Doses in a primary course (1–4).
    interval_days : int
        Days between the doses of a course.
    storage_class : {"ultra-cold", "frozen", "2-8C"}
        The cold chain it needs.
    shelf_life_days : int, optional
        Shelf life in days.
    shipping_unit : int, default 1
        Doses per shipping unit (allocations are rounded to it).
    efficacy_symptomatic : float, optional
        Efficacy against symptomatic disease (0–1).
    efficacy_severe : float, optional
        Efficacy against severe disease (0–1).
    sources : dict of str to str
        The source of each figure, by field name.

    Examples
    --------
    >>> from dosewise import catalogue
    >>> az = catalogue()["AZD1222"]
    >>> az.doses_per_course, az.storage_class
    (2, '2-8C')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str
    aliases: tuple[str, ...] = ()
    platform: str = ""
    doses_per_course: int = Field(ge=1, le=4)
    interval_days: int = Field(ge=0)
    storage_class: StorageClass
    shelf_life_days: int | None = Field(default=None, gt=0)
    shipping_unit: int = Field(default=1, ge=1)
    efficacy_symptomatic: float | None = Field(default=None, ge=0.0, le=1.0)
    efficacy_severe: float | None = Field(default=None, ge=0.0, le=1.0)
    sources: dict[str, str] = Field(default_factory=dict)

    @field_validator("sources")
    @classmethod
    def _sources_named(cls, v: dict[str, str]) -> dict[str, str]:
        return {str(k): str(s) for k, s in v.items()}


@functools.cache
def builtin_products() -> tuple[Product, ...]:
    text = (resources.files("dosewise") / "data" / "products.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # a safe loader; libyaml's parser when present
    return tuple(Product.model_validate(p) for p in yaml.load(text, Loader=loader))


def catalogue(extra: Iterable[Product] = ()) -> dict[str, Product]:
    """The built-in catalogue with ``extra`` products added or overriding by id.

    Parameters
    ----------
    extra : iterable of Product, default ()
        Products to add, or to replace built-in ones with the same id.

    Returns
    -------
    dict of str to Product
        Every product by id.

    Examples
    --------
    >>> from dosewise import Product, catalogue
    >>> "CoronaVac" in catalogue()
    True
    >>> mine = Product(id="X1", name="Example", doses_per_course=1, interval_days=0, storage_class="2-8C")
    >>> catalogue([mine])["X1"].name
    'Example'
    """
    out = {p.id: p for p in builtin_products()}
    for p in extra:
        out[p.id] = p
    return out


def resolve_product(name: str, products: Mapping[str, Product]) -> str | None:
    """A product id from an id or alias (case-insensitive), or None."""
    key = name.strip().lower()
    for pid, p in products.items():
        if pid.lower() == key or key in (a.lower() for a in p.aliases):
            return pid
    return None


def products_frame(products: Mapping[str, Product]) -> pd.DataFrame:
    """Columnar view: one row per product, indexed by id (sources left out)."""
    import pandas as pd  # here, not at the top: listing the catalogue needs no pandas

    rows: list[dict[str, Any]] = [p.model_dump(exclude={"sources", "aliases"}) for p in products.values()]
    frame = pd.DataFrame(rows).set_index("id")
    frame["storage_rank"] = frame["storage_class"].map({c: i for i, c in enumerate(STORAGE_CLASSES)})
    return frame
