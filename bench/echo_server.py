"""A bare grpc.aio server that answers each unary call with its request: the ceiling of a service here.

    python -m bench.echo_server

It listens on 127.0.0.1 on a port of its own choosing (port 0), prints the port as the only line on
stdout, and serves until SIGTERM or SIGINT. It runs like the services (one grpc.aio server, the same
message size limits) but without interceptors, handlers or database.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import grpc

HOST = "127.0.0.1"
ECHO_SERVICE = "bench.Echo"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request


async def serve() -> None:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 32 * 1024 * 1024),
            ("grpc.max_send_message_length", 32 * 1024 * 1024),
        ]
    )
    # No serializers: requests and answers stay bytes, so nothing but gRPC itself is measured.
    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{HOST}:0")
    await server.start()
    print(port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


if __name__ == "__main__":
    asyncio.run(serve())
