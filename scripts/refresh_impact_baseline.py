"""Recompute the impact model's regression baseline and write tests/impact/baseline.json.

Run after a deliberate change to the model: ``.venv/bin/python scripts/refresh_impact_baseline.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from dosewise.regression import baseline_figures

OUT = Path(__file__).resolve().parents[1] / "tests" / "impact" / "baseline.json"


def main() -> None:
    figures = baseline_figures()
    OUT.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    s = figures["summary"]
    print(f"wrote {OUT}: deaths averted {s['deaths_averted']:,.0f} of {s['deaths_no_vaccine']:,.0f}")


if __name__ == "__main__":
    main()
