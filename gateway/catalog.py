"""What the gateway serves, read from the generated code: every service of the `aldredirekt` packages, each
RPC's `google.api.http` rules, and the comments of the protos (from the descriptor set `make proto` writes).

Nothing is written here by hand per RPC: a method reaches REST by its annotation, and a service
`aldredirekt.<name>.v1.X` is served by the deployable `<name>`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import Descriptor, FileDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from gateway.templates import PathTemplate, parse_template

ROOT_PACKAGE = "aldredirekt"
# Services every deployable serves beside its own (the access log, the outbox): no deployable of their own.
SHARED_PACKAGE = "common"
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpBinding:
    """One HTTP rule of an RPC: its verb, its path template and which part of the request is the body."""

    verb: str
    template: PathTemplate
    # "" (no body), "*" (the whole request but the path's fields) or a top-level field's name.
    body: str


@dataclass(frozen=True)
class Rpc:
    """An annotated RPC, with the deployable that serves it."""

    backend: str
    service: ServiceDescriptor
    method: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]
    bindings: tuple[HttpBinding, ...]

    @property
    def path(self) -> str:
        """The gRPC method path, "/aldredirekt.case.v1.CaseService/GetCase"."""
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def operation_id(self) -> str:
        return f"{self.service.name}_{self.method.name}"

    @property
    def reads(self) -> bool:
        """Whether the RPC only reads: annotated with GET, so safe to send again after UNAVAILABLE."""
        return all(binding.verb == "get" for binding in self.bindings)


@dataclass(frozen=True)
class Catalog:
    rpcs: tuple[Rpc, ...]
    # Every deployable that serves a service of its own, sorted: each has a GATEWAY_<NAME>_ADDRESS.
    backends: tuple[str, ...]
    comments: Mapping[str, str] = field(default_factory=dict)

    def comment(self, full_name: str) -> str:
        return self.comments.get(full_name, "")


def backend_of(service: ServiceDescriptor) -> str | None:
    """ "case" for aldredirekt.case.v1.CaseService; None for the shared services and foreign packages."""
    parts = service.full_name.split(".")
    if len(parts) < 4 or parts[0] != ROOT_PACKAGE or parts[1] == SHARED_PACKAGE:
        return None
    return parts[1]


def generated_modules(package: str = ROOT_PACKAGE) -> Iterator[ModuleType]:
    """Every `*_pb2` module under the package, imported."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if info.name.endswith("_pb2"):
            yield importlib.import_module(info.name)


def http_rules(method: MethodDescriptor) -> list[http_pb2.HttpRule]:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return []
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    return [rule, *rule.additional_bindings]


def _binding(rule: http_pb2.HttpRule, method: MethodDescriptor) -> HttpBinding:
    pattern = rule.WhichOneof("pattern")
    if pattern is None or pattern == "custom":
        verb, path = (rule.custom.kind.lower(), rule.custom.path) if pattern else ("", "")
    else:
        verb, path = pattern, getattr(rule, pattern)
    if verb not in _VERBS:
        raise ValueError(f"{method.full_name}: the HTTP verb {verb!r} is not one the gateway serves")
    template = parse_template(path, method.input_type)
    if rule.body not in ("", "*") and rule.body not in method.input_type.fields_by_name:
        raise ValueError(f"{method.full_name}: the body {rule.body!r} is no field of the request")
    return HttpBinding(verb=verb, template=template, body=rule.body)


def _services(modules: Iterable[Any]) -> Iterator[ServiceDescriptor]:
    seen: set[str] = set()
    for module in modules:
        file: FileDescriptor = module.DESCRIPTOR
        for service in file.services_by_name.values():
            if service.full_name not in seen:
                seen.add(service.full_name)
                yield service


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def load_catalog(
    *, package: str = ROOT_PACKAGE, descriptors: Path | None = None, modules: Iterable[Any] | None = None
) -> Catalog:
    """The annotated RPCs of every service in the generated modules (or in `modules`, anything with a
    file DESCRIPTOR); comments from `descriptors` when given (a FileDescriptorSet with source info)."""
    rpcs: list[Rpc] = []
    backends: set[str] = set()
    for service in _services(generated_modules(package) if modules is None else modules):
        backend = backend_of(service)
        if backend is None:
            continue
        backends.add(backend)
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                continue
            rules = http_rules(method)
            if not rules:
                continue
            rpcs.append(
                Rpc(
                    backend=backend,
                    service=service,
                    method=method,
                    request_class=message_class(method.input_type),
                    response_class=message_class(method.output_type),
                    bindings=tuple(_binding(rule, method) for rule in rules),
                )
            )
    comments = read_comments(descriptors) if descriptors is not None else {}
    return Catalog(rpcs=tuple(rpcs), backends=tuple(sorted(backends)), comments=comments)


# ---- comments ------------------------------------------------------------------------------------------

# Field numbers of descriptor.proto that source-info paths are made of.
_FILE_MESSAGES = 4
_FILE_ENUMS = 5
_FILE_SERVICES = 6
_MESSAGE_FIELDS = 2
_MESSAGE_NESTED = 3
_MESSAGE_ENUMS = 4
_ENUM_VALUES = 2
_SERVICE_METHODS = 2


def _clean(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.strip("\n").split("\n")]
    return "\n".join(lines).strip()


def _names_by_path(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """The full name of every element of a file, by its source-info path."""
    prefix = f"{file.package}." if file.package else ""
    names: dict[tuple[int, ...], str] = {}

    def enum(path: tuple[int, ...], scope: str, proto: descriptor_pb2.EnumDescriptorProto) -> None:
        name = f"{scope}{proto.name}"
        names[path] = name
        for index, value in enumerate(proto.value):
            # Enum values are scoped beside their enum in protobuf, but named inside it here for clarity.
            names[(*path, _ENUM_VALUES, index)] = f"{name}.{value.name}"

    def message(path: tuple[int, ...], scope: str, proto: descriptor_pb2.DescriptorProto) -> None:
        name = f"{scope}{proto.name}"
        names[path] = name
        for index, item in enumerate(proto.field):
            names[(*path, _MESSAGE_FIELDS, index)] = f"{name}.{item.name}"
        for index, nested in enumerate(proto.nested_type):
            message((*path, _MESSAGE_NESTED, index), f"{name}.", nested)
        for index, nested_enum in enumerate(proto.enum_type):
            enum((*path, _MESSAGE_ENUMS, index), f"{name}.", nested_enum)

    for index, proto in enumerate(file.message_type):
        message((_FILE_MESSAGES, index), prefix, proto)
    for index, enum_proto in enumerate(file.enum_type):
        enum((_FILE_ENUMS, index), prefix, enum_proto)
    for index, service in enumerate(file.service):
        service_name = f"{prefix}{service.name}"
        names[(_FILE_SERVICES, index)] = service_name
        for method_index, method in enumerate(service.method):
            names[(_FILE_SERVICES, index, _SERVICE_METHODS, method_index)] = f"{service_name}.{method.name}"
    return names


def read_comments(path: Path) -> dict[str, str]:
    """The leading (else trailing) comment of every element in a descriptor set, by full name."""
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    comments: dict[str, str] = {}
    for file in descriptor_set.file:
        names = _names_by_path(file)
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            text = location.leading_comments or location.trailing_comments
            if name is not None and text.strip():
                comments[name] = _clean(text)
    return comments
