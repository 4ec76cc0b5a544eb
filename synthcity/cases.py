"""Synthetic cases of Äldre direkt: contacts registered, answered at once or forwarded to the
person's unit, with feedback, overdue deadlines, further contacts and satisfaction answers.

The numbers follow the seeds: about 2,200 cases a week; the case-type mix of the 2007 pilot's
statistics (myndighetsutövning and utförare tables); the case classes 40/9/21/12/18 %; the telephone as
the largest channel (73 %); about two thirds answered at first contact (the goal is 70 %); the rest
forwarded to the beställarenhet of the person's district with two working days to give feedback, the
same day for acute matters (1,488 of 95,979 calls in 2021); satisfaction answers averaging about 4.4
of 5. Contacts arrive only while Äldre direkt is open, more of them in the morning.

Two outputs share one plan of every case, drawn from one `random.Random(seed)` in a fixed order:
`generate_cases` runs the plan through the case model's own transitions (register, add_contact,
resolve, forward, acknowledge, assign, record_feedback, mark_overdue, record_satisfaction), so every
case, contact and event is one the service could have produced; `case_rows` folds the same plan
straight into rows of the case store's `cases` table, for loading millions of them quickly. For the
same arguments both describe the same cases.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Generic, TypeVar

from services.case import model
from services.case.model import Case, Channel, Contact, ContactParty, FeedbackChannel, Routing
from services.common.business_calendar import STOCKHOLM, opening_hours
from services.common.errors import InvalidArgument
from synthcity.city import DISTRICTS, City, Role
from synthcity.names import ORIGINS, Origin, ascii_slug
from synthcity.people import Person, generate_people

__all__ = [
    "ACUTE_SHARE",
    "ANONYMOUS_SHARE",
    "AUTHORITY_CALLS_2007",
    "CASE_CLASS_SHARES",
    "CATEGORY",
    "CHANNEL_SHARES",
    "PROVIDER_CALLS_2007",
    "SATISFACTION_SHARES",
    "WEEKLY_VOLUME",
    "case_rows",
    "expected_case_type_shares",
    "generate_cases",
    "unit_queue_rows",
]

T = TypeVar("T")

CATEGORY = "aldreomsorg"
# About 2,200 cases a week [003].
WEEKLY_VOLUME = 2_200
# Acute calls, those that cannot wait 24 hours, in 2021 [000].
ACUTE_SHARE = 1_488 / 95_979
ANONYMOUS_SHARE = 0.05

# Calls by case type in the Hässelby-Vällingby contact center, July–October 2007 [001]: those about
# the exercise of authority, and those about providers. The latter come with complaints about
# providers (the class "Synpunkter utförarverksamheter"), the former with every other class.
AUTHORITY_CALLS_2007: dict[str, int] = {
    "boende": 380,
    "dagverksamhet": 32,
    "fakturafraga": 343,
    "fixaren": 254,
    "fardtjanst": 316,
    "god-man-forvaltare": 25,
    "hemtjanst": 1244,
    "kbh": 3,
    "kopplat-till-avd-ao": 1023,
    "landstingsfraga": 166,
    "personlig-assistans-ledsagning": 18,
    "riksfardtjanst": 26,
    "trygghetslarm": 104,
}
PROVIDER_CALLS_2007: dict[str, int] = {
    "boende": 25,
    "dagverksamhet": 1,
    "fakturafraga": 10,
    "hemtjanst": 637,
    # "Kopplat till Utf", calls put through to the provider: the reference data has no type of its
    # own for them, so they count with the calls put through onwards.
    "kopplat-till-avd-ao": 23,
    "personlig-assistans-ledsagning": 8,
}
PROVIDER_CLASS = "synpunkter-utforarverksamheter"

# The classes of calls measured before the Bromma pilot [001].
CASE_CLASS_SHARES: dict[str, float] = {
    "information-och-vagledning": 0.40,
    "ny-ansokan": 0.09,
    "status-pa-anmalan-arende": 0.21,
    "synpunkter-central-forvaltning": 0.12,
    PROVIDER_CLASS: 0.18,
}
# The telephone is the largest channel: 73 % of Kontaktcenter's cases [003]; the rest are made up in
# the order the seeds name them.
CHANNEL_SHARES: dict[Channel, float] = {
    Channel.PHONE: 0.73,
    Channel.EMAIL: 0.12,
    Channel.E_SERVICE: 0.08,
    Channel.LETTER: 0.04,
    Channel.FAX: 0.02,
    Channel.VISIT: 0.01,
}
# Mean 4.39 of 5, as the NKI of 4.40 [000]; 86 % answer 4 or 5, as "84 % satisfied" [003].
SATISFACTION_SHARES: dict[int, float] = {5: 0.60, 4: 0.26, 3: 0.09, 2: 0.03, 1: 0.02}

# Of each class, the share Äldre direkt cannot answer itself and forwards to the district's unit:
# new applications are the unit's to decide, plain information almost never is. Together with the
# acute cases about 30 % are forwarded, so about two thirds are answered at first contact [000].
_FORWARD_SHARE: dict[str, float] = {
    "information-och-vagledning": 0.07,
    "ny-ansokan": 0.85,
    "status-pa-anmalan-arende": 0.33,
    "synpunkter-central-forvaltning": 0.38,
    PROVIDER_CLASS: 0.38,
}
# Questions and complaints may come without a name; applications and status questions cannot.
_ANONYMOUS_CLASSES = frozenset(
    {"information-och-vagledning", "synpunkter-central-forvaltning", PROVIDER_CLASS}
)
# Of the cases Äldre direkt answers itself, the share that takes further contacts (a call back).
_FOLLOW_UP_SHARE = 0.05
_THIRD_CONTACT_SHARE = 0.35
# Forwarded cases: a contact before forwarding, the person asking about it while the unit has it.
_CONTACT_BEFORE_FORWARD_SHARE = 0.05
_STATUS_CALL_SHARE = 0.15
_ACKNOWLEDGED_SHARE = 0.92
_ASSIGNED_SHARE = 0.55
_IN_TIME_SHARE = 0.88
_ACUTE_IN_TIME_SHARE = 0.95
# Forwarded cases the unit never answers: they stay open, overdue.
_NEVER_ANSWERED_SHARE = 0.015
_SATISFACTION_ANSWER_SHARE = 0.15

_PARTY_SHARES: dict[ContactParty, float] = {
    ContactParty.SELF: 0.45,
    ContactParty.RELATIVE: 0.42,
    ContactParty.LEGAL_REPRESENTATIVE: 0.05,
    ContactParty.OTHER: 0.08,
}
_SPOKEN_FEEDBACK: dict[FeedbackChannel, float] = {
    FeedbackChannel.PHONE: 0.75,
    FeedbackChannel.LETTER: 0.10,
    FeedbackChannel.EMAIL: 0.10,
    FeedbackChannel.MY_PAGES: 0.05,
}
_WRITTEN_FEEDBACK: dict[FeedbackChannel, float] = {
    FeedbackChannel.EMAIL: 0.60,
    FeedbackChannel.PHONE: 0.30,
    FeedbackChannel.MY_PAGES: 0.10,
}
_FEEDBACK_WINDOWS = ("vardagar 9–12", "eftermiddagar", "efter kl. 13", "förmiddagar, ej måndagar")
_FEEDBACK_WINDOW_SHARE = 0.3

# More cases on Mondays and fewer on Fridays; fewer in the summer and at Christmas.
_WEEKDAY_FACTORS = (1.20, 1.05, 1.00, 0.95, 0.80)
_MONTH_FACTORS = {1: 1.05, 6: 0.90, 7: 0.75, 8: 0.90, 12: 0.90}
_DAILY_NOISE = 0.05
# Relative arrivals in each hour after opening: a morning peak, as the officers' old phone hours were.
_HOURLY_WEIGHTS = (1.3, 1.5, 1.4, 1.1, 0.8, 0.9, 0.8, 0.6, 0.4)

# About 30 full-time agents [001].
_AGENTS = tuple(f"agent-{n:02d}" for n in range(1, 31))
_SYSTEM = "system"
# The range the Swedish Post and Telecom Authority keeps for fiction, so no real phone rings.
_FICTION_PHONES = tuple(f"070-174 06 {n:02d}" for n in range(5, 100))
_MAIL_DOMAIN = "post.example"  # RFC 2606: reserved, never a real mailbox
# Directory roles a case type is routed to, as in the case service's reference data.
_NEED_ROLE: dict[str, Role] = {
    "fakturafraga": Role.FEE_OFFICER,
    "fardtjanst": Role.TRANSPORT_SERVICE,
    "riksfardtjanst": Role.TRANSPORT_SERVICE,
    "anhorigstod": Role.CARER_SUPPORT,
}
_ASSESSORS = (Role.ORDINARY_HOUSING, Role.SPECIAL_HOUSING, Role.DISCHARGE_PLANNING)
_PROVIDER_TYPES = frozenset({"hemtjanst", "boende", "dagverksamhet"})
_PROVIDER_NAMED_SHARE = 0.3
_ANONYMOUS_WITHOUT_DISTRICT = 0.25
# Calendar days beyond the last day of cases, for the steps that follow them.
_CALENDAR_MARGIN_DAYS = 45
_MAX_DAYS = 366 * 12
_MAX_PEOPLE = 200_000

_SUMMARIES: dict[str, tuple[str, ...]] = {
    "boende": (
        "Vill veta hur man ansöker om plats på vård- och omsorgsboende.",
        "Frågar hur lång väntetiden är till särskilt boende.",
        "Anhörig undrar om det går att byta till ett boende närmare familjen.",
    ),
    "dagverksamhet": (
        "Frågar om plats på dagverksamhet för personer med demenssjukdom.",
        "Vill veta vilka träffpunkter som finns i stadsdelen.",
    ),
    "fakturafraga": (
        "Frågar varför omsorgsavgiften på senaste fakturan är högre än förra månaden.",
        "Undrar om fakturan är betald och vilket OCR-nummer som gäller.",
        "Vill ha anstånd med betalningen av omsorgsavgiften.",
    ),
    "fixaren": (
        "Vill boka Fixaren för att byta glödlampor och sätta upp gardiner.",
        "Frågar vad Fixaren kan hjälpa till med och vad det kostar.",
    ),
    "fardtjanst": (
        "Vill ansöka om färdtjänst.",
        "Frågar hur länge färdtjänsttillståndet gäller och hur man förlänger det.",
    ),
    "god-man-forvaltare": ("Anhörig frågar hur man ansöker om god man.",),
    "hemtjanst": (
        "Hemtjänsten kom inte till morgonbesöket.",
        "Vill ansöka om mer hemtjänst efter sjukhusvistelsen.",
        "Vill byta hemtjänstutförare.",
        "Frågar om tiderna för hemtjänstens besök.",
    ),
    "kbh": ("Frågar om kommunalt bostadstillägg för personer med funktionsnedsättning.",),
    "kopplat-till-avd-ao": (
        "Söker sin biståndshandläggare.",
        "Vill bli uppringd av handläggaren om sitt beslut.",
    ),
    "landstingsfraga": (
        "Frågar vart man vänder sig om hemsjukvård.",
        "Frågar om hjälpmedel som regionen förskriver.",
    ),
    "personlig-assistans-ledsagning": ("Frågar om ledsagning till läkarbesök.",),
    "riksfardtjanst": ("Vill ansöka om riksfärdtjänst för en resa till släkten.",),
    "trygghetslarm": (
        "Vill ansöka om trygghetslarm.",
        "Trygghetslarmet fungerar inte som det ska.",
    ),
}
_STATUS_SUMMARIES = (
    "Frågar hur det går med ärendet.",
    "Har inte hört något från handläggaren och undrar när hen hör av sig.",
    "Lämnar kompletterande uppgifter till ärendet.",
)
_RESOLUTIONS: dict[str, tuple[str, ...]] = {
    "information-och-vagledning": (
        "Informerat om hur det fungerar och skickat broschyr.",
        "Gett information och hänvisat till stadens webbplats.",
    ),
    "ny-ansokan": ("Skickat ansökningsblankett och förklarat hur ansökan går till.",),
    "status-pa-anmalan-arende": (
        "Kontrollerat ärendet och lämnat besked om var det står.",
        "Kontrollerat fakturan och lämnat OCR-nummer.",
    ),
    "synpunkter-central-forvaltning": ("Synpunkten registrerad och besvarad.",),
    PROVIDER_CLASS: (
        "Kontaktat utföraren, som rättar till det.",
        "Synpunkten förmedlad till utföraren och besvarad.",
    ),
}
_FEEDBACK_NOTES = (
    "Handläggaren har ringt upp och bokat hembesök.",
    "Återkopplat per telefon; ansökan är registrerad och utredning påbörjad.",
    "Lämnat besked om beslutet.",
    "Kontaktat den enskilde och rett ut frågan med utföraren.",
    "Skickat svar per brev.",
)
_RELATIVE_PREFIXES = ("", "", "", "dotter ", "son ", "make ", "maka ")
_OTHER_PREFIXES = ("sjuksköterska ", "hemtjänstpersonal ", "granne ", "kurator ")


def _cumulative(weights: Sequence[float]) -> tuple[float, ...]:
    return tuple(itertools.accumulate(weights))


class _Weighted(Generic[T]):
    """A fixed discrete distribution, drawn with one random number."""

    def __init__(self, weights: dict[T, float] | dict[T, int]):
        self.values: tuple[T, ...] = tuple(weights)
        self.cumulative = _cumulative([float(w) for w in weights.values()])

    def draw(self, rng: random.Random) -> T:
        return self.values[bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])]

    def share(self, value: T) -> float:
        index = self.values.index(value)
        low = self.cumulative[index - 1] if index else 0.0
        return (self.cumulative[index] - low) / self.cumulative[-1]


def expected_case_type_shares() -> dict[str, float]:
    """The share of each case type the generator aims at: each 2007 table weighted by its classes."""
    provider_weight = CASE_CLASS_SHARES[PROVIDER_CLASS]
    authority = _Weighted(AUTHORITY_CALLS_2007)
    provider = _Weighted(PROVIDER_CALLS_2007)
    shares: dict[str, float] = {}
    for case_type in AUTHORITY_CALLS_2007:
        shares[case_type] = (1 - provider_weight) * authority.share(case_type)
    for case_type in PROVIDER_CALLS_2007:
        shares[case_type] = shares.get(case_type, 0.0) + provider_weight * provider.share(case_type)
    return shares


# ---------------------------------------------------------------------------------------------------------
# Opening time as one line of seconds
# ---------------------------------------------------------------------------------------------------------


class _OpeningClock:
    """Äldre direkt's opening hours over a run of dates as one line of seconds.

    Position 0 is the first working day's opening; each working day adds its opening seconds. Every
    position is an instant inside opening hours, so adding working minutes never lands on a closed
    hour, and the opening seconds between two positions are their difference: what the case model's
    `working_hours_between` counts.
    """

    def __init__(self, first: date, last: date):
        self.days: list[date] = []
        self.opens: list[datetime] = []
        self.closes: list[datetime] = []
        self.starts: list[int] = []
        self.months: list[str] = []
        position = 0
        day = first
        while day <= last:
            hours = opening_hours(day)
            if hours is not None:
                opens = _utc(day, hours.opens)
                closes = _utc(day, hours.closes)
                self.days.append(day)
                self.opens.append(opens)
                self.closes.append(closes)
                self.starts.append(position)
                self.months.append(f"{day:%Y-%m}")
                position += int((closes - opens).total_seconds())
            day += timedelta(days=1)
        self.end = position

    def day_of(self, position: int) -> int:
        return bisect.bisect_right(self.starts, position) - 1

    def instant(self, position: int) -> datetime:
        index = self.day_of(position)
        return self.opens[index] + timedelta(seconds=position - self.starts[index])

    def closing_position(self, index: int) -> int:
        """The position just past the last second of a day: its closing time."""
        return self.starts[index + 1] if index + 1 < len(self.starts) else self.end

    def position_of(self, moment: datetime) -> int:
        """The position of `moment`, or of the next opening when Äldre direkt is closed then."""
        index = bisect.bisect_right(self.opens, moment) - 1
        if index < 0:
            return 0
        if moment >= self.closes[index]:
            return self.closing_position(index)
        return self.starts[index] + int((moment - self.opens[index]).total_seconds())


def _utc(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=STOCKHOLM).astimezone(UTC)


# ---------------------------------------------------------------------------------------------------------
# The plan of a case
# ---------------------------------------------------------------------------------------------------------

# What happens to a case, in time order: (time, position or -1 outside opening hours, kind, actor, what).
_CONTACT = "contact"
_RESOLVE = "resolve"
_FORWARD = "forward"
_ACKNOWLEDGE = "acknowledge"
_ASSIGN = "assign"
_OVERDUE = "overdue"
_FEEDBACK = "feedback"
_SATISFACTION = "satisfaction"
_Step = tuple[datetime, int, str, str, Any]


@dataclass(slots=True)
class _Plan:
    case_type: str
    case_class: str
    district_id: str | None
    person_number: str | None
    acute: bool
    feedback_channel: FeedbackChannel
    feedback_window: str
    provider: str
    first: Contact
    created: datetime
    position: int
    month: str
    agent: str
    steps: list[_Step]


@dataclass(frozen=True)
class _UnitStaff:
    assessors: tuple[str, ...]
    by_role: dict[Role, tuple[str, ...]]
    managers: tuple[str, ...]


class _Planner:
    """Draws the plans of cases from one random generator, in a fixed order."""

    def __init__(self, city: City, rng: random.Random, people: Sequence[Person], clock: _OpeningClock):
        self.city = city
        self.rng = rng
        self.people = people
        self.clock = clock
        self.classes = _Weighted(CASE_CLASS_SHARES)
        self.authority_types = _Weighted(AUTHORITY_CALLS_2007)
        self.provider_types = _Weighted(PROVIDER_CALLS_2007)
        self.channels = _Weighted(CHANNEL_SHARES)
        self.parties = _Weighted(_PARTY_SHARES)
        self.spoken_feedback = _Weighted(_SPOKEN_FEEDBACK)
        self.written_feedback = _Weighted(_WRITTEN_FEEDBACK)
        self.scores = _Weighted(SATISFACTION_SHARES)
        self.districts = _Weighted({d.district_id: d.elderly_weight for d in DISTRICTS})
        self.anonymous_share = ANONYMOUS_SHARE / sum(
            share for case_class, share in CASE_CLASS_SHARES.items() if case_class in _ANONYMOUS_CLASSES
        )
        self.acute_share = ACUTE_SHARE / (1 - ANONYMOUS_SHARE)
        self.staff = {unit.unit_id: _unit_staff(city, unit.unit_id) for unit in city.units}
        self.providers = {d.district_id: _providers(d.district_id) for d in DISTRICTS}
        self.origins: dict[str, Origin] = {}
        for origin in ORIGINS.values():
            self.origins.setdefault(origin.language, origin)
        self.routings: dict[tuple[str, str | None, str], Routing] = {}
        self.teams: dict[tuple[str, str], tuple[str, ...]] = {}

    # -- drawing helpers -----------------------------------------------------------------------------

    def minutes(self, low: float, high: float) -> int:
        """A uniform number of working seconds between `low` and `high` minutes."""
        return int(60 * self.rng.uniform(low, high))

    def handling(self, channel: Channel) -> int:
        """Seconds until the agent has dealt with a contact: a call takes about four minutes [001]."""
        if channel in (Channel.PHONE, Channel.VISIT):
            return int(60 * min(1.0 + self.rng.expovariate(1 / 3.0), 30.0))
        return self.minutes(20, 600)

    def step(self, position: int, kind: str, actor: str, what: Any = None) -> _Step:
        return (self.clock.instant(position), position, kind, actor, what)

    # -- a case --------------------------------------------------------------------------------------

    def plan(
        self,
        position: int,
        *,
        pool: Sequence[Person] | None = None,
        forward: bool = False,
        answered: bool = True,
    ) -> _Plan:
        rng = self.rng
        case_class = self.classes.draw(rng)
        anonymous = pool is None and case_class in _ANONYMOUS_CLASSES and rng.random() < self.anonymous_share
        people = self.people if pool is None else pool
        person = None if anonymous else people[int(len(people) * rng.random() ** 1.3)]
        types = self.provider_types if case_class == PROVIDER_CLASS else self.authority_types
        case_type = types.draw(rng)
        acute = person is not None and rng.random() < self.acute_share
        # An acute matter is rung in; nobody writes a letter about what cannot wait a day.
        channel = Channel.PHONE if acute else self.channels.draw(rng)
        party = self.parties.draw(rng)
        if anonymous and party is not ContactParty.SELF:
            party = ContactParty.OTHER
        district_id: str | None
        if person is not None:
            district_id = person.district_id
        elif rng.random() < _ANONYMOUS_WITHOUT_DISTRICT:
            district_id = None
        else:
            district_id = self.districts.draw(rng)
        provider = ""
        if district_id is not None and (
            case_class == PROVIDER_CLASS
            or (case_type in _PROVIDER_TYPES and rng.random() < _PROVIDER_NAMED_SHARE)
        ):
            provider = rng.choice(self.providers[district_id])
        spoken = channel in (Channel.PHONE, Channel.VISIT)
        feedback_channel = (self.spoken_feedback if spoken else self.written_feedback).draw(rng)
        feedback_window = ""
        if feedback_channel is FeedbackChannel.PHONE and rng.random() < _FEEDBACK_WINDOW_SHARE:
            feedback_window = rng.choice(_FEEDBACK_WINDOWS)
        first = self.contact(channel, party, person, rng.choice(_SUMMARIES[case_type]))
        agent = rng.choice(_AGENTS)
        created = self.clock.instant(position)

        steps: list[_Step] = []
        forwarded = person is not None and (forward or acute or rng.random() < _FORWARD_SHARE[case_class])
        if forwarded:
            assert person is not None
            self.plan_forwarding(steps, position, first, person, case_type, acute, agent, answered)
        else:
            self.plan_answer(steps, position, first, case_class, agent)
        if steps[-1][2] in (_RESOLVE, _FEEDBACK) and rng.random() < _SATISFACTION_ANSWER_SHARE:
            steps.append(
                self.step(
                    steps[-1][1] + self.minutes(60, 3 * 480), _SATISFACTION, agent, self.scores.draw(rng)
                )
            )
        steps.sort(key=_time)
        index = self.clock.day_of(position)
        return _Plan(
            case_type=case_type,
            case_class=case_class,
            district_id=district_id,
            person_number=person.person_number if person is not None else None,
            acute=acute,
            feedback_channel=feedback_channel,
            feedback_window=feedback_window,
            provider=provider,
            first=first,
            created=created,
            position=position,
            month=self.clock.months[index],
            agent=agent,
            steps=steps,
        )

    def contact(self, channel: Channel, party: ContactParty, person: Person | None, summary: str) -> Contact:
        rng = self.rng
        name = ""
        if party is not ContactParty.SELF:
            name = self.someone_else(party, person)
        phone = rng.choice(_FICTION_PHONES) if channel is Channel.PHONE else ""
        email = ""
        if channel in (Channel.EMAIL, Channel.E_SERVICE):
            writer = (
                name.split(" ")[-2:] if name else ([person.given_name, person.family_name] if person else [])
            )
            local = ".".join(ascii_slug(part) for part in writer) or f"anonym{rng.randrange(1000)}"
            email = f"{local}@{_MAIL_DOMAIN}"
        return Contact(
            channel=channel,
            party=party,
            summary=summary,
            contact_name=name,
            contact_phone=phone,
            contact_email=email,
        )

    def someone_else(self, party: ContactParty, person: Person | None) -> str:
        """A relative (a generation younger, often of the same family name) or someone else."""
        rng = self.rng
        origin = self.origins.get(person.language if person else "sv", ORIGINS["sv"])
        female = rng.random() < 0.6
        given = rng.choice(origin.given_names(female=female, older=False))
        if party is ContactParty.RELATIVE and person is not None and rng.random() < 0.6:
            family = person.family_name
            prefix = rng.choice(_RELATIVE_PREFIXES)
        else:
            masculine, feminine = rng.choice(origin.family)
            family = feminine if female else masculine
            prefix = rng.choice(_OTHER_PREFIXES) if party is ContactParty.OTHER else ""
        return f"{prefix}{given} {family}"

    def follow_up(self, first: Contact, summary: str) -> Contact:
        rng = self.rng
        channel = Channel.PHONE if rng.random() < 0.8 else Channel.EMAIL
        email = first.contact_email
        if channel is Channel.EMAIL and not email:
            email = f"anonym{rng.randrange(1000)}@{_MAIL_DOMAIN}"
        return Contact(
            channel=channel,
            party=first.party,
            summary=summary,
            contact_name=first.contact_name,
            contact_phone=first.contact_phone or rng.choice(_FICTION_PHONES),
            contact_email=email,
        )

    def plan_answer(
        self, steps: list[_Step], position: int, first: Contact, case_class: str, agent: str
    ) -> None:
        """Äldre direkt answers itself: at once, or after calling back once or twice."""
        rng = self.rng
        at = position + self.handling(first.channel)
        if rng.random() < _FOLLOW_UP_SHARE:
            contacts = 2 if rng.random() >= _THIRD_CONTACT_SHARE else 3
            for _ in range(contacts - 1):
                at += self.minutes(30, 900)
                steps.append(
                    self.step(
                        at,
                        _CONTACT,
                        rng.choice(_AGENTS),
                        self.follow_up(first, rng.choice(_STATUS_SUMMARIES)),
                    )
                )
                at += self.handling(Channel.PHONE)
        steps.append(self.step(at, _RESOLVE, agent, rng.choice(_RESOLUTIONS[case_class])))

    def plan_forwarding(
        self,
        steps: list[_Step],
        position: int,
        first: Contact,
        person: Person,
        case_type: str,
        acute: bool,
        agent: str,
        answered: bool,
    ) -> None:
        """Forwarded to the person's unit; acknowledged, perhaps assigned, answered in time or late."""
        rng = self.rng
        clock = self.clock
        at = position
        if not acute and rng.random() < _CONTACT_BEFORE_FORWARD_SHARE:
            at += self.handling(first.channel) + self.minutes(30, 600)
            steps.append(self.step(at, _CONTACT, agent, self.follow_up(first, rng.choice(_STATUS_SUMMARIES))))
        at += self.minutes(1, 5) if acute else self.handling(first.channel)
        routing = self.routing(person, case_type)
        steps.append(self.step(at, _FORWARD, agent, routing))
        forwarded_at = at
        deadline_end = clock.closing_position(clock.day_of(at) + (0 if acute else 2))

        staff = self.staff[routing.unit_id]
        handler = routing.officer_id or rng.choice(
            self.team(routing.unit_id, routing.team) or staff.assessors
        )
        acknowledged = rng.random() < _ACKNOWLEDGED_SHARE
        assigned = acknowledged and rng.random() < _ASSIGNED_SHARE
        never = not answered or rng.random() < _NEVER_ANSWERED_SHARE
        in_time = rng.random() < (_ACUTE_IN_TIME_SHARE if acute else _IN_TIME_SHARE)
        status_call = rng.random() < _STATUS_CALL_SHARE
        if acknowledged:
            at += self.minutes(5, 60) if acute else self.minutes(15, 600)
            steps.append(self.step(at, _ACKNOWLEDGE, handler))
        if assigned:
            officer = routing.officer_id or handler
            at += self.minutes(5, 240)
            steps.append(self.step(at, _ASSIGN, officer, officer))
            handler = officer
        answer: int | None = None
        if not never:
            earliest = at + self.minutes(5, 30)
            if in_time and earliest < deadline_end - 60:
                answer = rng.randrange(earliest, deadline_end - 60)
            else:
                answer = max(earliest, deadline_end) + self.minutes(30, 3 * 480)
        if status_call:
            latest = answer if answer is not None else forwarded_at + 2 * 480 * 60
            if latest - forwarded_at > 31 * 60:
                call = rng.randrange(forwarded_at + 30 * 60, latest - 60)
                steps.append(
                    self.step(
                        call,
                        _CONTACT,
                        rng.choice(_AGENTS),
                        self.follow_up(first, rng.choice(_STATUS_SUMMARIES)),
                    )
                )
        if answer is None or answer >= deadline_end:
            # The escalation job notices within a minute of the deadline.
            deadline = clock.instant(deadline_end - 1) + timedelta(seconds=61)
            steps.append((deadline, -1, _OVERDUE, _SYSTEM, None))
        if answer is not None:
            steps.append(self.step(answer, _FEEDBACK, handler, rng.choice(_FEEDBACK_NOTES)))

    def team(self, unit_id: str, team: str) -> tuple[str, ...]:
        if not team:
            return ()
        members = self.teams.get((unit_id, team))
        if members is None:
            members = tuple(o.officer_id for o in self.city.team_members(unit_id, team))
            self.teams[(unit_id, team)] = members
        return members

    def routing(self, person: Person, case_type: str) -> Routing:
        """What the directory answers: the person's unit and officer (or team), or the officer of the role
        the case type needs."""
        staff = self.staff[person.unit_id]
        role = _NEED_ROLE.get(case_type)
        officer_id: str | None = person.officer_id or None
        team = person.team
        if role is not None and staff.by_role.get(role):
            officer_id = self.rng.choice(staff.by_role[role])
            team = ""
        elif officer_id is not None and not self.city.officer(officer_id).active:
            officer_id = self.rng.choice(staff.assessors)
        key = (person.unit_id, officer_id, team)
        routing = self.routings.get(key)
        if routing is None:
            unit = self.city.unit(person.unit_id)
            routing = Routing(
                unit_id=unit.unit_id,
                district_id=unit.district_id,
                mailbox=unit.mailbox,
                acute_phone=unit.acute_phone,
                officer_id=officer_id,
                team=team,
                manager_emails=staff.managers,
            )
            self.routings[key] = routing
        return routing


def _time(step: _Step) -> datetime:
    return step[0]


def _unit_staff(city: City, unit_id: str) -> _UnitStaff:
    officers = [o for o in city.officers_of(unit_id) if o.active]
    by_role: dict[Role, tuple[str, ...]] = {}
    for officer in officers:
        by_role[officer.role] = (*by_role.get(officer.role, ()), officer.officer_id)
    return _UnitStaff(
        assessors=tuple(o.officer_id for o in officers if o.role in _ASSESSORS),
        by_role=by_role,
        managers=tuple(o.email for o in officers if o.role is Role.UNIT_MANAGER and o.email),
    )


def _providers(district_id: str) -> tuple[str, ...]:
    district = next(d for d in DISTRICTS if d.district_id == district_id)
    hoods = [hood.name for hood in district.neighbourhoods[:3]]
    return (
        *(f"Hemtjänsten {name}" for name in hoods),
        f"Vård- och omsorgsboendet {hoods[0]}",
        f"Dagverksamheten {district.display_name}",
    )


# ---------------------------------------------------------------------------------------------------------
# Plans for a period
# ---------------------------------------------------------------------------------------------------------


def _check(start: date, end: date, people: int, weekly_volume: int) -> None:
    if end < start:
        raise InvalidArgument.field("end", "must not be before start")
    if (end - start).days > _MAX_DAYS:
        raise InvalidArgument.field("end", f"the period may be at most {_MAX_DAYS} days")
    if not 1 <= people <= _MAX_PEOPLE:
        raise InvalidArgument.field("people", f"must be between 1 and {_MAX_PEOPLE}")
    if weekly_volume < 0:
        raise InvalidArgument.field("weekly_volume", "must not be negative")


def _clock_for(
    start: date, end: date, people: int, weekly_volume: int, now: datetime | None
) -> _OpeningClock:
    _check(start, end, people, weekly_volume)
    if now is not None and now.tzinfo is None:
        raise InvalidArgument.field("now", "must carry a time zone")
    return _OpeningClock(start, end + timedelta(days=_CALENDAR_MARGIN_DAYS))


def _plans(
    city: City,
    clock: _OpeningClock,
    *,
    end: date,
    now: datetime | None,
    seed: int,
    people: int,
    weekly_volume: int,
) -> Iterator[_Plan]:
    rng = random.Random(seed)
    pool = list(generate_people(city, people, seed=city.seed, today=city.today))
    planner = _Planner(city, rng, pool, clock)
    daily = weekly_volume / 5
    arrivals: dict[int, tuple[float, ...]] = {}
    for index, day in enumerate(clock.days):
        if day > end:
            break
        if now is not None and clock.opens[index] > now:
            break
        wanted = daily * _WEEKDAY_FACTORS[day.weekday()] * _MONTH_FACTORS.get(day.month, 1.0)
        count = max(0, round(wanted * rng.gauss(1.0, _DAILY_NOISE)))
        length = clock.closing_position(index) - clock.starts[index]
        cumulative = arrivals.get(length)
        if cumulative is None:
            cumulative = _cumulative(
                [
                    _HOURLY_WEIGHTS[min(minute // 60, len(_HOURLY_WEIGHTS) - 1)]
                    for minute in range(length // 60)
                ]
            )
            arrivals[length] = cumulative
        offsets = sorted(
            60 * bisect.bisect(cumulative, rng.random() * cumulative[-1]) + rng.randrange(60)
            for _ in range(count)
        )
        for offset in offsets:
            plan = planner.plan(clock.starts[index] + offset)
            if now is not None and plan.created > now:
                return
            yield plan


# ---------------------------------------------------------------------------------------------------------
# Cases through the model
# ---------------------------------------------------------------------------------------------------------


def generate_cases(
    city: City,
    *,
    start: date,
    end: date,
    now: datetime | None = None,
    seed: int = 2026,
    people: int = 20_000,
    weekly_volume: int = WEEKLY_VOLUME,
) -> Iterator[Case]:
    """Cases registered from `start` to `end` (Stockholm dates, inclusive), oldest first, as they stand
    at `now`: what would happen after it has not happened yet, and cases after it do not exist. With
    `now` None every case runs its course. The people are the first `people` of the city's; ids are 0
    until a store gives them.
    """
    clock = _clock_for(start, end, people, weekly_volume, now)
    for plan in _plans(city, clock, end=end, now=now, seed=seed, people=people, weekly_volume=weekly_volume):
        yield _run(plan, now)


def _run(plan: _Plan, now: datetime | None) -> Case:
    case = model.register(
        Case(
            category=CATEGORY,
            case_type=plan.case_type,
            case_class=plan.case_class,
            district_id=plan.district_id,
            person_number=plan.person_number,
            acute=plan.acute,
            feedback_channel=plan.feedback_channel,
            provider=plan.provider,
            feedback_window=plan.feedback_window,
        ),
        plan.first,
        actor=plan.agent,
        now=plan.created,
    )
    for at, _, kind, actor, what in plan.steps:
        if now is not None and at > now:
            break
        if kind == _CONTACT:
            case = model.add_contact(case, what, actor=actor, now=at)
        elif kind == _RESOLVE:
            case = model.resolve(case, what, actor=actor, now=at)
        elif kind == _FORWARD:
            case = model.forward(case, what, actor=actor, now=at)
        elif kind == _ACKNOWLEDGE:
            case = model.acknowledge(case, actor=actor, now=at)
        elif kind == _ASSIGN:
            case = model.assign(case, what, actor=actor, now=at)
        elif kind == _OVERDUE:
            case = model.mark_overdue(case, now=at)
        elif kind == _FEEDBACK:
            case = model.record_feedback(case, case.feedback_channel, what, actor=actor, now=at)
        elif kind == _SATISFACTION:
            case = model.record_satisfaction(case, what, actor=actor, now=at)
    return case


# ---------------------------------------------------------------------------------------------------------
# Rows for bulk loading
# ---------------------------------------------------------------------------------------------------------


def case_rows(
    city: City,
    *,
    start: date,
    end: date,
    now: datetime | None = None,
    seed: int = 2026,
    people: int = 20_000,
    weekly_volume: int = WEEKLY_VOLUME,
) -> Iterator[dict[str, Any]]:
    """The cases `generate_cases` gives for the same arguments, as rows of the case store's `cases`
    table (without the id), built without the model: for loading hundreds of thousands quickly.

    Contacts and events are not made; the counts, times and outcomes they would give are.
    """
    clock = _clock_for(start, end, people, weekly_volume, now)
    for plan in _plans(city, clock, end=end, now=now, seed=seed, people=people, weekly_volume=weekly_volume):
        yield _fold(plan, now, clock)


def _fold(plan: _Plan, now: datetime | None, clock: _OpeningClock) -> dict[str, Any]:
    """The row the model's transitions would leave, computed directly. Mirrors services.case.model."""
    status = "open"
    contacts = 1
    forwarded = False
    unit_id: str | None = None
    officer_id: str | None = None
    team = ""
    mailbox = ""
    escalation = ""
    deadline: datetime | None = None
    deadline_end = 0
    forward_time: datetime | None = None
    overdue = escalated = False
    kept: bool | None = None
    resolution = ""
    first_contact = False
    satisfaction: int | None = None
    close_time: datetime | None = None
    feedback_time: datetime | None = None
    minutes: int | None = None
    district_id = plan.district_id
    updated = plan.created
    for at, position, kind, _, what in plan.steps:
        if now is not None and at > now:
            break
        updated = at
        if kind == _CONTACT:
            contacts += 1
        elif kind == _RESOLVE:
            status, close_time, resolution = "closed", at, what
            first_contact = contacts == 1 and not forwarded
            minutes = round((position - plan.position) / 3600 * 60)
        elif kind == _FORWARD:
            routing: Routing = what
            status, forwarded, forward_time = "forwarded", True, at
            unit_id, officer_id, team = routing.unit_id, routing.officer_id, routing.team
            district_id = district_id or routing.district_id
            mailbox, escalation = routing.mailbox, ";".join(routing.manager_emails)
            deadline_day = clock.day_of(position) + (0 if plan.acute else 2)
            deadline_end = clock.closing_position(deadline_day)
            deadline = clock.closes[deadline_day]
            overdue = escalated = False
            kept = None
        elif kind == _ACKNOWLEDGE:
            status = "acknowledged"
        elif kind == _ASSIGN:
            status, officer_id = "assigned", what
        elif kind == _OVERDUE:
            overdue = escalated = True
            kept = False
        elif kind == _FEEDBACK:
            kept = deadline is not None and position < deadline_end and not overdue
            status, close_time, feedback_time, resolution = "closed", at, at, what
            minutes = round((position - plan.position) / 3600 * 60)
        elif kind == _SATISFACTION:
            satisfaction = what
    return {
        "category": CATEGORY,
        "case_type": plan.case_type,
        "case_class": plan.case_class,
        "district_id": district_id,
        "provider": plan.provider,
        "person_number": plan.person_number,
        "acute": plan.acute,
        "feedback_channel": plan.feedback_channel.value,
        "feedback_window": plan.feedback_window,
        "status": status,
        "first_channel": plan.first.channel.value,
        "unit_id": unit_id,
        "officer_id": officer_id,
        "team": team,
        "deadline": deadline,
        "forward_time": forward_time,
        "overdue": overdue,
        "deadline_kept": kept,
        "escalation_emails": escalation,
        "escalated": escalated,
        "unit_mailbox": mailbox,
        "resolution": resolution,
        "resolved_at_first_contact": first_contact,
        "forwarded_ever": forwarded,
        "satisfaction": satisfaction,
        "contact_count": contacts,
        "resolve_minutes": minutes,
        "create_time": plan.created,
        "create_month": plan.month,
        "update_time": updated,
        "close_time": close_time,
        "feedback_time": feedback_time,
        "revision": 1,
    }


def unit_queue_rows(
    city: City, unit_id: str, count: int, *, now: datetime, seed: int = 2026, people: int = 20_000
) -> list[dict[str, Any]]:
    """`count` cases of people of one unit, forwarded to it in the five working days before `now` and
    not answered yet: a full queue, as rows of the `cases` table. Those past their deadline are marked
    overdue, as the escalation job would have.
    """
    city.unit(unit_id)
    if not 0 <= count <= 1_000_000:
        raise InvalidArgument.field("count", "must be between 0 and 1,000,000")
    if now.tzinfo is None:
        raise InvalidArgument.field("now", "must carry a time zone")
    today = now.astimezone(STOCKHOLM).date()
    rng = random.Random(seed)
    clock = _OpeningClock(today - timedelta(days=21), today + timedelta(days=_CALENDAR_MARGIN_DAYS))
    pool = [
        p for p in generate_people(city, people, seed=city.seed, today=city.today) if p.unit_id == unit_id
    ]
    if not pool:
        raise InvalidArgument.field("unit_id", f"units/{unit_id} has none of the first {people} people")
    planner = _Planner(city, rng, pool, clock)
    latest = clock.position_of(now)
    earliest = clock.starts[max(0, clock.day_of(max(latest - 1, 0)) - 4)]
    rows: list[dict[str, Any]] = []
    while len(rows) < count:
        plan = planner.plan(
            rng.randrange(earliest, max(latest, earliest + 1)), pool=pool, forward=True, answered=False
        )
        # A case registered just now may not be forwarded yet; it is not in the queue then.
        if any(kind == _FORWARD and at <= now for at, _, kind, _, _ in plan.steps):
            rows.append(_fold(plan, now, clock))
    return rows
