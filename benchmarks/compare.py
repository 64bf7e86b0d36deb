"""Compare fresh benchmark figures with the stored baseline and flag regressions.

Run the benchmarks (each writes ``benchmarks/results/<name>.json``), then::

    .venv/bin/python benchmarks/compare.py [--threshold 0.30] [--baseline benchmarks/baseline.json]

Every figure under ``metrics`` is a time in seconds (lower is better). A figure more than
``threshold`` (default 30%) slower than the stored one is flagged, and the script exits 1 if
any is. Figures measured on a machine with another core count are compared but marked, since
they are not like for like. ``--update`` stores the fresh figures as the new baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_results(folder: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
            out[str(data.get("benchmark") or path.stem)] = data
    return out


def compare(baseline: dict[str, Any], fresh: dict[str, dict[str, Any]], threshold: float) -> tuple[list[str], int]:
    """Lines of a report and the number of regressions."""
    lines: list[str] = []
    regressions = 0
    stored: dict[str, Any] = baseline.get("benchmarks", {})
    for name in sorted(set(stored) | set(fresh)):
        old, new = stored.get(name), fresh.get(name)
        if old is None:
            lines.append(f"{name}: no stored baseline (run with --update to store it)")
            continue
        if new is None:
            lines.append(f"{name}: not run")
            continue
        old_cores = old.get("environment", {}).get("cores")
        new_cores = new.get("environment", {}).get("cores")
        note = "" if old_cores == new_cores else f"  (cores {old_cores} → {new_cores}: not like for like)"
        lines.append(f"{name}{note}")
        for key in sorted(set(old["metrics"]) | set(new["metrics"])):
            a, b = old["metrics"].get(key), new["metrics"].get(key)
            if a is None or b is None:
                lines.append(f"  {key:<58} {'—' if a is None else f'{a:9.4f}'} → {'—' if b is None else f'{b:9.4f}'}"
                             "  (not in both)")
                continue
            change = (b - a) / a if a > 0 else 0.0
            flag = "REGRESSION" if change > threshold else ("faster" if change < -threshold else "")
            regressions += flag == "REGRESSION"
            lines.append(f"  {key:<58} {a:9.4f} → {b:9.4f} s  {change:+7.1%}  {flag}")
    return lines, regressions


def markdown(fresh: dict[str, dict[str, Any]]) -> str:
    """The README table (workload, figure, baseline, ratio) from fresh results."""
    rows: list[tuple[str, str, str, str]] = []

    def ms(x: float) -> str:
        return f"{x * 1e3:,.1f} ms" if x < 1 else f"{x:,.2f} s"

    if "startup" in fresh:
        figs = fresh["startup"]["figures"]
        base = figs.get("python -c 'import typer, rich'", {}).get("median_s")
        for k, v in figs.items():
            if v.get("goal_s") is not None:
                rows.append((f"`dosewise {k}` (whole process; goal < {v['goal_s']} s)", ms(v["median_s"]),
                             f"python + typer + rich {ms(base)}" if base else "—",
                             f"{v['median_s'] / base:.1f}× the bare CLI stack" if base else "—"))
    if "units" in fresh:
        for k, v in fresh["units"]["figures"].items():
            kind, n = k.split("_")
            o, b = v["ours"], v["baseline"]
            rows.append((f"{int(n):,} units from {kind.upper()} → `dosewise allocate` (whole process, peak "
                         f"{o['peak_rss_bytes'] / 2**20:,.0f} MiB; goal < {v['goal_s']} s)", ms(o["median_s"]),
                         f"{v.get('baseline_is', 'python + pandas.read_csv')} {ms(b['median_s'])}",
                         f"{o['median_s'] / b['median_s']:.1f}× it"))
    if "allocate" in fresh:
        for v in fresh["allocate"]["workloads"].values():
            rows.append((f"pro rata, {v['participants']:,} participants × {v['lots']} lots", ms(v["ours"]["median_s"]),
                         f"sort-based loop {ms(v['baseline']['median_s'])}", f"{v['ratio']:.1f}× faster"))
    if "surveillance" in fresh:
        d = fresh["surveillance"]
        ind, base = d["steps"]["indicators"]["median_s"], d["baseline"]["median_s"]
        rows.append((f"surveillance indicators, WHO weekly file ({d['rows']:,} rows)", ms(ind),
                     f"vectorised pandas {ms(base)}", f"{d['ratio_indicators']:.1f}× faster"))
        total = sum(d["steps"][k]["median_s"] for k in ("read", "indicators", "flags", "need"))
        rows.append(("surveillance read + indicators + flags + need (goal < 1 s)", ms(total), "—", "—"))
    if "ledger_state" in fresh:
        f = fresh["ledger_state"]["figures"]
        for backend, r in f.get("appends", {}).items():
            rows.append((f"ledger append, {backend}, batches of 1,000", f"{r['batched_per_s']:,.0f} events/s",
                         f"1 event per transaction {r['single_per_s']:,.0f} events/s",
                         f"{r['batched_per_s'] / r['single_per_s']:.1f}×"))
        rb = f.get("rebuild")
        if rb:
            for key, what in (("verify", "verify (chain check only)"), ("read", "read every event"),
                              ("rebuild", "rebuild round state (read + project)")):
                rows.append((f"ledger {what}, {rb['events']:,} events, SQLite", ms(rb[key]["median_s"]), "—", "—"))
            base = rb["rebuild"]["median_s"]
            for key, what in (("snapshot_open_head", "open a round from its snapshot (goal < 1 s)"),
                              ("snapshot_open", f"open a round from a snapshot + {rb.get('snapshot_tail', 0):,} "
                                                "events")):
                if key in rb:
                    t = rb[key]["median_s"]
                    rows.append((f"{what}, {rb['events']:,} events, SQLite", ms(t), f"full rebuild {ms(base)}",
                                 f"{base / t:.1f}× faster"))
    if "rounds" in fresh:
        for label, fig in fresh["rounds"]["figures"].items():
            a, b = fig["declines_20pct"], fig["no_declines"]
            rows.append((f"round for every WPP country, 20% declines, {label} ledger ({a['events']:,.0f} events)",
                         ms(a["total_s"]), f"no declines {ms(b['total_s'])}", f"{a['total_s'] / b['total_s']:.2f}×"))
    out = ["| workload | figure (median) | baseline | ratio |", "| --- | --- | --- | --- |"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=HERE / "baseline.json")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--threshold", type=float, default=0.30, help="flag figures slower by more than this share")
    parser.add_argument("--update", action="store_true", help="store the fresh figures as the baseline")
    parser.add_argument("--markdown", action="store_true", help="print the README table of the fresh figures")
    args = parser.parse_args()
    fresh = load_results(args.results)
    if not fresh:
        raise SystemExit(f"no results in {args.results}; run the benchmarks first")
    if args.markdown:
        print(markdown(fresh))
        return
    baseline: dict[str, Any] = (json.loads(args.baseline.read_text(encoding="utf-8"))
                                if args.baseline.exists() else {"benchmarks": {}})
    if args.update:
        for name, data in fresh.items():
            baseline.setdefault("benchmarks", {})[name] = {"environment": data.get("environment", {}),
                                                           "metrics": data["metrics"]}
        args.baseline.write_text(json.dumps(baseline, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"stored {', '.join(sorted(fresh))} in {args.baseline}")
        return
    lines, regressions = compare(baseline, fresh, args.threshold)
    print("\n".join(lines))
    print(f"{regressions} regression(s) over {args.threshold:.0%}")
    sys.exit(1 if regressions else 0)


if __name__ == "__main__":
    main()
