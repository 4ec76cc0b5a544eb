"""The directory as a running gRPC server: health, reflection and a graceful drain."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from aldredirekt.directory.v1 import directory_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common import runtime
from services.common.migrate import upgrade_to_head
from services.directory import handlers
from services.directory.main import DEFINITION, MIGRATIONS
from tests.e2e.directory.conftest import directory_settings

SERVICE = "aldredirekt.directory.v1.DirectoryService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health_of(channel: grpc.aio.Channel, service: str = SERVICE) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = response.status
    return status


async def reflect(
    channel: grpc.aio.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(timeout=5)
    await call.write(request)
    await call.done_writing()
    response = await call.read()
    assert isinstance(response, reflection_pb2.ServerReflectionResponse)
    assert not isinstance(await call.read(), reflection_pb2.ServerReflectionResponse)  # the stream ended
    return response


@pytest.mark.parametrize("service", ["", SERVICE])
async def test_a_started_server_is_serving(running, service):
    assert await health_of(running.channel, service) == SERVING


async def test_a_server_on_a_database_whose_schema_is_not_at_head_is_not_serving(tmp_path: Path):
    settings = directory_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", tmp_path / "dev", DIRECTORY_MIGRATE_ON_START="false"
    )
    started = await runtime.start(DEFINITION, settings, port=0)
    channel = grpc.aio.insecure_channel(started.address)
    try:
        before = await health_of(channel)
        await upgrade_to_head(started.wiring.engine, MIGRATIONS)
        await started.server.refresh_health()
        after = await health_of(channel)
    finally:
        await started.stop(0)
        await channel.close(None)

    assert before == NOT_SERVING
    assert after == SERVING


async def test_server_reflection_lists_the_directory_service(running):
    response = await reflect(running.channel, reflection_pb2.ServerReflectionRequest(list_services=""))

    names = {s.name for s in response.list_services_response.service}
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names


async def test_reflection_describes_the_directory_service(running):
    response = await reflect(
        running.channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)
    )

    assert response.file_descriptor_response.file_descriptor_proto


async def test_a_call_in_flight_completes_while_the_server_drains_and_later_calls_are_refused(
    running, monkeypatch
):
    in_flight = asyncio.Event()
    get_unit = handlers.get_unit

    async def slow_get_unit(**kwargs):
        in_flight.set()
        await asyncio.sleep(0.5)
        return await get_unit(**kwargs)

    monkeypatch.setattr(handlers, "get_unit", slow_get_unit)
    agent = running.auth("agent")
    name = f"units/{running.city.units[0].unit_id}"
    call = asyncio.ensure_future(
        running.stub.GetUnit(pb.GetUnitRequest(name=name), metadata=agent, timeout=10)
    )
    await in_flight.wait()

    began = time.monotonic()
    await running.running.stop(grace=5)
    drained_in = time.monotonic() - began
    response = await call

    assert response.unit.name == name
    assert drained_in < 4  # it waited for the call, not for the whole grace period
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.stub.GetUnit(pb.GetUnitRequest(name=name), metadata=agent, timeout=2)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
