"""Parameters as dated data: the shipped files load, a value comes with its citation and source, and
every kind of mistake in a file is refused with the file, parameter and date named."""

from __future__ import annotations

import json
import textwrap
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest

from services.fees.model import ParameterError, Parameters, load_parameters
from synthcity.city import DISTRICTS


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def refused(folder: Path) -> ParameterError:
    with pytest.raises(ParameterError) as caught:
        load_parameters(folder)
    return caught.value


GOOD_PERIOD = """
[[pbb.periods]]
valid_from = 2024-01-01
valid_to = 2024-12-31
value = 5_730_000
statute = "Förordning"
source = "https://example.org/pbb-2024"
"""


# ---- the shipped files ------------------------------------------------------------------------------------


def test_the_shipped_parameters_load_and_every_period_has_a_source_or_is_an_example(shipped: Parameters):
    for parameter in shipped:
        for period in parameter.periods:
            assert period.example or period.source, (parameter.name, period.valid_from)
            assert period.statute


def test_the_prisbasbelopp_in_force_comes_with_its_statute_and_source(shipped: Parameters):
    pbb = shipped.amount("prisbasbelopp", date(2026, 3, 1))
    assert pbb.value == 5_920_000
    assert pbb.citation == "Förordning (2025:872) om prisbasbelopp och förhöjt prisbasbelopp för år 2026 1 §"
    assert pbb.source == "https://laglio.se/lagar/sfs-2025-872"
    assert not pbb.example
    assert [shipped.amount("prisbasbelopp", date(y, 6, 1)).value for y in (2024, 2025)] == [
        5_730_000,
        5_880_000,
    ]


def test_the_maxtaxa_is_cited_from_the_new_act_from_1_july_2025(shipped: Parameters):
    before = shipped.fraction("maxtaxa_andel", date(2025, 6, 30))
    after = shipped.fraction("maxtaxa_andel", date(2025, 7, 1))
    assert before.value == after.value == Fraction(5392, 10_000)
    assert before.citation == "SoL (2001:453) 8 kap. 5 § p. 1"
    assert after.citation == "SoL (2025:400) 32 kap. 6 § p. 1"
    assert shipped.fraction("hyrestak_andel", date(2025, 7, 1)).citation == "SoL (2025:400) 32 kap. 6 § p. 2"


def test_the_minimibelopp_fractions_keep_their_history(shipped: Parameters):
    single = "minimibelopp_ensamstaende_andel"
    assert shipped.fraction(single, date(2021, 12, 31)).value == Fraction("1.3546")
    assert shipped.fraction(single, date(2022, 8, 1)).value == Fraction("1.4541")
    assert shipped.fraction(single, date(2024, 6, 30)).value == Fraction("1.4789")
    assert shipped.fraction(single, date(2025, 7, 1)).citation == "SoL (2025:400) 32 kap. 8 § p. 1"
    # The months between the two sourced wordings are held, but flagged: their fraction is inferred.
    assert shipped.fraction(single, date(2022, 3, 1)).example
    cohabiting = "minimibelopp_sammanlevande_andel"
    assert shipped.fraction(cohabiting, date(2020, 1, 1)).value == Fraction("1.1446")
    assert shipped.fraction(cohabiting, date(2023, 1, 1)).value == Fraction("1.2066")


def test_the_allocation_key_names_the_eleven_districts_and_aldrenamnden_and_adds_up_to_one(
    shipped: Parameters,
):
    key = shipped.shares("fordelningsnyckel_aldreomsorg", date(2025, 1, 1))
    assert set(key.value) == {d.district_id for d in DISTRICTS} | {"aldrenamnden"}
    assert len(key.value) == 12
    assert sum(key.value.values()) == 1
    assert key.example


def test_the_seed_billing_figures_are_sourced_and_later_years_are_examples(shipped: Parameters):
    assert shipped.amount("kontaktcenter_grundavgift", date(2022, 5, 1)).value == 882_500_000
    assert shipped.amount("kontaktcenter_grundavgift", date(2021, 5, 1)).value == 826_700_000
    assert shipped.amount("kontaktcenter_samtalsavgift", date(2022, 5, 1)).value == 6_850
    assert not shipped.amount("kontaktcenter_grundavgift", date(2022, 5, 1)).example
    assert shipped.amount("kontaktcenter_grundavgift", date(2025, 5, 1)).example
    assert shipped.amount("kontaktcenter_samtalsavgift", date(2025, 5, 1)).example


def test_the_city_tariff_is_marked_as_example_in_every_year(shipped: Parameters):
    for name in (
        "taxa_hemtjanst",
        "taxa_trygghetslarm",
        "taxa_dagverksamhet",
        "taxa_matdistribution",
        "taxa_korttidsvard_per_dygn",
        "taxa_sarskilt_boende_omsorg",
    ):
        assert all(period.example for period in shipped.parameter(name).periods), name


def test_a_value_asked_for_outside_its_periods_names_parameter_file_and_date(shipped: Parameters):
    with pytest.raises(ParameterError) as caught:
        shipped.amount("prisbasbelopp", date(2027, 1, 1))
    error = caught.value
    assert (error.file, error.parameter, error.on) == ("national.toml", "prisbasbelopp", date(2027, 1, 1))
    assert "national.toml: prisbasbelopp: 2027-01-01" in str(error)


def test_a_parameter_asked_for_as_the_wrong_kind_is_refused(shipped: Parameters):
    with pytest.raises(ParameterError, match="is of kind amount, asked for as fraction"):
        shipped.fraction("prisbasbelopp", date(2025, 1, 1))
    with pytest.raises(ParameterError, match="no parameter named"):
        shipped.amount("prisbasbeloppet", date(2025, 1, 1))


# ---- mistakes in a file ----------------------------------------------------------------------------------


def test_a_gap_between_periods_is_refused_at_its_first_day(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        '[pbb]\nkind = "amount"\n'
        + GOOD_PERIOD
        + """
        [[pbb.periods]]
        valid_from = 2025-02-01
        value = 5_880_000
        statute = "Förordning"
        source = "https://example.org/pbb-2025"
    """,
    )
    error = refused(tmp_path)
    assert (error.file, error.parameter, error.on) == ("a.toml", "pbb", date(2025, 1, 1))
    assert "no value" in error.problem


def test_overlapping_periods_are_refused_where_the_second_begins(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        '[pbb]\nkind = "amount"\n'
        + GOOD_PERIOD
        + """
        [[pbb.periods]]
        valid_from = 2024-12-01
        value = 5_880_000
        statute = "Förordning"
        source = "https://example.org/pbb-2025"
    """,
    )
    error = refused(tmp_path)
    assert (error.parameter, error.on) == ("pbb", date(2024, 12, 1))
    assert "overlaps" in error.problem


def test_a_period_after_an_open_ended_one_overlaps_it(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        """
        [pbb]
        kind = "amount"
        [[pbb.periods]]
        valid_from = 2024-01-01
        value = 1
        statute = "S"
        source = "x"
        [[pbb.periods]]
        valid_from = 2030-01-01
        value = 2
        statute = "S"
        source = "x"
    """,
    )
    assert refused(tmp_path).on == date(2030, 1, 1)


def test_a_period_without_a_source_that_is_not_an_example_is_refused(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        """
        [pbb]
        kind = "amount"
        [[pbb.periods]]
        valid_from = 2024-01-01
        value = 5_730_000
        statute = "Förordning"
    """,
    )
    error = refused(tmp_path)
    assert (error.file, error.parameter, error.on) == ("a.toml", "pbb", date(2024, 1, 1))
    assert "no source" in error.problem


def test_an_example_needs_no_source(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        """
        [pbb]
        kind = "amount"
        [[pbb.periods]]
        valid_from = 2024-01-01
        value = 5_730_000
        statute = "Exempel"
        example = true
    """,
    )
    assert load_parameters(tmp_path).amount("pbb", date(2030, 1, 1)).example


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('valid_from = "2024-13-01"', "is not a date"),
        ('valid_from = "1 januari 2024"', "is not a date"),
        ('valid_from = "20240101"', "is not a date"),
        ("valid_from = 2024-01-01T00:00:00", "without a time"),
    ],
)
def test_a_date_that_does_not_parse_is_refused(tmp_path: Path, line: str, problem: str):
    write(
        tmp_path,
        "a.toml",
        f"""
        [pbb]
        kind = "amount"
        [[pbb.periods]]
        {line}
        value = 1
        statute = "S"
        source = "x"
    """,
    )
    error = refused(tmp_path)
    assert problem in error.problem
    assert error.parameter == "pbb"


def test_a_period_that_ends_before_it_begins_is_refused(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        """
        [pbb]
        kind = "amount"
        [[pbb.periods]]
        valid_from = 2024-05-01
        valid_to = 2024-04-30
        value = 1
        statute = "S"
        source = "x"
    """,
    )
    assert "before valid_from" in refused(tmp_path).problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [("68.50", "whole öre"), ("true", "whole öre"), ('"6850"', "whole öre"), ("-1", "negative")],
)
def test_an_amount_that_is_not_whole_ore_is_refused(tmp_path: Path, value: str, problem: str):
    write(
        tmp_path,
        "a.toml",
        f"""
        [fee]
        kind = "amount"
        [[fee.periods]]
        valid_from = 2024-01-01
        value = {value}
        statute = "S"
        source = "x"
    """,
    )
    assert problem in refused(tmp_path).problem


@pytest.mark.parametrize(
    ("value", "problem"), [("0.5392", "as text"), ('"noll"', "not a fraction"), ('"1/0"', "not a fraction")]
)
def test_a_fraction_written_inexactly_or_wrongly_is_refused(tmp_path: Path, value: str, problem: str):
    write(
        tmp_path,
        "a.toml",
        f"""
        [andel]
        kind = "fraction"
        [[andel.periods]]
        valid_from = 2024-01-01
        value = {value}
        statute = "S"
        source = "x"
    """,
    )
    assert problem in refused(tmp_path).problem


def test_allocation_shares_must_add_up_to_exactly_one(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        """
        [nyckel]
        kind = "shares"
        [[nyckel.periods]]
        valid_from = 2024-01-01
        statute = "Exempel"
        example = true
        value = { bromma = "0.3333", farsta = "0.3333", aldrenamnden = "0.3333" }
    """,
    )
    error = refused(tmp_path)
    assert (error.parameter, error.on) == ("nyckel", date(2024, 1, 1))
    assert "not exactly 1" in error.problem


def test_shares_in_thirds_add_up_to_one_exactly(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        """
        [nyckel]
        kind = "shares"
        [[nyckel.periods]]
        valid_from = 2024-01-01
        statute = "Exempel"
        example = true
        value = { bromma = "1/3", farsta = "1/3", aldrenamnden = "1/3" }
    """,
    )
    assert load_parameters(tmp_path).shares("nyckel", date(2024, 1, 1)).value["bromma"] == Fraction(1, 3)


def test_a_misspelt_key_is_refused_rather_than_ignored(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        """
        [pbb]
        kind = "amount"
        [[pbb.periods]]
        valid_from = 2024-01-01
        vaild_to = 2024-12-31
        value = 1
        statute = "S"
        source = "x"
    """,
    )
    assert "unknown keys ['vaild_to']" in refused(tmp_path).problem


def test_a_parameter_defined_in_two_files_is_refused(tmp_path: Path):
    body = '[pbb]\nkind = "amount"\n' + GOOD_PERIOD
    write(tmp_path, "a.toml", body)
    write(tmp_path, "b.toml", body)
    error = refused(tmp_path)
    assert (error.file, error.parameter) == ("b.toml", "pbb")
    assert "a.toml" in error.problem


def test_a_yearly_parameter_must_cover_whole_calendar_years(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        """
        [pbb]
        kind = "amount"
        granularity = "year"
        [[pbb.periods]]
        valid_from = 2024-01-01
        valid_to = 2024-06-30
        value = 1
        statute = "S"
        source = "x"
    """,
    )
    error = refused(tmp_path)
    assert (error.on, error.problem) == (date(2024, 6, 30), "a yearly value ends on 31 December")


def test_tariff_levels_must_rise(tmp_path: Path):
    write(
        tmp_path,
        "a.toml",
        """
        [taxa]
        kind = "levels"
        [[taxa.periods]]
        valid_from = 2024-01-01
        statute = "Exempel"
        example = true
        value = [{ from = "5", amount = 100 }, { from = "5", amount = 200 }]
    """,
    )
    assert "must rise" in refused(tmp_path).problem


def test_a_file_that_does_not_parse_is_named(tmp_path: Path):
    write(tmp_path, "trasig.toml", "[pbb\nkind = 1\n")
    error = refused(tmp_path)
    assert error.file == "trasig.toml"
    assert "does not parse" in error.problem


def test_a_folder_without_files_is_refused(tmp_path: Path):
    assert "no parameter file" in refused(tmp_path).problem


def test_json_files_hold_parameters_too_with_dates_as_text(tmp_path: Path):
    document = {
        "samtalsavgift": {
            "kind": "amount",
            "periods": [
                {
                    "valid_from": "2022-01-01",
                    "valid_to": "2022-12-31",
                    "value": 6850,
                    "statute": "S",
                    "source": "seed 000",
                },
                {"valid_from": "2023-01-01", "value": 7200, "statute": "Exempel", "example": True},
            ],
        }
    }
    (tmp_path / "billing.json").write_text(json.dumps(document), encoding="utf-8")
    parameters = load_parameters(tmp_path)
    assert parameters.amount("samtalsavgift", date(2022, 12, 31)).value == 6850
    assert parameters.amount("samtalsavgift", date(2023, 1, 1)).example
