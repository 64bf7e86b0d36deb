"""Across OS processes: first answer wins, and a SIGKILL mid-batch leaves whole batches."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dosewise.ledger import NewEvent, open_store

WORKER = str(Path(__file__).with_name("_worker.py"))
N_OFFERS = 30


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("mode", ["slot", "precondition"])
def test_two_processes_answering_the_same_offers(sql_url: str, tmp_path: Path, mode: str) -> None:
    store = open_store(sql_url)
    store.append([NewEvent(type="offer.made", actor="secretariat", round_id="R1", offer_id=f"O{i}",
                           payload={"doses": 1000 + i}) for i in range(N_OFFERS)])
    go = tmp_path / "go"
    workers = [_spawn("answer", sql_url, who, str(N_OFFERS), mode, str(go)) for who in ("BTN", "MDV")]
    time.sleep(1.0)  # let both connect
    go.touch()
    results = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    won = [set(r["won"]) for r in results]
    # every offer answered exactly once, by exactly one process
    assert won[0] | won[1] == {f"O{i}" for i in range(N_OFFERS)}
    assert not won[0] & won[1]
    assert len(results[0]["conflicts"]) + len(results[1]["conflicts"]) == N_OFFERS
    assert all("already" in c for r in results for c in r["conflicts"])
    answers = list(store.read(types=["offer.accepted"]))
    assert len(answers) == N_OFFERS
    assert sorted(e.offer_id or "" for e in answers) == sorted(f"O{i}" for i in range(N_OFFERS))
    for e in answers:
        assert e.offer_id in won[["BTN", "MDV"].index(e.participant or "")]
    assert store.verify().ok
    store.close()


def test_two_processes_opening_a_fresh_ledger_at_once(sql_url: str, tmp_path: Path) -> None:
    # no store opened beforehand: both processes race through the migration, then through appends
    go = tmp_path / "go"
    workers = [_spawn("answer", sql_url, who, "5", "slot", str(go)) for who in ("BTN", "MDV")]
    go.touch()
    won: list[str] = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        won += json.loads(out.strip().splitlines()[-1])["won"]
    assert sorted(won) == [f"O{i}" for i in range(5)]
    store = open_store(sql_url)
    assert store.verify().checked == 5
    store.close()


def test_sigkill_mid_batch_leaves_whole_batches(sql_url: str) -> None:
    batch = 400
    rng = random.Random(20240301)
    low = high = 0  # bounds on the events that may have committed, from what the worker printed
    for _attempt in range(3):
        proc = _spawn("crash", sql_url, str(batch))
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[str] = []
        target = rng.randint(2, 5)
        while not lines or lines[-1] != f"done {target}":
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line.strip())
        time.sleep(rng.uniform(0.0, 0.05))  # land somewhere inside a later batch
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        lines += proc.stdout.read().splitlines()
        proc.stdout.close()
        proc.stderr.close()
        last_done = max(int(ln.split()[1]) for ln in lines if ln.startswith("done"))
        last_begin = max(int(ln.split()[1]) for ln in lines if ln.startswith("begin"))
        low += (last_done + 1) * batch  # reported committed
        high += (last_begin + 1) * batch  # at most the batch in flight at the kill
    store = open_store(sql_url)
    report = store.verify()
    assert report.ok, report.problem
    n = report.checked
    assert n % batch == 0 and low <= n <= high  # whole batches only; seq gaps would fail verify
    lots = [e.lot_id or "" for e in store.read()]
    chunks = [lots[i:i + batch] for i in range(0, n, batch)]
    # each stored batch is one worker batch, complete: L<k>-0 .. L<k>-<batch-1>
    for chunk in chunks:
        k = chunk[0].split("-")[0]
        assert chunk == [f"{k}-{j}" for j in range(batch)]
    store.close()
