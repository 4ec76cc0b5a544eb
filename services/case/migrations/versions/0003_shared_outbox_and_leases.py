"""The shared outbox and leases: mail leaves through services.common.outbox, background work runs once

Revision ID: 0003
Revises: 0002
Created: 2026-12-01 21:00:00

The case service's own mail outbox becomes the outbox every service has, with a dead state operators
see, and the overdue escalation and the sending of mail run under lease rows. Mail not yet sent moves
across with its Message-ID, so a mail already tried is recognisably the same mail when it goes again.
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from services.common import shared_migrations

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_old_outbox = sa.table(
    "outbox",
    sa.column("kind", sa.String),
    sa.column("case_id", sa.BigInteger),
    sa.column("recipients", sa.Text),
    sa.column("subject", sa.String),
    sa.column("body", sa.Text),
    sa.column("urgent", sa.Boolean),
    sa.column("message_id", sa.String),
    sa.column("create_time", sa.DateTime(timezone=True)),
    sa.column("next_attempt_time", sa.DateTime(timezone=True)),
    sa.column("attempts", sa.Integer),
    sa.column("sent_time", sa.DateTime(timezone=True)),
    sa.column("last_error", sa.String),
)
_new_outbox = sa.table(
    "outbox_messages",
    sa.column("kind", sa.String),
    sa.column("delivery_key", sa.String),
    sa.column("payload", sa.LargeBinary),
    sa.column("subject_ref", sa.String),
    sa.column("create_time", sa.DateTime(timezone=True)),
    sa.column("next_attempt_time", sa.DateTime(timezone=True)),
    sa.column("attempts", sa.Integer),
    sa.column("last_error", sa.String),
)


def upgrade() -> None:
    shared_migrations.create_outbox_and_leases()
    connection = op.get_bind()
    unsent = connection.execute(sa.select(_old_outbox).where(_old_outbox.c.sent_time.is_(None))).all()
    for row in unsent:
        payload = {
            "kind": row.kind,
            "case_id": int(row.case_id),
            "recipients": [r for r in row.recipients.split(";") if r],
            "subject": row.subject,
            "body": row.body,
            "urgent": bool(row.urgent),
        }
        connection.execute(
            sa.insert(_new_outbox).values(
                kind="mail",
                delivery_key=row.message_id,
                payload=json.dumps(payload, ensure_ascii=False).encode(),
                subject_ref=f"cases/{row.case_id}",
                create_time=row.create_time,
                next_attempt_time=row.next_attempt_time or datetime.now(UTC),
                attempts=row.attempts,
                last_error=row.last_error or "",
            )
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")
        batch_op.drop_index(batch_op.f("ix_outbox_case_id"))
    op.drop_table("outbox")


def downgrade() -> None:
    # Mail still waiting in the shared outbox is not moved back: downgrading is for an empty outbox.
    op.create_table(
        "outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_case_id"), ["case_id"], unique=False)
        batch_op.create_index("ix_outbox_due", ["sent_time", "next_attempt_time"], unique=False)
    shared_migrations.drop_outbox_and_leases()
