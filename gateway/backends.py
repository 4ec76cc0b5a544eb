"""The gateway's gRPC clients: one long-lived `grpc.aio` channel per backend, opened by bootstrap and closed
on shutdown.

Each channel's service config retries the methods that only read (those annotated with GET, and the reads
the composite resources make) when the backend answers UNAVAILABLE: a restart or a replica draining
should not reach the user as an error. Writes are never retried by the channel: a command sent twice is
the client's decision, made safe by its Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

M = TypeVar("M", bound=Message)

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_config(read_methods: Iterable[str]) -> str:
    """The channel's service config: retry on UNAVAILABLE for the given "/pkg.Service/Method" paths."""
    names = []
    for path in sorted(set(read_methods)):
        service, _, method = path.strip("/").partition("/")
        names.append({"service": service, "method": method})
    configs: list[dict[str, Any]] = []
    if names:
        configs.append({"name": names, "retryPolicy": RETRY_POLICY})
    return json.dumps({"methodConfig": configs})


def channel_options(read_methods: Iterable[str]) -> list[tuple[str, Any]]:
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config(read_methods)),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Kept open between bursts; the services accept a ping every 10 s at most.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


@dataclass
class Backends:
    """The channels, by deployable name, and the callables made on them (one per method, made once)."""

    addresses: Mapping[str, str]
    channels: dict[str, grpc.aio.Channel]
    _callables: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = field(
        default_factory=dict
    )

    @classmethod
    def open(cls, addresses: Mapping[str, str], read_methods: Mapping[str, Sequence[str]]) -> Backends:
        channels = {
            name: grpc.aio.insecure_channel(address, options=channel_options(read_methods.get(name, ())))
            for name, address in addresses.items()
        }
        return cls(addresses=dict(addresses), channels=channels)

    def callable(
        self, backend: str, path: str, response_class: type[M]
    ) -> grpc.aio.UnaryUnaryMultiCallable[Message, M]:
        key = (backend, path)
        found = self._callables.get(key)
        if found is None:
            found = self._callables[key] = self.channels[backend].unary_unary(
                path,
                request_serializer=_serialize,
                response_deserializer=response_class.FromString,
            )
        return found

    async def call(
        self,
        backend: str,
        path: str,
        request: Message,
        response_class: type[M],
        *,
        metadata: Sequence[tuple[str, str]],
        deadline: float,
    ) -> M:
        """Raises grpc.aio.AioRpcError when the backend refuses or does not answer."""
        answer: M = await self.callable(backend, path, response_class)(
            request, metadata=metadata, timeout=deadline
        )
        return answer

    async def health(self, *, deadline: float) -> dict[str, str]:
        """Each backend's answer on the standard health service, "UNREACHABLE" when none came."""

        async def check(name: str) -> tuple[str, str]:
            stub = health_pb2_grpc.HealthStub(self.channels[name])
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=deadline)
            except grpc.aio.AioRpcError:
                return name, "UNREACHABLE"
            return name, health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)

        return dict(await asyncio.gather(*(check(name) for name in self.channels)))

    async def close(self, grace: float | None = None) -> None:
        await asyncio.gather(*(channel.close(grace) for channel in self.channels.values()))


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
