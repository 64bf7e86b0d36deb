"""Locating reference files inside installed packages, and a small on-disk cache of what is read from them.

Reference packages are located with :func:`importlib.util.find_spec`, which finds a top-level
package's folder without running its ``__init__`` (``starsim_data``'s imports sciris and
``matplotlib.pyplot``, about half a second).

What costs time to read (the hdx countries taxonomy, the WPP 2024 table from HDF5) is kept,
after the first read, in a compact file in the user cache folder (``platformdirs``; override
with ``$DOSEWISE_CACHE_DIR``). Each file's name and content carry a key built from the
versions of the packages it was read from, so upgrading a package reads it afresh. The cache
only ever holds what the packages themselves hold: a file that cannot be read, does not parse
or carries another key is ignored and rebuilt; a cache folder that cannot be written is not an
error (the data are then read from the packages every time).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dosewise.errors import ReferenceDataError

FORMAT = 1
"""Bumped whenever the layout of a cached file changes."""


def package_dir(package: str) -> Path:
    """The folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ReferenceDataError(f"the reference-data package {package!r} is not installed")
    return Path(locations[0])


def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def cache_dir() -> Path | None:
    """``$DOSEWISE_CACHE_DIR``, else the platform's user cache folder for dosewise; None if disabled."""
    env = os.environ.get("DOSEWISE_CACHE_DIR")
    if env is not None:
        return Path(env) if env.strip() else None  # an empty value turns the cache off
    import platformdirs

    return Path(platformdirs.user_cache_dir("dosewise", appauthor=False))


def _path(name: str, key: str, suffix: str) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    digest = hashlib.sha256(f"{FORMAT}:{key}".encode()).hexdigest()[:16]
    return folder / f"{name}-{digest}{suffix}"


def _write_atomic(path: Path, write: Callable[[Any], None]) -> None:
    """Write via a temporary file and rename, so readers see the old file or the whole new one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a read-only or full cache folder: keep working without the cache


def cached_json(name: str, key: str, build: Callable[[], Any]) -> Any:
    """``build()``'s JSON-serialisable result, read from the cache when a file with ``key`` is there."""
    path = _path(name, key, ".json")
    if path is not None:
        try:
            stored = json.loads(path.read_bytes())
            if isinstance(stored, dict) and stored.get("key") == key and stored.get("format") == FORMAT:
                return stored["data"]
        except (OSError, ValueError, KeyError):
            pass
    data = build()
    if path is not None:
        blob = json.dumps({"format": FORMAT, "key": key, "data": data}, separators=(",", ":")).encode()
        _write_atomic(path, lambda fh: fh.write(blob))
    return data


def cached_arrays(
    name: str, key: str, build: Callable[[], dict[str, npt.NDArray[Any]]]
) -> dict[str, npt.NDArray[Any]]:
    """Like :func:`cached_json` for a few NumPy arrays (an uncompressed ``.npz``, no pickles)."""
    path = _path(name, key, ".npz")
    if path is not None:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["__key__"]) == key and int(z["__format__"]) == FORMAT:
                    return {k: z[k] for k in z.files if not k.startswith("__")}
        except (OSError, ValueError, KeyError, EOFError):
            pass
    data = build()
    if path is not None:
        arrays: dict[str, Any] = {**data, "__key__": np.array(key), "__format__": np.array(FORMAT)}
        _write_atomic(path, lambda fh: np.savez(fh, **arrays))
    return data


__all__ = ["cache_dir", "cached_arrays", "cached_json", "package_dir", "version"]
