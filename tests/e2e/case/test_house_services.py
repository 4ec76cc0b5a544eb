"""What every service serves beside its own, seen on the case service: the access log, the outbox for
operators, reflection under both protocol versions; and a start that fails closed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from aldredirekt.common.v1 import access_log_pb2 as apb
from aldredirekt.common.v1 import outbox_pb2 as opb
from aldredirekt.common.v1 import outbox_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from sqlalchemy import update

from services.case.store import outbox
from services.common.outbox import enqueue
from tests.e2e.case.conftest import Stack
from tests.rich_errors import reason_of, refused
from tests.unit.case.builders import ASTRID, BERTIL

REPOSITORY = Path(__file__).resolve().parents[3]


async def dead_message(stack: Stack) -> int:
    now = datetime.now(UTC)
    async with stack.engine.begin() as conn:
        message_id = await enqueue(
            conn,
            outbox,
            kind="mail",
            payload=b"{}",
            delivery_key="<dead@test>",
            subject_ref="cases/1",
            now=now,
        )
        await conn.execute(
            update(outbox)
            .where(outbox.c.id == message_id)
            .values(dead_time=now, attempts=10, last_error="SMTPRecipientsRefused")
        )
    return message_id


async def test_an_operator_sees_a_dead_message_and_sends_it_again(stack: Stack) -> None:
    message_id = await dead_message(stack)
    operator = stack.auth("operator")
    stub = outbox_pb2_grpc.OutboxServiceStub(stack.channel)

    dead = await stub.ListOutboxMessages(
        opb.ListOutboxMessagesRequest(state=opb.OUTBOX_STATE_DEAD), metadata=operator
    )
    retried = await stub.RetryOutboxMessage(
        opb.RetryOutboxMessageRequest(name=f"outboxMessages/{message_id}"), metadata=operator
    )
    again = await refused(
        stub.RetryOutboxMessage(
            opb.RetryOutboxMessageRequest(name=f"outboxMessages/{message_id}"), metadata=operator
        )
    )
    missing = await refused(
        stub.RetryOutboxMessage(
            opb.RetryOutboxMessageRequest(name="outboxMessages/999999"), metadata=operator
        )
    )

    assert [m.name for m in dead.messages] == [f"outboxMessages/{message_id}"]
    assert dead.messages[0].last_error == "SMTPRecipientsRefused"
    assert dead.dead_count == 1
    assert retried.message.state == opb.OUTBOX_STATE_PENDING
    assert retried.message.attempts == 0
    assert again.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(again) == "MESSAGE_NOT_DEAD"
    assert missing.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("role", ["agent", "auditor", "citizen"])
async def test_only_operators_see_the_outbox(stack: Stack, role: str) -> None:
    stub = outbox_pb2_grpc.OutboxServiceStub(stack.channel)
    claims = {"person_number": ASTRID} if role == "citizen" else {}
    error = await refused(
        stub.ListOutboxMessages(
            opb.ListOutboxMessagesRequest(state=opb.OUTBOX_STATE_DEAD), metadata=stack.auth(role, **claims)
        )
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(error) == "ROLE_NOT_ALLOWED"


async def test_the_access_log_chain_is_verified_for_auditors_and_operators(stack: Stack) -> None:
    for role in ("auditor", "operator"):
        answer = await stack.access_log_stub.VerifyAccessLog(
            apb.VerifyAccessLogRequest(), metadata=stack.auth(role)
        )
        assert answer.service == "case"
        assert answer.intact
    error = await refused(
        stack.access_log_stub.VerifyAccessLog(apb.VerifyAccessLogRequest(), metadata=stack.auth("agent"))
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_a_citizen_reads_only_their_own_access_log(stack: Stack) -> None:
    citizen = stack.auth("citizen", person_number=ASTRID)
    own = await stack.access_log_stub.ListAccessLog(apb.ListAccessLogRequest(), metadata=citizen)
    other = await refused(
        stack.access_log_stub.ListAccessLog(apb.ListAccessLogRequest(person_number=BERTIL), metadata=citizen)
    )
    assert own.next_page_token == ""
    assert other.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    "service", ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]
)
async def test_reflection_lists_the_services_under_both_protocol_versions(stack: Stack, service: str) -> None:
    call = stack.channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    stream: Any = call()  # type: ignore[call-arg]
    await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await stream.done_writing()
    answer: Any = await stream.read()
    names = {s.name for s in answer.list_services_response.service}
    assert {
        "aldredirekt.case.v1.CaseService",
        "aldredirekt.common.v1.AccessLogService",
        "aldredirekt.common.v1.OutboxService",
    } <= names


@pytest.mark.parametrize(
    ("missing", "variable"),
    [
        ({"AUTH_JWKS"}, "AUTH_JWKS"),
        ({"CASE_PAGE_TOKEN_KEY"}, "CASE_PAGE_TOKEN_KEY"),
        ({"CASE_DIRECTORY_ADDRESS"}, "CASE_DIRECTORY_ADDRESS"),
    ],
)
def test_without_a_setting_production_needs_the_service_stops_naming_it(
    tmp_path: Path, missing: set[str], variable: str
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    key = tmp_path / "grant.pem"
    from services.common.auth import SigningKey

    key.write_bytes(SigningKey.generate().to_pem())
    production = {
        "AUTH_JWKS": str(jwks),
        "AUTH_ISSUER": "https://login.stockholm.example",
        "CASE_PAGE_TOKEN_KEY": "k" * 40,
        "CASE_DIRECTORY_ADDRESS": "directory:50052",
        "CASE_SMTP_HOST": "smtp.stockholm.example",
        "CASE_GRANT_KEY_FILE": str(key),
        "CASE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'case.db'}",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "CASE_"))}
    env.update({k: v for k, v in production.items() if k not in missing})

    finished = subprocess.run(
        [sys.executable, "-m", "services.case.main"],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode != 0
    assert variable in finished.stderr
    assert not (tmp_path / "case.db").exists()
