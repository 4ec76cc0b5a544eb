"""Running a command RPC so that a retry with the same request_id gets the first answer back.

A request_id is the caller's own: its key holds the caller's subject and the scope the caller acted in (the
unit of a unit's staff, the person of a citizen), so the same subject acting for another unit never gets
the first unit's answer; it is served afresh and checked like any call. A replay is checked again, too: the
RPC's roles by the server before it runs, and whatever the answer reveals by `replayed`, which also logs the
read of the person's data that the answer holds, as the first call did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from services.common.db import Idempotency
from services.common.idempotency import Replayed, request_key
from services.common.server import current_caller

T = TypeVar("T")
R = TypeVar("R", bound=Message)


async def run_command(
    method: str,
    request: Message,
    response_type: type[R],
    run: Callable[[Idempotency | None], Awaitable[T]],
    respond: Callable[[T], R],
    *,
    replayed: Callable[[R], Awaitable[object]] | None = None,
) -> R:
    """Runs `run` with the request's idempotency key; a replay answers with the stored first response,
    after `replayed` has checked it and logged its read."""
    key = request_key(method, current_caller().idempotency_scope, request)
    # The answer stored for replays and the answer sent are one message, built once.
    built: list[tuple[T, R]] = []

    def encode(answer: T) -> bytes:
        response = respond(answer)
        built.append((answer, response))
        return response.SerializeToString()

    idempotency = Idempotency(key, encode=encode) if key else None
    try:
        answer = await run(idempotency)
    except Replayed as replay:
        first = response_type.FromString(replay.response)
        if replayed is not None:
            await replayed(first)
        return first
    if built and built[-1][0] is answer:
        return built[-1][1]
    return respond(answer)
