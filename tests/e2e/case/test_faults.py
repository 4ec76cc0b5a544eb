"""Faults with real servers: the directory gone while forwarding, and the mail server gone when the
unit's mail is due."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import grpc
import pytest
from aldredirekt.case.v1 import case_pb2 as pb
from sqlalchemy import select

from services.case.mail import OutboxDispatcher, SmtpTransport
from services.case.store import outbox
from tests.e2e.case.conftest import Stack
from tests.integration.case.support import smtp_sink
from tests.rich_errors import reason_of
from tests.unit.case.builders import ASTRID


class RecordingTransport:
    """The real SMTP transport, noting the Message-ID of every attempt, whether it gets through or not."""

    def __init__(self, inner: SmtpTransport):
        self.inner = inner
        self.attempts: list[str] = []

    async def send(self, message: EmailMessage) -> None:
        self.attempts.append(str(message["Message-ID"]))
        await self.inner.send(message)


async def registered(stack: Stack) -> pb.Case:
    answer = await stack.stub.CreateCase(
        pb.CreateCaseRequest(
            case=pb.Case(
                category="aldreomsorg",
                case_type="hemtjanst",
                case_class="ny-ansokan",
                district="districts/bromma",
                person_number=ASTRID,
                acute=True,
                feedback_channel=pb.FEEDBACK_CHANNEL_PHONE,
            ),
            contact=pb.Contact(channel=pb.CHANNEL_PHONE, party=pb.CONTACT_PARTY_SELF, summary="Akut behov."),
        ),
        metadata=stack.auth("agent"),
    )
    case: pb.Case = answer.case
    return case


async def outbox_rows(stack: Stack) -> list[Any]:
    async with stack.engine.connect() as conn:
        return list(await conn.execute(select(outbox).order_by(outbox.c.id)))


async def test_forwarding_while_the_directory_is_down_changes_nothing_and_sends_nothing(stack: Stack) -> None:
    created = await registered(stack)
    await stack.stop_directory()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.ForwardCase(
            pb.ForwardCaseRequest(name=created.name, request_id="forward-1"), metadata=stack.auth("agent")
        )

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(refused.value) == "DIRECTORY_DOWN"
    after = (
        await stack.stub.GetCase(pb.GetCaseRequest(name=created.name), metadata=stack.auth("agent"))
    ).case
    assert after.status == pb.CASE_STATUS_OPEN
    assert after.etag == created.etag
    assert (after.unit, after.HasField("deadline")) == ("", False)
    assert await outbox_rows(stack) == []


async def test_a_forward_commits_while_smtp_is_down_and_its_mail_goes_once_when_it_is_back(
    stack: Stack,
) -> None:
    transport = RecordingTransport(SmtpTransport(stack.settings.smtp))
    dispatcher = OutboxDispatcher(
        stack.cases.uow, transport, sender=stack.settings.smtp.sender, clock=stack.mail_clock
    )
    created = await registered(stack)

    forwarded = (
        await stack.stub.ForwardCase(pb.ForwardCaseRequest(name=created.name), metadata=stack.auth("agent"))
    ).case
    sent_while_down = await dispatcher.send_due()
    [waiting] = await outbox_rows(stack)

    assert forwarded.status == pb.CASE_STATUS_FORWARDED
    assert sent_while_down == 0
    assert waiting.sent_time is None
    assert waiting.attempts == 1
    assert waiting.last_error
    assert transport.attempts == [waiting.message_id]

    with smtp_sink(stack.settings.smtp.port) as mailbox:
        too_soon = await dispatcher.send_due()  # the retry waits for its back-off
        stack.mail_clock.skip(minutes=1)
        sent = await dispatcher.send_due()
        sent_again = await dispatcher.send_due()

    [row] = await outbox_rows(stack)
    [message] = mailbox.messages
    assert (too_soon, sent, sent_again) == (0, 1, 0)
    assert message["Message-ID"] == row.message_id == waiting.message_id
    assert transport.attempts == [row.message_id, row.message_id]
    assert message["Importance"] == "high"
    assert row.sent_time is not None
