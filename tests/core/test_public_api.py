from __future__ import annotations

import subprocess
import sys

import dosewise

# Reviewed list of the package's public surface: a name added to or removed from
# ``dosewise.__all__`` must be added to or removed from this list in the same change.
REVIEWED = {
    "POLICIES", "Allocated", "Allocation", "AllocationError", "Comparison", "ConflictError", "DataSourceError",
    "Desk", "DosewiseError", "InputError", "IntegrityError", "LedgerError", "Product", "ReferenceDataError",
    "RoundError", "RoundState", "Rounds", "Scenario", "ScenarioError", "Signer", "World", "build_world", "catalogue",
    "get_policy", "load_demo", "load_scenario", "open_store", "parse_scenario", "project",
}


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions, each alphabetical (ruff's RUF022 order)."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_exports_are_sorted_and_resolve() -> None:
    assert list(dosewise.__all__) == sorted(dosewise.__all__, key=_isort_key)
    for name in dosewise.__all__:
        assert getattr(dosewise, name) is not None


def test_exports_match_the_reviewed_list_both_ways() -> None:
    assert set(dosewise.__all__) - REVIEWED == set(), "exported but not reviewed"
    assert REVIEWED - set(dosewise.__all__) == set(), "reviewed but no longer exported"


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        dosewise.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("dosewise.NoSuchThing resolved")


def test_import_is_light() -> None:
    """``import dosewise`` loads none of the heavy libraries (they come with the first use)."""
    code = ("import sys, dosewise; heavy = [m for m in ('pandas', 'sqlalchemy', 'scipy', 'matplotlib', 'httpx', "
            "'numpy', 'highspy', 'pydantic') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
