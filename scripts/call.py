"""Calls a service's RPC with JSON in and JSON out, for trying the services by hand.

    python -m scripts.call directory ListDistricts '{"page_size": 3}' [--role agent] [--address HOST:PORT]

Without --token a development token is minted for --role (and --unit / --person-number). A refused call
prints its code and message, and the reason and bad fields the service sent with them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

SERVICES: dict[str, tuple[str, int]] = {
    # name: (module of its generated code, default port)
    "case": ("aldredirekt.case.v1.case_pb2", 50051),
    "directory": ("aldredirekt.directory.v1.directory_pb2", 50052),
    "mirror": ("aldredirekt.mirror.v1.mirror_pb2", 50053),
    "fees": ("aldredirekt.fees.v1.fees_pb2", 50054),
}
# What every service serves beside its own.
SHARED = ("aldredirekt.common.v1.access_log_pb2", "aldredirekt.common.v1.outbox_pb2")


def find_method(service: str, method: str) -> tuple[Any, Any]:
    """The method of that name among the services the deployable serves, and its generated module."""
    found: list[str] = []
    for module_name in (SERVICES[service][0], *SHARED):
        try:
            messages: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for described in messages.DESCRIPTOR.services_by_name.values():
            if method in described.methods_by_name:
                return described.methods_by_name[method], messages
            found.extend(m.name for m in described.methods)
    raise SystemExit(f"{service} has no method {method}; it has {', '.join(sorted(found))}")


async def call(
    service: str, method: str, body: str, address: str, token: str, grant: str | None = None
) -> str:
    descriptor, messages = find_method(service, method)
    request_type = getattr(messages, descriptor.input_type.name)
    response_type = getattr(messages, descriptor.output_type.name)
    request = json_format.Parse(body or "{}", request_type())
    async with grpc.aio.insecure_channel(address) as channel:
        stub = channel.unary_unary(
            f"/{descriptor.containing_service.full_name}/{method}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        metadata = [("authorization", f"Bearer {token}")]
        if grant:
            metadata.append(("x-access-grant", grant))
        response = await stub(request, metadata=tuple(metadata), timeout=30)
    return json_format.MessageToJson(response, ensure_ascii=False)


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status the service sent with the error, if it sent one."""
    try:
        # An aio error answers the three questions from_call asks of a call, though not typed as one.
        status: status_pb2.Status | None = rpc_status.from_call(cast(grpc.Call, error))
    except ValueError:
        # It contradicts the call's own code or message, which are still worth showing.
        return None
    return status


def describe_refusal(error: grpc.aio.AioRpcError, status: status_pb2.Status | None) -> str:
    """The code and message, then the ErrorInfo reason with its metadata and each bad field."""
    lines = [f"{error.code().name}: {error.details()}"]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            metadata = ", ".join(f"{key}={value}" for key, value in sorted(info.metadata.items()))
            lines.append(f"  reason: {info.reason}" + (f" ({metadata})" if metadata else ""))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            lines.extend(f"  {v.field}: {v.description}" for v in bad_request.field_violations)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.call",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("service", choices=sorted(SERVICES))
    parser.add_argument("method")
    parser.add_argument("body", nargs="?", default="{}")
    parser.add_argument("--address")
    parser.add_argument("--token")
    parser.add_argument("--role", default="agent")
    parser.add_argument("--unit")
    parser.add_argument("--person-number")
    parser.add_argument("--dev-dir", default="var/dev-issuer")
    parser.add_argument(
        "--grant", help="an access grant (RecordConsent's access_grant), for the mirror and fees"
    )
    arguments = parser.parse_args(argv)
    token = arguments.token
    if not token:
        from services.common.devissuer import DevIssuer, check_claims_for_roles

        try:
            check_claims_for_roles(arguments.role, unit=arguments.unit, person_number=arguments.person_number)
            token = DevIssuer.load_or_create(Path(arguments.dev_dir)).mint(
                role=arguments.role, unit=arguments.unit, person_number=arguments.person_number
            )
        except (ValueError, OSError) as error:
            parser.exit(2, f"{parser.prog}: error: {error}\n")
    address = arguments.address or f"127.0.0.1:{SERVICES[arguments.service][1]}"
    try:
        print(
            asyncio.run(
                call(arguments.service, arguments.method, arguments.body, address, token, arguments.grant)
            )
        )
    except grpc.aio.AioRpcError as error:
        status = rich_status(error)
        # A channel that cannot connect has no google.rpc status; an UNAVAILABLE these services send has one.
        if error.code() is grpc.StatusCode.UNAVAILABLE and status is None:
            sys.exit(f"could not reach {arguments.service} at {address}: is `make run` up?")
        sys.exit(describe_refusal(error, status))
    except json_format.ParseError as error:
        sys.exit(f"the request body is not valid for {arguments.method}: {error}")


if __name__ == "__main__":
    main()
