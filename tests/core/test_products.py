from __future__ import annotations

import csv
import math
from pathlib import Path

from dosewise.products import builtin_products, catalogue, resolve_product

SHARED_TO_PACKAGE = {"Gam-COVID-Vac": "Gam-COVID-Vac", "BNT162b2": "BNT162b2", "mRNA-1273": "mRNA-1273",
                     "AZD1222": "AZD1222", "Ad26.COV2.S": "Ad26.COV2.S", "BBIBP-CorV": "BBIBP-CorV",
                     "CoronaVac": "CoronaVac"}


def test_catalogue_agrees_with_the_sourced_table(shared_data: Path) -> None:
    cat = catalogue()
    with open(shared_data / "vaccines" / "vaccine_products.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["product"] for r in rows} == set(SHARED_TO_PACKAGE)
    for r in rows:
        p = cat[SHARED_TO_PACKAGE[r["product"]]]
        assert p.doses_per_course == int(r["doses_primary_course"])
        assert math.isclose(p.efficacy_symptomatic or -1, float(r["efficacy_symptomatic_pct"]) / 100)
        if r["efficacy_severe_pct"]:
            assert math.isclose(p.efficacy_severe or -1, float(r["efficacy_severe_pct"]) / 100)
        else:
            assert p.efficacy_severe is None  # unverified: left empty, never a made-up number


def test_every_figure_has_a_source() -> None:
    figures = {"doses_per_course", "interval_days", "storage_class", "shelf_life_days", "shipping_unit",
               "efficacy_symptomatic", "efficacy_severe"}
    products = builtin_products()
    assert {"CoronaVac", "BBIBP-CorV", "AZD1222", "Covishield", "BNT162b2", "mRNA-1273", "Ad26.COV2.S",
            "Gam-COVID-Vac", "NVX-CoV2373"} <= {p.id for p in products}
    for p in products:
        assert figures <= set(p.sources), (p.id, figures - set(p.sources))


def test_aliases_resolve() -> None:
    cat = catalogue()
    assert resolve_product("sputnik v", cat) == "Gam-COVID-Vac"
    assert resolve_product("Sinovac", cat) == "CoronaVac"
    assert resolve_product("nope", cat) is None
