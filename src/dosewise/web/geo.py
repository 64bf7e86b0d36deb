"""Where participants go on the world map.

Country shapes come from the vendored ``world-atlas`` 2.0.2 (Natural Earth 1:110m, public domain),
whose features carry ISO 3166-1 numeric codes as ids (three features have none and are matched by
name: Kosovo among them). Economies the 1:110m atlas does not draw (small island states) are shown
as dots at their centroid: latitude and longitude from the OCHA countries & territories taxonomy
shipped in ``hdx-python-country`` (read offline).
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from importlib import resources

import pycountry

__all__ = ["ATLAS", "ATLAS_PATH", "Place", "load_tables", "place"]

ATLAS = "world-atlas-2.0.2/countries-110m.json"
ATLAS_PATH = f"vendor/{ATLAS}"
"""The atlas, relative to the web package's static folder."""
_BY_NAME = {"XKX": "Kosovo"}  # features of the atlas without a numeric id
_LOCK = threading.Lock()  # hdx-python-country fills class-level tables on first use: one thread at a time


@dataclass(frozen=True, slots=True)
class Place:
    """How a participant is drawn: ``key`` matches an atlas feature (its id, or its name where it
    has none); ``drawn`` says whether the atlas has a shape for it; ``lon``/``lat`` place a dot."""

    key: str
    drawn: bool
    lon: float | None
    lat: float | None


@functools.cache
def _atlas_keys() -> frozenset[str]:
    text = (resources.files("dosewise.web") / "static" / ATLAS_PATH).read_text(encoding="utf-8")
    geometries = json.loads(text)["objects"]["countries"]["geometries"]
    return frozenset(str(g.get("id") or g["properties"]["name"]) for g in geometries)


@functools.cache
def _centroids() -> dict[str, tuple[float, float]]:
    from hdx.location.country import Country

    out: dict[str, tuple[float, float]] = {}
    for iso3, info in Country.countriesdata(use_live=False)["countries"].items():
        try:
            lat, lon = float(info["Latitude"]), float(info["Longitude"])
        except (KeyError, TypeError, ValueError):
            continue
        out[str(iso3)] = (lon - 360.0 if lon > 180.0 else lon, lat)
    return out


def load_tables() -> None:
    """Read the atlas and the country tables now (hdx-python-country fills class-level tables on
    first use, unsafely when two threads do it at once)."""
    with _LOCK:
        _atlas_keys()
        _centroids()


def place(iso3: str) -> Place:
    """Where ``iso3`` goes on the map."""
    with _LOCK:
        return _place(iso3)


@functools.cache
def _place(iso3: str) -> Place:
    if iso3 in _BY_NAME:
        key = _BY_NAME[iso3]
    else:
        rec = pycountry.countries.get(alpha_3=iso3)
        key = str(rec.numeric) if rec is not None else iso3
    lon_lat = _centroids().get(iso3)
    lon, lat = lon_lat if lon_lat is not None else (None, None)
    return Place(key=key, drawn=key in _atlas_keys(), lon=lon, lat=lat)
