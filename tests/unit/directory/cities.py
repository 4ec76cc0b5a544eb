"""The synthetic cities the directory's tests import, generated once per test session."""

from __future__ import annotations

import functools

from synthcity.city import City, generate_city
from synthcity.directory_csv import directory_csv_files

SEEDED_OFFICERS = 120


@functools.cache
def small_city(seed: int = 2026) -> City:
    return generate_city(seed=seed, officers=SEEDED_OFFICERS)


@functools.cache
def city_files(seed: int = 2026, officers: int = SEEDED_OFFICERS) -> dict[str, str]:
    """The city's five CSV files; callers must not change the dict they get (it is shared)."""
    return directory_csv_files(generate_city(seed=seed, officers=officers))
