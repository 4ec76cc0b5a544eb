"""From what a district records of a person (the fee basis and the current decisions, read through the
mirror) to the inputs of one month's fee, with everything that had to be assumed on the way said in Swedish,
so that an agent can read it out with the fee.

What is read, and how:

- The fee basis of the person's district (the district whose Paraply holds them with a current decision).
  A district whose agreement with the contact center leaves the fee basis out, or a person no district
  holds, has no fee to calculate here: that is a refusal naming why, not a fee of zero.
- Household: the districts record "single" or "cohabiting" only. Cohabiting is taken as married or
  registered partners (makar), whose incomes the law halves; the answer says so, since for sambor the
  fee differs (the what-if calculates that).
- Services from the decisions in force in the month. A decision that starts or ends during a month counts
  as 32 kap. 10 § has a change count: from the month after, or from that month when it covers all of it.
  Short-term care is charged by the day, so it counts the days of the stay that fall in the month, at most
  the nights granted. LSS decisions bear no fee under the Social Services Act; accompaniment and relief
  (ledsagning, avlösning) have no fee in the tariff used here.
- Special housing: the fee basis's housing cost is then the rent of the home, let under the tenancy act or
  not as the dated parameter `sarskilt_boende_hyreslagen` says.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from services.common.errors import FailedPrecondition
from services.fees.model.calculation import (
    Cohabiting,
    FeeInputs,
    IncomeKind,
    Services,
    Single,
    SpecialHousing,
)
from services.fees.model.changes import effective_month
from services.fees.model.money import format_kronor, format_month

__all__ = [
    "MAX_HOURS_PER_MONTH",
    "DecisionFact",
    "FeeBasisFact",
    "IncomeFact",
    "MappedInputs",
    "PersonFees",
    "SourceFact",
    "WithheldFact",
    "inputs_for_month",
]

# Every hour of the longest month, round the clock.
MAX_HOURS_PER_MONTH = 744
_SERVICE_NAMES = {
    "hemtjanst": "hemtjänst",
    "sarskilt_boende": "särskilt boende",
    "dagverksamhet": "dagverksamhet",
    "trygghetslarm": "trygghetslarm",
    "ledsagning": "ledsagning",
    "avlosning": "avlösning",
    "korttidsvard": "korttidsvård",
    "matdistribution": "matdistribution",
}
_WITHOUT_TARIFF = frozenset({"ledsagning", "avlosning"})


@dataclass(frozen=True)
class IncomeFact:
    kind: str
    monthly_ore: int


@dataclass(frozen=True)
class FeeBasisFact:
    """A district's fee basis of a person, as the mirror shows it."""

    district_id: str
    incomes: tuple[IncomeFact, ...]
    housing_cost_ore: int
    household: str  # "single" or "cohabiting"
    partner_incomes: tuple[IncomeFact, ...]
    decided_fee_ore: int
    decided_from: date | None


@dataclass(frozen=True)
class DecisionFact:
    """A current decision, as the mirror shows it: its scope as text ({"hours_per_month": "24"})."""

    district_id: str
    decision_id: str
    service: str
    law: str
    scope: Mapping[str, str]
    valid_from: date | None
    valid_to: date | None


@dataclass(frozen=True)
class WithheldFact:
    """Something the mirror left out of its answer, and why (its section, district, reason and field)."""

    section: str
    district_id: str
    reason: str
    field: str = ""


@dataclass(frozen=True)
class SourceFact:
    """How fresh one source's facts are in the mirror."""

    source: str
    district_id: str
    as_of: datetime | None
    stale: bool


@dataclass(frozen=True)
class PersonFees:
    """What the mirror answered of a person, for their fee: fee bases, decisions, what was withheld."""

    found: bool
    home_districts: tuple[str, ...]
    fee_bases: tuple[FeeBasisFact, ...]
    decisions: tuple[DecisionFact, ...]
    withheld: tuple[WithheldFact, ...]
    sources: tuple[SourceFact, ...]


@dataclass(frozen=True)
class MappedInputs:
    inputs: FeeInputs
    district_id: str
    decided_fee_ore: int
    assumptions: tuple[str, ...]
    basis_as_of: datetime | None
    basis_stale: bool


def inputs_for_month(
    person: PersonFees, month: date, *, rent_under_tenancy_act: bool, current_month: date
) -> MappedInputs:
    """The inputs of `month`'s fee (its first day); FailedPrecondition naming why when the districts'
    records do not give them."""
    basis = _fee_basis(person)
    district = basis.district_id
    _refuse_withheld_fields(person, basis)
    said: list[str] = []
    decisions = [d for d in person.decisions if d.district_id == district]
    elsewhere = sorted({d.district_id for d in person.decisions if d.district_id != district})
    if elsewhere:
        said.append(
            "Beslut i andra stadsdelsområden räknas inte in: avgiften tas ut av det område som har "
            f"avgiftsunderlaget ({district})."
        )
    if month != current_month:
        when = "tidigare" if month < current_month else "senare"
        said.append(
            f"Beräkningen för {format_month(month)} bygger på avgiftsunderlaget och besluten som de ser ut "
            f"i dag; ändringar under {when} månader finns inte med."
        )

    household, housing_shared = _household(basis, said)
    services, special = _services(decisions, month, said)
    incomes = _incomes(basis.incomes, "fee_basis.incomes", district)
    housing_cost = basis.housing_cost_ore
    special_housing = None
    if special:
        special_housing = SpecialHousing(rent_ore=housing_cost, under_tenancy_act=rent_under_tenancy_act)
        if rent_under_tenancy_act:
            said.append(
                f"Boendekostnaden i avgiftsunderlaget, {format_kronor(housing_cost)}, antas vara hyran för "
                "bostaden i det särskilda boendet, upplåten enligt hyreslagen: den räknas som boendekostnad "
                "i förbehållsbeloppet."
            )
        else:
            said.append(
                f"Boendekostnaden i avgiftsunderlaget, {format_kronor(housing_cost)}, antas vara avgiften "
                "för bostaden i det särskilda boendet, som inte följer hyreslagen: den begränsas av "
                "hyrestaket."
            )
        housing_cost = 0
    elif housing_shared and housing_cost:
        said.append(
            f"Boendekostnaden {format_kronor(housing_cost)} antas vara hushållets gemensamma och delas lika."
        )
    inputs = FeeInputs(
        household=household,
        incomes=incomes,
        housing_cost_ore=housing_cost,
        services=services,
        special_housing=special_housing,
    )
    source = next(
        (s for s in person.sources if s.district_id == district and s.source.startswith("paraply")), None
    )
    return MappedInputs(
        inputs=inputs,
        district_id=district,
        decided_fee_ore=basis.decided_fee_ore,
        assumptions=tuple(said),
        basis_as_of=source.as_of if source else None,
        basis_stale=source.stale if source else True,
    )


# ---- which fee basis ---------------------------------------------------------------------------------------


def _fee_basis(person: PersonFees) -> FeeBasisFact:
    if not person.found:
        raise FailedPrecondition(
            "no district holds the person in Paraply, and Agresso has no invoice of theirs: there is no fee "
            "basis to calculate a fee from",
            reason="NO_FEE_BASIS",
        )
    home = person.home_districts[0] if person.home_districts else ""
    by_district = {b.district_id: b for b in person.fee_bases}
    if home and home in by_district:
        return by_district[home]
    withheld = _withheld_section(person, "fee_basis", home) if home else None
    if withheld is not None:
        raise _withheld_error("fee basis", home, withheld.reason, "FEE_BASIS_WITHHELD")
    if person.fee_bases:
        return person.fee_bases[0]
    others = [w for w in person.withheld if w.section == "fee_basis" and w.district_id and not w.field]
    if others:
        raise _withheld_error("fee basis", others[0].district_id, others[0].reason, "FEE_BASIS_WITHHELD")
    raise FailedPrecondition(
        "the district records no fee basis for the person: none of their current decisions bears a fee",
        reason="NO_FEE_BASIS",
        metadata={"district": f"districts/{home}"} if home else {},
    )


def _withheld_section(person: PersonFees, section: str, district_id: str) -> WithheldFact | None:
    return next(
        (
            w
            for w in person.withheld
            if w.section == section and not w.field and w.district_id in (district_id, "")
        ),
        None,
    )


def _withheld_error(what: str, district_id: str, reason: str, code: str) -> FailedPrecondition:
    if reason == "SCOPE_NOT_GRANTED":
        why = "the person's consent does not cover it"
    elif reason == "NO_VALID_AGREEMENT":
        why = "Äldre direkt has no agreement in force with the district"
    else:
        why = "the district's agreement with Äldre direkt does not cover it: ask the district's fee officer"
    where = f" of districts/{district_id}" if district_id else ""
    return FailedPrecondition(
        f"the {what}{where} is withheld: {why}",
        reason=code,
        metadata={"district": f"districts/{district_id}" if district_id else "", "withheld_reason": reason},
    )


def _refuse_withheld_fields(person: PersonFees, basis: FeeBasisFact) -> None:
    district = basis.district_id
    decisions = _withheld_section(person, "decisions", district)
    if decisions is not None:
        raise _withheld_error("decisions", district, decisions.reason, "DECISIONS_WITHHELD")
    needed = {"fee_basis.incomes", "fee_basis.housing_cost", "decisions.scope"}
    if basis.household == "cohabiting":
        needed.add("fee_basis.partner_incomes")
    for withheld in person.withheld:
        if withheld.field in needed and withheld.district_id in (district, ""):
            raise FailedPrecondition(
                f"the district's agreement leaves {withheld.field} out of what Äldre direkt may see, and the "
                f"fee cannot be calculated without it: ask the fee officer of districts/{district}",
                reason="FEE_BASIS_INCOMPLETE",
                metadata={"district": f"districts/{district}", "field": withheld.field},
            )


# ---- the parts ---------------------------------------------------------------------------------------------


def _unreadable(what: str, district_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the fee basis of districts/{district_id} cannot be read: {what}",
        reason="FEE_BASIS_UNREADABLE",
        metadata={"district": f"districts/{district_id}"},
    )


def _incomes(items: Sequence[IncomeFact], where: str, district_id: str = "") -> dict[IncomeKind, int]:
    incomes: dict[IncomeKind, int] = {}
    for item in items:
        try:
            kind = IncomeKind(item.kind)
        except ValueError:
            problem = f"{where} has an income of an unknown kind {item.kind[:40]!r}"
            raise _unreadable(problem, district_id) from None
        if item.monthly_ore < 0:
            raise _unreadable(f"{where} has a negative income", district_id)
        # Two entries of one kind (two pensions) are one income of that kind.
        incomes[kind] = incomes.get(kind, 0) + item.monthly_ore
    return incomes


def _household(basis: FeeBasisFact, said: list[str]) -> tuple[Single | Cohabiting, bool]:
    if basis.household == "single":
        return Single(), False
    if basis.household == "cohabiting":
        said.append(
            "Avgiftsunderlaget anger bara att personen är sammanboende. Beräkningen antar att de är gifta "
            "eller registrerade partner, så att var och ens inkomst är hälften av parets sammanlagda "
            "(32 kap. 5 §); för sambor räknas egen inkomst, och avgiften kan bli en annan."
        )
        partner = _incomes(basis.partner_incomes, "fee_basis.partner_incomes", basis.district_id)
        return Cohabiting(partner_incomes=partner), True
    raise _unreadable("the household is neither single nor cohabiting", basis.district_id)


def _last_day(month: date) -> date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def _counts_in(decision: DecisionFact, month: date) -> bool:
    """Whether a decision bears its fee in `month`, its start and end counted as 32 kap. 10 § counts a
    change: from the month after, or from that month when the change covers all of it."""
    if decision.valid_from is not None:
        starts = effective_month(decision.valid_from, covers_whole_month=decision.valid_from.day == 1)
        if month < starts:
            return False
    if decision.valid_to is not None:
        gone = decision.valid_to + timedelta(days=1)
        if month >= effective_month(gone, covers_whole_month=gone.day == 1):
            return False
    return True


def _overlaps(decision: DecisionFact, month: date) -> int:
    """The days of `month` within the decision's period."""
    first = max(month, decision.valid_from or month)
    last = min(_last_day(month), decision.valid_to or _last_day(month))
    return max(0, (last - first).days + 1)


def _number(decision: DecisionFact, key: str) -> Fraction | None:
    raw = decision.scope.get(key)
    if raw is None:
        return None
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise FailedPrecondition(
            f"decision {decision.decision_id[:60]} of districts/{decision.district_id} has a scope "
            f"{key} that is not a number of 0 or more",
            reason="DECISION_SCOPE_UNREADABLE",
            metadata={"district": f"districts/{decision.district_id}", "scope": key},
        )
    return Fraction(value)


def _missing_scope(decision: DecisionFact, key: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"decision {decision.decision_id[:60]} of districts/{decision.district_id} "
        f"({decision.service}) does not say its {key}",
        reason="DECISION_SCOPE_MISSING",
        metadata={"district": f"districts/{decision.district_id}", "scope": key},
    )


def _services(decisions: Sequence[DecisionFact], month: date, said: list[str]) -> tuple[Services, bool]:
    hours = Fraction(0)
    days_per_week = 0
    short_days = 0
    alarm = meals = special = False
    skipped_lss: list[str] = []
    without_tariff: list[str] = []
    not_this_month: list[str] = []
    for decision in decisions:
        name = _SERVICE_NAMES.get(decision.service, decision.service[:40])
        if decision.law == "LSS":
            skipped_lss.append(name)
            continue
        if decision.service == "korttidsvard":
            days = _overlaps(decision, month)
            nights = _number(decision, "nights")
            if nights is None:
                said.append(
                    f"Beslutet om korttidsvård säger inte hur många dygn som beviljats; alla {days} dygn av "
                    f"vistelsen i {format_month(month)} räknas."
                )
            elif days > nights:
                days = int(nights)
            short_days += days
            continue
        if not _counts_in(decision, month):
            not_this_month.append(name)
            continue
        if decision.service == "hemtjanst":
            found = _number(decision, "hours_per_month")
            if found is None:
                raise _missing_scope(decision, "hours_per_month")
            hours += found
        elif decision.service == "dagverksamhet":
            found = _number(decision, "days_per_week")
            if found is None:
                raise _missing_scope(decision, "days_per_week")
            days_per_week += int(found)
        elif decision.service == "trygghetslarm":
            alarm = True
        elif decision.service == "matdistribution":
            meals = True
        elif decision.service == "sarskilt_boende":
            special = True
        elif decision.service in _WITHOUT_TARIFF:
            without_tariff.append(name)
        else:
            without_tariff.append(name)
    if hours > MAX_HOURS_PER_MONTH:
        raise FailedPrecondition(
            f"the decisions grant more hours of home help than a month has ({MAX_HOURS_PER_MONTH})",
            reason="DECISION_SCOPE_UNREADABLE",
        )
    if days_per_week > 7:
        said.append(
            f"Besluten om dagverksamhet ger tillsammans {days_per_week} dagar i veckan; det räknas som 7."
        )
        days_per_week = 7
    month_days = calendar.monthrange(month.year, month.month)[1]
    short_days = min(short_days, month_days)
    if skipped_lss:
        said.append(
            f"Insatser enligt LSS har ingen avgift enligt socialtjänstlagen och räknas inte: "
            f"{', '.join(dict.fromkeys(skipped_lss))}."
        )
    if without_tariff:
        said.append(
            f"Taxan som används här har ingen avgift för {', '.join(dict.fromkeys(without_tariff))}; "
            "de räknas inte."
        )
    if not_this_month:
        said.append(
            f"Beslut som börjar eller slutar under månaden räknas från månaden efter ändringen, eller från "
            f"samma månad om ändringen gäller hela månaden (32 kap. 10 §); i {format_month(month)} räknas "
            f"därför inte: {', '.join(dict.fromkeys(not_this_month))}."
        )
    services = Services(
        hemtjanst_hours=hours,
        trygghetslarm=alarm,
        dagverksamhet_days_per_week=days_per_week,
        matdistribution=meals,
        korttidsvard_days=short_days,
    )
    return services, special
