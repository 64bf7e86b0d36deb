"""Demo situation-report records, each with its source.

DPRK reported its testing to WHO's South-East Asia Regional Office, which published it in
its weekly COVID-19 situation reports; the figures below are as those reports were quoted
by the press (the reports themselves were not retrieved here). Every record has zero
confirmed cases, which :func:`dosewise.surveillance.quality.quality_flags` flags as
``zero_cases_with_testing``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DPRK_SITREPS"]

DPRK_SITREPS: list[dict[str, Any]] = [
    {
        "participant": "PRK",
        "period_start": "2021-05-28",
        "period_end": "2021-06-03",
        "people_tested": 710,
        "samples_tested": None,
        "cases": 0,
        "deaths": None,
        "source": "WHO SEARO COVID-19 weekly situation report, as quoted by NK News (5 Aug 2021): "
        "710 tested 28 May-3 Jun 2021; 29,615 people and 58,956 samples tested cumulatively",
    },
    {
        "participant": "PRK",
        "period_start": "2021-07-30",
        "period_end": "2021-08-05",
        "people_tested": 693,
        "samples_tested": None,
        "cases": 0,
        "deaths": None,
        "source": "WHO COVID-19 weekly situation report, as quoted by Yonhap (18 Aug 2021): "
        "693 tested 30 Jul-5 Aug 2021; 35,947 people tested cumulatively, no confirmed case",
    },
    {
        "participant": "PRK",
        "period_start": "2021-10-08",
        "period_end": "2021-10-14",
        "people_tested": 678,
        "samples_tested": None,
        "cases": 0,
        "deaths": None,
        "source": "WHO COVID-19 weekly situation report, as quoted by Yonhap (26 Oct 2021): "
        "678 tested 8-14 Oct 2021; 42,773 people tested cumulatively, no confirmed case",
    },
]
