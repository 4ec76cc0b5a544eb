"""Running a command RPC so that a retry with the same request_id gets the first answer back."""

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
) -> R:
    """Runs `run` with the request's idempotency key; a replay answers with the stored first response."""
    key = request_key(method, current_caller().subject, request)
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
        return response_type.FromString(replay.response)
    if built and built[-1][0] is answer:
        return built[-1][1]
    return respond(answer)
