"""Sweeps: one scenario under a grid of epidemic settings and supply levels, every policy on each.

A sweep file names a scenario, the policies and a grid; the cartesian product of the grid's
values gives the cells, and each cell is what ``dosewise compare`` runs with the same flags
(the scenario's ``epidemic:`` section with the cell's values over it, see
:func:`dosewise.epidemic.with_overrides`). ``supply_scale`` multiplies every lot's doses.

.. code-block:: yaml

   scenario: demo                 # or a scenario file, relative to this file
   policies: [covax-pro-rata, optimal]
   grid:                          # any field of the scenario's epidemic: section, plus supply_scale
     r0: [1.5, 2.5, 3.5]
     prior_immunity: [0, 0.2]
     supply_scale: [0.5, 1, 2]

This module reads and checks sweep files, expands the grid and runs chunks of cells on Dask
(:func:`run_chunks`); what a chunk does is passed in by :func:`dosewise.app.sweep`, which values
each cell with the code path of :func:`dosewise.app.compare`. Dask is imported here only when a
sweep runs.
"""

from __future__ import annotations

import itertools
import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dosewise.epidemic import EpidemicSettings, with_overrides
from dosewise.errors import InputError, short_repr
from dosewise.scenario import Lot, Scenario

MAX_CELLS = 100_000
"""A sweep is refused beyond this many cells (grid points)."""
SUPPLY_SCALE = "supply_scale"
"""The grid's one field that is not an epidemic setting: every lot's doses are multiplied by it."""
MAX_SUPPLY_SCALE = 1000.0
LOCAL_SCHEDULERS = ("processes", "threads", "synchronous")
"""Dask's local schedulers; any other ``scheduler`` is the address of a running ``distributed`` cluster."""
MAX_SWEEP_BYTES = 1024 * 1024


class SweepSpec(BaseModel):
    """A sweep file: the scenario (``demo`` or a path, relative to the file), policies and grid."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    scenario: str = Field(min_length=1)
    policies: tuple[str, ...] = Field(min_length=1)
    grid: dict[str, tuple[Any, ...]]


@dataclass(frozen=True)
class Cell:
    """One grid point: its values as written in the sweep file, the epidemic it simulates and the supply scale."""

    index: int
    values: dict[str, Any]
    epidemic: EpidemicSettings
    supply_scale: float


def _error(exc: ValidationError, data: Any, file: str | None) -> InputError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return InputError(msg, file=file, field=loc or None, value=err.get("input") if loc else None)


def read_sweep(path: str | Path) -> tuple[SweepSpec, Path]:
    """The sweep file at ``path`` read strictly and checked (:func:`check_spec`), and its folder."""
    from dosewise.yamlread import read_text_file, read_yaml

    p = Path(path)
    data = read_yaml(read_text_file(p, "sweep", MAX_SWEEP_BYTES, "a sweep file is at most 1 MiB"), file=str(p))
    return parse_sweep(data, file=str(p)), p.parent


def parse_sweep(data: Any, *, file: str | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from parsed YAML (or a mapping), every field and value checked."""
    if not isinstance(data, Mapping):
        raise InputError("a sweep file is a mapping with scenario, policies and grid", file=file,
                         value=short_repr(data))
    try:
        spec = SweepSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise _error(exc, data, file) from None
    check_spec(spec, file=file)
    return spec


def check_spec(spec: SweepSpec, *, file: str | None = None) -> None:
    """Known policies, known grid fields, every value valid for its field, and at most :data:`MAX_CELLS` cells."""
    from dosewise.registry import POLICIES

    for i, name in enumerate(spec.policies):
        if name not in POLICIES:
            raise InputError(f"unknown policy (known: {', '.join(sorted(POLICIES))})", file=file,
                             field=f"policies.{i}", value=name)
    if len(set(spec.policies)) != len(spec.policies):
        raise InputError("a policy is named twice", file=file, field="policies", value=list(spec.policies))
    if not spec.grid:
        raise InputError("the grid is empty: give at least one field with its values (e.g. r0: [1.5, 2.5])",
                         file=file, field="grid")
    known = set(EpidemicSettings.model_fields)
    for key, values in spec.grid.items():
        if key != SUPPLY_SCALE and key not in known:
            raise InputError(f"not an epidemic setting (known: {', '.join(sorted(known))}, {SUPPLY_SCALE})",
                             file=file, field=f"grid.{key}", value=key)
        if not values:
            raise InputError("give at least one value", file=file, field=f"grid.{key}", value=[])
        for i, v in enumerate(values):
            where = f"grid.{key}.{i}"
            if key == SUPPLY_SCALE:
                ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                if not (ok and 0 < v <= MAX_SUPPLY_SCALE):
                    raise InputError(f"a supply scale is a number in (0, {MAX_SUPPLY_SCALE:g}]", file=file,
                                     field=where, value=v)
                continue
            try:
                with_overrides(None, {key: v})
            except InputError as exc:
                raise InputError(exc.message, file=file, field=where, value=v) from None
    count = cell_count(spec)
    if count > MAX_CELLS:
        sizes = " × ".join(f"{len(v)} {k}" for k, v in spec.grid.items())
        raise InputError(f"{count:,} cells ({sizes}); a sweep has at most {MAX_CELLS:,}", file=file, field="grid",
                         value=count)


def cell_count(spec: SweepSpec) -> int:
    """The number of grid points."""
    return math.prod(len(v) for v in spec.grid.values())


def expand(spec: SweepSpec, scenario: Scenario, *, file: str | None = None) -> list[Cell]:
    """The grid's cells in order (the last field varies fastest), each with its epidemic settings:
    the scenario's section with the cell's values over it, as ``compare``'s flags are applied."""
    from dosewise.scenario import MAX_DOSES

    keys = list(spec.grid)
    largest = max((lot.doses for lot in scenario.lots), default=0)
    for i, factor in enumerate(spec.grid.get(SUPPLY_SCALE, ())):
        if round(largest * factor) > MAX_DOSES:
            raise InputError(f"a lot of {largest:,} doses times this scale is more than {MAX_DOSES:,} doses",
                             file=file, field=f"grid.{SUPPLY_SCALE}.{i}", value=factor)
    cells = []
    cache: dict[tuple[tuple[str, str], ...], EpidemicSettings] = {}
    for index, combo in enumerate(itertools.product(*(spec.grid[k] for k in keys))):
        values = dict(zip(keys, combo, strict=True))
        overrides = {k: v for k, v in values.items() if k != SUPPLY_SCALE}
        key = tuple((k, repr(v)) for k, v in overrides.items())
        settings = cache.get(key)
        if settings is None:
            try:
                settings = with_overrides(scenario.epidemic, overrides)
            except InputError as exc:
                raise InputError(f"cell {index}: {exc.message}", file=file, field="grid", value=values) from None
            cache[key] = settings
        scale = float(values.get(SUPPLY_SCALE, 1.0))
        cells.append(Cell(index, values, settings, scale))
    return cells


def scaled(scenario: Scenario, factor: float) -> Scenario:
    """``scenario`` with every lot's doses multiplied by ``factor`` (rounded, at least one dose)."""
    if factor == 1.0:
        return scenario
    lots = tuple(Lot.model_validate({**lot.model_dump(), "doses": max(1, round(lot.doses * factor))})
                 for lot in scenario.lots)
    return scenario.model_copy(update={"lots": lots})


def chunks(cells: Sequence[Cell], size: int) -> list[list[Cell]]:
    """``cells`` in consecutive chunks of at most ``size``."""
    return [list(cells[i:i + size]) for i in range(0, len(cells), size)]


def chunk_size(n_cells: int, workers: int) -> int:
    """Cells per task: about four tasks per worker (so a slow chunk does not leave others idle), at most 64."""
    return max(1, min(64, math.ceil(n_cells / max(1, 4 * workers))))


def single_worker() -> None:
    """Inside a task: no engine worker pool of its own, and ``DOSEWISE_WORKERS=1`` in a worker process.

    :func:`dosewise.impact.workers.engine_workers` already answers 1 in a ``multiprocessing``
    child (Dask's ``processes`` scheduler, a ``distributed`` worker started by its nanny) and off
    the main thread (Dask's ``threads``, the executor threads every ``distributed`` worker runs its
    tasks in); a worker process also sets ``DOSEWISE_WORKERS=1`` for whatever it starts itself.
    The caller's own process (``synchronous``, ``threads``, an in-process cluster) keeps its
    environment: a ``synchronous`` sweep runs one cell at a time and may use the engine's pool."""
    import multiprocessing

    from dosewise.impact.workers import ENV

    if multiprocessing.parent_process() is not None:
        os.environ[ENV] = "1"


def run_chunks(
    task: Callable[[Any, list[Cell]], Any],
    shared: Any,
    parts: Sequence[list[Cell]],
    *,
    scheduler: str = "processes",
    workers: int | None = None,
) -> list[Any]:
    """``task(shared, part)`` for every part, on Dask; results in the order of ``parts``.

    ``shared`` (the scenario) is one node of the graph: a ``distributed`` cluster sends it to each
    worker once. ``scheduler`` is one of :data:`LOCAL_SCHEDULERS` or a cluster address
    (``tcp://host:port``), reached with ``distributed.Client``."""
    from dask.base import compute
    from dask.delayed import delayed

    if workers is not None and workers < 1:
        raise InputError("the number of workers must be at least 1", field="--workers", value=workers)
    node = delayed(shared, name=f"sweep-shared-{uuid.uuid4().hex}", traverse=False)
    tasks = [delayed(task, pure=False)(node, part) for part in parts]
    if scheduler in LOCAL_SCHEDULERS:
        kwargs: dict[str, Any] = {"scheduler": scheduler}
        if workers is not None and scheduler != "synchronous":
            kwargs["num_workers"] = workers
        return list(compute(*tasks, **kwargs))  # type: ignore[no-untyped-call]
    if "://" not in scheduler:
        raise InputError(f"a scheduler is {', '.join(LOCAL_SCHEDULERS)} or a cluster address (tcp://host:port)",
                         field="--scheduler", value=scheduler)
    from distributed import Client

    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise InputError(f"cannot reach the Dask cluster: {exc}", field="--scheduler", value=scheduler) from None
    with client:
        return list(client.gather(client.compute(tasks)))  # type: ignore[no-untyped-call]
