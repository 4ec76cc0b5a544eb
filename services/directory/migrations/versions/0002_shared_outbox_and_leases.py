"""The shared outbox and leases that every service has

Revision ID: 0002
Revises: 0001
Created: 2026-12-01 21:00:00

The directory sends nothing yet and runs no background work, but its operators see its outbox like any
other service's, and work added later runs under a lease without another migration of the shared tables.
"""

from collections.abc import Sequence

from services.common import shared_migrations

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shared_migrations.create_outbox_and_leases()


def downgrade() -> None:
    shared_migrations.drop_outbox_and_leases()
