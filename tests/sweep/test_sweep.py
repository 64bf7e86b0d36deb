"""Sweeps: the same table on every Dask scheduler, each cell what ``compare`` gives with the same
settings, bad sweep files refused cleanly, and output files that read back as written."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from tests.cli_run import run_cli

from dosewise import app
from dosewise.sweep import MAX_CELLS

POLICIES = ["covax-pro-rata", "pro-rata-65+"]
SPEC: dict[str, Any] = {"scenario": "demo", "policies": POLICIES, "grid": {"r0": [1.5, 3.0], "days": [60]}}
KEY = ["deaths_no_vaccine", "deaths", "deaths_averted", "doses_allocated"]


def write_spec(folder: Path, spec: dict[str, Any], name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def synchronous() -> pd.DataFrame:
    return app.sweep(SPEC, scheduler="synchronous")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local ``distributed`` cluster on 127.0.0.1 (workers as threads of this process), closed after."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as lc:  # type: ignore[no-untyped-call]
        yield str(lc.scheduler_address)


def test_rows_in_grid_order(synchronous: pd.DataFrame) -> None:
    assert list(synchronous["cell"]) == [0, 0, 1, 1]
    assert list(synchronous["r0"]) == [1.5, 1.5, 3.0, 3.0]
    assert list(synchronous["policy"]) == POLICIES * 2
    assert (synchronous["deaths_averted"] > 0).all()
    # more transmission, more deaths without vaccine
    assert synchronous["deaths_no_vaccine"].iloc[2] > synchronous["deaths_no_vaccine"].iloc[0]
    by_group = synchronous.filter(like="deaths_averted_").drop(columns="deaths_averted_per_100_doses")
    assert {"deaths_averted_high", "deaths_averted_low"} <= set(by_group.columns)
    assert by_group.sum(axis=1).to_numpy() == pytest.approx(synchronous["deaths_averted"].to_numpy(), rel=1e-9)


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_local_schedulers_give_the_same_table(synchronous: pd.DataFrame, scheduler: str) -> None:
    rows = app.sweep(SPEC, scheduler=scheduler, workers=2, chunk_size=1)
    pd.testing.assert_frame_equal(rows, synchronous)


def test_distributed_cluster_gives_the_same_table(synchronous: pd.DataFrame, cluster: str) -> None:
    rows = app.sweep(SPEC, scheduler=cluster, chunk_size=1)
    pd.testing.assert_frame_equal(rows, synchronous)


def test_no_engine_pool_inside_dask_tasks(cluster: str) -> None:
    """The engine's own worker pool is refused in every kind of Dask worker (no nested pools)."""
    from dask.base import compute
    from dask.delayed import delayed
    from distributed import Client

    from dosewise.impact.workers import engine_workers

    assert engine_workers(4) == 4  # the check can fail: the main thread of the main process may fork
    for scheduler in ("threads", "processes"):
        got = compute(*[delayed(engine_workers, pure=False)(4) for _ in range(2)], scheduler=scheduler,
                      num_workers=2)  # type: ignore[no-untyped-call]
        assert list(got) == [1, 1], scheduler
    with Client(cluster, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        assert client.gather(client.submit(engine_workers, 4, pure=False)) == 1


def test_cells_equal_compare(synchronous: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each cell is ``dosewise compare --demo`` with the same flags."""
    for r0 in (1.5, 3.0):
        out = tmp_path / f"compare-{r0}.csv"
        code, _, err = run_cli(["compare", "--demo", "--policies", ",".join(POLICIES), "--r0", str(r0),
                                "--days", "60", "--out", str(out)], capsys)
        assert code == 0, err
        frame = pd.read_csv(out).set_index("policy")
        mine = synchronous[synchronous["r0"] == r0].set_index("policy")
        for col in KEY:
            assert mine[col].to_numpy() == pytest.approx(frame.loc[POLICIES, col].to_numpy(), rel=1e-12), col


def test_supply_scale_equals_compare_on_scaled_lots() -> None:
    from dosewise.epidemic import with_overrides
    from dosewise.scenario import demo_scenario_path, parse_scenario
    from dosewise.yamlread import read_yaml

    rows = app.sweep({"scenario": "demo", "policies": POLICIES, "grid": {"supply_scale": [2], "r0": [2.0],
                                                                          "days": [60]}}, scheduler="synchronous")
    data = read_yaml(demo_scenario_path().read_text(encoding="utf-8"))
    for lot in data["lots"]:
        lot["doses"] = 2 * lot["doses"]
    sc = parse_scenario(data)
    expected = app.compare(sc, policies=POLICIES, epidemic=with_overrides(sc.epidemic, {"r0": 2.0, "days": 60}))
    base = app.sweep({"scenario": "demo", "policies": POLICIES, "grid": {"r0": [2.0], "days": [60]}},
                     scheduler="synchronous")
    for col in KEY:
        assert rows[col].to_numpy() == pytest.approx(expected.frame.loc[POLICIES, col].to_numpy(), rel=1e-12)
    assert (rows["doses_allocated"].to_numpy() > base["doses_allocated"].to_numpy()).all()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_writes_rows_that_read_back(synchronous: pd.DataFrame, tmp_path: Path, suffix: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, SPEC)
    out = tmp_path / f"rows{suffix}"
    code, stdout, err = run_cli(["sweep", str(spec), "--scheduler", "synchronous", "--out", str(out)], capsys)
    assert code == 0, err
    assert "best in cells" in stdout and "2 cells" in stdout
    back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    pd.testing.assert_frame_equal(back, synchronous, check_dtype=False, rtol=1e-12)


def test_scenario_path_is_relative_to_the_sweep_file(tmp_path: Path) -> None:
    from dosewise.scenario import demo_scenario_path

    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "world.yaml").write_text(demo_scenario_path().read_text(encoding="utf-8"), encoding="utf-8")
    spec = write_spec(folder, {**SPEC, "scenario": "world.yaml", "grid": {"r0": [3.0], "days": [60]}})
    rows = app.sweep(spec, scheduler="synchronous")
    assert list(rows["policy"]) == POLICIES and (rows["deaths_averted"] > 0).all()


BAD = [
    ({**SPEC, "policies": ["covax-pro-rata", "nobody-first"]}, "policies.1", "unknown policy"),
    ({**SPEC, "grid": {"r00": [2.0]}}, "grid.r00", "not an epidemic setting"),
    ({**SPEC, "grid": {"r0": [2.0, math.nan]}}, "grid.r0.1", "finite"),
    ({**SPEC, "grid": {"r0": [-1.0]}}, "grid.r0.0", "greater than 0"),
    ({**SPEC, "grid": {"supply_scale": [0]}}, "grid.supply_scale.0", "supply scale"),
    ({**SPEC, "grid": {}}, "field grid", "the grid is empty"),
    ({**SPEC, "grid": {"r0": []}}, "grid.r0", "at least one value"),
    ({**SPEC, "grid": {"r0": [1 + i / 100 for i in range(400)], "prior_immunity": [i / 300 for i in range(300)]}},
     "field grid", f"a sweep has at most {MAX_CELLS:,}"),
    ({**SPEC, "colour": "blue"}, "colour", "Extra inputs"),
    ({"policies": POLICIES, "grid": {"r0": [2.0]}}, "scenario", "required"),
]


@pytest.mark.parametrize(("spec", "field", "message"), BAD, ids=[
    "unknown-policy", "unknown-field", "nan", "negative", "supply-scale", "empty-grid", "no-values", "too-many",
    "extra-key", "no-scenario"])
def test_bad_sweep_files_are_clean_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: dict[str, Any],
                                          field: str, message: str) -> None:
    path = write_spec(tmp_path, spec)
    code, _, err = run_cli(["sweep", str(path), "--scheduler", "synchronous"], capsys)
    assert code == 2
    assert "Traceback" not in err
    text = " ".join(err.split())
    assert str(path) in text and field in text and message in text, text


def test_bad_files_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(tmp_path, SPEC)
    for argv, expected in [
        (["sweep", str(tmp_path / "missing.yaml")], "sweep file not found"),
        (["sweep", str(tmp_path)], "a folder, not a sweep file"),
        (["sweep", str(path), "--scheduler", "everywhere"], "--scheduler"),
        (["sweep", str(path), "--out", str(tmp_path / "rows.txt")], "--out"),
    ]:
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and "Traceback" not in err and expected in " ".join(err.split()), err
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    code, _, err = run_cli(["sweep", str(tmp_path / "list.yaml")], capsys)
    assert code == 2 and "a sweep file is a mapping" in err
    # read as a scenario file is: the same errors for the same faults
    (tmp_path / "latin1.yaml").write_bytes("scenario: démo\n".encode("latin-1"))
    code, _, err = run_cli(["sweep", str(tmp_path / "latin1.yaml")], capsys)
    assert code == 2 and "not UTF-8 text (byte b'\\xe9' at offset 11)" in " ".join(err.split()), err
    (tmp_path / "nul.yaml").write_text("scenario: demo\x00\n", encoding="utf-8")
    code, _, err = run_cli(["sweep", str(tmp_path / "nul.yaml")], capsys)
    assert code == 2 and "not a text file (it contains NUL bytes)" in " ".join(err.split()), err
    (tmp_path / "big.yaml").write_text("#" * (2 << 20), encoding="utf-8")
    code, _, err = run_cli(["sweep", str(tmp_path / "big.yaml")], capsys)
    assert code == 2 and "a sweep file is at most 1 MiB" in " ".join(err.split()), err
    (tmp_path / "dup.yaml").write_text("scenario: demo\nscenario: demo\n", encoding="utf-8")
    code, _, err = run_cli(["sweep", str(tmp_path / "dup.yaml")], capsys)
    assert code == 2 and "Traceback" not in err


def test_shipped_example_is_the_readme_one() -> None:
    import re
    from importlib import resources

    from dosewise.sweep import cell_count, parse_sweep, read_sweep

    spec, _ = read_sweep(Path(str(resources.files("dosewise") / "data" / "sweep_demo.yaml")))
    assert cell_count(spec) == 18 and spec.scenario == "demo"
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "supply_scale" in b)
    assert parse_sweep(yaml.safe_load(block), file="README.md") == spec
