"""Refuse to build on a broken chain: check the ledger from the last point this machine verified.

A command that is about to append first checks that the event it last saw verified (its sequence
number and hash, kept in the user's state folder, outside the database) is still there unchanged,
and that every event after it links and hashes correctly. The first time a ledger is used, the
whole chain is checked. A mismatch is an :class:`~dosewise.errors.IntegrityError` pointing to
``dosewise ledger verify``; nothing is appended.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dosewise.errors import IntegrityError
from dosewise.ledger.events import GENESIS_HASH, row_hash
from dosewise.ledger.store import LedgerView

__all__ = ["check_since", "last_verified", "remember_verified", "state_dir"]


def state_dir() -> Path:
    """``$DOSEWISE_STATE_DIR``, else the user's state folder for dosewise."""
    override = os.environ.get("DOSEWISE_STATE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_state_dir

    return Path(user_state_dir("dosewise"))


def _point_file(url: str) -> Path:
    return state_dir() / "verified" / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".json")


def last_verified(url: str) -> tuple[int, str] | None:
    """The (seq, hash) last verified on this machine for the ledger at ``url``, if any."""
    try:
        data = json.loads(_point_file(url).read_text(encoding="utf-8"))
        return int(data["seq"]), str(data["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember_verified(url: str, seq: int, hash_: str) -> None:
    """Record (seq, hash) as verified for ``url`` (atomically; failures to write are not fatal)."""
    path = _point_file(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": seq, "hash": hash_}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def check_since(view: LedgerView, point: tuple[int, str] | None) -> tuple[int, str]:
    """Check every event after ``point`` (all of them when None) and that ``point`` is unchanged;
    returns the new head (seq, hash). Raises :class:`IntegrityError` naming the first bad event."""
    seq0, hash0 = point if point is not None else (0, GENESIS_HASH)
    prev_seq, prev_hash = seq0, hash0
    first = True
    for ev in view.read(after_seq=max(seq0 - 1, 0)):
        if first and seq0 > 0:
            first = False
            if ev.seq != seq0 or ev.hash != hash0:
                raise IntegrityError(
                    f"the ledger changed since it was last verified here: event seq {seq0} is "
                    f"{'missing' if ev.seq != seq0 else 'different'}; run `dosewise ledger verify` before "
                    "recording anything", seq=seq0)
            continue
        first = False
        if ev.seq != prev_seq + 1 or ev.prev_hash != prev_hash or row_hash(ev.to_row()) != ev.hash:
            raise IntegrityError(
                f"the ledger's chain is broken at event seq {prev_seq + 1}; run `dosewise ledger verify` "
                "before recording anything", seq=prev_seq + 1)
        prev_seq, prev_hash = ev.seq, ev.hash
    if first and seq0 > 0:
        raise IntegrityError(f"the ledger lost events since it was last verified here (it had {seq0}); run "
                             "`dosewise ledger verify` before recording anything", seq=seq0)
    return prev_seq, prev_hash
