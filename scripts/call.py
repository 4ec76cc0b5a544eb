"""Calls a service's RPC with JSON in and JSON out, for trying the services by hand.

    python -m scripts.call directory ListDistricts '{"page_size": 3}' [--role agent] [--address HOST:PORT]

Without --token a development token is minted for --role (and --unit / --person-number).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

SERVICES: dict[str, tuple[str, str, int]] = {
    # name: (module of the generated code, service, default port)
    "directory": ("aldredirekt.directory.v1.directory_pb2", "DirectoryService", 50052),
    "case": ("aldredirekt.case.v1.case_pb2", "CaseService", 50051),
}


async def call(service: str, method: str, body: str, address: str, token: str) -> str:
    module_name, service_name, _ = SERVICES[service]
    messages: Any = importlib.import_module(module_name)
    descriptor = messages.DESCRIPTOR.services_by_name[service_name].methods_by_name.get(method)
    if descriptor is None:
        names = ", ".join(m.name for m in messages.DESCRIPTOR.services_by_name[service_name].methods)
        raise SystemExit(f"{service} has no method {method}; it has {names}")
    request_type = getattr(messages, descriptor.input_type.name)
    response_type = getattr(messages, descriptor.output_type.name)
    request = json_format.Parse(body or "{}", request_type())
    async with grpc.aio.insecure_channel(address) as channel:
        stub = channel.unary_unary(
            f"/{descriptor.containing_service.full_name}/{method}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        response = await stub(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
    return json_format.MessageToJson(response, ensure_ascii=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    arguments = parser.parse_args()
    token = arguments.token
    if not token:
        from services.common.devissuer import DevIssuer

        token = DevIssuer.load_or_create(Path(arguments.dev_dir)).mint(
            role=arguments.role, unit=arguments.unit, person_number=arguments.person_number
        )
    address = arguments.address or f"127.0.0.1:{SERVICES[arguments.service][2]}"
    try:
        print(asyncio.run(call(arguments.service, arguments.method, arguments.body, address, token)))
    except grpc.aio.AioRpcError as error:
        sys.exit(f"{error.code().name}: {error.details()}")
    except json_format.ParseError as error:
        sys.exit(f"the request body is not valid for {arguments.method}: {error}")


if __name__ == "__main__":
    main()
