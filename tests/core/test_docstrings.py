"""Every exported name is documented in numpydoc form, and its examples run.

The exported names are ``dosewise.__all__`` and ``dosewise.app.__all__``; for each exported class
its own public methods and properties (those it defines, not those inherited from ``Exception``
or pydantic's ``BaseModel``) are checked too. Constants (``POLICIES``, ``DEMO_KEYS``…) carry
attribute docstrings, which numpydoc does not validate, and are left out.
"""

from __future__ import annotations

import doctest
import inspect
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
from numpydoc.validate import validate

# The numpydoc checks enforced, and why:
CHECKS = {
    "GL08": "every exported object has a docstring",
    "PR01": "every parameter is documented (a caller learns each argument from the docstring)",
    "PR02": "no documented parameter that the signature lacks (docs that drift from the code are wrong docs)",
    "RT01": "whatever returns a value says what it returns",
    "EX01": "an Examples section: it runs as a doctest below, so it shows real, working use",
}
# Checks left out: the summary-line rules (SS0x), punctuation and capitalisation rules (PR08-PR10,
# RT02-RT05) and the section-order rule (GL07) are style; the project's one-line summaries are
# phrases, not imperative sentences. SA01 (See Also) is optional in numpydoc itself.

MODULES = ("dosewise", "dosewise.app")

# Doctests run with these flags: long frames are elided with ``...``, and line breaks in printed
# structures do not matter.
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _exported() -> Iterator[tuple[str, Any]]:
    seen: set[str] = set()
    for module_name in MODULES:
        module = import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # a constant: documented by its attribute docstring
            qual = f"{obj.__module__}.{obj.__qualname__}"
            if qual not in seen:
                seen.add(qual)
                yield qual, obj


def _members(cls: type) -> Iterator[str]:
    """Public methods and properties a class defines itself."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        func = value.__func__ if isinstance(value, classmethod | staticmethod) else value
        if inspect.isfunction(func) or isinstance(value, property):
            yield name


def _targets() -> list[str]:
    out: list[str] = []
    for qual, obj in _exported():
        out.append(qual)
        if inspect.isclass(obj):
            out += [f"{qual}.{name}" for name in _members(obj)]
    return out


TARGETS = _targets()


def test_the_surface_is_large_enough_to_mean_something() -> None:
    """The collection finds the exported classes' methods (an empty list would pass everything)."""
    assert "dosewise.app.Desk.open_round" in TARGETS
    assert "dosewise.world.World.days" in TARGETS
    assert "dosewise.scenario.load_scenario" in TARGETS
    assert len(TARGETS) > 100


@pytest.mark.parametrize("qualname", TARGETS)
def test_numpydoc_sections(qualname: str) -> None:
    result = validate(qualname)
    problems = [f"{code}: {message}" for code, message in result["errors"] if code in CHECKS]
    assert not problems, f"{qualname}:\n  " + "\n  ".join(problems)


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(recurse=True, exclude_empty=True)
    tests: dict[str, doctest.DocTest] = {}
    for qual, obj in _exported():
        module = import_module(obj.__module__)
        for test in finder.find(obj, qual, module=module, globs=vars(module)):
            tests.setdefault(test.name, test)
    return sorted(tests.values(), key=lambda t: t.name)


DOCTESTS = _doctests()


def test_every_exported_object_has_examples_that_run() -> None:
    names = {t.name for t in DOCTESTS}
    for qual, _ in _exported():
        assert qual in names, f"{qual} has no doctest"


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_examples(test: doctest.DocTest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    monkeypatch.setenv("DOSEWISE_STATE_DIR", str(tmp_path / "state"))
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    test.globs = dict(test.globs)
    report: list[str] = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
