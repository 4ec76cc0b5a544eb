"""Safe retries through request_id, on a real SQLite file and a real PostgreSQL database.

The command under test adds a note and answers with its number; a retry must get the first answer back
and must never add a second note.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import server
from services.common.auth import Caller, Role
from services.common.commands import run_command
from services.common.db import Idempotency, UnitOfWork, create_engine
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from services.common.idempotency import add_idempotency_table, request_key

METHOD = "notes.v1.NoteService/AddNote"


def _note_messages() -> tuple[Any, Any]:
    """AddNoteRequest and AddNoteResponse, built here so that these tests depend on no service's protos."""
    text = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    number = descriptor_pb2.FieldDescriptorProto.TYPE_INT64
    file = descriptor_pb2.FileDescriptorProto(
        name="notes/v1/notes.proto", package="notes.v1", syntax="proto3"
    )
    request = file.message_type.add(name="AddNoteRequest")
    request.field.add(name="request_id", number=1, type=text)
    request.field.add(name="text", number=2, type=text)
    response = file.message_type.add(name="AddNoteResponse")
    response.field.add(name="note_id", number=1, type=number)
    response.field.add(name="text", number=2, type=text)
    response.field.add(name="attempt", number=3, type=number)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("notes.v1.AddNoteRequest")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("notes.v1.AddNoteResponse")),
    )


AddNoteRequest, AddNoteResponse = _note_messages()

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("text", String(200), nullable=False),
)
add_idempotency_table(metadata)

OFFICER = Caller(
    subject="handlaggare-7",
    roles=frozenset({Role.OFFICER}),
    unit="units/farsta",
    person_number=None,
    token="not-checked-here",
)
OTHER_OFFICER = Caller(
    subject="handlaggare-8",
    roles=frozenset({Role.OFFICER}),
    unit="units/farsta",
    person_number=None,
    token="not-checked-here",
)


# Where the databases differ (SQLite writers take turns, PostgreSQL ones do not), a test runs on both.
on_both_databases = pytest.mark.parametrize(
    "engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if getattr(request, "param", "sqlite") == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    created = create_engine(url)
    async with created.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield created
    await created.dispose()


def act_as(caller: Caller) -> None:
    # What the server's interceptor does for every authenticated call.
    server._caller.set(caller)


@pytest.fixture(autouse=True)
def officer_calling() -> Iterator[None]:
    token = server._caller.set(OFFICER)
    yield
    server._caller.reset(token)


class Notes:
    """The AddNote command: one note per call, run the way a servicer runs a command."""

    def __init__(self, engine: AsyncEngine, *, pause: float = 0.0, fail_with: Exception | None = None):
        self.engine = engine
        self.pause = pause
        self.fail_with = fail_with
        self.attempts = 0

    async def _add(self, text: str, idempotency: Idempotency | None) -> tuple[int, str, int]:
        async with UnitOfWork(self.engine, idempotency=idempotency) as uow:
            # Counted only once inside: a replay never gets this far.
            self.attempts += 1
            attempt = self.attempts
            note_id = (
                await uow.conn.execute(insert(notes).values(text=text).returning(notes.c.id))
            ).scalar_one()
            # Keeps the transaction open long enough for a concurrent retry to arrive meanwhile.
            await asyncio.sleep(self.pause)
            if self.fail_with is not None:
                raise self.fail_with
            answer = (note_id, text, attempt)
            await uow.commit(answer)
        return answer

    async def add(self, request: Any) -> Any:
        return await run_command(
            METHOD,
            request,
            AddNoteResponse,
            lambda idempotency: self._add(request.text, idempotency),
            lambda answer: AddNoteResponse(note_id=answer[0], text=answer[1], attempt=answer[2]),
        )


async def note_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count: int = (await conn.execute(select(func.count()).select_from(notes))).scalar_one()
    return count


def add_note(text: str = "Ringde om trygghetslarm", request_id: str = "5f0c1e2a-retry") -> Any:
    return AddNoteRequest(request_id=request_id, text=text)


@on_both_databases
async def test_a_retry_answers_with_the_first_answer_and_writes_once(engine: AsyncEngine):
    command = Notes(engine)

    first = await command.add(add_note())
    again = await command.add(add_note())

    assert again == first
    # The stored answer, not a fresh one: the second attempt never ran.
    assert again.attempt == 1
    assert command.attempts == 1
    assert await note_count(engine) == 1


@on_both_databases
async def test_a_request_id_reused_for_another_request_is_refused(engine: AsyncEngine):
    command = Notes(engine)
    await command.add(add_note(text="Ringde om trygghetslarm"))

    with pytest.raises(AlreadyExists) as caught:
        await command.add(add_note(text="Ringde om matlåda"))

    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert caught.value.metadata == {"request_id": "5f0c1e2a-retry"}
    assert await note_count(engine) == 1


@on_both_databases
async def test_concurrent_retries_write_once_and_all_get_the_same_answer(engine: AsyncEngine):
    command = Notes(engine, pause=0.2)

    answers = await asyncio.wait_for(asyncio.gather(*(command.add(add_note()) for _ in range(5))), timeout=20)

    assert await note_count(engine) == 1
    assert command.attempts == 1
    assert all(answer == answers[0] for answer in answers)
    assert answers[0].note_id > 0


async def test_without_a_request_id_every_call_is_a_new_command(engine: AsyncEngine):
    command = Notes(engine)

    first = await command.add(add_note(request_id=""))
    second = await command.add(add_note(request_id=""))

    assert first.note_id != second.note_id
    assert await note_count(engine) == 2


async def test_two_callers_never_share_an_answer_for_the_same_request_id(engine: AsyncEngine):
    command = Notes(engine)
    mine = await command.add(add_note())

    act_as(OTHER_OFFICER)
    theirs = await command.add(add_note())

    assert theirs.note_id != mine.note_id
    assert await note_count(engine) == 2


async def test_a_command_that_failed_is_run_again_on_retry(engine: AsyncEngine):
    failing = Notes(engine, fail_with=FailedPrecondition("the case is closed"))
    with pytest.raises(FailedPrecondition):
        await failing.add(add_note())

    answer = await Notes(engine).add(add_note())

    assert answer.attempt == 1
    assert await note_count(engine) == 1


async def test_a_request_id_is_remembered_only_for_its_method(engine: AsyncEngine):
    key = request_key(METHOD, OFFICER.subject, add_note())
    other_method_key = request_key("notes.v1.NoteService/AddPinnedNote", OFFICER.subject, add_note())
    assert key is not None
    assert other_method_key is not None

    async with UnitOfWork(engine, idempotency=Idempotency(key, encode=lambda _: b"first")) as uow:
        await uow.commit()
    async with UnitOfWork(engine, idempotency=Idempotency(other_method_key, encode=lambda _: b"")) as uow:
        # Entering did not replay: this method has not seen the request_id.
        await uow.commit()


@pytest.mark.parametrize(
    "request_id", ["has space", "x" * 129, "åtgärd-1", "cases/1", "a\nb", "request;drop"]
)
def test_a_malformed_request_id_is_refused_naming_request_id(request_id: str):
    with pytest.raises(InvalidArgument) as caught:
        request_key(METHOD, OFFICER.subject, add_note(request_id=request_id))

    assert [v.field for v in caught.value.violations] == ["request_id"]


@pytest.mark.parametrize(
    "request_id", ["5f0c1e2a-9b7d-4c1e-8f3a-2d6b9e0c4a17", "x" * 128, "a", "call:2025-03-03.17_b"]
)
def test_a_well_formed_request_id_makes_a_key(request_id: str):
    key = request_key(METHOD, OFFICER.subject, add_note(request_id=request_id))

    assert key is not None
    assert key.request_id == request_id


def test_the_payload_fingerprint_ignores_the_request_id_but_not_the_request():
    first = request_key(METHOD, OFFICER.subject, add_note(request_id="r-1"))
    renamed = request_key(METHOD, OFFICER.subject, add_note(request_id="r-2"))
    changed = request_key(METHOD, OFFICER.subject, add_note(request_id="r-1", text="Ringde om matlåda"))
    assert first is not None
    assert renamed is not None
    assert changed is not None

    assert first.payload_hash == renamed.payload_hash
    assert first.payload_hash != changed.payload_hash


def test_a_request_without_a_request_id_has_no_key():
    assert request_key(METHOD, OFFICER.subject, add_note(request_id="")) is None


async def test_a_malformed_request_id_reaches_no_database(engine: AsyncEngine):
    command = Notes(engine)

    with pytest.raises(InvalidArgument):
        await command.add(add_note(request_id="has space"))

    assert command.attempts == 0
    assert await note_count(engine) == 0
