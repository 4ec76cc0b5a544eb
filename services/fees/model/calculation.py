"""What one person pays for elderly care in a month, worked out as SoL (2025:400) 32 kap. 5–10 §§ say
(SoL (2001:453) 8 kap. before 2025-07-01, with the same fractions), with every intermediate figure and a
line-by-line explanation in Swedish that an agent can read out, each line citing its rule.

The steps, in the law's words:

1. *Avgiftsunderlag*: the person's income per month (expected over the next twelve months). For married
   spouses and registered partners each one's income is half of their combined income.
2. *Förbehållsbelopp*: the minimibelopp (a fraction of the prisbasbelopp, raised or lowered for the
   individual) plus the housing cost.
3. *Avgiftsutrymme*: avgiftsunderlag minus förbehållsbelopp, never below zero.
4. Each fee is the lower of its tariff and what is left of the avgiftsutrymme, taken in
   :data:`FEE_ORDER`; the fees within the maxtaxa never add up to more than the maxtaxa; the fee for a
   home in special housing outside the tenancy act never exceeds the rent cap and is not part of the
   maxtaxa. Nothing is ever below zero.

What counts as income. The incomes given are monthly amounts after tax, as Stockholm computes them:
pension (allmän pension, garantipension), bostadstillägg (housing supplements: bostadstillägg, särskilt
bostadstillägg, bostadsbidrag, boendetillägg, which the law counts), tjänstepension, arbetsinkomst,
kapital (the yield of savings, not the savings) and övrigt (other taxable income). Left out because the
law's income does not include them: the savings themselves (förmögenhet), and tax-free benefits other than
the housing supplements (for example barnbidrag, försörjningsstöd, merkostnadsersättning). Negative
amounts (a capital loss) are refused rather than netted, since the law has no rule for netting them.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum, StrEnum
from fractions import Fraction

from services.fees.model.money import format_kronor, format_month, monthly_share_of_prisbasbelopp
from services.fees.model.parameters import Cited, InForce, Level, ParameterError, Parameters

__all__ = [
    "FEE_ORDER",
    "Cohabiting",
    "ExplanationLine",
    "FeeCalculation",
    "FeeInputError",
    "FeeInputs",
    "FeeLine",
    "Household",
    "IncomeKind",
    "MinimumAdjustment",
    "Relation",
    "Service",
    "Services",
    "Single",
    "SpecialHousing",
    "calculate",
]


class FeeInputError(ValueError):
    """Inputs that describe no real month of a real person (a negative income, 40 days of short-term care
    in June, an adjustment without a reason).

    `field` names the input concerned, as FeeInputs names it ("incomes", "services.korttidsvard_days",
    "adjustment.amount_ore"), so that a caller can point at what it sent; None for the month."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class IncomeKind(StrEnum):
    """The kinds of monthly income (after tax) that make up the avgiftsunderlag; see the module text for
    what does not count."""

    PENSION = "pension"
    BOSTADSTILLAGG = "bostadstillagg"
    TJANSTEPENSION = "tjanstepension"
    ARBETSINKOMST = "arbetsinkomst"
    KAPITAL = "kapital"
    OVRIGT = "ovrigt"


_INCOME_NAMES = {
    IncomeKind.PENSION: "pension",
    IncomeKind.BOSTADSTILLAGG: "bostadstillägg",
    IncomeKind.TJANSTEPENSION: "tjänstepension",
    IncomeKind.ARBETSINKOMST: "arbetsinkomst",
    IncomeKind.KAPITAL: "kapitalinkomst",
    IncomeKind.OVRIGT: "övrig inkomst",
}


class Relation(Enum):
    """How two people who live together are related, which decides whether their incomes are pooled."""

    MAKAR = "makar"  # married or registered partners: the law halves their combined income
    SAMBOR = "sambor"  # cohabiting unmarried: each keeps their own income; the lower minimibelopp applies


@dataclass(frozen=True)
class Single:
    """A person living alone (ensamstående)."""


@dataclass(frozen=True)
class Cohabiting:
    """A person living with a spouse, registered partner or sambo, whose monthly incomes are given."""

    partner_incomes: Mapping[IncomeKind, int] = field(default_factory=dict)
    relation: Relation = Relation.MAKAR


Household = Single | Cohabiting


@dataclass(frozen=True)
class Services:
    """The care a person is granted for the month."""

    hemtjanst_hours: Fraction | Decimal | int = 0  # granted hours of home help a month
    trygghetslarm: bool = False
    dagverksamhet_days_per_week: int = 0
    matdistribution: bool = False
    korttidsvard_days: int = 0  # days (dygn) of short-term care in the month


@dataclass(frozen=True)
class SpecialHousing:
    """A home in special housing (särskilt boende, e.g. vård- och omsorgsboende), with the care there.

    Under the tenancy act (hyreslagen) the rent is an ordinary housing cost. Outside it, the rent is a fee
    under the Social Services Act: capped by the rent cap, with no förbehåll made for it, so it is paid
    from the avgiftsutrymme like the other fees."""

    rent_ore: int
    under_tenancy_act: bool = False


@dataclass(frozen=True)
class MinimumAdjustment:
    """An individual raise (+) or cut (−) of the minimibelopp, in öre a month, and why."""

    amount_ore: int
    reason: str


@dataclass(frozen=True)
class FeeInputs:
    household: Household
    incomes: Mapping[IncomeKind, int]  # öre a month, after tax
    housing_cost_ore: int = 0  # the household's monthly housing cost in ordinary housing
    services: Services = field(default_factory=Services)
    special_housing: SpecialHousing | None = None
    adjustment: MinimumAdjustment | None = None


class Service(StrEnum):
    BOENDEAVGIFT = "boendeavgift"  # the rent-capped housing fee, outside the maxtaxa
    SARSKILT_BOENDE = "sarskilt_boende"
    HEMTJANST = "hemtjanst"
    DAGVERKSAMHET = "dagverksamhet"
    KORTTIDSVARD = "korttidsvard"
    TRYGGHETSLARM = "trygghetslarm"
    MATDISTRIBUTION = "matdistribution"


# The order in which fees take from the avgiftsutrymme and the maxtaxa. The total is the same whatever
# the order; the order only decides which line shows a reduction. The housing fee comes first because a
# home is what the person cannot do without; then the care, largest service first.
FEE_ORDER: tuple[Service, ...] = (
    Service.BOENDEAVGIFT,
    Service.SARSKILT_BOENDE,
    Service.HEMTJANST,
    Service.DAGVERKSAMHET,
    Service.KORTTIDSVARD,
    Service.TRYGGHETSLARM,
    Service.MATDISTRIBUTION,
)


@dataclass(frozen=True)
class FeeLine:
    service: Service
    description: str  # "Hemtjänst, 12 timmar i månaden"
    tariff_ore: int  # what the tariff (or the capped rent) asks
    fee_ore: int  # what the person pays
    within_maxtaxa: bool


@dataclass(frozen=True)
class ExplanationLine:
    text: str  # a Swedish sentence to read out
    citation: str  # "SoL (2025:400) 32 kap. 6 § p. 1", or the decision behind a tariff
    example: bool = False  # the figure or citation is an example, not a sourced decision


@dataclass(frozen=True)
class FeeCalculation:
    """Every figure of one month's fee, in öre, and the explanation that leads to it."""

    month: date
    prisbasbelopp_ore: int
    avgiftsunderlag_ore: int
    minimibelopp_ore: int  # the statutory amount, before any individual adjustment
    adjustment_ore: int
    housing_cost_ore: int  # the housing cost counted in the förbehållsbelopp
    forbehallsbelopp_ore: int
    avgiftsutrymme_ore: int
    maxtaxa_ore: int
    rent_cap_ore: int | None  # only for special housing outside the tenancy act
    lines: tuple[FeeLine, ...]
    care_total_ore: int  # the fees within the maxtaxa
    housing_fee_ore: int  # the rent-capped housing fee, 0 when there is none
    total_ore: int
    explanation: tuple[ExplanationLine, ...]


def calculate(inputs: FeeInputs, month: date, parameters: Parameters) -> FeeCalculation:
    """The fee for ``month`` (its first day), with the figures and rules in force on that day.

    Raises :class:`FeeInputError` for impossible inputs and :class:`ParameterError` when a figure the
    calculation needs is not in force that month."""
    _check(inputs, month)
    explain = _Explanation()

    pbb = parameters.amount("prisbasbelopp", month)
    explain.add(f"Prisbasbeloppet för {month.year} är {format_kronor(pbb.value)}.", pbb)

    underlag = _avgiftsunderlag(inputs, month, parameters, explain)
    minimibelopp = _minimibelopp(inputs, month, parameters, pbb.value, explain)
    adjustment = inputs.adjustment.amount_ore if inputs.adjustment else 0
    if inputs.adjustment and adjustment:
        rule = parameters.citation("regel_individuell_justering", month)
        verb = "höjs" if adjustment > 0 else "sänks"
        explain.add(
            f"Minimibeloppet {verb} med {format_kronor(abs(adjustment))} till "
            f"{format_kronor(minimibelopp + adjustment)}: {inputs.adjustment.reason}.",
            rule,
        )
    if minimibelopp + adjustment < 0:
        raise FeeInputError(
            f"the adjustment {adjustment} öre takes the minimibelopp {minimibelopp} öre below zero",
            field="adjustment.amount_ore",
        )
    housing = _housing_cost(inputs, month, parameters, explain)
    forbehall = minimibelopp + adjustment + housing
    explain.add(
        f"Förbehållsbeloppet, det du alltid ska ha kvar, är minimibeloppet "
        f"{format_kronor(minimibelopp + adjustment)} plus boendekostnaden {format_kronor(housing)}: "
        f"{format_kronor(forbehall)}.",
        parameters.citation("regel_forbehallsbelopp", month),
    )

    utrymme = max(0, underlag - forbehall)
    rule = parameters.citation("regel_avgiftsutrymme", month)
    if utrymme > 0:
        explain.add(
            f"Avgiftsutrymmet är avgiftsunderlaget {format_kronor(underlag)} minus förbehållsbeloppet "
            f"{format_kronor(forbehall)}: {format_kronor(utrymme)}. Mer än så kan avgifterna inte bli.",
            rule,
        )
    else:
        explain.add(
            f"Avgiftsunderlaget {format_kronor(underlag)} är inte större än förbehållsbeloppet "
            f"{format_kronor(forbehall)}, så avgiftsutrymmet är 0 kr och du betalar ingen avgift.",
            rule,
        )

    maxtaxa_fraction = parameters.fraction("maxtaxa_andel", month)
    maxtaxa = monthly_share_of_prisbasbelopp(maxtaxa_fraction.value, pbb.value)
    rent_cap: int | None = None
    lines: list[FeeLine] = []
    left, cap_left = utrymme, maxtaxa

    housing_fee_ore = 0
    if inputs.special_housing and not inputs.special_housing.under_tenancy_act:
        cap_share = parameters.fraction("hyrestak_andel", month)
        rent_cap = monthly_share_of_prisbasbelopp(cap_share.value, pbb.value)
        explain.add(
            f"Avgiften för bostaden i särskilt boende får vara högst {format_kronor(rent_cap)} i månaden: "
            f"{_decimal_text(cap_share.value)} prisbasbelopp delat med tolv, avrundat till hela kronor. "
            "Den ingår inte i maxtaxan.",
            cap_share,
        )
        rent = inputs.special_housing.rent_ore
        asked = min(rent, rent_cap)
        housing_fee_ore = min(asked, left)
        left -= housing_fee_ore
        text = f"Boendeavgiften är {format_kronor(rent)}"
        if asked < rent:
            text += f", men taket sänker den till {format_kronor(asked)}"
        if housing_fee_ore < asked:
            text += f"; avgiftsutrymmet räcker bara till {format_kronor(housing_fee_ore)}"
        explain.add(
            f"{text}. Du betalar {format_kronor(housing_fee_ore)} för bostaden.",
            parameters.citation("regel_boendeavgift_utan_forbehall", month),
        )
        lines.append(
            FeeLine(
                Service.BOENDEAVGIFT,
                "Boendeavgift i särskilt boende",
                asked,
                housing_fee_ore,
                within_maxtaxa=False,
            )
        )

    tariffs = _tariffs(inputs, month, parameters)
    if tariffs:
        explain.add(
            f"Avgifterna för hemtjänst, dagverksamhet och annan omsorg får tillsammans vara högst "
            f"{format_kronor(maxtaxa)} i månaden (maxtaxan: {_decimal_text(maxtaxa_fraction.value)} "
            "prisbasbelopp delat med tolv, avrundat till hela kronor).",
            maxtaxa_fraction,
        )
    for service, description, tariff, source in tariffs:
        fee = min(tariff, left, cap_left)
        text = f"{description}: taxan är {format_kronor(tariff)}; du betalar {format_kronor(fee)}"
        if fee < tariff:
            if left <= cap_left:
                text += f", för bara {format_kronor(left)} av avgiftsutrymmet återstår"
            else:
                text += f", för maxtaxan lämnar bara {format_kronor(cap_left)}"
        explain.add(f"{text}.", source)
        left -= fee
        cap_left -= fee
        lines.append(FeeLine(service, description, tariff, fee, within_maxtaxa=True))

    care_total = sum(line.fee_ore for line in lines if line.within_maxtaxa)
    total = care_total + housing_fee_ore
    summary = f"Din avgift för {format_month(month)} blir {format_kronor(total)}"
    if housing_fee_ore and care_total:
        summary += (
            f": {format_kronor(care_total)} för omsorgen och {format_kronor(housing_fee_ore)} för bostaden"
        )
    explain.add(f"{summary}.", rule)

    return FeeCalculation(
        month=month,
        prisbasbelopp_ore=pbb.value,
        avgiftsunderlag_ore=underlag,
        minimibelopp_ore=minimibelopp,
        adjustment_ore=adjustment,
        housing_cost_ore=housing,
        forbehallsbelopp_ore=forbehall,
        avgiftsutrymme_ore=utrymme,
        maxtaxa_ore=maxtaxa,
        rent_cap_ore=rent_cap,
        lines=tuple(lines),
        care_total_ore=care_total,
        housing_fee_ore=housing_fee_ore,
        total_ore=total,
        explanation=tuple(explain.lines),
    )


# ---- the steps ------------------------------------------------------------------------------------------


class _Explanation:
    def __init__(self) -> None:
        self.lines: list[ExplanationLine] = []

    def add(self, text: str, cited: Cited) -> None:
        self.lines.append(ExplanationLine(text, cited.citation, cited.example))


def _avgiftsunderlag(inputs: FeeInputs, month: date, parameters: Parameters, explain: _Explanation) -> int:
    own = sum(inputs.incomes.values())
    parts = ", ".join(
        f"{_INCOME_NAMES[kind]} {format_kronor(inputs.incomes[kind])}"
        for kind in IncomeKind
        if inputs.incomes.get(kind)
    )
    own_text = f"{format_kronor(own)} ({parts})" if parts else "0 kr"
    rule = parameters.citation("regel_avgiftsunderlag", month)
    household = inputs.household
    if isinstance(household, Cohabiting) and household.relation is Relation.MAKAR:
        partner = sum(household.partner_incomes.values())
        combined = own + partner
        # Half of an odd number of öre: the half öre is dropped, in the person's favour.
        underlag = combined // 2
        explain.add(
            f"Dina inkomster per månad efter skatt är {own_text}; din makes eller makas är "
            f"{format_kronor(partner)}.",
            rule,
        )
        explain.add(
            f"Ni är gifta eller registrerade partner, så ditt avgiftsunderlag är hälften av era "
            f"sammanlagda {format_kronor(combined)}: {format_kronor(underlag)}.",
            parameters.citation("regel_makar", month),
        )
        return underlag
    explain.add(f"Avgiftsunderlaget är dina inkomster per månad efter skatt: {own_text}.", rule)
    if isinstance(household, Cohabiting):
        explain.add(
            "Ni är sambor; lagen delar bara makars inkomster, så din sambos inkomster räknas inte in.",
            parameters.citation("regel_makar", month),
        )
    return own


def _minimibelopp(
    inputs: FeeInputs, month: date, parameters: Parameters, pbb_ore: int, explain: _Explanation
) -> int:
    if isinstance(inputs.household, Cohabiting):
        fraction = parameters.fraction("minimibelopp_sammanlevande_andel", month)
        who = "var och en av sammanlevande makar eller sambor"
    else:
        fraction = parameters.fraction("minimibelopp_ensamstaende_andel", month)
        who = "en ensamstående"
    amount = monthly_share_of_prisbasbelopp(fraction.value, pbb_ore)
    explain.add(
        f"Minimibeloppet för {who} är {format_kronor(amount)} i månaden: "
        f"{_decimal_text(fraction.value)} prisbasbelopp delat med tolv, avrundat till hela kronor.",
        fraction,
    )
    return amount


def _housing_cost(inputs: FeeInputs, month: date, parameters: Parameters, explain: _Explanation) -> int:
    housing = inputs.special_housing
    rule = parameters.citation("regel_forbehallsbelopp", month)
    if housing is not None:
        if housing.under_tenancy_act:
            explain.add(
                f"Hyran i ditt särskilda boende, {format_kronor(housing.rent_ore)}, följer hyreslagen "
                "och räknas som din boendekostnad.",
                rule,
            )
            return housing.rent_ore
        explain.add(
            "Bostaden i ditt särskilda boende följer inte hyreslagen: avgiften för den räknas inte in i "
            "förbehållsbeloppet utan betalas ur avgiftsutrymmet.",
            parameters.citation("regel_boendeavgift_utan_forbehall", month),
        )
        return 0
    if isinstance(inputs.household, Cohabiting):
        # The odd öre of a shared cost goes to the person, so the förbehåll is never rounded down.
        share = -(-inputs.housing_cost_ore // 2)
        explain.add(
            f"Er gemensamma boendekostnad är {format_kronor(inputs.housing_cost_ore)} i månaden; "
            f"din hälft är {format_kronor(share)}.",
            parameters.citation("regel_delad_boendekostnad", month),
        )
        return share
    explain.add(f"Din boendekostnad är {format_kronor(inputs.housing_cost_ore)} i månaden.", rule)
    return inputs.housing_cost_ore


def _tariffs(inputs: FeeInputs, month: date, parameters: Parameters) -> list[tuple[Service, str, int, Cited]]:
    """The tariff of every service the person has this month, in :data:`FEE_ORDER`."""
    services = inputs.services
    found: dict[Service, tuple[str, int, Cited]] = {}
    if inputs.special_housing is not None:
        care = parameters.amount("taxa_sarskilt_boende_omsorg", month)
        found[Service.SARSKILT_BOENDE] = ("Vård och omsorg i särskilt boende", care.value, care)
    hours = _hours(services.hemtjanst_hours)
    if hours > 0:
        table = parameters.levels("taxa_hemtjanst", month)
        found[Service.HEMTJANST] = (
            f"Hemtjänst, {_decimal_text(hours)} timmar i månaden",
            _step(table, hours, month),
            table,
        )
    if services.dagverksamhet_days_per_week:
        table = parameters.levels("taxa_dagverksamhet", month)
        days = services.dagverksamhet_days_per_week
        found[Service.DAGVERKSAMHET] = (
            f"Dagverksamhet, {days} {'dag' if days == 1 else 'dagar'} i veckan",
            _step(table, Fraction(days), month),
            table,
        )
    if services.korttidsvard_days:
        per_day = parameters.amount("taxa_korttidsvard_per_dygn", month)
        days = services.korttidsvard_days
        found[Service.KORTTIDSVARD] = (
            f"Korttidsvård, {days} dygn à {format_kronor(per_day.value)}",
            days * per_day.value,
            per_day,
        )
    if services.trygghetslarm:
        alarm = parameters.amount("taxa_trygghetslarm", month)
        found[Service.TRYGGHETSLARM] = ("Trygghetslarm", alarm.value, alarm)
    if services.matdistribution:
        meals = parameters.amount("taxa_matdistribution", month)
        found[Service.MATDISTRIBUTION] = ("Matdistribution", meals.value, meals)
    return [(service, *found[service]) for service in FEE_ORDER if service in found]


def _step(table: InForce[tuple[Level, ...]], quantity: Fraction, month: date) -> int:
    chosen = [level for level in table.value if level.threshold <= quantity]
    if not chosen:
        raise ParameterError(
            f"the tariff has no level for {_decimal_text(quantity)}",
            file=table.file,
            parameter=table.name,
            on=month,
        )
    return chosen[-1].amount_ore


def _hours(value: Fraction | Decimal | int) -> Fraction:
    return Fraction(value)


def _decimal_text(value: Fraction) -> str:
    """A fraction as Swedish writes a decimal: ``1,4789``, ``12,5``, ``12``."""
    if value.denominator == 1:
        return str(value.numerator)
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace(".", ",")


# ---- inputs that cannot be --------------------------------------------------------------------------------


def _check(inputs: FeeInputs, month: date) -> None:
    if month.day != 1:
        raise FeeInputError(f"a fee month is given by its first day, not {month.isoformat()}")
    _check_incomes("incomes", inputs.incomes)
    if isinstance(inputs.household, Cohabiting):
        _check_incomes("household.partner_incomes", inputs.household.partner_incomes)
    if inputs.housing_cost_ore < 0:
        raise FeeInputError("housing_cost_ore cannot be negative", field="housing_cost_ore")
    if inputs.special_housing is not None:
        if inputs.special_housing.rent_ore < 0:
            raise FeeInputError(
                "the rent in special housing cannot be negative", field="special_housing.rent_ore"
            )
        if inputs.housing_cost_ore:
            raise FeeInputError(
                "in special housing the rent is the housing cost: give it there, not as housing_cost_ore",
                field="housing_cost_ore",
            )
    services = inputs.services
    try:
        hours = _hours(services.hemtjanst_hours)
    except (TypeError, ValueError):
        raise FeeInputError(
            f"hemtjanst_hours {services.hemtjanst_hours!r} is not a number", field="services.hemtjanst_hours"
        ) from None
    if hours < 0:
        raise FeeInputError("hemtjanst_hours cannot be negative", field="services.hemtjanst_hours")
    if not 0 <= services.dagverksamhet_days_per_week <= 7:
        raise FeeInputError(
            "dagverksamhet_days_per_week is 0 to 7", field="services.dagverksamhet_days_per_week"
        )
    days_in_month = calendar.monthrange(month.year, month.month)[1]
    if not 0 <= services.korttidsvard_days <= days_in_month:
        raise FeeInputError(
            f"korttidsvard_days is 0 to {days_in_month} in {format_month(month)}",
            field="services.korttidsvard_days",
        )
    if (
        inputs.adjustment is not None
        and inputs.adjustment.amount_ore
        and not inputs.adjustment.reason.strip()
    ):
        raise FeeInputError(
            "an individual adjustment of the minimibelopp needs its reason", field="adjustment.reason"
        )


def _check_incomes(field_name: str, incomes: Mapping[IncomeKind, int]) -> None:
    for kind, amount in incomes.items():
        if not isinstance(kind, IncomeKind):
            raise FeeInputError(
                f"{field_name}: {kind!r} is not a kind of income that counts", field=field_name
            )
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise FeeInputError(f"{field_name}: {kind} is whole öre, an integer", field=field_name)
        if amount < 0:
            raise FeeInputError(f"{field_name}: {kind} cannot be negative", field=field_name)
