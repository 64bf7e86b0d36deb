from __future__ import annotations

import dosewise


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions, each alphabetical (ruff's RUF022 order)."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_exports_are_sorted_and_resolve() -> None:
    assert list(dosewise.__all__) == sorted(dosewise.__all__, key=_isort_key)
    for name in dosewise.__all__:
        assert getattr(dosewise, name) is not None


def test_exported_names_do_not_drift() -> None:
    """Every public class or constant bound in the package namespace is listed in __all__."""
    public = {n for n in vars(dosewise) if not n.startswith("_") and n[0].isupper()}
    assert public - set(dosewise.__all__) == set()
