"""Migration steps for the tables every service shares (services.common.tables), called from each
service's own Alembic history instead of copied into it.

Each function is a migration: once it has run anywhere it must never change, or databases created before
and after would differ. A later change to a shared table is a new function here, called from a new revision
of every service.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def create_access_log() -> None:
    """The hash-chained access log and its head (services.common.audit)."""
    op.create_table(
        "access_log",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("actor_role", sa.String(length=64), nullable=False),
        sa.Column("person_number", sa.String(length=12), nullable=False),
        sa.Column("action", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=255), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.create_index("ix_access_log_person_number_seq", ["person_number", "seq"], unique=False)
    op.create_table(
        "access_log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def drop_access_log() -> None:
    op.drop_table("access_log_head")
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index("ix_access_log_person_number_seq")
    op.drop_table("access_log")


def create_idempotency_keys() -> None:
    """The first answers of commands by request_id (services.common.idempotency)."""
    op.create_table(
        "idempotency_keys",
        sa.Column("method", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("method", "subject", "request_id"),
    )


def drop_idempotency_keys() -> None:
    op.drop_table("idempotency_keys")


def create_outbox_and_leases() -> None:
    """The transactional outbox (services.common.outbox) and the lease rows of work that runs once across
    replicas (services.common.leases)."""
    not_done = sa.text("sent_time IS NULL AND dead_time IS NULL")
    dead = sa.text("dead_time IS NOT NULL")
    op.create_table(
        "outbox_messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("delivery_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("subject_ref", sa.String(length=200), server_default="", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_key", name="uq_outbox_messages_delivery_key"),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_messages_due",
            ["next_attempt_time", "id"],
            unique=False,
            postgresql_where=not_done,
            sqlite_where=not_done,
        )
        batch_op.create_index(
            "ix_outbox_messages_dead", ["id"], unique=False, postgresql_where=dead, sqlite_where=dead
        )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renew_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def drop_outbox_and_leases() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_messages_dead")
        batch_op.drop_index("ix_outbox_messages_due")
    op.drop_table("outbox_messages")
