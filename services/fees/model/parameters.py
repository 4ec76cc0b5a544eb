"""Parameters as dated data, the way OpenFisca and GETTSIM hold theirs: every figure the fee rules use
(the prisbasbelopp, the law's fractions, the city's tariff, the contact center's billing figures, even
the paragraph a rule is cited by) is a named parameter with periods, each period saying when it applies,
which statute or decision sets it, and where that was read, or that the figure is only an example.

A parameter file is TOML (or JSON with the same shape); its top-level tables are parameters::

    [prisbasbelopp]
    kind = "amount"              # amount | fraction | levels | shares | citation | flag
    description = "..."
    granularity = "year"         # optional: every period is whole calendar years

    [[prisbasbelopp.periods]]
    valid_from = 2025-01-01
    valid_to = 2025-12-31        # optional on the last period: in force until changed
    value = 5_880_000            # amounts are whole öre; fractions are strings ("0.5392", "1/3");
                                 # a flag is true or false
    statute = "Förordning (2024:...) om prisbasbelopp ..."
    section = "1 §"
    source = "https://..."       # required unless example = true
    example = false
    note = "..."                 # optional

The loader refuses anything it cannot vouch for: a period without a source that is not marked as an
example, a date that does not parse, two periods that overlap or leave a gap, an amount that is not whole
öre, a fraction written as a float, allocation shares that do not add up to exactly 1.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

__all__ = [
    "Cited",
    "InForce",
    "Kind",
    "Level",
    "Parameter",
    "ParameterError",
    "ParameterValue",
    "Parameters",
    "Period",
    "default_parameters_folder",
    "load_parameters",
    "parameters_from_documents",
]

T = TypeVar("T")
# Builds the error for one period, already knowing its file, parameter and date.
_Fail = Callable[[str], "ParameterError"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PARAMETER_KEYS = frozenset({"kind", "description", "granularity", "periods"})
_PERIOD_KEYS = frozenset(
    {"valid_from", "valid_to", "value", "statute", "section", "source", "example", "note"}
)
_LEVEL_KEYS = frozenset({"from", "amount"})


class ParameterError(ValueError):
    """A parameter file, or a question asked of the parameters, that cannot be answered truthfully.

    The message names the file, the parameter and the date concerned, so whoever keeps the data can find
    the line to fix."""

    def __init__(self, problem: str, *, file: str, parameter: str | None = None, on: date | None = None):
        self.problem = problem
        self.file = file
        self.parameter = parameter
        self.on = on
        where = [file]
        if parameter is not None:
            where.append(parameter)
        if on is not None:
            where.append(on.isoformat())
        super().__init__(f"{': '.join(where)}: {problem}")


class Kind(StrEnum):
    """What a parameter's value is."""

    AMOUNT = "amount"  # whole öre, an int
    FRACTION = "fraction"  # an exact rational number
    LEVELS = "levels"  # a step table: from a threshold on, an amount in öre
    SHARES = "shares"  # payer id -> share, the shares adding up to exactly 1
    CITATION = "citation"  # the text a rule is cited by
    FLAG = "flag"  # a fact that holds or not for a period (true or false), e.g. how the city lets its homes


@dataclass(frozen=True)
class Level:
    """One step of a tariff: from ``threshold`` (inclusive) up to the next step, ``amount_ore``."""

    threshold: Fraction
    amount_ore: int


ParameterValue = bool | int | Fraction | tuple[Level, ...] | Mapping[str, Fraction] | str


@dataclass(frozen=True)
class Period:
    """One value of a parameter and the time it is in force, with what sets it and where it was read."""

    valid_from: date
    valid_to: date | None  # None: in force until a later period replaces it
    value: ParameterValue
    statute: str
    section: str
    source: str | None
    example: bool
    note: str | None

    def covers(self, on: date) -> bool:
        return self.valid_from <= on and (self.valid_to is None or on <= self.valid_to)

    @property
    def citation(self) -> str:
        """``SoL (2025:400) 32 kap. 6 § p. 1``: the statute and section, as an explanation cites them."""
        return f"{self.statute} {self.section}".strip()


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: Kind
    description: str
    file: str
    periods: tuple[Period, ...]  # sorted, contiguous, not overlapping


class Cited(Protocol):
    """Anything an explanation line can cite: a value in force, with its citation."""

    @property
    def citation(self) -> str: ...

    @property
    def example(self) -> bool: ...


@dataclass(frozen=True)
class InForce(Generic[T]):
    """A parameter's value on a day, with the period it comes from, so an explanation can cite it."""

    name: str
    value: T
    period: Period
    file: str

    @property
    def citation(self) -> str:
        return self.period.citation

    @property
    def source(self) -> str | None:
        return self.period.source

    @property
    def example(self) -> bool:
        return self.period.example


class Parameters:
    """Every parameter loaded and checked; ask for a value in force on a day."""

    def __init__(self, parameters: Mapping[str, Parameter]):
        self._parameters = dict(parameters)
        # The parameters never change once loaded, and a calculation asks for a dozen of them: each value
        # is looked up once per day asked about (a failed lookup raises and is not kept).
        self._in_force = functools.lru_cache(maxsize=4096)(self._find)

    def __contains__(self, name: object) -> bool:
        return name in self._parameters

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._parameters.values())

    def names(self) -> list[str]:
        return sorted(self._parameters)

    def parameter(self, name: str) -> Parameter:
        try:
            return self._parameters[name]
        except KeyError:
            raise ParameterError(f"no parameter named {name!r}", file="(parameters)") from None

    def value(self, name: str, on: date) -> InForce[ParameterValue]:
        """The value of ``name`` in force on ``on``, with its period (statute, section, source)."""
        return self._in_force(name, on)

    def _find(self, name: str, on: date) -> InForce[ParameterValue]:
        parameter = self.parameter(name)
        for period in parameter.periods:
            if period.covers(on):
                return InForce(name, period.value, period, parameter.file)
        first, last = parameter.periods[0], parameter.periods[-1]
        span = f"{first.valid_from.isoformat()} to {last.valid_to.isoformat() if last.valid_to else 'now'}"
        raise ParameterError(
            f"no value in force (the periods cover {span})", file=parameter.file, parameter=name, on=on
        )

    def amount(self, name: str, on: date) -> InForce[int]:
        found = self._of_kind(name, on, Kind.AMOUNT)
        assert isinstance(found.value, int)
        return InForce(name, found.value, found.period, found.file)

    def fraction(self, name: str, on: date) -> InForce[Fraction]:
        found = self._of_kind(name, on, Kind.FRACTION)
        assert isinstance(found.value, Fraction)
        return InForce(name, found.value, found.period, found.file)

    def levels(self, name: str, on: date) -> InForce[tuple[Level, ...]]:
        found = self._of_kind(name, on, Kind.LEVELS)
        assert isinstance(found.value, tuple)
        return InForce(name, found.value, found.period, found.file)

    def shares(self, name: str, on: date) -> InForce[Mapping[str, Fraction]]:
        found = self._of_kind(name, on, Kind.SHARES)
        assert isinstance(found.value, Mapping)
        return InForce(name, found.value, found.period, found.file)

    def citation(self, name: str, on: date) -> InForce[str]:
        found = self._of_kind(name, on, Kind.CITATION)
        assert isinstance(found.value, str)
        return InForce(name, found.value, found.period, found.file)

    def flag(self, name: str, on: date) -> InForce[bool]:
        found = self._of_kind(name, on, Kind.FLAG)
        assert isinstance(found.value, bool)
        return InForce(name, found.value, found.period, found.file)

    def _of_kind(self, name: str, on: date, kind: Kind) -> InForce[ParameterValue]:
        parameter = self.parameter(name)
        if parameter.kind is not kind:
            raise ParameterError(
                f"is of kind {parameter.kind}, asked for as {kind}", file=parameter.file, parameter=name
            )
        return self.value(name, on)


# ---- loading ----------------------------------------------------------------------------------------------


def default_parameters_folder() -> Path:
    """The folder of parameter files kept with this service (``services/fees/parameters``)."""
    return Path(__file__).resolve().parent.parent / "parameters"


def load_parameters(folder: Path | str) -> Parameters:
    """Read and check every ``*.toml`` and ``*.json`` file in ``folder``; raise :class:`ParameterError`
    on the first problem."""
    folder = Path(folder)
    files = sorted([*folder.glob("*.toml"), *folder.glob("*.json")])
    if not files:
        raise ParameterError("holds no parameter file (*.toml or *.json)", file=folder.name)
    documents: list[tuple[str, Mapping[str, Any]]] = []
    for path in files:
        documents.append((path.name, _read(path)))
    return parameters_from_documents(documents)


def parameters_from_documents(documents: list[tuple[str, Mapping[str, Any]]]) -> Parameters:
    """Check parameters already parsed into plain data, named by the file each came from."""
    parameters: dict[str, Parameter] = {}
    for file, document in documents:
        for name, body in document.items():
            if name in parameters:
                raise ParameterError(
                    f"is defined twice (also in {parameters[name].file})", file=file, parameter=name
                )
            parameters[name] = _parameter(file, name, body)
    return Parameters(parameters)


def _read(path: Path) -> Mapping[str, Any]:
    try:
        if path.suffix == ".json":
            loaded = json.loads(path.read_text(encoding="utf-8"))
        else:
            with path.open("rb") as stream:
                loaded = tomllib.load(stream)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ParameterError(f"does not parse: {error}", file=path.name) from None
    if not isinstance(loaded, dict):
        raise ParameterError("is not a table of parameters", file=path.name)
    return loaded


def _parameter(file: str, name: str, body: object) -> Parameter:
    if not _NAME.match(name):
        raise ParameterError(
            "a parameter name is lower case letters, digits and _", file=file, parameter=name
        )
    if not isinstance(body, dict):
        raise ParameterError("is not a table", file=file, parameter=name)
    unknown = set(body) - _PARAMETER_KEYS
    if unknown:
        raise ParameterError(f"has unknown keys {sorted(unknown)}", file=file, parameter=name)
    raw_kind = body.get("kind")
    if raw_kind not in {k.value for k in Kind}:
        raise ParameterError(f"kind must be one of {[k.value for k in Kind]}", file=file, parameter=name)
    kind = Kind(raw_kind)
    description = body.get("description", "")
    if not isinstance(description, str):
        raise ParameterError("description must be text", file=file, parameter=name)
    granularity = body.get("granularity")
    if granularity not in (None, "year"):
        raise ParameterError("granularity, when given, is 'year'", file=file, parameter=name)
    raw_periods = body.get("periods")
    if not isinstance(raw_periods, list) or not raw_periods:
        raise ParameterError("has no periods", file=file, parameter=name)
    periods = sorted((_period(file, name, kind, raw) for raw in raw_periods), key=lambda p: p.valid_from)
    _check_continuity(file, name, periods)
    if granularity == "year":
        _check_whole_years(file, name, periods)
    return Parameter(name, kind, description, file, tuple(periods))


def _period(file: str, name: str, kind: Kind, raw: object) -> Period:
    if not isinstance(raw, dict):
        raise ParameterError("a period is not a table", file=file, parameter=name)
    valid_from = _date(file, name, raw.get("valid_from"), "valid_from", None)
    unknown = set(raw) - _PERIOD_KEYS
    if unknown:
        raise ParameterError(
            f"a period has unknown keys {sorted(unknown)}", file=file, parameter=name, on=valid_from
        )
    valid_to = None
    if "valid_to" in raw:
        valid_to = _date(file, name, raw["valid_to"], "valid_to", valid_from)
        if valid_to < valid_from:
            raise ParameterError(
                f"valid_to {valid_to.isoformat()} is before valid_from",
                file=file,
                parameter=name,
                on=valid_from,
            )

    def text(key: str, *, required: bool) -> str | None:
        value = raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ParameterError(f"{key} must be non-empty text", file=file, parameter=name, on=valid_from)
        return value.strip()

    example = raw.get("example", False)
    if not isinstance(example, bool):
        raise ParameterError("example must be true or false", file=file, parameter=name, on=valid_from)
    source = text("source", required=False)
    if source is None and not example:
        raise ParameterError(
            "has no source: give the URL or document it was read from, or mark it example = true",
            file=file,
            parameter=name,
            on=valid_from,
        )
    statute = text("statute", required=True)
    assert statute is not None
    if "value" not in raw:
        raise ParameterError("a period has no value", file=file, parameter=name, on=valid_from)
    value = _value(
        kind, raw["value"], lambda problem: ParameterError(problem, file=file, parameter=name, on=valid_from)
    )
    return Period(
        valid_from=valid_from,
        valid_to=valid_to,
        value=value,
        statute=statute,
        section=text("section", required=False) or "",
        source=source,
        example=example,
        note=text("note", required=False),
    )


def _date(file: str, name: str, raw: object, key: str, on: date | None) -> date:
    # TOML's datetimes are dates too; a time of day has no place in a period's bounds.
    if isinstance(raw, datetime):
        raise ParameterError(f"{key} must be a date without a time", file=file, parameter=name, on=on)
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str) and _ISO_DATE.match(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise ParameterError(f"{key} {raw!r} is not a date (YYYY-MM-DD)", file=file, parameter=name, on=on)


def _check_continuity(file: str, name: str, periods: list[Period]) -> None:
    for previous, current in pairwise(periods):
        if previous.valid_to is None or current.valid_from <= previous.valid_to:
            raise ParameterError(
                f"overlaps the period from {previous.valid_from.isoformat()}",
                file=file,
                parameter=name,
                on=current.valid_from,
            )
        day_after = previous.valid_to + timedelta(days=1)
        if current.valid_from > day_after:
            raise ParameterError(
                f"has no value from here until {current.valid_from.isoformat()}",
                file=file,
                parameter=name,
                on=day_after,
            )


def _check_whole_years(file: str, name: str, periods: list[Period]) -> None:
    for period in periods:
        if (period.valid_from.month, period.valid_from.day) != (1, 1):
            raise ParameterError(
                "a yearly value starts on 1 January", file=file, parameter=name, on=period.valid_from
            )
        if period.valid_to is not None and (period.valid_to.month, period.valid_to.day) != (12, 31):
            raise ParameterError(
                "a yearly value ends on 31 December", file=file, parameter=name, on=period.valid_to
            )


def _value(kind: Kind, raw: object, error: _Fail) -> ParameterValue:
    if kind is Kind.AMOUNT:
        return _amount(raw, error)
    if kind is Kind.FRACTION:
        return _fraction(raw, error)
    if kind is Kind.CITATION:
        if not isinstance(raw, str) or not raw.strip():
            raise error("a citation is non-empty text")
        return raw.strip()
    if kind is Kind.LEVELS:
        return _levels(raw, error)
    if kind is Kind.FLAG:
        if not isinstance(raw, bool):
            raise error(f"a flag is true or false, not {raw!r}")
        return raw
    return _shares(raw, error)


def _amount(raw: object, error: _Fail) -> int:
    # bool is an int to Python; a stray `true` must not become one öre.
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise error(f"amounts are whole öre, an integer (68.50 kr is 6850), not {raw!r}")
    if raw < 0:
        raise error(f"an amount cannot be negative ({raw})")
    return raw


def _fraction(raw: object, error: _Fail) -> Fraction:
    # A float has already lost exactness when the file was parsed (0.5392 is not 5392/10000 in binary).
    if isinstance(raw, bool | float):
        raise error(f'write fractions as text so they stay exact ("0.5392"), not {raw!r}')
    if isinstance(raw, int):
        value = Fraction(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            if "/" in text:
                numerator, denominator = text.split("/")
                value = Fraction(int(numerator), int(denominator))
            else:
                decimal = Decimal(text)
                if not decimal.is_finite():
                    raise InvalidOperation
                value = Fraction(decimal)
        except (ValueError, ZeroDivisionError, InvalidOperation):
            raise error(f"{raw!r} is not a fraction") from None
    else:
        raise error(f"{raw!r} is not a fraction")
    if value < 0:
        raise error(f"a fraction cannot be negative ({raw})")
    return value


def _levels(raw: object, error: _Fail) -> tuple[Level, ...]:
    if not isinstance(raw, list) or not raw:
        raise error("levels are a non-empty list of {from, amount}")
    levels: list[Level] = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != _LEVEL_KEYS:
            raise error("each level has exactly 'from' and 'amount'")
        level = Level(_fraction(item["from"], error), _amount(item["amount"], error))
        if levels and level.threshold <= levels[-1].threshold:
            raise error("level thresholds must rise")
        levels.append(level)
    return tuple(levels)


def _shares(raw: object, error: _Fail) -> Mapping[str, Fraction]:
    if not isinstance(raw, dict) or not raw:
        raise error("shares are a non-empty table of payer = share")
    shares = {str(payer): _fraction(share, error) for payer, share in raw.items()}
    total = sum(shares.values(), Fraction(0))
    if total != 1:
        raise error(f"shares add up to {total} ({float(total):.6f}), not exactly 1")
    return MappingProxyType(shares)
