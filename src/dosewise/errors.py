"""Exceptions raised by dosewise.

Every error a user can cause derives from :class:`DosewiseError`; the CLI and the
REST service turn these into a clear message and a non-zero exit code (2) or an
HTTP 4xx answer, never a traceback::

    DosewiseError
    ├── InputError            bad input: names the file, the field path and the value
    │   └── ScenarioError     a scenario file that does not validate
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
    "InputError",
    "IntegrityError",
    "LedgerError",
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
    """Base class of every error a user of dosewise can cause."""


class InputError(DosewiseError):
    """Bad input, located by file, field path and value wherever they are known."""

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
    """A scenario file that does not validate; may carry several problems."""

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


class ReferenceDataError(DosewiseError):
    """A participant or year that a reference source does not cover."""


class AllocationError(DosewiseError):
    """A policy cannot produce an allocation from this state."""


class RoundError(DosewiseError):
    """A transition that the round's rules forbid (e.g. accept after decline)."""


class ConflictError(RoundError):
    """Another answer to the same offer was recorded first."""


class LedgerError(DosewiseError):
    """The ledger cannot be read or written."""


class IntegrityError(LedgerError):
    """The ledger's hash chain does not verify; names the first bad event."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(message)


class DataSourceError(DosewiseError):
    """A surveillance file cannot be fetched or read."""
