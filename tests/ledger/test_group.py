"""Group commit: concurrent single appends share batches; each caller gets its own event or error."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dosewise.errors import ConflictError
from dosewise.ledger import NewEvent, open_store
from dosewise.ledger.group import GroupCommit


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_concurrent_appends_share_batches_and_fail_alone(kind: str, tmp_path: Path) -> None:
    store = GroupCommit(open_store("memory" if kind == "memory" else str(tmp_path / "l.db")))
    batches: list[int] = []
    inner = store.store.append

    def counting(events, **kw):  # type: ignore[no-untyped-def]
        batches.append(len(events))
        time.sleep(0.02)  # a write that takes a while, as on a busy database: others queue meanwhile
        return inner(events, **kw)

    store.store.append = counting  # type: ignore[method-assign]
    start = threading.Barrier(16)

    def one(i: int) -> int | str:
        start.wait()
        # offers 0..14 once each; the 16th caller claims offer 3's slot again
        slot = f"offer:O{i if i < 15 else 3}:response"
        try:
            return store.append_one(NewEvent(type="offer.accepted", actor=f"participant:P{i}", payload={"i": i},
                                             offer_id=f"O{i}", unique_slot=slot)).seq
        except ConflictError as exc:
            return str(exc)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    seqs = [r for r in results if isinstance(r, int)]
    errors = [r for r in results if isinstance(r, str)]
    assert len(seqs) == 15 and len(set(seqs)) == 15
    assert len(errors) == 1 and "'offer:O3:response' is already taken" in errors[0]
    assert store.verify().ok and store.head() is not None and store.head().seq == 15  # type: ignore[union-attr]
    assert max(batches) > 1, batches  # some callers did share a batch
    store.close()
