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
