"""Parameters for the fee tests: the real national figures and rule citations, with a tariff of round
numbers made up here, so a golden case states its arithmetic and stays true when the example tariff in
the data files is replaced by the city's real one."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from services.fees.model import (
    Parameters,
    default_parameters_folder,
    load_parameters,
    parameters_from_documents,
)

TEST_TARIFF = """
[taxa_hemtjanst]
kind = "levels"
[[taxa_hemtjanst.periods]]
valid_from = 2024-01-01
valid_to = 2026-12-31
statute = "Testtaxa"
example = true
value = [
    { from = "0", amount = 50_000 },
    { from = "5", amount = 100_000 },
    { from = "11", amount = 150_000 },
    { from = "26", amount = 200_000 },
    { from = "41", amount = 230_000 },
    { from = "56", amount = 270_000 },
]

[taxa_dagverksamhet]
kind = "levels"
[[taxa_dagverksamhet.periods]]
valid_from = 2024-01-01
valid_to = 2026-12-31
statute = "Testtaxa"
example = true
value = [
    { from = "1", amount = 80_000 },
    { from = "3", amount = 120_000 },
    { from = "5", amount = 160_000 },
    { from = "6", amount = 200_000 },
]

[taxa_trygghetslarm]
kind = "amount"
[[taxa_trygghetslarm.periods]]
valid_from = 2024-01-01
valid_to = 2026-12-31
statute = "Testtaxa"
example = true
value = 20_000

[taxa_matdistribution]
kind = "amount"
[[taxa_matdistribution.periods]]
valid_from = 2024-01-01
valid_to = 2026-12-31
statute = "Testtaxa"
example = true
value = 15_000

[taxa_korttidsvard_per_dygn]
kind = "amount"
[[taxa_korttidsvard_per_dygn.periods]]
valid_from = 2024-01-01
valid_to = 2026-12-31
statute = "Testtaxa"
example = true
value = 9_000

[taxa_sarskilt_boende_omsorg]
kind = "amount"
[[taxa_sarskilt_boende_omsorg.periods]]
valid_from = 2024-01-01
valid_to = 2026-12-31
statute = "Testtaxa"
example = true
value = 280_000
"""


def _read(path: Path) -> dict[str, object]:
    with path.open("rb") as stream:
        return tomllib.load(stream)


def law_with_test_tariff() -> Parameters:
    folder = default_parameters_folder()
    return parameters_from_documents(
        [
            ("national.toml", _read(folder / "national.toml")),
            ("rules.toml", _read(folder / "rules.toml")),
            ("test_tariff.toml", tomllib.loads(TEST_TARIFF)),
        ]
    )


@pytest.fixture(scope="session")
def law() -> Parameters:
    return law_with_test_tariff()


@pytest.fixture(scope="session")
def shipped() -> Parameters:
    """Everything in the service's parameter folder, as it ships."""
    return load_parameters(default_parameters_folder())
