"""Fakes of the services the fees service calls, callers, grants signed by a key of the test's own, and
a look at what the fees service stored: for its integration tests on a real database."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.auth import Caller, Role, SigningKey, jwks_document
from services.common.errors import PermissionDenied
from services.common.grants import GrantIssuer
from services.fees.model.basis import PersonFees
from services.fees.model.deferral import InvoiceFacts
from services.fees.model.issuing import BillableRow
from services.fees.store import bill_lines, bills, call_counts, deferrals, outbox

GRANT_ISSUER = "aldredirekt-case"
ASTRID = "194001011230"
BERTIL = "193805122391"


def caller(role: Role, *, subject: str | None = None, person: str | None = None) -> Caller:
    return Caller(
        subject=subject or f"test-{role.value}",
        roles=frozenset({role}),
        unit=None,
        person_number=person,
        token="",
    )


AGENT = caller(Role.AGENT, subject="agent-anna")
OTHER_AGENT = caller(Role.AGENT, subject="agent-bo")
FINANCE = caller(Role.FINANCE, subject="finance-fia")
AUDITOR = caller(Role.AUDITOR, subject="auditor-ida")


@dataclass
class Grants:
    """Grants as the case service signs them, with a key whose JWKS the fees service is told of."""

    key: SigningKey
    jwks: Path

    @classmethod
    def in_folder(cls, folder: Path) -> Grants:
        key = SigningKey.generate()
        folder.mkdir(parents=True, exist_ok=True)
        jwks = folder / "grant-keys.jwks.json"
        jwks.write_text(json.dumps(jwks_document([key])))
        return cls(key, jwks)

    def grant(
        self,
        person: str,
        *,
        agent: str = AGENT.subject,
        case: str = "cases/12",
        scopes: Iterable[str] = ("fees", "decisions", "invoices"),
        issued: datetime | None = None,
        lifetime: timedelta = timedelta(minutes=30),
    ) -> str:
        token, _ = GrantIssuer(self.key, issuer=GRANT_ISSUER, ttl=lifetime).issue(
            grant_id=f"grant-{time.monotonic_ns()}",
            agent=agent,
            person_number=person,
            case=case,
            scopes=scopes,
            now=issued or datetime.now(UTC),
        )
        return token


@dataclass
class FakeMirror:
    """The mirror as the fees service sees it: people's fee facts, and invoices by number, shown only to a
    grant for the invoice's person (as the real mirror's FindInvoice refuses the rest)."""

    people: dict[str, PersonFees] = field(default_factory=dict)
    invoices: dict[str, InvoiceFacts] = field(default_factory=dict)
    covers: str | None = None
    reads: int = 0

    async def person_fees(
        self, caller: Caller, *, grant_token: str | None, person_number: str, purpose: str
    ) -> PersonFees:
        self.reads += 1
        return self.people[person_number]

    async def invoice(
        self, caller: Caller, *, grant_token: str | None, invoice_number: str, purpose: str
    ) -> InvoiceFacts:
        self.reads += 1
        found = self.invoices.get(invoice_number)
        if found is None or (self.covers is not None and found.person_number != self.covers):
            raise PermissionDenied("not covered", reason="INVOICE_NOT_COVERED")
        return found


@dataclass
class FakeCaseCounts:
    """The case service's billable contacts per month, as a test sets them; counts every question."""

    rows: dict[date, list[BillableRow]] = field(default_factory=dict)
    asked: list[date] = field(default_factory=list)

    async def billable_contacts(self, month: date) -> list[BillableRow]:
        self.asked.append(month)
        return list(self.rows.get(month, []))


def invoice(number: str, person: str = ASTRID, **changes: object) -> InvoiceFacts:
    values: dict[str, object] = {
        "invoice_number": number,
        "person_number": person,
        "care_fee": True,
        "amount_ore": 180_000,
        "remaining_ore": 180_000,
        "due_date": date(2026, 12, 31),
    }
    values.update(changes)
    return InvoiceFacts(**values)  # type: ignore[arg-type]


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    """How many deferrals, outbox messages, bills, lines and count records are stored."""
    async with engine.connect() as conn:
        return {
            table.name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for table in (deferrals, outbox, bills, bill_lines, call_counts)
        }
