"""Exceptions raised by dosewise.

Every error a user can cause derives from :class:`DosewiseError`; the CLI and the
REST service turn these into a clear message and a non-zero exit code (2) or an
HTTP 4xx answer, never a traceback::

    DosewiseError
    ├── InputError            bad input: names the file, the field path and the value
    │   ├── ScenarioError     a scenario file that does not validate
    │   └── NotFoundError     a round, offer or key the ledger does not hold
    ├── ForbiddenError        an identity acting outside its role (e.g. approving its own proposal)
    ├── ReferenceDataError    a participant a reference source does not cover
    ├── AllocationError       a policy cannot produce an allocation from this state
    ├── RoundError            an offer transition that the round rules forbid
    │   └── ConflictError     someone else answered the same offer first
    ├── LedgerError           the ledger cannot be read or written
    │   └── IntegrityError    the hash chain does not verify
    └── DataSourceError       a surveillance file cannot be fetched or read
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "AllocationError",
    "ConflictError",
    "DataSourceError",
    "DosewiseError",
    "ForbiddenError",
    "InputError",
    "IntegrityError",
    "LedgerError",
    "NotFoundError",
    "ReferenceDataError",
    "RoundError",
    "ScenarioError",
    "mask_secrets",
    "short_repr",
]


_SECRET = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^@/\s]+)@", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host``: database URLs in messages."""
    return _SECRET.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def short_repr(value: Any, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters, saying how much was left out (a megabyte of
    hostile text must not become a megabyte of error message)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


class DosewiseError(Exception):
    """Base class of every error a user of dosewise can cause.

    The command line turns one into a message and exit code 2, the service into a 4xx answer;
    catching it catches every error of the tree drawn at the top of :mod:`dosewise.errors`.

    Examples
    --------
    >>> from dosewise import DosewiseError, get_policy
    >>> try:
    ...     get_policy("no-such-policy")
    ... except DosewiseError as exc:
    ...     print(type(exc).__name__)
    InputError
    """


class InputError(DosewiseError):
    """Bad input, located by file, field path and value wherever they are known.

    Parameters
    ----------
    message : str
        What is wrong, in words.
    file : str, optional
        The file the input came from.
    field : str, optional
        The field path within it (e.g. ``lots.0.doses``) or the option (``--who``).
    value : Any, optional
        The offending value (shown shortened, never in full).
    row : int, optional
        The row of a tabular file.

    Attributes
    ----------
    file, field, value, row, message
        As given.

    Examples
    --------
    >>> from dosewise import InputError
    >>> str(InputError("must be positive", file="s.yaml", field="lots.0.doses", value=-5))
    's.yaml, field lots.0.doses: must be positive (value: -5)'
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        value: Any = None,
        row: int | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.value = value
        self.row = row
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field {self.field!s}")
        head = ": ".join([", ".join(where)] if where else [])
        value = f" (value: {short_repr(self.value)})" if self.value is not None else ""
        return f"{head}: {self.message}{value}" if head else f"{self.message}{value}"


class ScenarioError(InputError):
    """A scenario file that does not validate; may carry several problems.

    Parameters
    ----------
    file : str or None
        The scenario file (None for a scenario given as a mapping or text).
    problems : list of (str, str, Any)
        Each problem as (field path, message, value).

    Attributes
    ----------
    problems : list of (str, str, Any)
        As given.
    field, value
        Those of the first problem.

    Examples
    --------
    >>> from dosewise import ScenarioError, parse_scenario
    >>> try:
    ...     parse_scenario({"participants": {"include": ["KEN"]}, "lots": []})
    ... except ScenarioError as exc:
    ...     print(exc.field)
    lots
    """

    def __init__(self, file: str | None, problems: list[tuple[str, str, Any]]) -> None:
        self.problems = problems
        lines = [f"{field}: {msg}" + (f" (value: {short_repr(val)})" if val is not None else "")
                 for field, msg, val in problems]
        first_field, _, first_value = problems[0] if problems else (None, "", None)
        super().__init__(
            "invalid scenario:\n  " + "\n  ".join(lines),
            file=file,
            field=None,
            value=None,
        )
        self.field = first_field
        self.value = first_value

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its file and problems (an exception pickles as its message by default, which this
        constructor does not take): a refusal read in another process arrives whole."""
        return type(self), (self.file, self.problems), self.__dict__


class NotFoundError(InputError):
    """A round, offer or key that the ledger does not hold."""


class ForbiddenError(DosewiseError):
    """An identity acting outside its role, or against the two-person rule."""


class ReferenceDataError(DosewiseError):
    """A participant or year that a reference source does not cover.

    Examples
    --------
    >>> from dosewise import ReferenceDataError, parse_scenario, build_world
    >>> sc = parse_scenario({"participants": {"include": ["TUV"]},
    ...                      "lots": [{"id": "L", "product": "AZD1222", "doses": 1000,
    ...                                "available": "2021-03-01", "expiry": "2021-12-01"}]})
    >>> try:
    ...     build_world(sc)  # UN WPP 2024 in starsim-data lacks Tuvalu
    ... except ReferenceDataError as exc:
    ...     print("TUV" in str(exc))
    True
    """


class AllocationError(DosewiseError):
    """A policy cannot produce an allocation from this state.

    Raised, among others, by :class:`~dosewise.Allocation` when its doses do not account for every
    dose of every lot.

    Examples
    --------
    >>> from dosewise import AllocationError, app
    >>> result = app.allocate(app.load("demo"))
    >>> a = result.allocation
    >>> try:
    ...     type(a)(a.policy, a.participants, a.lots, a.doses * 2, a.buffer, a.remainder)
    ... except AllocationError as exc:
    ...     print(str(exc).split(":")[0])
    allocation does not account for every dose
    """


class RoundError(DosewiseError):
    """A transition that the round's rules forbid (e.g. accept after decline).

    Examples
    --------
    >>> import datetime as dt
    >>> from dosewise import RoundError, app
    >>> desk = app.Desk.open("memory")
    >>> state = desk.open_round(app.load("demo"))
    >>> offer = next(iter(state.offers))
    >>> try:
    ...     desk.respond(offer, "accept", on=state.today + dt.timedelta(days=30))  # after the deadline
    ... except RoundError as exc:
    ...     print(type(exc).__name__)
    RoundError
    """


class ConflictError(RoundError):
    """Another answer to the same offer was recorded first.

    Examples
    --------
    >>> from dosewise import ConflictError, app
    >>> desk = app.Desk.open("memory")
    >>> state = desk.open_round(app.load("demo"))
    >>> offer = next(iter(state.offers))
    >>> _ = desk.respond(offer, "accept")
    >>> try:
    ...     desk.respond(offer, "decline", reason="efficacy_concerns")
    ... except ConflictError:
    ...     print("answered already")
    answered already
    """


class LedgerError(DosewiseError):
    """The ledger cannot be read or written.

    Examples
    --------
    >>> from dosewise import LedgerError, app
    >>> try:
    ...     app.Desk.open("no-such-ledger.db")  # only create=True makes a new file
    ... except LedgerError as exc:
    ...     print(exc)
    no ledger at no-such-ledger.db (give --db or set DOSEWISE_DB)
    """


class IntegrityError(LedgerError):
    """The ledger's hash chain does not verify; names the first bad event.

    Parameters
    ----------
    message : str
        What does not verify.
    seq : int, optional
        The sequence number of the first bad event.

    Attributes
    ----------
    seq : int or None
        As given.

    Examples
    --------
    >>> from dosewise import IntegrityError, LedgerError
    >>> exc = IntegrityError("event 7: hash does not match", seq=7)
    >>> isinstance(exc, LedgerError), exc.seq
    (True, 7)
    """

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(message)


class DataSourceError(DosewiseError):
    """A surveillance file cannot be fetched or read.

    Examples
    --------
    >>> from dosewise import DataSourceError
    >>> from dosewise.surveillance.pull import import_file
    >>> try:
    ...     import_file("who", "WHO-COVID-19-global-data.csv")  # no such local copy
    ... except DataSourceError as exc:
    ...     print(exc)
    WHO-COVID-19-global-data.csv: file not found
    """
