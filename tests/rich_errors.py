"""Reading the google.rpc details a service sends with an error, for the end-to-end tests of every service."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

Detail = TypeVar("Detail", error_details_pb2.ErrorInfo, error_details_pb2.BadRequest)


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error a call fails with; the test fails if it succeeds."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status the server sent with an error, from the trailing metadata."""
    trailing: Any = error.trailing_metadata() or ()
    for key, value in trailing:
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            return status_pb2.Status.FromString(value)
    raise AssertionError("the error carries no google.rpc.Status")


def detail_of(error: grpc.aio.AioRpcError, kind: type[Detail]) -> Detail:
    """The first detail of this kind in the error's status."""
    for detail in rich_status(error).details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            return message
    raise AssertionError(f"the status carries no {kind.__name__}")


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    return detail_of(error, error_details_pb2.ErrorInfo)


def reason_of(error: grpc.aio.AioRpcError) -> str:
    return str(error_info(error).reason)


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    """The fields a BadRequest names, in order."""
    return [v.field for v in detail_of(error, error_details_pb2.BadRequest).field_violations]
