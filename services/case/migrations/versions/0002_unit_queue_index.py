"""A partial index for a unit's queue: its unanswered cases in deadline order

Revision ID: 0002
Revises: 0001
Created: 2026-11-23 15:00:00

The queue asks for a unit's cases that are forwarded, acknowledged or assigned, by deadline then id, a
page at a time. ix_cases_unit_queue (unit_id, status, deadline) finds them, but over three statuses the
rows do not come out in deadline order, so every page read all of the unit's open cases and sorted them:
milliseconds for a queue of ten thousand. This index holds only the open cases, already in the order a
page wants, so a page reads its fifty rows and stops; closed cases, the great majority, stay out of it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AT_UNIT = sa.text("status IN ('forwarded', 'acknowledged', 'assigned')")


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cases_unit_open_queue",
            ["unit_id", "deadline", "id"],
            unique=False,
            postgresql_where=AT_UNIT,
            sqlite_where=AT_UNIT,
        )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_unit_open_queue")
