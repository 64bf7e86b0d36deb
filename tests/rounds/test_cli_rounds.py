"""The round and ledger commands as a user runs them, on a SQLite file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from .conftest import SCENARIO


def dw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dosewise.cli", *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_round_commands_end_to_end(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    db = str(tmp_path / "l.db")
    r = dw("round", "open", str(scenario), "--db", db)
    assert r.returncode == 0, r.stderr
    assert "opened round T1" in r.stdout
    offers = dw("round", "offers", "T1", "--db", db)
    assert "T1:CV:PRK:0" in offers.stdout
    r = dw("round", "respond", "T1:CV:PRK:0", "--decline", "efficacy_concerns", "--wish",
           "severely affected countries", "--db", db)
    assert r.returncode == 0 and "offer.declined" in r.stdout, r.stderr
    # a second answer to the same offer: clear conflict, exit 2, nothing recorded
    before = sqlite3.connect(db).execute("select count(*) from ledger_events").fetchone()[0]
    r = dw("round", "respond", "T1:CV:PRK:0", "--accept", "--db", db)
    assert r.returncode == 2 and "already declined" in r.stderr and "Traceback" not in r.stderr
    assert sqlite3.connect(db).execute("select count(*) from ledger_events").fetchone()[0] == before
    r = dw("round", "respond", "T1:CV:KEN:0", "--decline", "because", "--db", db)
    assert r.returncode == 2 and "reason" in r.stderr
    r = dw("round", "advance", "T1", "--to", "2021-09-08", "--db", db)
    assert r.returncode == 0, r.stderr
    assert "new offers" in r.stdout
    status = dw("round", "status", "T1", "--db", db)
    assert "balanced" in status.stdout and "NO" not in status.stdout
    assert dw("ledger", "verify", "--db", db).returncode == 0
    out = tmp_path / "events.jsonl"
    assert dw("ledger", "export", "--format", "jsonl", "--out", str(out), "--db", db).returncode == 0
    count = sqlite3.connect(db).execute("select count(*) from ledger_events").fetchone()[0]
    assert len(out.read_text().splitlines()) == count
    r = dw("round", "advance", "T1", "--to", "not-a-date", "--db", db)
    assert r.returncode == 2 and "not-a-date" in r.stderr


def test_demo_tells_the_dprk_story_and_verifies(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    r = dw("demo", "--db", db)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "PRK North Korea" in out
    assert "DPRK was offered 2,970,000 CoronaVac doses and declined them" in out
    assert "efficacy_concerns" in out and "severely affected countries" in out
    assert "ledger verify: OK" in out
    assert dw("ledger", "verify", "--db", db).returncode == 0
    con = sqlite3.connect(db)
    accepted = con.execute("select count(*) from ledger_events where type='offer.accepted' "
                           "and round_id='demo-coronavac-2021-08'").fetchone()[0]
    assert accepted >= 1
    # beside the round: Russia's bilateral Sputnik V offer, a bilateral lot and its offer in the same ledger
    assert "Beside it: Sputnik V offered by Russia to DPRK" in out
    assert "channel bilateral" in out and "status as reported: open" in out
    rows = con.execute("select type, participant from ledger_events where lot_id='SPUTNIK-RUS-PRK-2021' "
                       "order by seq").fetchall()
    assert rows == [("lot.donated", None), ("offer.made", "PRK")]


def test_demo_reallocates_by_need_with_the_who_feed(shared_data: Path) -> None:
    r = dw("demo", "--who", str(shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"))
    assert r.returncode == 0, r.stderr
    assert "re-offered by need score (highest first)" in r.stdout
    assert "rank 1 by need score" in r.stdout
    assert "ledger verify: OK" in r.stdout


def test_bad_scenario_text_and_dates_are_clean_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [unclosed\n")
    r = dw("round", "open", str(bad_yaml), "--db", db)
    assert r.returncode == 2 and "not valid YAML" in r.stderr and "Traceback" not in r.stderr
    bad_date = tmp_path / "date.yaml"
    bad_date.write_text(SCENARIO.replace("expiry: 2022-02-28", "expiry: 2022-02-30"))
    r = dw("allocate", str(bad_date))
    assert r.returncode == 2 and str(bad_date) in r.stderr and "Traceback" not in r.stderr
    r = dw("round", "open", "--db", db)  # usage error from the parser itself
    assert r.returncode == 2 and "Missing argument" in r.stderr
    r = dw("allocate", str(bad_date), "--out", str(tmp_path / "no" / "x.csv"))
    assert r.returncode == 2 and "output folder does not exist" in r.stderr
    notdb = tmp_path / "not.db"
    notdb.write_text("hello")
    r = dw("ledger", "verify", "--db", str(notdb))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = dw("round", "list", "--db", str(tmp_path / "missing.db"))
    assert r.returncode == 2 and not (tmp_path / "missing.db").exists()


def test_reopening_says_so_and_pool_left_says_why(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    db = str(tmp_path / "l.db")

    def count() -> int:
        return int(sqlite3.connect(db).execute("select count(*) from ledger_events").fetchone()[0])

    assert dw("round", "open", str(scenario), "--db", db).returncode == 0
    before = count()
    r = dw("round", "open", str(scenario), "--db", db)
    assert r.returncode == 0, r.stderr
    assert "already open" in r.stdout and "nothing recorded" in r.stdout and "opened round" not in r.stdout
    assert count() == before
    r = dw("round", "respond", "T1:CV:PRK:0", "--decline", "because", "--db", db)
    assert r.returncode == 2 and "--decline" in r.stderr and "'because'" in r.stderr  # the flag, not a parameter
    r = dw("round", "respond", "T1:CV:PRK:0", "--decline", "efficacy_concerns", "--db", db)
    assert r.returncode == 0, r.stderr
    r = dw("round", "advance", "T1", "--to", "2021-09-08", "--db", db)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    # every lot with doses left in the pool gets one line saying why, naming who was passed over
    pooled = [line for line in r.stdout.splitlines() if "stay in the pool" in line]
    assert pooled and all("passed over" in line for line in pooled), out
    assert "PRK" in " ".join(pooled)  # it declined: never re-offered that lot
    after = count()
    r = dw("round", "advance", "T1", "--to", "2021-09-08", "--db", db)
    assert r.returncode == 0 and "nothing new recorded" in r.stdout
    assert count() == after
