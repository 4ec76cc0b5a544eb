"""Faults with real servers: the directory gone while forwarding, and the mail server gone when the
unit's mail is due."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import grpc
import pytest
from aldredirekt.case.v1 import case_pb2 as pb
from sqlalchemy import select

from services.case.mail import MailDelivery, MailTransport
from services.case.store import MAIL, outbox
from tests.e2e.case.conftest import Stack
from tests.e2e.case.delivery import delivered
from tests.integration.case.support import smtp_sink
from tests.rich_errors import reason_of
from tests.unit.case.builders import ASTRID


class RecordingTransport:
    """The real SMTP transport, noting the Message-ID of every attempt, whether it gets through or not."""

    def __init__(self, inner: MailTransport):
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
    assert reason_of(refused.value) == "DIRECTORY_UNAVAILABLE"
    after = (
        await stack.stub.GetCase(pb.GetCaseRequest(name=created.name), metadata=stack.auth("agent"))
    ).case
    assert after.status == pb.CASE_STATUS_OPEN
    assert after.etag == created.etag
    assert (after.unit, after.HasField("deadline")) == ("", False)
    assert await outbox_rows(stack) == []


async def first_attempt(stack: Stack) -> Any:
    """The outbox row of the one queued mail, once its first attempt has been made (by the service's own
    outbox job, woken by the forward's commit, or by a round the test asks for)."""
    for _ in range(500):
        rows = await outbox_rows(stack)
        if rows and rows[0].attempts >= 1:
            [row] = rows
            return row
        await stack.dispatcher.send_due()
        await asyncio.sleep(0.02)
    raise AssertionError("the mail was never tried")


async def test_a_forward_commits_while_smtp_is_down_and_its_mail_goes_once_when_it_is_back(
    stack: Stack,
) -> None:
    # The service's own outbox sender, its transport recorded.
    delivery = stack.dispatcher.deliverers[MAIL]
    assert isinstance(delivery, MailDelivery)
    transport = RecordingTransport(delivery.transport)
    delivery.transport = transport
    created = await registered(stack)

    forwarded = (
        await stack.stub.ForwardCase(pb.ForwardCaseRequest(name=created.name), metadata=stack.auth("agent"))
    ).case
    waiting = await first_attempt(stack)

    assert forwarded.status == pb.CASE_STATUS_FORWARDED
    assert (waiting.kind, waiting.subject_ref) == ("mail", created.name)
    assert waiting.sent_time is None
    assert waiting.dead_time is None
    assert waiting.attempts == 1
    assert waiting.last_error
    assert transport.attempts == [waiting.delivery_key]

    with smtp_sink(stack.settings.smtp.port) as mailbox:
        too_soon = await stack.dispatcher.send_due()  # the retry waits for its back-off
        stack.mail_clock.skip(minutes=1)
        [message] = await delivered(stack, mailbox, 1)
        sent_again = await stack.dispatcher.send_due()

    [row] = await outbox_rows(stack)
    assert (too_soon, sent_again) == (0, 0)
    assert len(mailbox.messages) == 1
    assert message["Message-ID"] == row.delivery_key == waiting.delivery_key
    assert transport.attempts == [row.delivery_key, row.delivery_key]
    assert message["Importance"] == "high"
    assert row.sent_time is not None
