"""Safe retries: a command's `request_id` replays the first answer; reuse with another payload is refused.

The key is scoped by method and caller, so two callers can never see each other's answers. The record is
written in the command's own transaction, so the answer is remembered exactly when the write happened.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common.errors import AlreadyExists, InvalidArgument, quoted

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

idempotency_metadata = MetaData()

# Each service adds this table to its own database through its first migration; the metadata object here
# only serves to build statements.
idempotency_keys = Table(
    "idempotency_keys",
    idempotency_metadata,
    Column("method", String(200), primary_key=True),
    Column("subject", String(200), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("payload_hash", String(64), nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
)


def add_idempotency_table(metadata: MetaData) -> Table:
    """The idempotency table in a service's own metadata, for its migrations and tests."""
    return idempotency_keys.to_metadata(metadata)


class Replayed(Exception):
    """The request was answered before: `response` holds the first answer, encoded."""

    def __init__(self, response: bytes):
        super().__init__("replayed")
        self.response = response


@dataclass(frozen=True)
class IdempotencyKey:
    method: str
    subject: str
    request_id: str
    payload_hash: str


def request_key(
    method: str, subject: str, request: Message, *, field: str = "request_id"
) -> IdempotencyKey | None:
    """The key of a command, or None without a request_id (the command then is not safe to retry)."""
    request_id = getattr(request, field)
    if not request_id:
        return None
    if not REQUEST_ID_PATTERN.match(request_id):
        raise InvalidArgument.field(
            field, "must be 1 to 128 letters, digits or . _ : - (a UUID is a good choice)"
        )
    payload = type(request)()
    payload.CopyFrom(request)
    payload.ClearField(field)  # type: ignore[arg-type]
    digest = hashlib.sha256(payload.SerializeToString(deterministic=True)).hexdigest()
    return IdempotencyKey(method=method, subject=subject, request_id=request_id, payload_hash=digest)


_key_matches = and_(
    idempotency_keys.c.method == bindparam("k_method"),
    idempotency_keys.c.subject == bindparam("k_subject"),
    idempotency_keys.c.request_id == bindparam("k_request_id"),
)
# Built once: a statement made per call costs more CPU than its round trip (SQLAlchemy keys, compiles and
# coerces it anew), and these run in every command.
_FIND = select(idempotency_keys.c.payload_hash, idempotency_keys.c.response).where(_key_matches)
_ANSWER = update(idempotency_keys).where(_key_matches).values(response=bindparam("k_response"))
_CLAIM = {
    dialect: insert_for(idempotency_keys).on_conflict_do_nothing().returning(idempotency_keys.c.method)
    for dialect, insert_for in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}


def _key_parameters(key: IdempotencyKey) -> dict[str, str]:
    return {"k_method": key.method, "k_subject": key.subject, "k_request_id": key.request_id}


class IdempotencyStore:
    """The keys of one transaction's connection.

    `claim` comes first in a command's transaction and `answer` last. The claimed row is the lock that
    makes a concurrent retry wait: its own claim blocks on the unique key until the first transaction
    ends, and then either finds the committed answer or, after a rollback, claims the key itself.
    """

    def __init__(self, conn: AsyncConnection):
        self.conn = conn

    async def claim(self, key: IdempotencyKey) -> bytes | None:
        """None when this transaction now owns the key; the first answer when it was answered before."""
        claim = {
            "method": key.method,
            "subject": key.subject,
            "request_id": key.request_id,
            "payload_hash": key.payload_hash,
            # Replaced by the answer in the same transaction; never visible to anyone else.
            "response": b"",
            "create_time": datetime.now(UTC),
        }
        # A key found taken is committed (the claim waited for its transaction), so the read that follows
        # sees it; only a row removed in between sends us round again.
        for _ in range(3):
            if (await self.conn.execute(_CLAIM[self.conn.dialect.name], claim)).first() is not None:
                return None
            stored = await self.find(key)
            if stored is not None:
                return stored
        raise RuntimeError("an idempotency key kept appearing and disappearing")

    async def find(self, key: IdempotencyKey) -> bytes | None:
        row = (await self.conn.execute(_FIND, _key_parameters(key))).first()
        if row is None:
            return None
        if row.payload_hash != key.payload_hash:
            raise AlreadyExists(
                f"request_id {quoted(key.request_id)} was already used for a different request",
                reason="IDEMPOTENCY_KEY_REUSED",
                metadata={"request_id": key.request_id},
            )
        return bytes(row.response)

    async def answer(self, key: IdempotencyKey, response: bytes) -> None:
        """Stores the answer of a claimed key."""
        await self.conn.execute(_ANSWER, {**_key_parameters(key), "k_response": response})
