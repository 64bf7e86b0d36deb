"""Surveillance: readers for WHO and OWID files and situation reports, weekly indicators,
data-quality flags and a documented need score.

Flow: ``read_who_weekly`` (+ ``read_owid`` / ``read_who_vaccination``, ``read_sitreps``,
``read_undp_deliveries``) → ``compute_indicators`` → ``quality_flags`` → ``need_scores`` → ``need_for`` (policies).
"""

from dosewise.surveillance.indicators import (
    DEFAULT_COVERAGE_TARGET,
    Panel,
    compute_indicators,
    indicator_panel,
    weekly_tests_from_owid,
    weekly_tests_from_sitreps,
)
from dosewise.surveillance.need import NeedWeights, need_for, need_from_feed, need_panel, need_scores
from dosewise.surveillance.pull import SOURCES, PullResult, pull
from dosewise.surveillance.quality import FLAGS, quality_flags
from dosewise.surveillance.readers import (
    SitrepRecord,
    read_owid,
    read_sitreps,
    read_undp_deliveries,
    read_who_vaccination,
    read_who_vaccination_metadata,
    read_who_weekly,
)

__all__ = [
    "DEFAULT_COVERAGE_TARGET",
    "FLAGS",
    "SOURCES",
    "NeedWeights",
    "Panel",
    "PullResult",
    "SitrepRecord",
    "compute_indicators",
    "indicator_panel",
    "need_for",
    "need_from_feed",
    "need_panel",
    "need_scores",
    "pull",
    "quality_flags",
    "read_owid",
    "read_sitreps",
    "read_undp_deliveries",
    "read_who_vaccination",
    "read_who_vaccination_metadata",
    "read_who_weekly",
    "weekly_tests_from_owid",
    "weekly_tests_from_sitreps",
]
