"""``dosewise sweep``: every policy on a grid of epidemic settings and supply levels, on Dask."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from dosewise.cli._common import OutOption, check_out, console, safe, write_rows

if TYPE_CHECKING:
    import pandas as pd


def sweep_rich_table(frame: pd.DataFrame, policies: list[str]) -> Table:
    """Per policy: the cells where it averts the most deaths, and its deaths averted (mean, min, max)."""
    best = frame.loc[frame.groupby("cell", sort=True)["deaths_averted"].idxmax(), "policy"].value_counts()
    n_cells = int(frame["cell"].nunique())
    table = Table(title=f"{n_cells:,} cells × {len(policies)} policies", box=box.SIMPLE_HEAD)
    table.add_column("policy", no_wrap=True)
    for label in ("best in cells", "deaths averted: mean", "min", "max", "/100 doses: mean"):
        table.add_column(label, justify="right")
    for name in policies:
        mine = frame[frame["policy"] == name]
        averted = mine["deaths_averted"]
        table.add_row(safe(name), f"{int(best.get(name, 0)):,}", f"{averted.mean():,.0f}", f"{averted.min():,.0f}",
                      f"{averted.max():,.0f}", f"{mine['deaths_averted_per_100_doses'].mean():.3f}")
    return table


def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep file (YAML): scenario, policies and grid.")],
    scheduler: Annotated[
        str, typer.Option(help="Dask scheduler: processes, threads, synchronous, or a cluster address "
                               "(tcp://host:port).")] = "processes",
    workers: Annotated[int | None, typer.Option(help="Local workers [default: one per core].")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Cells per Dask task [default: about four tasks "
                                                        "per worker].")] = None,
    out: OutOption = None,
) -> None:
    """Run every policy on every cell of the sweep's grid and summarise which policy is best where.

    Each cell is the scenario's ``epidemic:`` section with the cell's values over it (what
    ``dosewise compare`` runs with the same flags) and its lots times ``supply_scale``. --out
    writes one row per cell and policy (.csv or .parquet).
    """
    from dosewise import app as api
    from dosewise.cli._common import OUT_FORMATS
    from dosewise.sweep import read_sweep

    check_out(out, OUT_FORMATS)
    policies = list(read_sweep(spec)[0].policies)  # a bad file fails before Dask starts
    frame = api.sweep(spec, scheduler=scheduler, workers=workers, chunk_size=chunk_size)
    console.print(sweep_rich_table(frame, policies))
    params = [str(c) for c in frame.columns[1:frame.columns.get_loc("policy")]]
    console.print(f"[dim]grid: {safe(', '.join(params))}; {frame.attrs['cells']:,} cells in "
                  f"{frame.attrs['seconds']:.1f} s on {safe(scheduler)}[/]")
    if out is not None:
        write_rows(frame, out)


def register(app: typer.Typer) -> None:
    app.command()(sweep)
