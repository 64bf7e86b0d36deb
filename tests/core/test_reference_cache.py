"""Reference data: located without importing the packages' ``__init__``, cached per package version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dosewise.reference import _cache, countries, population

PROBE = """
import json, sys
from dosewise.reference.countries import country_info, iso3_codes
from dosewise.reference.population import population_by_age
info = country_info("XKX"), country_info("KEN"), country_info("PRK")
out = {
    "info": [[i.iso3, i.iso2, i.name, i.income_level, i.region, i.subregion] for i in info],
    "codes": len(iso3_codes()),
    "pop": population_by_age(["KEN", "IND"], 2023).tolist(),
    "loaded": sorted(m for m in ("hdx.location.country", "pycountry", "h5py", "starsim_data", "sciris",
                                 "matplotlib") if m in sys.modules),
}
print(json.dumps(out))
"""


def probe(cache: Path) -> dict[str, object]:
    env = {**os.environ, "DOSEWISE_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_second_process_reads_the_cache_and_imports_no_source_package(tmp_path: Path) -> None:
    first = probe(tmp_path)
    # the first process reads the packages (but never runs starsim_data's __init__)
    assert "starsim_data" not in first["loaded"] and "sciris" not in first["loaded"]  # type: ignore[operator]
    assert {"hdx.location.country", "h5py"} <= set(first["loaded"])  # type: ignore[call-overload]
    names = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert names == ["countries", "wpp2024"]
    second = probe(tmp_path)
    assert second["loaded"] == []
    assert second["info"] == first["info"] and second["pop"] == first["pop"] and second["codes"] == first["codes"]
    assert first["info"][0] == ["XKX", "XK", "Kosovo", "Upper middle", "Europe", "Southern Europe"]  # type: ignore[index]


def test_cached_values_equal_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the cache holds is exactly what the packages hold (read afresh here, not from any cache)."""
    monkeypatch.setenv("DOSEWISE_CACHE_DIR", "")  # cache off: read the packages
    direct = population._read_h5()
    table = countries._read_sources()
    monkeypatch.setenv("DOSEWISE_CACHE_DIR", str(tmp_path))
    key = "test-key"
    assert _cache.cached_json("countries", key, countries._read_sources) == table
    again = _cache.cached_json("countries", key, lambda: pytest.fail("cache not used"))
    assert again == json.loads(json.dumps(table))
    arrays = _cache.cached_arrays("wpp", key, population._read_h5)
    stored = _cache.cached_arrays("wpp", key, lambda: pytest.fail("cache not used"))
    for name in ("years", "codes", "table"):
        np.testing.assert_array_equal(stored[name], direct[name])
        np.testing.assert_array_equal(arrays[name], direct[name])
    assert table["KEN"][4] == "Lower middle" and table["KEN"][0] == "KE"


def test_corrupt_or_stale_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOSEWISE_CACHE_DIR", str(tmp_path))
    assert _cache.cached_json("thing", "v1", lambda: {"a": 1}) == {"a": 1}
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"{not json")
    assert _cache.cached_json("thing", "v1", lambda: {"a": 2}) == {"a": 2}
    assert _cache.cached_json("thing", "v2", lambda: {"a": 3}) == {"a": 3}  # another version: another file
    assert _cache.cached_json("thing", "v1", lambda: {"a": 4}) == {"a": 2}
    npz = _cache.cached_arrays("arr", "v1", lambda: {"x": np.arange(3)})
    (apath,) = tmp_path.glob("arr-*")
    apath.write_bytes(b"garbage")
    np.testing.assert_array_equal(_cache.cached_arrays("arr", "v1", lambda: {"x": np.arange(4)})["x"], np.arange(4))
    np.testing.assert_array_equal(npz["x"], np.arange(3))


def test_unwritable_cache_folder_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DOSEWISE_CACHE_DIR", str(blocker / "cache"))
    assert _cache.cached_json("thing", "v1", lambda: [1, 2]) == [1, 2]


def test_package_dir_does_not_import_the_package() -> None:
    code = ("import sys\nfrom dosewise.reference._cache import package_dir\n"
            "print(package_dir('starsim_data'), 'starsim_data' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    folder, imported = out.stdout.split()
    assert (Path(folder) / "data" / "demographics-2024.h5").is_file()
    assert imported == "False"
