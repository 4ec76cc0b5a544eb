"""The figures in force on a day, each written as a person reads it, with where it comes from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from services.fees.model.money import format_kronor
from services.fees.model.parameters import Kind, Level, ParameterError, Parameters, ParameterValue

__all__ = ["ListedParameter", "parameters_in_force", "render_value"]


@dataclass(frozen=True)
class ListedParameter:
    name: str
    description: str
    value: str
    valid_from: date
    citation: str
    source: str
    example: bool


def _fraction_text(value: Fraction) -> str:
    """A fraction as Swedish writes a decimal ("0,5392"), or as a ratio ("1/3") when no decimal ends."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return text.rstrip("0").rstrip(".").replace(".", ",")


def render_value(kind: Kind, value: ParameterValue) -> str:
    """A value as the answer shows it: "59 200 kr", "0,5392", "från 5: 1 115 kr; …", "ja"."""
    if kind is Kind.FLAG:
        return "ja" if value else "nej"
    if kind is Kind.AMOUNT:
        assert isinstance(value, int)
        return format_kronor(value)
    if kind is Kind.FRACTION:
        assert isinstance(value, Fraction)
        return _fraction_text(value)
    if kind is Kind.LEVELS:
        assert isinstance(value, tuple)
        steps: list[Level] = list(value)
        return "; ".join(f"från {_fraction_text(s.threshold)}: {format_kronor(s.amount_ore)}" for s in steps)
    if kind is Kind.SHARES:
        assert isinstance(value, Mapping)
        return "; ".join(f"{payer} {_fraction_text(share)}" for payer, share in value.items())
    assert isinstance(value, str)
    return value


def parameters_in_force(parameters: Parameters, on: date) -> list[ListedParameter]:
    """Every parameter with a value on `on`, by name; those without one that day are left out."""
    listed = []
    for name in parameters.names():
        parameter = parameters.parameter(name)
        try:
            found = parameters.value(name, on)
        except ParameterError:
            continue
        listed.append(
            ListedParameter(
                name=name,
                description=parameter.description,
                value=render_value(parameter.kind, found.value),
                valid_from=found.period.valid_from,
                citation=found.citation,
                source=found.source or "",
                example=found.example,
            )
        )
    return listed
