"""ResolveResponsible on the synthetic city: who is responsible, and every look-up in the access log."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.common.audit import list_access, verify_chain
from services.common.auth import Role
from services.common.errors import InvalidArgument, NotFound
from services.common.pagination import PageTokens, development_key
from services.common.personnummer import parse_person_number
from services.directory import handlers
from services.directory.handlers import ResolveQuery, snapshot
from services.directory.model import ContactPolicy, Decision, OfficerRole
from services.directory.store import access_log
from synthcity.city import City
from synthcity.people import Person, generate_people
from tests.person_numbers import person_number
from tests.unit.directory.builders import AGENT, absence, caller

# Months away from the synthetic city's absences, which lie around 23 November 2026.
SUMMER = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
PURPOSE = "cases/2026-000123"
PAGES = PageTokens([development_key("directory")], service="directory")


@pytest.fixture
def city(seeded: City, directory) -> City:
    directory.clock = lambda: SUMMER
    return seeded


def people(city: City, count: int = 40) -> list[Person]:
    return list(generate_people(city, count, seed=11, today=SUMMER.date()))


def one_person(city: City, *, team: bool = False) -> Person:
    return next(
        p
        for p in people(city)
        if bool(p.team) is team and p.responsible_role is None and p.birth_date.year > 1930
    )


async def resolve(
    directory,
    who=AGENT,
    *,
    person_number: str | None = None,
    district: str | None = None,
    named_officer: str | None = None,
    **query,
):
    """Asks as the servicer does, once it has parsed the request: the person number into its twelve digits
    (or None), the district's and the named officer's names into their ids."""
    return await handlers.resolve_responsible(
        directory=directory,
        caller=who,
        query=ResolveQuery(
            person=parse_person_number(person_number, field="person_number") if person_number else None,
            district_id=district.removeprefix("districts/") if district else None,
            named_id=named_officer.removeprefix("officers/") if named_officer else None,
            **({"purpose": PURPOSE} | query),
        ),
    )


def need_of(person: Person) -> OfficerRole | None:
    return OfficerRole(person.responsible_role.value) if person.responsible_role else None


async def test_the_citys_people_are_routed_to_whom_the_city_assigns_them(directory, city):
    for person in people(city):
        found = await resolve(
            directory,
            person_number=person.person_number,
            district=f"districts/{person.district_id}",
            postal_code=person.postal_code,
            need_role=need_of(person),
        )

        responsible = found.responsible
        assert responsible.decision is Decision.ASSIGNMENT_RULE
        assert (responsible.unit.unit_id, responsible.area_id) == (person.unit_id, person.area_id)
        assert responsible.rule_id == person.rule_id
        if person.team:
            assert responsible.team == person.team
            assert responsible.team_members
            assert {m.team for m in responsible.team_members} == {person.team}
        else:
            assert responsible.officer is not None
            assert responsible.officer.officer_id == person.officer_id


async def test_every_resolve_writes_one_access_log_entry_with_the_person_and_the_purpose(
    directory, city, engine
):
    person, other = people(city)[:2]
    ten_digit = f"{person.person_number[2:8]}-{person.person_number[8:]}"
    assert person.birth_date.year > 1930  # so "-" reads as the right century

    await resolve(directory, person_number=ten_digit, postal_code=person.postal_code, purpose="cases/1")
    await resolve(
        directory, person_number=person.person_number, postal_code=person.postal_code, purpose="cases/2"
    )
    await resolve(directory, person_number=other.person_number, postal_code=other.postal_code)

    async with engine.connect() as conn:
        entries = await list_access(
            conn, access_log, person_number=person.person_number, limit=10, before_seq=None
        )
        report = await verify_chain(conn, access_log)
    assert [(e.person_number, e.purpose) for e in entries] == [
        (person.person_number, "cases/2"),
        (person.person_number, "cases/1"),
    ]
    assert {(e.action, e.actor, e.actor_role, e.service) for e in entries} == {
        ("directory.ResolveResponsible", AGENT.subject, "agent", "directory")
    }
    assert report.ok
    assert report.entries == 3


async def test_a_refused_resolve_leaves_no_access_log_entry(directory, city, engine):
    person = people(city)[0]

    with pytest.raises(InvalidArgument) as caught:
        await resolve(
            directory, person_number=person.person_number, postal_code=person.postal_code, purpose=" "
        )

    assert [v.field for v in caught.value.violations] == ["purpose"]
    async with engine.connect() as conn:
        assert (await verify_chain(conn, access_log)).entries == 0


async def test_a_resolve_without_district_postal_code_or_named_officer_is_refused(directory, city):
    with pytest.raises(InvalidArgument) as caught:
        await resolve(directory, person_number=people(city)[0].person_number)

    assert [v.field for v in caught.value.violations] == ["district"]


# A person number that is not one is refused by the servicer, which parses it before the use case runs:
# see tests/e2e/directory/test_calls.py.


async def test_a_coordination_number_is_routed_by_its_day_of_birth_minus_sixty(directory, city):
    person = one_person(city)
    coordination = person_number(person.birth_date, coordination=True)

    found = await resolve(directory, person_number=coordination, postal_code=person.postal_code)

    assert found.responsible.rule_id == person.rule_id
    assert found.responsible.officer is not None
    assert found.responsible.officer.officer_id == person.officer_id


async def test_a_retired_district_answers_with_its_successor(directory, city):
    retired, current = await handlers.get_district(directory=directory, district_id="rinkeby-kista")

    assert (retired.district_id, retired.successor_id) == ("rinkeby-kista", "jarva")
    assert current.district_id == "jarva"
    assert current.is_current(SUMMER.date())


async def test_a_person_of_a_retired_district_is_routed_to_its_successors_unit(directory, city):
    person = one_person(city)

    found = await resolve(directory, person_number=person.person_number, district="districts/spanga-tensta")

    assert found.responsible.unit.unit_id == "jarva-bestallarenhet"
    assert found.responsible.district.district_id == "jarva"


async def test_an_officer_away_on_an_imported_absence_is_replaced_until_it_ends(directory, city):
    absence = next(a for a in city.absences if city.officer(a.officer_id).active)
    end = absence.end_time.astimezone(UTC)  # the file gives Stockholm time
    named = f"officers/{absence.officer_id}"
    person = one_person(city)

    during = await resolve(
        directory, person_number=person.person_number, named_officer=named, at=end - timedelta(minutes=30)
    )
    after = await resolve(
        directory, person_number=person.person_number, named_officer=named, at=end + timedelta(minutes=30)
    )

    assert during.responsible.decision is Decision.NAMED_OFFICER
    assert during.responsible.officer is not None
    assert during.responsible.officer.officer_id == absence.substitute_id
    assert during.responsible.absent_officer is not None
    assert during.responsible.absent_officer.officer_id == absence.officer_id
    assert after.responsible.officer is not None
    assert after.responsible.officer.officer_id == absence.officer_id
    assert after.responsible.absent_officer is None


async def test_agents_do_not_see_direct_numbers_of_a_unit_reached_only_through_the_contact_center(
    directory, city
):
    closed = {u.unit_id for u in city.units if u.contact_policy.value == ContactPolicy.CONTACT_CENTER_ONLY}
    person = next(p for p in people(city) if p.unit_id in closed and p.officer_id)
    own_staff = caller(Role.OFFICER, unit=f"units/{person.unit_id}")

    as_agent = await resolve(directory, person_number=person.person_number, postal_code=person.postal_code)
    as_staff = await resolve(
        directory, who=own_staff, person_number=person.person_number, postal_code=person.postal_code
    )

    assert as_agent.officer is not None
    assert (as_agent.officer.officer.phone, as_agent.officer.phone_withheld) == ("", True)
    assert as_staff.officer is not None
    assert as_staff.officer.officer.phone == city.officer(person.officer_id).phone
    assert not as_staff.officer.phone_withheld


# A citizen may not resolve who is responsible: declared on the servicer and checked by the server before
# the call runs, see tests/e2e/directory/test_callers.py.


async def test_a_postal_code_no_unit_covers_is_not_found(directory, city):
    with pytest.raises(NotFound):
        await resolve(directory, person_number=people(city)[0].person_number, postal_code="99999")


async def test_an_unknown_district_unit_or_officer_is_not_found(directory, city):
    any_page = PAGES.page(0, "", {}, owner=AGENT)
    someone = person_number(date(1940, 2, 3))
    asks = [
        (
            "districts/atlantis",
            lambda: handlers.get_district(directory=directory, district_id="atlantis"),
        ),
        (
            "districts/atlantis",
            lambda: handlers.list_units(
                directory=directory, caller=AGENT, page=any_page, district_id="atlantis"
            ),
        ),
        (
            "districts/atlantis",
            lambda: resolve(directory, person_number=someone, district="districts/atlantis"),
        ),
        (
            "units/atlantis",
            lambda: handlers.get_unit(directory=directory, caller=AGENT, unit_id="atlantis"),
        ),
        (
            "units/atlantis",
            lambda: handlers.get_assignment_rules(directory=directory, unit_id="atlantis"),
        ),
        (
            "officers/nobody",
            lambda: handlers.get_officer(directory=directory, caller=AGENT, officer_id="nobody"),
        ),
        (
            "officers/nobody",
            lambda: handlers.list_absences(directory=directory, officer_id="nobody", page=any_page),
        ),
        (
            "officers/nobody",
            lambda: resolve(directory, person_number=someone, named_officer="officers/nobody"),
        ),
    ]

    for resource, ask in asks:
        with pytest.raises(NotFound) as caught:
            await ask()
        assert caught.value.resource_name == resource


# ---- remembered answers: the same question is answered once per copy of the directory ----------------------


async def test_an_absence_counts_from_its_first_microsecond_to_just_before_its_end(directory, city):
    absence = next(a for a in city.absences if city.officer(a.officer_id).active)
    start, end = absence.start_time.astimezone(UTC), absence.end_time.astimezone(UTC)
    tick = timedelta(microseconds=1)
    person = one_person(city)

    async def named_at(at: datetime) -> str:
        found = await resolve(
            directory,
            person_number=person.person_number,
            named_officer=f"officers/{absence.officer_id}",
            at=at,
        )
        officer = found.responsible.officer
        assert officer is not None
        return str(officer.officer_id)

    # Asked twice in a row, so a remembered answer from the moment before would show.
    for at in (start - tick, start, end - tick, end, start - tick, start):
        expected = absence.substitute_id if start <= at < end else absence.officer_id
        assert await named_at(at) == expected, at


async def test_an_absence_registered_after_a_resolve_counts_at_the_next_resolve(directory, city):
    person = next(p for p in people(city) if p.officer_id and p.responsible_role is None)
    colleague = next(
        o
        for o in city.officers
        if o.unit_id == person.unit_id and o.active and o.officer_id != person.officer_id
    )
    ask = {"person_number": person.person_number, "postal_code": person.postal_code}
    before = await resolve(directory, **ask)
    assert before.responsible.officer is not None
    assert before.responsible.officer.officer_id == person.officer_id

    await handlers.create_absence(
        directory=directory,
        absence=absence(
            person.officer_id, colleague.officer_id, SUMMER - timedelta(hours=1), SUMMER + timedelta(days=3)
        ),
    )
    after = await resolve(directory, **ask)

    assert after.responsible.officer is not None
    assert after.responsible.officer.officer_id == colleague.officer_id
    assert after.responsible.absent_officer is not None
    assert after.responsible.absent_officer.officer_id == person.officer_id


async def test_people_with_the_same_answer_share_one_view_and_callers_see_only_theirs(directory, city):
    closed = {u.unit_id for u in city.units if u.contact_policy.value == ContactPolicy.CONTACT_CENTER_ONLY}
    by_rule: dict[str, list[Person]] = {}
    for person in people(city, 200):
        if person.officer_id and person.unit_id in closed and person.responsible_role is None:
            by_rule.setdefault(person.rule_id, []).append(person)
    first, second = next(group for group in by_rule.values() if len(group) >= 2)[:2]
    own_staff = caller(Role.OFFICER, unit=f"units/{first.unit_id}")

    one = await resolve(directory, person_number=first.person_number, postal_code=first.postal_code)
    other = await resolve(directory, person_number=second.person_number, postal_code=second.postal_code)
    as_staff = await resolve(
        directory, who=own_staff, person_number=second.person_number, postal_code=second.postal_code
    )

    assert other is one
    assert as_staff is not one
    assert as_staff.officer is not None
    assert not as_staff.officer.phone_withheld
    assert one.officer is not None
    assert one.officer.phone_withheld


async def test_answers_stay_right_when_too_many_questions_make_it_forget(directory, city, monkeypatch):
    monkeypatch.setattr(snapshot, "MAX_REMEMBERED_ANSWERS", 3)
    everyone = people(city, 30)

    for _ in range(2):
        for person in everyone:
            found = await resolve(
                directory,
                person_number=person.person_number,
                postal_code=person.postal_code,
                need_role=need_of(person),
            )
            assert found.responsible.rule_id == person.rule_id
    assert len(directory.cache.answers) <= 3
    assert len(directory.cache.unit_for) <= 3


async def test_a_question_about_a_past_moment_reads_that_moments_absences(directory, city):
    absence = next(a for a in city.absences if city.officer(a.officer_id).active)
    start, end = absence.start_time.astimezone(UTC), absence.end_time.astimezone(UTC)
    directory.clock = lambda: end + timedelta(days=30)  # long after, beyond what the copy keeps
    person = one_person(city)
    ask = {"person_number": person.person_number, "named_officer": f"officers/{absence.officer_id}"}

    answers = [
        await resolve(directory, **ask, at=at)
        for at in (start + (end - start) / 2, None, start + (end - start) / 2, end)
    ]

    officers = [a.responsible.officer.officer_id if a.responsible.officer else None for a in answers]
    assert officers == [absence.substitute_id, absence.officer_id, absence.substitute_id, absence.officer_id]
    assert answers[0].responsible.absent_officer is not None
    assert answers[0].responsible.absent_officer.officer_id == absence.officer_id
