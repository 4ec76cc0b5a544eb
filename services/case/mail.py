"""Mail out of the shared outbox: the case service's notices, delivered over SMTP.

A mail is queued in the case's own transaction (store.CaseRepository.queue_mail) with its Message-ID fixed
then; the outbox hands it here. If the mark "sent" is lost after the relay accepted it (a crash between the
two), the mail goes again with the same Message-ID, which receivers use to drop the duplicate. A refusal
the relay calls permanent (5xx) makes the message dead for an operator to see; anything else is retried.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from services.case.model import Mail
from services.common.outbox import DeliveryFailed, OutboxMessage


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


def build_message(mail: Mail, *, message_id: str, sender: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(mail.recipients)
    message["Subject"] = mail.subject
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(now)
    message["Auto-Submitted"] = "auto-generated"
    if mail.urgent:
        message["Importance"] = "high"
        message["X-Priority"] = "1"
    message.set_content(mail.body)
    return message


def _permanent(error: smtplib.SMTPException) -> bool:
    code = getattr(error, "smtp_code", None)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [answer[0] for answer in error.recipients.values()]
        return bool(codes) and all(500 <= c < 600 for c in codes)
    return isinstance(code, int) and 500 <= code < 600


class MailDelivery:
    """Delivers the outbox's mail messages."""

    def __init__(
        self,
        transport: MailTransport,
        *,
        sender: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.transport = transport
        self.sender = sender
        self.clock = clock

    async def __call__(self, message: OutboxMessage) -> None:
        mail = Mail.decode(message.payload)
        if not mail.recipients:
            raise DeliveryFailed("the mail has no recipient", permanent=True)
        email = build_message(mail, message_id=message.delivery_key, sender=self.sender, now=self.clock())
        try:
            await self.transport.send(email)
        except smtplib.SMTPException as error:
            raise DeliveryFailed(
                f"the relay refused: {type(error).__name__}", permanent=_permanent(error)
            ) from None
        except OSError as error:
            raise DeliveryFailed(f"the relay did not answer: {type(error).__name__}") from None
