"""The service under load on loopback: every AMC92 participant answers its offers at once while
observers poll, against uvicorn on 127.0.0.1 with PostgreSQL (fsync on).

Run: .venv/bin/python benchmarks/service.py [--rounds 4] [--workers 1] [--observers 4] [--poll-every 0]
     [--json FILE]

Sets up a throwaway PostgreSQL server with its default durability (fsync on, synchronous commit),
one API key per participant of the demo scenario (92 AMC participants) plus a coordinator, a
reviewer and observers; proposes and approves ``--rounds`` copies of the demo round (165 offers
each). Then, for each round in turn, the 92 participants answer all their offers concurrently
over HTTP (DPRK declines with its reason, the others accept), each on its own keep-alive
connection, while the observers poll the round's status and the ledger head. Prints requests/s,
answers/s and p50/p95/p99 latency of the answers, the CPU time per answer of the server, the
database and this client, and the load average; then checks the ledger: the hash chain
verifies, every lot balances (open + accepted + pool + expired + buffer = supply) and each offer
has exactly one answer. Baseline, same process and ledger kind: the same answers recorded
through ``dosewise.app.Desk.respond`` directly (no HTTP, no authentication, no concurrency), one
after another. Bounded: a few thousand requests, at most a few minutes; loopback only.

The goal is at least 500 answers/s with p95 under 100 ms on a 2-core machine. The 92 answers of
a round's first wave arrive together, so by Little's law their p95 stays under 100 ms only if
the service answers about 900 a second; the figures show how far each part is from that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from dosewise import app as api
from dosewise.app import Desk
from dosewise.ledger.pgserver import ThrowawayPostgres

DECLINE = {"reason": "efficacy_concerns", "note": "doses should go to severely affected countries",
           "wish": "severely affected countries"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _database(server: ThrowawayPostgres, name: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return str(sa.make_url(server.url).set(database=name).render_as_string(hide_password=False))


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and all their descendants (Linux /proc; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        own = int(fields[11]) + int(fields[12])
        waited = int(fields[13]) + int(fields[14])  # children that exited (e.g. database backends)
        times[int(entry)] = (own + (waited if int(entry) in pids else 0)) / tick
    wanted = set(pids)
    grew = True
    while grew:
        extra = {pid for pid, parent in parents.items() if parent in wanted and pid not in wanted}
        wanted |= extra
        grew = bool(extra)
    return sum(times.get(pid, 0.0) for pid in wanted)


def _postmaster(server: ThrowawayPostgres) -> int:
    with open(server.base / "data" / "postmaster.pid", encoding="ascii") as fh:  # its first line: the pid
        return int(fh.readline())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def setup(url: str, rounds: int, observers: int) -> tuple[dict[str, str], list[str], list[str]]:
    """Keys and approved rounds; returns the tokens by label, the round ids and the participant codes."""
    tokens: dict[str, str] = {}
    scenario = api.load("demo")
    with Desk.open(url, create=True, actor="benchmark") as desk:
        codes = [str(c) for c in api.allocate(scenario).world.codes]
        for label, role, name in [("coordinator", "coordinator", "carla"), ("reviewer", "reviewer", "rita")]:
            tokens[label] = desk.create_key(role, name=name)[1]
        for k in range(observers):
            tokens[f"observer{k}"] = desk.create_key("observer", name=f"observer{k}")[1]
        for code in codes:
            tokens[code] = desk.create_key("participant", participant=code)[1]
        rids = []
        for r in range(rounds):
            rid = f"load-{r}"
            desk.propose_round(scenario, identity="carla", round_id=rid)
            desk.approve_round(rid, identity="rita")
            rids.append(rid)
    return tokens, rids, codes


class Loopback:
    """One keep-alive HTTP/1.1 connection to the server, on asyncio streams.

    The load generator shares the machine's cores with the server and the database, so it must
    cost little per request: httpx spends several milliseconds of CPU on each, more than the
    server does. This client writes the request and reads a ``Content-Length`` answer, nothing
    else (every route the benchmark calls answers that way).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(data)}",
                *(f"{k}: {v}" for k, v in headers.items())]
        if body is not None:
            head.append("Content-Type: application/json")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next((int(v) for k, _, v in (x.partition(":") for x in lines[1:]) if k.lower() == "content-length"),
                      None)
        if length is None:
            raise RuntimeError(f"{method} {path}: an answer without Content-Length")
        return status, await reader.readexactly(length)

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


async def run_round(base: str, tokens: dict[str, str], rid: str, codes: list[str], observers: int,
                    poll_every: float = 0.0) -> dict[str, Any]:
    host, port = base.removeprefix("http://").split(":")
    conns: list[Loopback] = []

    def connection() -> Loopback:
        conns.append(Loopback(host, int(port)))
        return conns[-1]

    try:
        obs = {"Authorization": f"Bearer {tokens['observer0']}"}
        lister = connection()
        offers: list[dict[str, Any]] = []
        after = 0
        while True:
            status, raw = await lister.request("GET", f"/rounds/{rid}/offers?after={after}&limit=1000", obs)
            assert status == 200, raw
            page = json.loads(raw)
            offers += page["items"]
            if page["next_cursor"] is None:
                break
            after = page["next_cursor"]
        by_code: dict[str, list[str]] = {}
        for o in offers:
            by_code.setdefault(o["participant"], []).append(o["offer"])
        latencies: list[float] = []
        statuses: list[int] = []
        polls: list[float] = []
        done = asyncio.Event()

        async def participant(code: str) -> None:
            conn = connection()
            auth = {"Authorization": f"Bearer {tokens[code]}"}
            for oid in by_code.get(code, []):
                path, body = ((f"/offers/{oid}/decline", DECLINE) if code == "PRK" else (f"/offers/{oid}/accept", None))
                t0 = time.perf_counter()
                status, _ = await conn.request("POST", path, {**auth, "Idempotency-Key": f"bench-{oid}"}, body)
                latencies.append(time.perf_counter() - t0)
                statuses.append(status)

        async def observer(k: int) -> None:
            conn = connection()
            auth = {"Authorization": f"Bearer {tokens[f'observer{k}']}"}
            while not done.is_set():
                for path in (f"/rounds/{rid}", "/ledger/head"):
                    t0 = time.perf_counter()
                    status, raw = await conn.request("GET", path, auth)
                    polls.append(time.perf_counter() - t0)
                    assert status == 200, raw
                    if poll_every:
                        await asyncio.sleep(poll_every)

        watchers = [asyncio.create_task(observer(k)) for k in range(observers)]
        t0 = time.perf_counter()
        await asyncio.gather(*(participant(code) for code in codes))
        wall = time.perf_counter() - t0
        done.set()
        await asyncio.gather(*watchers)
    finally:
        for c in conns:
            c.close()
    return {"offers": len(offers), "latencies": latencies, "statuses": statuses, "polls": polls, "wall": wall}


def check(url: str, rids: list[str]) -> None:
    with Desk.open(url) as desk:
        report = desk.verify()
        print(f"ledger verify: {'OK' if report.ok else 'FAILED'} ({report.checked:,} events)")
        for rid in rids:
            state = desk.view(rid)
            problems = state.problems()
            answers: dict[str, int] = {}
            for ev in desk.events(round_id=rid, limit=10**9):
                if ev.type in ("offer.accepted", "offer.declined") and ev.offer_id:
                    answers[ev.offer_id] = answers.get(ev.offer_id, 0) + 1
            one_each = set(answers.values()) == {1} and set(answers) == set(state.offers)
            print(f"round {rid}: per-lot conservation {problems or 'OK'}; "
                  f"exactly one answer per offer: {'yes' if one_each else 'NO'} ({len(answers)} offers answered)")
            assert not problems and one_each
        assert report.ok


def baseline(url: str, rid: str, codes: list[str]) -> float:
    """The same answers through the application layer directly, one after another."""
    with Desk.open(url, actor="baseline") as desk:
        offers = list(desk.view(rid).offers.values())
        t0 = time.perf_counter()
        for o in offers:
            if o["participant"] == "PRK":
                desk.respond(o["offer"], "decline", reason="efficacy_concerns", key=f"base-{o['offer']}")
            else:
                desk.respond(o["offer"], "accept", key=f"base-{o['offer']}")
        return len(offers) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=4, help="Rounds answered one after another (165 offers each).")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes.")
    parser.add_argument("--observers", type=int, default=4, help="Observers polling while participants answer.")
    parser.add_argument("--poll-every", type=float, default=0.0,
                        help="Seconds an observer waits between polls (0: back to back, the harshest load).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.workers <= 3 or not 1 <= args.observers <= 16:
        parser.error("bounds: 1-20 rounds, 1-3 workers (the throwaway server allows 50 connections), 1-16 observers")
    load_before = os.getloadavg()
    with ThrowawayPostgres(durable=True) as server:  # PostgreSQL's defaults: fsync on, synchronous commit
        url = _database(server, "bench")
        t0 = time.perf_counter()
        tokens, rids, codes = setup(url, args.rounds + 1, args.observers)
        print(f"setup: {len(codes)} participants, {args.rounds + 1} approved demo rounds "
              f"({time.perf_counter() - t0:.1f} s); PostgreSQL with fsync on")
        port = _free_port()
        env = {**os.environ, "DOSEWISE_DB": url}
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "dosewise.service.app:app_from_env", "--factory",
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
                                 "--log-level", "warning", "--no-access-log"], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            # warm-up: each key verified once per worker process (Argon2id), caches and connections filled
            warm = asyncio.run(run_round(base, tokens, rids[0], codes, args.observers, args.poll_every))
            print(f"warm-up round: {warm['offers']} answers in {warm['wall']:.2f} s")
            lat: list[float] = []
            polls: list[float] = []
            statuses: list[int] = []
            wall = 0.0
            cpu0 = (_cpu_seconds([proc.pid]), _cpu_seconds([_postmaster(server)]), sum(os.times()[:2]))
            for rid in rids[1:]:
                res = asyncio.run(run_round(base, tokens, rid, codes, args.observers, args.poll_every))
                lat += res["latencies"]
                polls += res["polls"]
                statuses += res["statuses"]
                wall += res["wall"]
            cpu1 = (_cpu_seconds([proc.pid]), _cpu_seconds([_postmaster(server)]), sum(os.times()[:2]))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        answers = len(lat)
        ok = sum(1 for s in statuses if s == 200)
        load_after = os.getloadavg()
        cpu = {name: (b - a) * 1e3 / answers for name, a, b in zip(("server", "database", "client"), cpu0, cpu1,
                                                                      strict=True)}
        pace = f"every {args.poll_every:g} s" if args.poll_every else "back to back"
        print(f"\nservice: {args.workers} uvicorn worker(s), {len(codes)} participants answering at once, "
              f"{args.observers} observers polling {pace}; {nproc()} CPU cores shared by server, database and client")
        print(f"answers: {answers:,} ({ok:,} × 200) in {wall:.2f} s → {answers / wall:,.0f} answers/s; "
              f"all requests incl. polls: {(answers + len(polls)) / wall:,.0f} requests/s")
        print(f"answer latency ms: p50 {_pct(lat, 0.50):.1f}  p95 {_pct(lat, 0.95):.1f}  p99 {_pct(lat, 0.99):.1f}  "
              f"mean {statistics.fmean(lat) * 1e3:.1f}")
        print(f"poll latency ms:   p50 {_pct(polls, 0.50):.1f}  p95 {_pct(polls, 0.95):.1f}  "
              f"p99 {_pct(polls, 0.99):.1f}  ({len(polls):,} polls)")
        print("CPU ms per answer (polls included): " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
        print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
        print(f"goal ≥ 500 answers/s: {'met' if answers / wall >= 500 else 'NOT met'}; "
              f"p95 < 100 ms: {'met' if _pct(lat, 0.95) < 100 else 'NOT met'}")
        check(url, rids)
        # baseline on a fresh round of the same ledger
        with Desk.open(url) as desk:
            desk.propose_round(api.load("demo"), identity="carla", round_id="baseline")
            desk.approve_round("baseline", identity="rita")
        direct = baseline(url, "baseline", codes)
        print(f"\nbaseline: Desk.respond in process, sequential: {direct:,.0f} answers/s; "
              f"service/baseline = {answers / wall / direct:.2f}")
        if args.json is not None:
            args.json.write_text(json.dumps({
                "workers": args.workers, "observers": args.observers, "poll_every_s": args.poll_every,
                "rounds": args.rounds, "answers": answers,
                "answers_per_s": answers / wall, "requests_per_s": (answers + len(polls)) / wall,
                "latency_ms": {"p50": _pct(lat, 0.50), "p95": _pct(lat, 0.95), "p99": _pct(lat, 0.99)},
                "poll_latency_ms": {"p50": _pct(polls, 0.50), "p95": _pct(polls, 0.95), "p99": _pct(polls, 0.99)},
                "cpu_ms_per_answer": cpu, "load_average_before": load_before, "load_average_after": load_after,
                "baseline_answers_per_s": direct, "ratio_to_baseline": answers / wall / direct,
                "cores": nproc()}, indent=2), encoding="utf-8")
        assert ok == answers


def nproc() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    main()
