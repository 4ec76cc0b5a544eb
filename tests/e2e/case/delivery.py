"""Waiting for the case service's mail in the end-to-end tests.

The running service sends its outbox itself, in a background job woken by every commit that queued mail, as
in production; a test may also call the service's sender (`Stack.dispatcher`) to deliver at once. Either may
deliver a message, never both (a message is claimed by one sender at a time), so a test waits for the mail to
arrive rather than counting which of them sent it.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from support.smtp_sink import MailStore
from tests.e2e.case.conftest import Stack

TIMEOUT_SECONDS = 10.0


async def delivered(stack: Stack, mailbox: MailStore, count: int) -> list[EmailMessage]:
    """The mails the sink holds once `count` of them have arrived; fails after ten seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT_SECONDS
    while len(mailbox.messages) < count:
        if loop.time() > deadline:
            raise AssertionError(f"{len(mailbox.messages)} of {count} mails arrived")
        await stack.dispatcher.send_due()
        await asyncio.sleep(0.02)
    return list(mailbox.messages)


async def nothing_more_is_sent(stack: Stack) -> None:
    """Nothing is left to send: a round of the service's sender finds nothing due."""
    assert await stack.dispatcher.send_due() == 0
