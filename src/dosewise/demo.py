"""The built-in demo: the first COVAX AstraZeneca round among the AMC92 participants, then the
CoronaVac doses for DPRK, declined and reallocated, all recorded on a verifiable ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from dosewise.ledger import Store
from dosewise.rounds import Rounds, RoundState


def _text(name: str) -> str:
    return (resources.files("dosewise") / "data" / name).read_text(encoding="utf-8")


def coronavac_round_yaml() -> str:
    """The CoronaVac round's scenario, with the AMC92 participants of the first round merged in."""
    first: dict[str, Any] = yaml.safe_load(_text("demo_amc92.yaml"))
    second: dict[str, Any] = yaml.safe_load(_text("demo_coronavac.yaml"))
    second["participants"] = first["participants"]
    second["sources"] = {**first.get("sources", {}), **second.get("sources", {})}
    return yaml.safe_dump(second, sort_keys=False, allow_unicode=True)


@dataclass
class DemoResult:
    first: RoundState
    second: RoundState


def run_demo_rounds(store: Store, *, who: Any = None) -> DemoResult:
    """Record both demo rounds in ``store`` and play them out as scripted; with a WHO weekly
    file, the declined doses are re-offered by need score as of :data:`DEMO_NEED_AS_OF`."""
    rounds = Rounds(store, actor="covax-demo")
    first = rounds.open(_text("demo_amc92.yaml"), file="demo_amc92.yaml", round_id="demo-amc92-az-2021-02")
    rounds.play(first)
    second = rounds.open(coronavac_round_yaml(), file="demo_coronavac.yaml")
    if who is not None:
        from dosewise.policies.need_weighted import need_from_files

        rounds.need = need_from_files(rounds.world(second), str(who), DEMO_NEED_AS_OF)
    rounds.play(second)
    return DemoResult(first=rounds.state(first), second=rounds.state(second))


DEMO_NEED_AS_OF = dt.date(2021, 8, 29)
"""The week before the CoronaVac round opened: the need ranking the reallocation uses."""


def run_demo_story(*, db: str | None, who: Any, console: Any) -> DemoResult:
    """Print the demo's round story: DPRK's decline, where the doses went and why, and the ledger check."""
    from dosewise.ledger import open_store
    from dosewise.rounds_cli import print_offers, print_status

    store = open_store(db or "memory")
    if who is None:
        from dosewise.surveillance.pull import SOURCES, default_cache_dir

        cached = default_cache_dir() / SOURCES["who"].filename
        who = cached if cached.exists() else None
    if who is not None:
        console.print(f"need scores as of {DEMO_NEED_AS_OF} from {who}")
    result = run_demo_rounds(store, who=who)
    second = result.second
    console.rule(f"[bold]2. {second.opened['name']}")
    console.print(yaml.safe_load(_text("demo_coronavac.yaml"))["description"].strip())
    prk = next(o for o in second.offers.values() if o["participant"] == "PRK")
    console.print(
        f"DPRK was offered {prk['doses']:,} CoronaVac doses and [bold]{prk['status']}[/] them "
        f"(reason: {prk['reason']}; note: {prk['note']}; wish: {prk['wish']})."
    )
    for p in second.passes:
        for lot, info in p["lots"].items():
            order = ("need score (highest first)" if p["order"] == "need"
                     else "pro rata to population (no surveillance file: pass --who FILE or run "
                     "`dosewise data pull who` to rank by need)")
            console.print(f"pass {p['pass']} on {p['on']}: {info['pool']:,} doses of {lot} re-offered by {order}; "
                          f"{len(info['offered'])} offers")
            for why, codes in info["skipped"].items():
                console.print(f"  skipped ({why}): {', '.join(codes[:12])}{' …' if len(codes) > 12 else ''}")
    print_offers(second, limit=12, compact=True)
    print_status(result.first)
    print_status(second)
    report = store.verify()
    console.print(f"ledger verify: {'[green]OK[/]' if report.ok else '[red]FAILED[/]'} — {report.checked} events, "
                  f"head {report.head_hash[:16] if report.head_hash else '-'}…"
                  + (f" (written to {db}; check with `dosewise ledger verify --db {db}`)" if db else ""))
    store.close()
    return result
