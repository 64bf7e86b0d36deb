"""Subprocess worker for the cross-process ledger tests (run as a script).

answer URL WHO N MODE GO   — wait for file GO, then answer offers O0..O{N-1}; MODE is
                             "slot" (unique_slot) or "precondition" (check under the lock).
                             Prints one JSON line: {"won": [...], "conflicts": [...]}.
crash URL BATCH            — append batches of BATCH events forever, printing
                             "begin k" before and "done k" after each commit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dosewise.errors import ConflictError
from dosewise.ledger import LedgerView, NewEvent, open_store


def answer(url: str, who: str, n: int, mode: str, go: str) -> None:
    store = open_store(url)
    store.head()  # connect before the race starts
    while not Path(go).exists():
        time.sleep(0.001)
    won: list[str] = []
    conflicts: list[str] = []
    for i in range(n):
        offer = f"O{i}"

        def no_answer_yet(view: LedgerView, offer: str = offer) -> None:
            for ev in view.read(offer_id=offer, types=["offer.accepted", "offer.declined"]):
                raise ConflictError(f"offer {offer} already answered by {ev.participant} (seq {ev.seq})")

        event = NewEvent(
            type="offer.accepted", actor=who, participant=who, round_id="R1", offer_id=offer,
            payload={"doses": 1000 + i}, idempotency_key=f"{who}:{offer}",
            unique_slot=f"offer:{offer}:response" if mode == "slot" else None,
        )
        try:
            store.append_one(event, precondition=no_answer_yet if mode == "precondition" else None)
            won.append(offer)
        except ConflictError as exc:
            conflicts.append(f"{offer}: {exc}")
    store.close()
    print(json.dumps({"won": won, "conflicts": conflicts}), flush=True)


def crash(url: str, batch: int) -> None:
    store = open_store(url)
    k = 0
    while True:
        events = [NewEvent(type="lot.registered", actor="crash-test", lot_id=f"L{k}-{j}",
                           payload={"batch": k, "j": j, "doses": 2400 * (j + 1)}) for j in range(batch)]
        print(f"begin {k}", flush=True)
        store.append(events)
        print(f"done {k}", flush=True)
        k += 1


if __name__ == "__main__":
    if sys.argv[1] == "answer":
        answer(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        crash(sys.argv[2], int(sys.argv[3]))
