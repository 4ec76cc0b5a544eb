"""Protobuf ⇄ domain for the directory: requests parsed into domain values, answers built from them.

The views are immutable and the same few hundred recur on every call, so their messages are built once; a
message placed in a response is copied there, so a cached one is never changed."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

import grpc
from aldredirekt.common.v1 import common_pb2
from aldredirekt.directory.v1 import directory_pb2 as pb

from services.common.errors import InvalidArgument
from services.common.etags import etag_for
from services.common.names import resource_id
from services.common.protoconv import date_message, from_enum, timestamp, to_enum
from services.directory import handlers
from services.directory.handlers import OfficerView, UnitView
from services.directory.model import (
    Absence,
    Area,
    AssignmentRule,
    ContactPolicy,
    Decision,
    District,
    Officer,
    OfficerRole,
    PostalCodeRange,
    RuleSet,
    Specialty,
    Unit,
    WeeklyPeriod,
    parse_hhmm,
)

E = TypeVar("E", bound=StrEnum)
Context = grpc.aio.ServicerContext[Any, Any]


def role_of(value: int, field: str) -> OfficerRole | None:
    return to_enum(OfficerRole, "OFFICER_ROLE_", value, pb.OfficerRole, field)


def specialty_of(value: int, field: str) -> Specialty | None:
    return to_enum(Specialty, "SPECIALTY_", value, pb.Specialty, field)


def _policy(value: int, field: str) -> ContactPolicy:
    policy = to_enum(ContactPolicy, "CONTACT_POLICY_", value, pb.ContactPolicy, field)
    if policy is None:
        raise InvalidArgument.field(field, "is required")
    return policy


def _periods(items: Sequence[common_pb2.WeeklyPeriod], field: str) -> tuple[WeeklyPeriod, ...]:
    return tuple(
        WeeklyPeriod(
            p.day_of_week,
            parse_hhmm(p.start_time, f"{field}[{i}].start_time"),
            parse_hhmm(p.end_time, f"{field}[{i}].end_time"),
        )
        for i, p in enumerate(items)
    )


def _period_messages(periods: Sequence[WeeklyPeriod]) -> list[common_pb2.WeeklyPeriod]:
    return [
        common_pb2.WeeklyPeriod(
            day_of_week=p.day_of_week, start_time=f"{p.start:%H:%M}", end_time=f"{p.end:%H:%M}"
        )
        for p in periods
    ]


@functools.lru_cache(maxsize=4096)
def district_message(district: District, today: date) -> pb.District:
    return pb.District(
        name=district.name,
        display_name=district.display_name,
        valid_from=date_message(district.valid_from),
        valid_to=date_message(district.valid_to),
        successor=f"districts/{district.successor_id}" if district.successor_id else "",
        current=district.is_current(today),
    )


@functools.lru_cache(maxsize=4096)
def unit_message(view: UnitView) -> pb.Unit:
    unit, route = view.unit, view.route
    public = pb.ContactRoute(
        contact_policy=from_enum(route.contact_policy, "CONTACT_POLICY_", pb.ContactPolicy),
        phone=route.phone,
        hours=_period_messages(route.hours),
        description=route.description,
    )
    if view.public_only:
        return pb.Unit(
            name=unit.name,
            display_name=unit.display_name,
            district=f"districts/{unit.district_id}",
            public_route=public,
        )
    return pb.Unit(
        name=unit.name,
        display_name=unit.display_name,
        district=f"districts/{unit.district_id}",
        mailbox=unit.mailbox,
        acute_phone=unit.acute_phone,
        acute_hours=_period_messages(unit.acute_hours),
        contact_policy=from_enum(unit.contact_policy, "CONTACT_POLICY_", pb.ContactPolicy),
        reception_phone=unit.reception_phone,
        phone_hours=_period_messages(unit.phone_hours),
        team_model=unit.team_model,
        public_route=public,
        etag=etag_for(unit.name, unit.revision),
        create_time=timestamp(unit.create_time),
        update_time=timestamp(unit.update_time),
    )


def unit_from_message(message: pb.Unit, unit_id: str, prefix: str, *, policy_required: bool = True) -> Unit:
    """A unit from a request; an update whose mask leaves the policy alone may send it unspecified
    (a placeholder stands in, which the mask never applies)."""
    policy = (
        _policy(message.contact_policy, f"{prefix}.contact_policy")
        if policy_required or message.contact_policy
        else ContactPolicy.CONTACT_CENTER_ONLY
    )
    return Unit(
        unit_id=unit_id,
        display_name=message.display_name,
        district_id=resource_id(message.district, "districts", f"{prefix}.district")
        if message.district
        else "",
        mailbox=message.mailbox,
        acute_phone=message.acute_phone,
        acute_hours=_periods(message.acute_hours, f"{prefix}.acute_hours"),
        contact_policy=policy,
        reception_phone=message.reception_phone,
        phone_hours=_periods(message.phone_hours, f"{prefix}.phone_hours"),
        team_model=message.team_model,
    )


@functools.lru_cache(maxsize=4096)
def officer_message(view: OfficerView) -> pb.Officer:
    officer = view.officer
    return pb.Officer(
        name=officer.name,
        given_name=officer.given_name,
        family_name=officer.family_name,
        unit=f"units/{officer.unit_id}",
        role=from_enum(officer.role, "OFFICER_ROLE_", pb.OfficerRole),
        specialties=[from_enum(s, "SPECIALTY_", pb.Specialty) for s in officer.specialties],
        languages=list(officer.languages),
        team=officer.team,
        phone=officer.phone,
        phone_withheld=view.phone_withheld,
        email=officer.email,
        active=officer.active,
        caseload=officer.caseload,
        etag=etag_for(officer.name, officer.revision),
        create_time=timestamp(officer.create_time),
        update_time=timestamp(officer.update_time),
    )


def officer_from_message(
    message: pb.Officer, officer_id: str, prefix: str, *, role_required: bool = True
) -> Officer:
    """An officer from a request; an update whose mask leaves the role alone may send it unspecified."""
    role = role_of(message.role, f"{prefix}.role")
    if role is None and role_required:
        raise InvalidArgument.field(f"{prefix}.role", "is required")
    specialties = []
    for index, value in enumerate(message.specialties):
        specialty = specialty_of(value, f"{prefix}.specialties[{index}]")
        if specialty is None:
            raise InvalidArgument.field(f"{prefix}.specialties[{index}]", "must not be unspecified")
        specialties.append(specialty)
    return Officer(
        officer_id=officer_id,
        unit_id=resource_id(message.unit, "units", f"{prefix}.unit") if message.unit else "",
        given_name=message.given_name,
        family_name=message.family_name,
        role=role or OfficerRole.ORDINARY_HOUSING,  # only when the mask does not apply it
        specialties=tuple(specialties),
        languages=tuple(message.languages),
        team=message.team,
        phone=message.phone,
        email=message.email,
        active=message.active,
        caseload=message.caseload,
    )


def absence_message(absence: Absence) -> pb.Absence:
    return pb.Absence(
        name=absence.name,
        start_time=timestamp(absence.start),
        end_time=timestamp(absence.end),
        substitute=f"officers/{absence.substitute_id}",
        create_time=timestamp(absence.create_time),
    )


def rule_set_message(rule_set: RuleSet) -> pb.AssignmentRuleSet:
    rules = []
    for rule in rule_set.rules:
        message = pb.AssignmentRule(
            rule_id=rule.rule_id,
            area_id=rule.area_id,
            role=from_enum(rule.role, "OFFICER_ROLE_", pb.OfficerRole),
            first_birth_day=rule.first_birth_day,
            last_birth_day=rule.last_birth_day,
        )
        if rule.officer_id:
            message.officer = f"officers/{rule.officer_id}"
        elif rule.team:
            message.team = rule.team
        rules.append(message)
    return pb.AssignmentRuleSet(
        unit=f"units/{rule_set.unit_id}",
        areas=[
            pb.Area(
                area_id=a.area_id,
                display_name=a.display_name,
                postal_code_ranges=[
                    pb.PostalCodeRange(first=r.first, last=r.last) for r in a.postal_code_ranges
                ],
            )
            for a in rule_set.areas
        ],
        rules=rules,
        etag=etag_for(rule_set.name, rule_set.revision),
        update_time=timestamp(rule_set.update_time),
    )


def rule_set_from_message(message: pb.AssignmentRuleSet) -> RuleSet:
    unit_id = resource_id(message.unit, "units", "rule_set.unit")
    rules = []
    for index, rule in enumerate(message.rules):
        which = rule.WhichOneof("responsible")
        rules.append(
            AssignmentRule(
                rule_id=rule.rule_id,
                area_id=rule.area_id,
                role=role_of(rule.role, f"rule_set.rules[{index}].role"),
                first_birth_day=rule.first_birth_day,
                last_birth_day=rule.last_birth_day,
                officer_id=(
                    resource_id(rule.officer, "officers", f"rule_set.rules[{index}].officer")
                    if which == "officer"
                    else None
                ),
                team=rule.team if which == "team" else None,
            )
        )
    return RuleSet(
        unit_id=unit_id,
        areas=tuple(
            Area(
                a.area_id,
                a.display_name,
                tuple(PostalCodeRange(r.first, r.last) for r in a.postal_code_ranges),
            )
            for a in message.areas
        ),
        rules=tuple(rules),
    )


DECISIONS = {
    Decision.NAMED_OFFICER: pb.DECISION_NAMED_OFFICER,
    Decision.ASSIGNMENT_RULE: pb.DECISION_ASSIGNMENT_RULE,
    Decision.SPECIALIST: pb.DECISION_SPECIALIST,
    Decision.UNIT_INTAKE: pb.DECISION_UNIT_INTAKE,
}


@functools.lru_cache(maxsize=8192)
def resolved_message(resolved: handlers.ResolvedView, today: date) -> pb.ResolveResponsibleResponse:
    """Built once per answer and day: equal answers are one object (handlers.ResolvedView), and the
    message is only read from here on, serialised by grpc for each call."""
    responsible = resolved.responsible
    return pb.ResolveResponsibleResponse(
        officer=officer_message(resolved.officer) if resolved.officer else None,
        absent_officer=officer_message(resolved.absent_officer) if resolved.absent_officer else None,
        team=responsible.team,
        team_members=[officer_message(v) for v in resolved.team_members],
        unit=unit_message(resolved.unit),
        district=district_message(responsible.district, today),
        decision=DECISIONS[responsible.decision],
        rule_id=responsible.rule_id,
        area_id=responsible.area_id,
        unit_managers=[officer_message(v) for v in resolved.unit_managers],
    )


def needs(mask: Sequence[str], name: str) -> bool:
    return not mask or name in mask
