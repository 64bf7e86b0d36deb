"""The service under load on loopback: the AMC92 participants answer their offers while observers
poll, against uvicorn on 127.0.0.1 with PostgreSQL (fsync on).

Run: .venv/bin/python benchmarks/service.py [--mode both|open|closed] [--rate 500] [--open-rounds 16]
     [--rounds 4] [--workers 1] [--observers 4] [--open-poll-every 0.05] [--poll-every 0] [--json FILE]

Sets up a throwaway PostgreSQL server with its default durability (fsync on, synchronous commit),
one API key per participant of the demo scenario (92 AMC participants) plus a coordinator, a
reviewer and observers; proposes and approves copies of the demo round (165 offers each: one
warm-up round, ``--open-rounds`` for the open loop, ``--rounds`` for the closed loop). DPRK
declines with its reason, the others accept; each participant answers over its own keep-alive
HTTP/1.1 connections while the observers poll the round's status and the ledger head. Two
figures, both measured by default (``--mode``):

* **Open loop — the goal is judged on it.** The answers of ``--open-rounds`` rounds (16: 2,640
  answers, 5.3 s at 500/s) go out on a fixed schedule, ``--rate`` a second (default 500), spread
  over the 92 participants in turns; answer ``i`` is due at ``start + i / rate`` whatever the
  server is doing, on an idle connection of its participant or a new one, so any number may be in
  flight. Latency is measured from each answer's *scheduled* send time, not from when it was
  written: a client that waits for one answer before sending the next sends fewer requests
  while the server stalls, and the requests that would have waited are never timed
  ("coordinated omission"); timing from the schedule counts that waiting, as wrk2 does. Reported:
  the answers/s achieved (answers completed per second from the first answer to the last: a
  server that keeps up completes them at the rate they are due, one that falls behind takes
  longer for the last ones; it cannot exceed the offered rate but by jitter, so a run keeps up
  when it delivers at least 99 % of it, and counts when 500/s or more were offered), p50/p95/p99/max latency from
  schedule, errors, how late this client wrote requests (its own stalls), and whether the goal
  (≥ 500 answers/s, p95 < 100 ms) is met. Also shown: answers / time from the first due time to
  the last answer (that figure cannot reach the rate unless the last answer takes under
  1 / rate, 2 ms at 500/s, however fast the server keeps up), and the CPU time per request
  (answers and polls: the number of polls grows as they get faster, so the CPU per answer, polls
  included, also depends on how fast the polls are). The observers are on a schedule too: each
  polls every ``--open-poll-every`` seconds (default 0.05 s, 20 reads a second each, 80 for the
  four), so the load is fixed. Observers polling back to back (``--open-poll-every 0``) are a
  closed loop inside the open one: they take whatever the server's core has left, so answers
  always queue behind polls and the latency then measures how the core is shared, not the
  service at a given load; that harsher run is reported beside the goal's, not as it.
* **Closed loop — peak throughput.** For each of ``--rounds`` rounds in turn, the 92
  participants answer all their offers back to back, each waiting for its answer before the
  next, so about 92 requests are always in flight. By Little's law the mean latency is then 92 /
  throughput (about 184 ms at 500/s) whatever the server does, so this mode says nothing about
  the latency goal; its answers/s is the most the service completes with the machine saturated.

Both print answers/s, latency percentiles, poll latency, the CPU time per answer of the server,
the database and this client, and the load average; then the ledger is checked: the hash chain
verifies, every lot balances (open + accepted + pool + expired + buffer = supply) and each offer
of every round has exactly one answer. Baseline, same process and ledger kind: the same answers
recorded through ``dosewise.app.Desk.respond`` directly (no HTTP, no authentication, no
concurrency), one after another. Figures go to ``benchmarks/results/service.json`` (its
``metrics``, in seconds, are what ``benchmarks/compare.py`` compares). Bounded: a few thousand
requests, at most a few minutes; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from _common import environment, write_results
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

    async def connect(self) -> None:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        await self.connect()
        assert self._streams is not None
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


async def list_offers(conn: Loopback, tokens: dict[str, str], rid: str) -> list[dict[str, Any]]:
    """Every offer of a round, page by page, as an observer sees them."""
    obs = {"Authorization": f"Bearer {tokens['observer0']}"}
    offers: list[dict[str, Any]] = []
    after = 0
    while True:
        status, raw = await conn.request("GET", f"/rounds/{rid}/offers?after={after}&limit=1000", obs)
        assert status == 200, raw
        page = json.loads(raw)
        offers += page["items"]
        if page["next_cursor"] is None:
            return offers
        after = page["next_cursor"]


async def observe(conn: Loopback, token: str, rids: list[str], done: asyncio.Event, polls: list[float],
                  poll_every: float) -> None:
    """Poll a round's status and the ledger head until ``done`` (the round polled follows ``rids[0]``,
    which the caller may change as the run moves from round to round)."""
    auth = {"Authorization": f"Bearer {token}"}
    while not done.is_set():
        for path in (f"/rounds/{rids[0]}", "/ledger/head"):
            t0 = time.perf_counter()
            status, raw = await conn.request("GET", path, auth)
            polls.append(time.perf_counter() - t0)
            assert status == 200, raw
            if poll_every:
                await asyncio.sleep(poll_every)


async def warm_keys(base: str, tokens: dict[str, str], workers: int) -> None:
    """With several worker processes, each checks a key once (Argon2id) the first time the key reaches
    it, and the kernel hands each new connection to any of them: every key is sent once on each of
    ``8 * workers`` new connections, so that (but with a chance of 1 in 2**8 per key and worker) the
    schedule pays no first check."""
    if workers < 2:
        return
    host, port = base.removeprefix("http://").split(":")

    async def me(token: str) -> None:
        conn = Loopback(host, int(port))
        try:
            status, raw = await conn.request("GET", "/me", {"Authorization": f"Bearer {token}"})
            assert status == 200, raw
        finally:
            conn.close()

    for _ in range(8 * workers):
        await asyncio.gather(*(me(t) for t in tokens.values()))


def answer_request(code: str, oid: str) -> tuple[str, dict[str, Any] | None]:
    """The path and body of a participant's answer: DPRK declines with its reason, the others accept."""
    return (f"/offers/{oid}/decline", DECLINE) if code == "PRK" else (f"/offers/{oid}/accept", None)


async def run_open(base: str, tokens: dict[str, str], rids: list[str], codes: list[str], observers: int,
                   poll_every: float, rate: float) -> dict[str, Any]:
    """Open loop: the answers of ``rids`` sent on a fixed schedule, ``rate`` a second, whatever the server does.

    The answers are laid out round after round; within a round the participants take turns (one
    answer of each participant that has one left, then the next), and answer ``i`` is due at
    ``start + i / rate``. At its due time the answer goes out on one of its participant's idle
    keep-alive connections, or on a new one if all are busy, so a participant may have any number
    in flight and a slow answer never delays the next one. Latency is measured from the due time,
    not from when the request was written: if the server (or this client) stalls, the answers
    that should have gone out meanwhile count the stall as waiting, as their senders would see it
    (no coordinated omission, the correction wrk2 makes).
    """
    host, port = base.removeprefix("http://").split(":")
    conns: list[Loopback] = []

    def connection() -> Loopback:
        conns.append(Loopback(host, int(port)))
        return conns[-1]

    idle: dict[str, list[Loopback]] = {code: [connection()] for code in codes}
    try:
        schedule: list[tuple[str, str, str]] = []  # (round, participant, offer) in the order they are due
        for rid in rids:
            by_code: dict[str, list[str]] = {}
            for o in await list_offers(idle[codes[0]][0], tokens, rid):
                by_code.setdefault(o["participant"], []).append(o["offer"])
            queues = [(code, by_code[code]) for code in codes if code in by_code]
            for turn in range(max(len(q) for _, q in queues)):
                schedule += [(rid, code, q[turn]) for code, q in queues if turn < len(q)]
        await asyncio.gather(*(c.connect() for pool in idle.values() for c in pool))  # connected beforehand
        latencies: list[float] = []
        lateness: list[float] = []  # how late this client wrote each request (its own stalls)
        statuses: list[int] = []
        errors: list[str] = []
        polls: list[float] = []
        finished: list[float] = []
        in_flight = peak = 0
        current = [rids[0]]
        done = asyncio.Event()

        async def send(code: str, oid: str, due: float) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            pool = idle[code]
            conn = pool.pop() if pool else connection()
            path, body = answer_request(code, oid)
            auth = {"Authorization": f"Bearer {tokens[code]}", "Idempotency-Key": f"bench-{oid}"}
            lateness.append(time.perf_counter() - due)
            try:
                status, raw = await conn.request("POST", path, auth, body)
            except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
                errors.append(f"{oid}: {type(exc).__name__}: {exc}")
                conn.close()
            else:
                pool.append(conn)
                statuses.append(status)
                if status != 200:
                    errors.append(f"{oid}: HTTP {status}: {raw[:200]!r}")
            now = time.perf_counter()
            latencies.append(now - due)
            finished.append(now)
            in_flight -= 1

        watchers = [asyncio.create_task(observe(connection(), tokens[f"observer{k}"], current, done, polls,
                                                poll_every)) for k in range(observers)]
        gc.collect()
        gc.freeze()  # what was built so far is not walked again by the collector while the schedule runs
        start = time.perf_counter() + 0.05
        tasks = []
        for i, (rid, code, oid) in enumerate(schedule):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            current[0] = rid
            tasks.append(asyncio.create_task(send(code, oid, due)))
        await asyncio.gather(*tasks)
        wall = max(finished) - start
        gc.unfreeze()
        done.set()
        await asyncio.gather(*watchers)
    finally:
        for c in conns:
            c.close()
    return {"answers": len(schedule), "latencies": latencies, "lateness": lateness, "statuses": statuses,
            "errors": errors, "polls": polls, "wall": wall, "scheduled_s": len(schedule) / rate, "peak": peak,
            "finished": finished, "start": start,
            "connections": len(conns)}


async def run_round(base: str, tokens: dict[str, str], rid: str, codes: list[str], observers: int,
                    poll_every: float = 0.0) -> dict[str, Any]:
    host, port = base.removeprefix("http://").split(":")
    conns: list[Loopback] = []

    def connection() -> Loopback:
        conns.append(Loopback(host, int(port)))
        return conns[-1]

    try:
        offers = await list_offers(connection(), tokens, rid)
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
                path, body = answer_request(code, oid)
                t0 = time.perf_counter()
                status, _ = await conn.request("POST", path, {**auth, "Idempotency-Key": f"bench-{oid}"}, body)
                latencies.append(time.perf_counter() - t0)
                statuses.append(status)

        watchers = [asyncio.create_task(observe(connection(), tokens[f"observer{k}"], [rid], done, polls, poll_every))
                    for k in range(observers)]
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


def _run(coro: Any) -> Any:
    """Run a coroutine on uvloop when installed (the client's event loop then costs less CPU; the
    server runs on it too), else on asyncio's own loop."""
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - a dependency, but the benchmark runs without it
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def _p95_by_second(lat: list[float], finished: list[float], start: float) -> list[float]:
    """p95 latency (ms) of the answers due in each second of the schedule (where a stall fell)."""
    by: dict[int, list[float]] = {}
    for latency, end in zip(lat, finished, strict=True):
        by.setdefault(int(end - latency - start), []).append(latency)
    return [_pct(by[k], 95) for k in sorted(by)]


def _summary(lat: list[float]) -> dict[str, float]:
    return {"p50": _pct(lat, 0.50), "p95": _pct(lat, 0.95), "p99": _pct(lat, 0.99), "max": max(lat) * 1e3,
            "mean": statistics.fmean(lat) * 1e3}


def _line(name: str, lat: list[float]) -> str:
    f = _summary(lat)
    return (f"{name} ms: p50 {f['p50']:.1f}  p95 {f['p95']:.1f}  p99 {f['p99']:.1f}  max {f['max']:.1f}  "
            f"mean {f['mean']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=("both", "open", "closed"), default="both",
                        help="open: answers on a fixed schedule (the goal); closed: back to back (peak throughput).")
    parser.add_argument("--rate", type=float, default=500.0, help="Open loop: answers sent per second.")
    parser.add_argument("--open-rounds", type=int, default=16,
                        help="Open loop: rounds whose answers are scheduled (165 offers each; 16 → 2,640 answers, "
                             "5.3 s at 500/s).")
    parser.add_argument("--rounds", type=int, default=4,
                        help="Closed loop: rounds answered one after another (165 offers each).")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes.")
    parser.add_argument("--observers", type=int, default=4, help="Observers polling while participants answer.")
    parser.add_argument("--poll-every", type=float, default=0.0,
                        help="Closed loop: seconds an observer waits between polls (0: back to back, the harshest "
                             "load).")
    parser.add_argument("--open-poll-every", type=float, default=0.05,
                        help="Open loop: seconds an observer waits between polls (default 0.05: each observer "
                             "reads a round's status or the ledger head 20 times a second; 0: back to back, which "
                             "takes whatever the server has left and so is no fixed load).")
    parser.add_argument("--json", type=Path, default=None,
                        help="Write the figures here (default benchmarks/results/service.json).")
    args = parser.parse_args()
    if (not 1 <= args.rounds <= 20 or not 1 <= args.open_rounds <= 40 or not 1 <= args.workers <= 3
            or not 1 <= args.observers <= 16 or not 10 <= args.rate <= 5000):
        parser.error("bounds: 1-20 rounds, 1-40 open-loop rounds, 10-5000 answers/s, 1-3 workers (the throwaway "
                     "server allows 50 connections), 1-16 observers")
    env = environment()
    print(env["summary"])
    n_open = args.open_rounds if args.mode != "closed" else 0
    n_closed = args.rounds if args.mode != "open" else 0
    load_before = os.getloadavg()
    out: dict[str, Any] = {"benchmark": "service", "environment": env, "workers": args.workers,
                           "observers": args.observers, "poll_every_s": args.poll_every,
                           "open_poll_every_s": args.open_poll_every,
                           "load_average_before": load_before}
    metrics: dict[str, float] = {}
    with ThrowawayPostgres(durable=True) as server:  # PostgreSQL's defaults: fsync on, synchronous commit
        url = _database(server, "bench")
        t0 = time.perf_counter()
        tokens, rids, codes = setup(url, 1 + n_open + n_closed, args.observers)
        open_rids, closed_rids = rids[1:1 + n_open], rids[1 + n_open:]
        print(f"setup: {len(codes)} participants, {len(rids)} approved demo rounds "
              f"({time.perf_counter() - t0:.1f} s); PostgreSQL with fsync on")
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "dosewise.service.app:app_from_env", "--factory",
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
                                 "--log-level", "warning", "--no-access-log"], env={**os.environ, "DOSEWISE_DB": url})
        base = f"http://127.0.0.1:{port}"
        def pace(every: float) -> str:
            return f"every {every:g} s" if every else "back to back"

        print(f"service: {args.workers} uvicorn worker(s), {len(codes)} participants, {args.observers} observers "
              f"polling {pace(args.open_poll_every)} in the open loop, {pace(args.poll_every)} in the closed loop; "
              f"{nproc()} CPU cores shared by server, database and client")

        def cpu() -> tuple[float, float, float]:
            return _cpu_seconds([proc.pid]), _cpu_seconds([_postmaster(server)]), sum(os.times()[:2])

        def cpu_per(a: tuple[float, float, float], b: tuple[float, float, float], n: int) -> dict[str, float]:
            return {k: (y - x) * 1e3 / n for k, x, y in zip(("server", "database", "client"), a, b, strict=True)}

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
            warm = _run(run_round(base, tokens, rids[0], codes, args.observers, args.poll_every))
            _run(warm_keys(base, tokens, args.workers))
            print(f"warm-up round: {warm['offers']} answers in {warm['wall']:.2f} s")
            if open_rids:
                c0 = cpu()
                res = _run(run_open(base, tokens, open_rids, codes, args.observers, args.open_poll_every,
                                   args.rate))
                c1 = cpu()
                lat, n = res["latencies"], res["answers"]
                ok = n - len(res["errors"])
                first_to_last = max(res["finished"]) - min(res["finished"])
                achieved = (ok - 1) / first_to_last if ok > 1 and first_to_last > 0 else 0.0
                with_tail = ok / res["wall"]
                p95 = _pct(lat, 0.95)
                # the rate delivered cannot exceed the rate offered but by jitter (the last answer a few ms
                # slower or faster than the first): a server keeps up when it delivers 99 % of it
                keeps_up = achieved >= 0.99 * args.rate
                met = args.rate >= 500 and keeps_up and p95 < 100 and not res["errors"]
                fig = {"rate_target": args.rate, "rounds": len(open_rids), "answers": n,
                       "errors": len(res["errors"]), "scheduled_s": res["scheduled_s"], "wall_s": res["wall"],
                       "answers_per_s": achieved, "answers_per_s_from_first_due": with_tail,
                       "latency_from_schedule_ms": _summary(lat),
                       "client_lateness_ms": _summary(res["lateness"]), "peak_in_flight": res["peak"],
                       "connections": res["connections"], "polls": len(res["polls"]),
                       "poll_latency_ms": _summary(res["polls"]) if res["polls"] else None,
                       "cpu_ms_per_answer": cpu_per(c0, c1, n),
                       "cpu_ms_per_request": cpu_per(c0, c1, n + len(res["polls"])), "keeps_up": keeps_up,
                       "goal_met": met}
                out["open_loop"] = fig
                print(f"\nOPEN LOOP (the goal): {n:,} answers due at {args.rate:,.0f}/s over "
                      f"{res['scheduled_s']:.2f} s "
                      f"({len(open_rids)} rounds); done in {res['wall']:.2f} s; {achieved:,.1f} answers/s from the "
                      f"first answer to the last ({with_tail:,.1f}/s from the first due time); "
                      f"errors {len(res['errors'])}; peak {res['peak']} in flight on {res['connections']} connections")
                print(_line("answer latency from scheduled send time", lat))
                print("p95 ms by second of the schedule: " + " ".join(
                    f"{v:.0f}" for v in _p95_by_second(lat, res["finished"], res["start"])))
                print(_line("client lateness writing requests (its own stalls)", res["lateness"]))
                if res["polls"]:
                    print(_line(f"poll latency ({len(res['polls']):,} polls)", res["polls"]))
                print("CPU ms per answer (polls included): "
                      + ", ".join(f"{k} {v:.2f}" for k, v in fig["cpu_ms_per_answer"].items()))
                print(f"CPU ms per request ({n:,} answers + {len(res['polls']):,} polls): "
                      + ", ".join(f"{k} {v:.2f}" for k, v in fig["cpu_ms_per_request"].items()))
                for e in res["errors"][:5]:
                    print(f"  error: {e}")
                print(f"goal (500 answers/s or more offered and delivered, i.e. at least 99 % of the offered rate, "
                      f"p95 < 100 ms from schedule, no errors): {'MET' if met else 'NOT met'} ({achieved:,.1f}/s "
                      f"delivered of {args.rate:,.0f}/s offered: {'keeps up' if keeps_up else 'falls behind'}; "
                      f"p95 {p95:.1f} ms)")
                metrics.update({"open_loop_latency_p50_s": fig["latency_from_schedule_ms"]["p50"] / 1e3,
                                "open_loop_latency_p95_s": p95 / 1e3,
                                "open_loop_latency_p99_s": fig["latency_from_schedule_ms"]["p99"] / 1e3,
                                "open_loop_server_cpu_s_per_answer": fig["cpu_ms_per_answer"]["server"] / 1e3})
            if closed_rids:
                c0 = cpu()
                lat, polls, statuses, wall = [], [], [], 0.0
                for rid in closed_rids:
                    res = _run(run_round(base, tokens, rid, codes, args.observers, args.poll_every))
                    lat += res["latencies"]
                    polls += res["polls"]
                    statuses += res["statuses"]
                    wall += res["wall"]
                c1 = cpu()
                n = len(lat)
                bad = sum(1 for s in statuses if s != 200)
                fig = {"rounds": len(closed_rids), "answers": n, "errors": bad, "wall_s": wall,
                       "answers_per_s": n / wall, "requests_per_s": (n + len(polls)) / wall,
                       "latency_ms": _summary(lat), "polls": len(polls),
                       "poll_latency_ms": _summary(polls) if polls else None, "cpu_ms_per_answer": cpu_per(c0, c1, n)}
                out["closed_loop"] = fig
                print(f"\nCLOSED LOOP (peak throughput): {n:,} answers, {len(codes)} participants each answering "
                      f"back to back ({bad} errors) in {wall:.2f} s → {n / wall:,.0f} answers/s; "
                      f"all requests incl. polls: {(n + len(polls)) / wall:,.0f} requests/s")
                print(_line("answer latency (about participants in flight / throughput, by Little's law)", lat))
                if polls:
                    print(_line(f"poll latency ({len(polls):,} polls)", polls))
                print("CPU ms per answer (polls included): "
                      + ", ".join(f"{k} {v:.2f}" for k, v in fig["cpu_ms_per_answer"].items()))
                metrics.update({"closed_loop_s_per_answer": wall / n,
                                "closed_loop_server_cpu_s_per_answer": fig["cpu_ms_per_answer"]["server"] / 1e3})
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        load_after = os.getloadavg()
        out["load_average_after"] = load_after
        print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
        check(url, rids)
        # baseline on a fresh round of the same ledger
        with Desk.open(url) as desk:
            desk.propose_round(api.load("demo"), identity="carla", round_id="baseline")
            desk.approve_round("baseline", identity="rita")
        direct = baseline(url, "baseline", codes)
        out["baseline_answers_per_s"] = direct
        print(f"\nbaseline: Desk.respond in process, sequential: {direct:,.0f} answers/s"
              + "".join(f"; {name} loop/baseline = {out[key]['answers_per_s'] / direct:.2f}"
                        for name, key in (("open", "open_loop"), ("closed", "closed_loop")) if key in out))
        out["metrics"] = metrics
        print(f"figures written to {write_results('service', out, args.json)}")
        assert not out.get("open_loop", {}).get("errors") and not out.get("closed_loop", {}).get("errors")


def nproc() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    main()
