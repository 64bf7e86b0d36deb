"""The parties' checks on the ledger: checkpoints, proofs and signed verification.

Run: ``.venv/bin/python benchmarks/ledger.py [--trust-events N] [--signed-every K]``
(appends, the chain check and state rebuild on their own: ``benchmarks/ledger_state.py``).

Figures are printed and written to ``benchmarks/results/ledger.json`` (kept out of the repository).

* Trust: appends with a signed checkpoint every 1,000 events (baseline: the same appends
  without); a log of N events where every K-th is a participant's signed answer (the demo
  rounds' ledger has one answer per offer: K = 2); inclusion and consistency proofs as library
  calls (each opens its own connection; baseline: the same proof built by reading every event
  hash and hashing the tree, as one would without the node cache); full verification (hash
  chain, Merkle tree, every signature, a held checkpoint; baseline: the hash chain alone); and
  the commands a party runs, timed end to end as processes.

Targets: >= 5,000 events/s appended in batches on SQLite with a checkpoint every 1,000
events; inclusion and consistency proofs in a 1M-event log < 10 ms;
full verification of 1M events with signatures < 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table

from dosewise.ledger import NewEvent, merkle, open_store
from dosewise.ledger import tree as ledger_tree
from dosewise.ledger.audit import verify_ledger
from dosewise.ledger.checkpoints import checkpoint, write_file
from dosewise.ledger.merkle import leaf_hash, node_hash, verify_inclusion
from dosewise.ledger.signing import Signer, registration
from dosewise.ledger.tree import open_view

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ledger_state import PARTICIPANTS, make_events  # the same events the state benchmark appends


def trust_events(n: int, start: int, signers: dict[str, Signer], signed_every: int) -> list[NewEvent]:
    """A round-like stream: offers by the secretariat; every ``signed_every``-th event a participant's
    signed answer (the demo rounds' ledger has one answer per offer, i.e. every 2nd event)."""
    out = []
    for k in range(start, start + n):
        code = PARTICIPANTS[k % len(PARTICIPANTS)]
        if signed_every and k % signed_every == signed_every - 1:
            out.append(signers[code].sign(NewEvent(
                type="offer.accepted", actor=code, round_id=f"R{k // 10_000}", offer_id=f"O{k - 1}",
                participant=code, payload={"doses": 2400 * (1 + k % 50)}, unique_slot=f"offer:O{k - 1}:response")))
        else:
            out.append(NewEvent(type="offer.made", actor="secretariat", round_id=f"R{k // 10_000}", offer_id=f"O{k}",
                                lot_id=f"AZ-{k % 97:03d}", participant=code,
                                payload={"doses": 2400 * (1 + k % 50), "product": "AZD1222"}))
    return out


def ed25519_verify_us(n: int = 2000) -> dict[str, float]:
    """One Ed25519 verification on this machine now, by OpenSSL (cryptography) and by libsodium
    (PyNaCl, what verify uses), interleaved: the floor of a verify with signatures."""
    from nacl.signing import VerifyKey

    key = Ed25519PrivateKey.generate()
    msg = b"x" * 300
    sig = key.sign(msg)
    pub = key.public_key()
    nacl_key = VerifyKey(pub.public_bytes_raw())
    out = {"cryptography_us": 0.0, "pynacl_us": 0.0}
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            pub.verify(sig, msg)
        out["cryptography_us"] += (time.perf_counter() - t0) / n * 1e6 / 3
        t0 = time.perf_counter()
        for _ in range(n):
            nacl_key.verify(msg, sig)
        out["pynacl_us"] += (time.perf_counter() - t0) / n * 1e6 / 3
    return out


def cpu_s() -> float:
    """CPU seconds of this process and of its children that ended (the verify's workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def verify_breakdown(store: Any, n: int) -> dict[str, float]:
    """What a full verify spends, stage by stage, each over the whole log in this one process."""
    from dosewise.ledger import walk
    from dosewise.ledger.audit import _key_pass
    from dosewise.ledger.events import verify_rows

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    rows = list(store.rows())
    out["read every row (SQLite, columnar tuples)"] = time.perf_counter() - t0
    assert len(rows) == n
    t0 = time.perf_counter()
    assert verify_rows(rows).ok
    out["hash chain: recompute every hash, compare links"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    merkle.root_from_leaves(bytes.fromhex(r[13]) for r in rows)
    out["Merkle tree over every event"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    keys = _key_pass(store)
    out["key registry (key events only)"] = time.perf_counter() - t0
    raw = {who: recs[-1].key.raw for who, recs in keys.registry.history.items()}
    t0 = time.perf_counter()
    tasks = []
    for r in rows:
        if r[8] in raw and r[2] not in ("key.registered", "key.revoked"):
            payload = walk._DECODER.decode(r[7])
            stamp = walk._stamp(payload)
            assert not isinstance(stamp, str)
            message = walk._text_form(r, r[7], payload["signature"])  # what verify builds first
            assert message is not None
            tasks.append((raw[r[8]], stamp[1], message))
    out["parse signed payloads, build the signed form (RFC 8785)"] = time.perf_counter() - t0
    del rows
    t0 = time.perf_counter()
    assert all(walk._verify(k, sig, msg) for k, sig, msg in tasks)
    out[f"Ed25519: {len(tasks):,} signatures (libsodium)"] = time.perf_counter() - t0
    return out


def _ms(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {"median_ms": 1000 * statistics.median(samples), "p95_ms": 1000 * samples[int(0.95 * (len(samples) - 1))],
            "max_ms": 1000 * samples[-1]}


def appends_with_checkpoints(tmp: Path, n: int, batch: int, every: int) -> dict[str, float]:
    key = Ed25519PrivateKey.generate()
    results = {}
    for label, with_cp in (("without checkpoints (baseline)", False), ("with a checkpoint every 1,000 events", True)):
        store = open_store(str(tmp / f"cp-{with_cp}.db"))
        events = make_events(n)
        store.append(make_events(10, start=10**9))  # warm-up, not counted
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            store.append(events[i:i + batch])
            if with_cp and (i + batch) % every == 0:
                checkpoint(store, key)
        results[label] = n / (time.perf_counter() - t0)
        assert verify_ledger(store).ok
        store.close()
    return results


def trust(tmp: Path, n: int, signed_every: int, console: Console, out: dict[str, Any]) -> None:
    rate = appends_with_checkpoints(tmp, 50_000, 1000, 1000)
    base, with_cp = rate["without checkpoints (baseline)"], rate["with a checkpoint every 1,000 events"]
    out["append_sqlite"] = {"events": 50_000, "batch": 1000, "checkpoint_every": 1000,
                            "events_per_s_with_checkpoints": with_cp, "events_per_s_baseline": base}
    t = Table(title="appends on SQLite (WAL, synchronous=FULL), batches of 1,000, 50,000 events")
    for col in ("run", "events/s"):
        t.add_column(col, justify="right" if col != "run" else "left")
    t.add_row("without checkpoints (baseline)", f"{base:,.0f}")
    t.add_row("with a signed checkpoint every 1,000 events", f"{with_cp:,.0f}")
    console.print(t)
    console.print(f"target >= 5,000 events/s with checkpoints: {'met' if with_cp >= 5000 else 'NOT met'} "
                  f"({with_cp / base:.2f}x the rate without)")

    # the large log ------------------------------------------------------------------------------
    path = tmp / "trust.db"
    store = open_store(str(path))
    signers = {c: Signer(Ed25519PrivateKey.generate()) for c in PARTICIPANTS}
    store.append([registration(s, c, "participant") for c, s in signers.items()])
    chunk = 20_000
    t0 = time.perf_counter()
    done = len(signers)
    while done < n:
        k = min(chunk, n - done)
        store.append(trust_events(k, done, signers, signed_every))
        done += k
    t_fill = time.perf_counter() - t0
    ledger_key = Ed25519PrivateKey.generate()
    t0 = time.perf_counter()
    cp = checkpoint(store, ledger_key)
    t_first_cp = time.perf_counter() - t0
    assert cp.tree_size == n
    rng = random.Random(7)

    # inclusion proofs: each call opens a connection, reads ~40 cached nodes and a few event hashes
    leaves = rng.sample(range(n), 1000)
    times = []
    for i in leaves:
        t0 = time.perf_counter()
        proof = ledger_tree.inclusion_proof(store, i, n)
        times.append(time.perf_counter() - t0)
    with open_view(store) as view:
        hashes = view.backend.leaves(leaves[0], leaves[0] + 1)
    verify_inclusion(leaves[0], n, leaf_hash(hashes[0]), ledger_tree.inclusion_proof(store, leaves[0], n), cp.root)
    inclusion = _ms(times)
    ctimes = []
    pairs = [(rng.randrange(1, n), n) for _ in range(500)]
    pairs += [(a, b) for a, b in (sorted(rng.sample(range(1, n), 2)) for _ in range(500))]
    for m, size in pairs:
        t0 = time.perf_counter()
        proof = ledger_tree.consistency_proof(store, m, size)
        ctimes.append(time.perf_counter() - t0)
    assert proof
    consistency = _ms(ctimes)

    # baseline: what one writes without a node cache: read every event hash, build the tree, prove
    def plain_proof(index: int) -> list[bytes]:
        with open_view(store) as view:
            raw = view.backend.leaves(0, n)
        level = [leaf_hash(x) for x in raw]
        nodes: dict[tuple[int, int], bytes] = {(0, j): h for j, h in enumerate(level)}
        lv = 0
        while len(level) > 1:
            level = [node_hash(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
            lv += 1
            nodes.update({(lv, j): h for j, h in enumerate(level)})
        return merkle.inclusion_proof(index, n, lambda wanted: {w: nodes[w] for w in wanted})

    t0 = time.perf_counter()
    base_proof = plain_proof(leaves[0])
    t_plain = time.perf_counter() - t0
    assert base_proof == ledger_tree.inclusion_proof(store, leaves[0], n)

    # end to end: the commands a party runs
    env = {**os.environ, "DOSEWISE_DB": str(path), "COLUMNS": "200"}
    cpf, rcf = tmp / "cp.json", tmp / "receipt.json"
    write_file(cp, cpf)
    exe = [sys.executable, "-m", "dosewise.cli"]
    t0 = time.perf_counter()
    subprocess.run([*exe, "ledger", "prove", str(leaves[1] + 1), "--out", str(rcf)], env=env, check=True,
                   capture_output=True)
    t_prove_cli = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([*exe, "ledger", "verify-receipt", str(rcf), "--checkpoint", str(cpf)], env=env, check=True,
                   capture_output=True)
    t_receipt_cli = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([*exe, "--version"], env=env, check=True, capture_output=True)
    t_startup = time.perf_counter() - t0

    # full verification with signatures, against the held checkpoint
    t0 = time.perf_counter()
    chain = store.verify()
    t_chain = time.perf_counter() - t0
    assert chain.ok and chain.checked == n
    load_full = os.getloadavg()
    c0, t0 = cpu_s(), time.perf_counter()
    report = verify_ledger(store, [("held", cp)])
    t_full, c_full = time.perf_counter() - t0, cpu_s() - c0
    assert report.ok, report.problems()[:3]
    c0, t0 = cpu_s(), time.perf_counter()
    one = verify_ledger(store, [("held", cp)], workers=1)
    t_full_1, c_full_1 = time.perf_counter() - t0, cpu_s() - c0
    assert one.ok
    load_one = os.getloadavg()
    stages = verify_breakdown(store, n)
    t0 = time.perf_counter()
    subprocess.run([*exe, "ledger", "verify", "--checkpoint", str(cpf)], env=env, check=True, capture_output=True)
    t_verify_cli = time.perf_counter() - t0
    store.close()

    out["log"] = {"events": n, "signed_events": report.signatures_checked, "fill_s": t_fill,
                  "first_checkpoint_s": t_first_cp, "file_mib": path.stat().st_size / 2**20}
    out["inclusion_proof"] = {**inclusion, "proofs": len(times), "baseline_no_cache_s": t_plain}
    out["consistency_proof"] = {**consistency, "proofs": len(ctimes)}
    out["verify"] = {"full_with_signatures_s": t_full, "full_with_signatures_1_process_s": t_full_1,
                     "full_cpu_s": c_full, "full_1_process_cpu_s": c_full_1,
                     "load_avg_before_full": load_full, "load_avg_after_1_process": load_one,
                     "chain_only_baseline_s": t_chain, "cli_verify_with_checkpoint_s": t_verify_cli,
                     "signatures": report.signatures_checked, "workers": os.cpu_count(),
                     "stages_1_process_s": stages}
    out["cli"] = {"prove_s": t_prove_cli, "verify_receipt_s": t_receipt_cli, "startup_s": t_startup}

    t = Table(title=f"a log of {n:,} events, {report.signatures_checked:,} of them signed "
                    f"(SQLite, {path.stat().st_size / 2**20:,.0f} MiB)")
    for col in ("measurement", "figure", "baseline (same run)"):
        t.add_column(col, justify="right" if col != "measurement" else "left")
    t.add_row("build the log (append in batches of 20,000, signing answers)", f"{t_fill:.1f} s", "")
    t.add_row("first checkpoint (fills the node cache for the whole log)", f"{t_first_cp:.2f} s", "")
    t.add_row("inclusion proof, library call (median / p95 / max)",
              f"{inclusion['median_ms']:.2f} / {inclusion['p95_ms']:.2f} / {inclusion['max_ms']:.2f} ms",
              f"{t_plain:.1f} s without the node cache ({t_plain * 1000 / inclusion['median_ms']:,.0f}x)")
    t.add_row("consistency proof, library call (median / p95 / max)",
              f"{consistency['median_ms']:.2f} / {consistency['p95_ms']:.2f} / {consistency['max_ms']:.2f} ms", "")
    t.add_row(f"full verify: chain + tree + {report.signatures_checked:,} signatures + checkpoint, "
              f"{os.cpu_count()} processes", f"{t_full:.1f} s ({c_full:.1f} CPU s)", f"{t_chain:.1f} s hash chain only")
    t.add_row("  the same in this process only", f"{t_full_1:.1f} s ({c_full_1:.1f} CPU s)",
              f"{t_full_1 / t_full:.2f}x the time of {os.cpu_count()} processes")
    t.add_row("`dosewise ledger verify --checkpoint` (end to end)", f"{t_verify_cli:.1f} s", "")
    t.add_row("`dosewise ledger prove` (end to end)", f"{t_prove_cli:.2f} s", f"{t_startup:.2f} s `dosewise --version`")
    t.add_row("`dosewise ledger verify-receipt` (end to end, no database)", f"{t_receipt_cli:.2f} s", "")
    console.print(t)
    b = Table(title=f"where a full verify of {n:,} events goes: each stage alone over the whole log, one process")
    for col in ("stage", "seconds", "share"):
        b.add_column(col, justify="right" if col != "stage" else "left")
    total = sum(stages.values())
    for stage, secs in stages.items():
        b.add_row(stage, f"{secs:.2f}", f"{secs / total:.0%}")
    b.add_row("sum of the stages", f"{total:.2f}", "")
    console.print(b)
    console.print(f"load average {load_full[0]:.2f} before the full verify, {load_one[0]:.2f} after the one-process "
                  f"run ({os.cpu_count()} CPUs); CPU seconds do not depend on the load as much as wall time does")
    console.print(f"targets: inclusion < 10 ms {'met' if inclusion['p95_ms'] < 10 else 'NOT met'} (p95); "
                  f"consistency < 10 ms {'met' if consistency['p95_ms'] < 10 else 'NOT met'} (p95); "
                  f"full verify < 30 s {'met' if t_full < 30 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trust-events", type=int, default=1_000_000, help="events in the log for proofs and verify")
    parser.add_argument("--signed-every", type=int, default=2, help="every K-th event is a signed answer")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "ledger.json",
                        help="where to write figures")
    args = parser.parse_args()
    console = Console()
    figures: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "platform": platform.platform(), "load_avg_at_start": os.getloadavg(),
                                           "ed25519_verify_at_start": ed25519_verify_us()},
                               "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        trust(Path(tmp), args.trust_events, args.signed_every, console, figures)
    figures["machine"]["load_avg_at_end"] = os.getloadavg()
    figures["machine"]["ed25519_verify_at_end"] = ed25519_verify_us()
    ed = figures["machine"]["ed25519_verify_at_end"]
    console.print(f"one Ed25519 verification now: {ed['pynacl_us']:.0f} us by libsodium (PyNaCl, used), "
                  f"{ed['cryptography_us']:.0f} us by OpenSSL (cryptography)")
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
