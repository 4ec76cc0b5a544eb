"""The ASGI middleware in front of every instance: its clock on every answer, the faults its knobs ask for,
the credentials it accepts, and the count of what it served.

In the order a real request would meet them: a held request (`hang`) first, as a stuck load balancer
holds it; then latency; then the gateway's 429 and 5xx; then the system's own credential check. `down`
is not here: a closed listener never sees the request (see `upstreams.server`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from upstreams.credentials import Credentials
from upstreams.wire import format_time
from upstreams.world import Instance

__all__ = ["InstanceMiddleware", "error_body"]

UNANSWERED = 0


def error_body(error: str, message: str) -> bytes:
    return json.dumps({"error": error, "message": message}).encode()


class InstanceMiddleware:
    def __init__(
        self, app: ASGIApp, *, instance: Instance[Any], credentials: Credentials, routes: list[BaseRoute]
    ) -> None:
        self.app = app
        self.instance = instance
        self.credentials = credentials
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        """The route's template, so that the counts do not grow a key per record id."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", scope["path"]))
        return "(no route)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        instance = self.instance
        clock = instance.store.clock
        status = UNANSWERED

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    *message.get("headers", ()),
                    (b"x-server-time", format_time(clock.now_us()).encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            let_go = await self._hold(receive)
            if let_go is not None:
                await self._serve(scope, let_go, timed_send)
        finally:
            instance.stats.requests[(self._route(scope), status)] += 1

    async def _hold(self, receive: Receive) -> Receive | None:
        """While `hang` holds requests, waits for the knob to clear or the client to give up (None then).

        What the client sent meanwhile is kept and handed on, so a held request that is let go is served
        whole.
        """
        instance = self.instance
        if not instance.knobs.hang:
            return receive
        kept: list[Message] = []
        released = asyncio.ensure_future(instance.held())
        try:
            while True:
                listening = asyncio.ensure_future(receive())
                done, _ = await asyncio.wait({listening, released}, return_when=asyncio.FIRST_COMPLETED)
                if listening in done:
                    message = listening.result()
                    if message["type"] == "http.disconnect":
                        return None
                    kept.append(message)
                    continue
                listening.cancel()
                break
        finally:
            released.cancel()

        async def replay() -> Message:
            if kept:
                return kept.pop(0)
            return await receive()

        return replay

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.instance
        knobs = instance.knobs
        faults = instance.faults
        delay = knobs.latency_ms + (faults.random() * knobs.jitter_ms if knobs.jitter_ms else 0.0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if knobs.throttle_rate and faults.random() < knobs.throttle_rate:
            retry_after = f"{knobs.retry_after_s:g}"
            await _answer(
                send, 429, "throttled", "too many requests", [(b"retry-after", retry_after.encode())]
            )
            return
        if knobs.error_rate and faults.random() < knobs.error_rate:
            if faults.random() < 0.5:
                await _answer(send, 500, "internal", "the system failed")
            else:
                await _answer(send, 503, "unavailable", "the system is unavailable")
            return
        if not self._admitted(scope):
            extra = []
            if instance.kind == "paraply":
                extra.append((b"www-authenticate", f'Basic realm="{instance.name}"'.encode()))
            await _answer(send, 401, "unauthenticated", "the credentials were refused", extra)
            return
        await self.app(scope, receive, send)

    def _admitted(self, scope: Scope) -> bool:
        headers = {name.lower(): value for name, value in scope["headers"]}
        instance = self.instance
        if instance.kind == "agresso":
            expected = instance.knobs.api_key or self.credentials.agresso_api_key
            return _same(headers.get(b"x-api-key", b""), expected)
        raw = headers.get(b"authorization", b"")
        if not raw.startswith(b"Basic "):
            return False
        try:
            username, _, password = base64.b64decode(raw[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        district_id = instance.district_id
        expected = instance.knobs.password or self.credentials.paraply_passwords[district_id]
        # Both are compared, in constant time each, so a wrong user name takes as long as a wrong password.
        right_user = _same(username.encode(), Credentials.paraply_username(district_id))
        return _same(password.encode(), expected) and right_user


def _same(given: bytes, expected: str) -> bool:
    return hmac.compare_digest(given, expected.encode())


async def _answer(
    send: Send, status: int, error: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = error_body(error, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
