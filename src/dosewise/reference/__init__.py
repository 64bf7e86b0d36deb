"""Reference data read at run time from the PyPI packages that ship them.

- population by 5-year age band: UN World Population Prospects 2024 (``starsim-data``)
- World Bank income level and UN M49 region: OCHA countries & territories taxonomy
  (``hdx-python-country``, offline copy)
- ISO 3166 codes and names: ``pycountry``
- named participant groups (COVAX AMC92): :mod:`dosewise.reference.groups`
"""

from dosewise.reference.countries import country_info, country_name, validate_iso3
from dosewise.reference.groups import group_members, known_groups
from dosewise.reference.population import AGE_BANDS, population_by_age, wpp_coverage

__all__ = [
    "AGE_BANDS",
    "country_info",
    "country_name",
    "group_members",
    "known_groups",
    "population_by_age",
    "validate_iso3",
    "wpp_coverage",
]
