"""Sending the outbox: mail queued in a case's own transaction goes out over SMTP, exactly once.

A mail is marked sent only after the SMTP server accepted it. If that mark is lost (a crash between the two),
the mail goes again with the same Message-ID, which receivers use to drop the duplicate. Failures back off;
nothing is ever dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from services.case.store import CaseUnitOfWork, QueuedMail

log = logging.getLogger("aldredirekt.case.mail")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    """A real SMTP client (the standard library's, in a worker thread)."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings

    def _send(self, message: EmailMessage) -> None:
        settings = self.settings
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as client:
            if settings.starttls:
                client.starttls(context=ssl.create_default_context())
            if settings.username:
                client.login(settings.username, settings.password or "")
            client.send_message(message)

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)


def build_message(queued: QueuedMail, sender: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(queued.mail.recipients)
    message["Subject"] = queued.mail.subject
    message["Message-ID"] = queued.message_id
    message["Date"] = format_datetime(now)
    message["Auto-Submitted"] = "auto-generated"
    if queued.mail.urgent:
        message["Importance"] = "high"
        message["X-Priority"] = "1"
    message.set_content(queued.mail.body)
    return message


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(600, 5 * 2 ** min(attempts, 10)))


class OutboxDispatcher:
    def __init__(
        self,
        uow: Callable[..., CaseUnitOfWork],
        transport: MailTransport,
        *,
        sender: str,
        lease: timedelta = timedelta(minutes=2),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.uow = uow
        self.transport = transport
        self.sender = sender
        self.lease = lease
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Asks for a round now, e.g. right after a forward committed."""
        self._wake.set()

    async def send_due(self, *, limit: int = 50) -> int:
        """Sends what is due; returns how many were sent."""
        now = self.clock()
        async with self.uow() as uow:
            claimed = await uow.cases.claim_mail(now, lease_until=now + self.lease, limit=limit)
            await uow.commit()
        sent = 0
        for queued in claimed:
            try:
                await self.transport.send(build_message(queued, self.sender, self.clock()))
            except (OSError, smtplib.SMTPException) as error:
                attempts = queued.attempts + 1
                async with self.uow() as uow:
                    await uow.cases.mail_failed(
                        queued.mail_id,
                        attempts=attempts,
                        retry_at=self.clock() + backoff(attempts),
                        error=f"{type(error).__name__}: {error}",
                    )
                    await uow.commit()
                log.warning(
                    "mail %s not sent (attempt %d): %s", queued.mail_id, attempts, type(error).__name__
                )
                continue
            async with self.uow() as uow:
                await uow.cases.mail_sent(queued.mail_id, self.clock())
                await uow.commit()
            sent += 1
        return sent

    async def run(self, interval: float) -> None:
        while True:
            try:
                while await self.send_due():
                    pass
            except Exception:
                log.exception("the outbox round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
