"""A local SMTP server that keeps every mail it receives, for `make run` and the tests.

    python -m support.smtp_sink [--port 2525] [--dir var/mail]

Each mail is written as <n>.eml in the folder, and a line is printed per mail. It is the mail sink of local
runs, standing in for the city's mail relay; it never relays anything further.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MailStore:
    """Collects mail, in memory and, given a folder, as .eml files."""

    def __init__(self, folder: Path | None = None, on_mail: Callable[[EmailMessage], None] | None = None):
        self.folder = folder
        self.messages: list[EmailMessage] = []
        self.on_mail = on_mail
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        if self.folder is not None:
            (self.folder / f"{len(list(self.folder.glob('*.eml'))) + 1:06d}.eml").write_bytes(
                envelope.content
            )
        if self.on_mail is not None:
            self.on_mail(message)
        return "250 Message accepted for delivery"


def start_sink(store: MailStore, host: str = "127.0.0.1", port: int = 2525) -> Controller:
    controller = Controller(store, hostname=host, port=port)
    controller.start()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", default="var/mail")
    arguments = parser.parse_args()
    store = MailStore(
        Path(arguments.dir),
        on_mail=lambda m: print(f"mail to {m['To']}: {m['Subject']}", flush=True),
    )
    controller = start_sink(store, arguments.host, arguments.port)
    print(f"SMTP sink on {arguments.host}:{arguments.port}, keeping mail in {arguments.dir}/", flush=True)

    async def wait() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
