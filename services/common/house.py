"""The gRPC services every service serves beside its own, over its own shared tables: the AccessLogService
(who has read a person's data here) and the OutboxService (what waits to leave, for operators)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
from aldredirekt.common.v1 import outbox_pb2 as pb
from aldredirekt.common.v1 import outbox_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.access_log_service import AccessLogBook, access_log_service
from services.common.audit_writer import AccessLog
from services.common.auth import Role
from services.common.db import UnitOfWork
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.names import resource_ids
from services.common.outbox import OutboxEntry, State, counts, get_message, list_messages, retry_dead
from services.common.pagination import PageTokens
from services.common.protoconv import timestamp
from services.common.server import GrpcService, allow, current_caller
from services.common.tables import SharedTables

_STATES: dict[pb.OutboxState.ValueType, State] = {
    pb.OUTBOX_STATE_PENDING: "pending",
    pb.OUTBOX_STATE_SENT: "sent",
    pb.OUTBOX_STATE_DEAD: "dead",
}
_NUMBERS = {name: number for number, name in _STATES.items()}


def outbox_message(entry: OutboxEntry) -> pb.OutboxMessage:
    return pb.OutboxMessage(
        name=f"outboxMessages/{entry.id}",
        kind=entry.kind,
        delivery_key=entry.delivery_key,
        subject=entry.subject_ref,
        state=_NUMBERS[entry.state],
        attempts=entry.attempts,
        last_error=entry.last_error,
        create_time=timestamp(entry.create_time),
        next_attempt_time=timestamp(entry.next_attempt_time) if entry.state == "pending" else None,
        sent_time=timestamp(entry.sent_time),
        dead_time=timestamp(entry.dead_time),
    )


class OutboxServicer(outbox_pb2_grpc.OutboxServiceServicer):
    def __init__(
        self, *, engine: AsyncEngine, tables: SharedTables, pages: PageTokens, clock: Callable[[], datetime]
    ):
        self.engine = engine
        self.table = tables.outbox
        self.pages = pages
        self.clock = clock

    @allow(Role.OPERATOR)
    async def ListOutboxMessages(
        self, request: pb.ListOutboxMessagesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListOutboxMessagesResponse:
        state = _STATES.get(request.state)
        if state is None:
            raise InvalidArgument.field("state", "is required: pending, sent or dead")
        page = self.pages.request(request, {"outbox": state}, owner=current_caller())
        async with UnitOfWork(self.engine, write=False) as uow:
            found = await list_messages(
                uow.conn, self.table, state=state, after_id=page.after_int(), limit=page.size + 1
            )
            tally = await counts(uow.conn, self.table)
        items = found[: page.size]
        return pb.ListOutboxMessagesResponse(
            messages=[outbox_message(e) for e in items],
            next_page_token=page.next_token(items[-1].id if items else None, more=len(found) > page.size),
            pending_count=tally.get("pending", 0),
            sent_count=tally.get("sent", 0),
            dead_count=tally.get("dead", 0),
        )

    @allow(Role.OPERATOR)
    async def RetryOutboxMessage(
        self, request: pb.RetryOutboxMessageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RetryOutboxMessageResponse:
        message_id = int(resource_ids(request.name, ("outboxMessages",), "name", numeric=True)[0])
        async with UnitOfWork(self.engine) as uow:
            if not await retry_dead(uow.conn, self.table, message_id, now=self.clock()):
                entry = await get_message(uow.conn, self.table, message_id)
                if entry is None:
                    raise NotFound(request.name)
                raise FailedPrecondition(
                    f"{request.name} is {entry.state}: only a dead message is sent again",
                    reason="MESSAGE_NOT_DEAD",
                    metadata={"state": entry.state},
                )
            entry = await get_message(uow.conn, self.table, message_id)
            await uow.commit()
        assert entry is not None
        return pb.RetryOutboxMessageResponse(message=outbox_message(entry))


def house_services(
    *,
    service: str,
    engine: AsyncEngine,
    tables: SharedTables,
    access_log: AccessLog,
    pages: PageTokens,
    clock: Callable[[], datetime],
) -> list[GrpcService]:
    """The AccessLogService and OutboxService of a service, for its bootstrap to serve."""
    book = AccessLogBook(
        service=service, engine=engine, tables=tables.access_log, access_log=access_log, clock=clock
    )
    return [
        access_log_service(book, pages),
        GrpcService(
            descriptor=pb.DESCRIPTOR.services_by_name["OutboxService"],
            add_to_server=outbox_pb2_grpc.add_OutboxServiceServicer_to_server,
            servicer=OutboxServicer(engine=engine, tables=tables, pages=pages, clock=clock),
        ),
    ]
