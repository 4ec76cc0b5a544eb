"""The AccessLogService every service serves over its own chain: who has read a person's data here.

A citizen reads the entries about themselves, an auditor those of any person; reading the log is itself a
read of the person's data and is logged. VerifyAccessLog walks the chain for auditors and operators and
tells nothing about anyone. The gateway merges the answers of all services into one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import grpc
from aldredirekt.common.v1 import access_log_pb2 as pb
from aldredirekt.common.v1 import access_log_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.audit import (
    AccessEntry,
    AccessLogTables,
    AccessRecord,
    ChainReport,
    list_access,
    verify_chain,
)
from services.common.audit_writer import AccessLog
from services.common.auth import Caller, Role
from services.common.db import UnitOfWork
from services.common.errors import InvalidArgument, PermissionDenied
from services.common.pagination import PageRequest, PageTokens
from services.common.personnummer import parse_person_number
from services.common.protoconv import timestamp
from services.common.server import GrpcService, allow, current_caller


@dataclass(frozen=True)
class AccessLogBook:
    """One service's access log, as its AccessLogService reads it."""

    service: str
    engine: AsyncEngine
    tables: AccessLogTables
    access_log: AccessLog
    clock: Callable[[], datetime]


def whose_log(caller: Caller, person_number: str) -> str:
    """The person whose log the caller may read: any for an auditor, only themselves for a citizen."""
    if caller.has_role(Role.AUDITOR):
        if not person_number:
            raise InvalidArgument.field("person_number", "is required")
        return str(parse_person_number(person_number, field="person_number"))
    own = caller.person_number or ""
    if person_number and str(parse_person_number(person_number, field="person_number")) != own:
        raise PermissionDenied("a citizen may read the log of their own data only", reason="OTHER_PERSON")
    if not own:
        raise PermissionDenied("the token names no person", reason="NO_PERSON")
    return own


async def list_person_access(
    *, book: AccessLogBook, caller: Caller, person: str, page: PageRequest
) -> tuple[list[AccessEntry], str]:
    async with UnitOfWork(book.engine, write=False) as uow:
        entries = await list_access(
            uow.conn, book.tables, person_number=person, limit=page.size + 1, before_seq=page.after_int()
        )
    items = entries[: page.size]
    await book.access_log.record(
        AccessRecord(
            actor=caller.subject,
            actor_role=caller.primary_role,
            person_number=person,
            action=f"{book.service}.ListAccessLog",
            purpose="access log",
            occurred_at=book.clock(),
        )
    )
    return items, page.next_token(items[-1].seq if items else None, more=len(entries) > page.size)


async def verify_book(*, book: AccessLogBook) -> ChainReport:
    async with UnitOfWork(book.engine, write=False) as uow:
        return await verify_chain(uow.conn, book.tables)


def entry_message(entry: AccessEntry) -> pb.AccessLogEntry:
    return pb.AccessLogEntry(
        name=f"services/{entry.service}/accessLogEntries/{entry.seq}",
        time=timestamp(entry.occurred_at),
        actor=entry.actor,
        actor_role=entry.actor_role,
        action=entry.action,
        purpose=entry.purpose,
        service=entry.service,
        sequence=entry.seq,
    )


class AccessLogServicer(access_log_pb2_grpc.AccessLogServiceServicer):
    def __init__(self, book: AccessLogBook, pages: PageTokens):
        self.book = book
        self.pages = pages

    @allow(Role.AUDITOR, Role.CITIZEN)
    async def ListAccessLog(
        self, request: pb.ListAccessLogRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ListAccessLogResponse:
        caller = current_caller()
        person = whose_log(caller, request.person_number)
        page = self.pages.request(request, {"access_log": person}, owner=caller)
        entries, token = await list_person_access(book=self.book, caller=caller, person=person, page=page)
        return pb.ListAccessLogResponse(entries=[entry_message(e) for e in entries], next_page_token=token)

    @allow(Role.AUDITOR, Role.OPERATOR)
    async def VerifyAccessLog(
        self, request: pb.VerifyAccessLogRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.VerifyAccessLogResponse:
        report = await verify_book(book=self.book)
        return pb.VerifyAccessLogResponse(
            service=self.book.service,
            intact=report.ok,
            entries=report.entries,
            first_bad_sequence=report.first_bad_seq or 0,
            problem=report.problem or "",
        )


def access_log_service(book: AccessLogBook, pages: PageTokens) -> GrpcService:
    return GrpcService(
        descriptor=pb.DESCRIPTOR.services_by_name["AccessLogService"],
        add_to_server=access_log_pb2_grpc.add_AccessLogServiceServicer_to_server,
        servicer=AccessLogServicer(book, pages),
    )
