"""The OpenAPI 3.1 document, generated from the same descriptors the gateway routes by, with the protos'
comments as descriptions.

Field behaviours become JSON Schema: REQUIRED → `required`, OUTPUT_ONLY → `readOnly`. Types follow the
protobuf JSON mapping: 64-bit integers are strings, Timestamp a date-time string, Duration a string such
as "1.5s", FieldMask a string of comma-separated paths, google.type.Date an object, maps objects. Every
operation documents every error it can answer, each as problem+json.

Links (for clients and for stateful tests) go from every answer that holds a resource to every operation
whose path names a resource of that pattern: CreateCase's `case.name` leads to GetCase, ForwardCase,
AcknowledgeCase and the rest. A path parameter is one segment of the name (`cases/{case}`), so the link
takes it out of the name with a `#regex:` extractor, as Schemathesis reads links.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.api import field_behavior_pb2, resource_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.catalog import Catalog, HttpBinding, Rpc
from gateway.problems import GRPC_TO_HTTP, PROBLEM_MEDIA_TYPE, title_of
from gateway.templates import Variable
from gateway.transcoding import HTTP_BODY, Transcoder, enum_of, is_map, is_repeated, message_of

OPENAPI_VERSION = "3.1.0"
# The documentation page's Swagger UI reads 3.0 only; the same document, written the 3.0 way.
DOCS_OPENAPI_VERSION = "3.0.3"
MAX_QUERY_DEPTH = 3
_REQUIRED = field_behavior_pb2.REQUIRED
_OUTPUT_ONLY = field_behavior_pb2.OUTPUT_ONLY

_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
_INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"}
_SCALARS: Mapping[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: Mapping[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]{1,12}(\.[0-9]{1,9})?s$",
        "description": 'A duration in seconds with the unit, e.g. "1.5s".',
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": 'Field paths separated by commas, e.g. "mailbox,phoneHours".',
    },
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.DoubleValue": {"type": "number", "format": "double"},
    "google.protobuf.FloatValue": {"type": "number", "format": "float"},
    "google.protobuf.Int32Value": _INT32,
    "google.protobuf.UInt32Value": _UINT32,
    "google.protobuf.Int64Value": _INT64,
    "google.protobuf.UInt64Value": _UINT64,
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem: every error the gateway answers.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": "https://aldredirekt.stockholm.se/problems/ and the stable reason, e.g. "
            "OTHER_UNIT.",
        },
        "title": {"type": "string", "description": "The HTTP status's phrase."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, for a person to read."},
        "code": {"type": "string", "description": "The canonical gRPC code, e.g. NOT_FOUND."},
        "reason": {"type": "string", "description": "The stable reason, as in the type."},
        "errors": {
            "type": "array",
            "description": "The fields that were refused, each with where it was sent.",
            "items": {
                "type": "object",
                "required": ["field", "detail"],
                "properties": {
                    "field": {"type": "string", "description": "The request field, e.g. case.person_number."},
                    "detail": {"type": "string"},
                    "pointer": {"type": "string", "description": "A JSON pointer into the body."},
                    "parameter": {"type": "string", "description": "The path or query parameter."},
                    "header": {"type": "string", "description": "The header, e.g. Idempotency-Key."},
                },
            },
        },
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "trace_id": {"type": "string", "description": "The trace to quote when reporting a fault."},
    },
}

# The errors every operation may answer, beside those of bodies and etags.
_COMMON_ERRORS = sorted({*GRPC_TO_HTTP.values()} - {200})
_HEADER_PARAMETERS: dict[str, dict[str, Any]] = {
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Makes the command safe to retry: it is the request's request_id. A replay gets the "
        "first answer; the same key with another body is refused.",
        "schema": {"type": "string", "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "The ETag the resource was read with; 412 when it has changed since.",
        "schema": {"type": "string"},
    },
    "AccessGrant": {
        "name": "X-Access-Grant",
        "in": "header",
        "required": False,
        "description": "The access grant of the person's recorded consent, for reads of their facts.",
        "schema": {"type": "string"},
    },
}


def _behaviours(item: FieldDescriptor) -> set[int]:
    return set(item.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def component_name(full_name: str) -> str:
    return full_name.removeprefix("aldredirekt.")


def resource_pattern(message: Descriptor) -> list[str]:
    return list(message.GetOptions().Extensions[resource_pb2.resource].pattern)


@dataclass
class Schemas:
    """The components/schemas section, filled as messages and enums are referred to."""

    comments: Mapping[str, str]
    components: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ref(self, full_name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{component_name(full_name)}"}

    def message(self, message: Descriptor) -> dict[str, Any]:
        """A $ref to the message's schema (written once), or the schema of a well-known type."""
        if message.full_name in _WELL_KNOWN:
            return copy.deepcopy(_WELL_KNOWN[message.full_name])
        name = component_name(message.full_name)
        if name not in self.components:
            self.components[name] = {}  # placed first: messages may refer to themselves
            self.components[name] = self._message_schema(message)
        return self.ref(message.full_name)

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        name = component_name(enum.full_name)
        if name not in self.components:
            lines = [self.comments.get(enum.full_name, "")]
            for value in enum.values:
                note = self.comments.get(f"{enum.full_name}.{value.name}", "")
                if note:
                    lines.append(f"- {value.name}: {note}")
            schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in enum.values]}
            description = "\n".join(line for line in lines if line)
            if description:
                schema["description"] = description
            self.components[name] = schema
        return self.ref(enum.full_name)

    def field(self, item: FieldDescriptor, *, with_description: bool = True) -> dict[str, Any]:
        if is_map(item):
            value = message_of(item).fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self._single(value)}
        elif is_repeated(item):
            schema = {"type": "array", "items": self._single(item)}
        else:
            schema = self._single(item)
        behaviours = _behaviours(item)
        if _OUTPUT_ONLY in behaviours:
            schema["readOnly"] = True
        description = self.comments.get(item.full_name, "") if with_description else ""
        if description:
            schema["description"] = description
        return schema

    def _single(self, item: FieldDescriptor) -> dict[str, Any]:
        if item.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message(message_of(item))
        if item.type == FieldDescriptor.TYPE_ENUM:
            return self.enum(enum_of(item))
        return copy.deepcopy(_SCALARS[item.type])

    def _message_schema(self, message: Descriptor, leave_out: Iterable[str] = ()) -> dict[str, Any]:
        skipped = set(leave_out)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for item in message.fields:
            if item.name in skipped:
                continue
            properties[item.name] = self.field(item)
            behaviours = _behaviours(item)
            if _REQUIRED in behaviours and _OUTPUT_ONLY not in behaviours:
                required.append(item.name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        description = self.comments.get(message.full_name, "")
        if description:
            schema["description"] = description
        return schema

    def body(self, message: Descriptor, leave_out: Iterable[str]) -> dict[str, Any]:
        """A request message as a body, without the fields the path binds."""
        return self._message_schema(message, leave_out)


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _problem_responses(statuses: Iterable[int]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): {"$ref": "#/components/responses/Problem"} for status in statuses
    }
    responses["default"] = {"$ref": "#/components/responses/Problem"}
    return responses


def error_responses(*, body: bool, etag: bool) -> dict[str, Any]:
    statuses = set(_COMMON_ERRORS)
    if body:
        statuses |= {413, 415}
    if etag:
        statuses.add(412)
    return _problem_responses(sorted(statuses))


def _query_parameters(
    schemas: Schemas, message: Descriptor, prefix: str, skip: set[str], depth: int
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for item in message.fields:
        name = f"{prefix}{item.name}"
        if name in skip or is_map(item):
            continue
        plain_message = item.type == FieldDescriptor.TYPE_MESSAGE and message_of(item).full_name not in (
            _WELL_KNOWN
        )
        if plain_message:
            if is_repeated(item) or depth >= MAX_QUERY_DEPTH:
                continue
            found += _query_parameters(schemas, message_of(item), f"{name}.", skip, depth + 1)
            continue
        schema = schemas.field(item, with_description=False)
        schema.pop("readOnly", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
        behaviours = _behaviours(item)
        if _OUTPUT_ONLY in behaviours:
            continue
        if _REQUIRED in behaviours and not prefix:
            parameter["required"] = True
        description = schemas.comments.get(item.full_name, "")
        if description:
            parameter["description"] = description
        if is_repeated(item):
            parameter["style"] = "form"
            parameter["explode"] = True
        found.append(parameter)
    return found


def _summary(comment: str, fallback: str) -> str:
    first = comment.split("\n\n")[0].replace("\n", " ").strip()
    sentence = re.split(r"(?<=[.!?])\s", first)[0]
    return sentence or fallback


def operation(schemas: Schemas, rpc: Rpc, binding: HttpBinding, *, primary: bool) -> dict[str, Any]:
    transcoder = Transcoder.of(rpc, binding)
    request = rpc.method.input_type
    comment = schemas.comments.get(f"{rpc.service.full_name}.{rpc.method.name}", "")
    parameters: list[dict[str, Any]] = [
        {
            "name": parameter.name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": f"The {{{parameter.name}}} of {parameter.variable.field_path} "
            f"({'/'.join(parameter.variable.segments)}).",
        }
        for parameter in binding.template.parameters
    ]
    path_fields = {v.field_path for v in binding.template.variables}
    if binding.body != "*":
        skip = set(path_fields)
        if binding.body:
            skip.add(binding.body)
        parameters += _query_parameters(schemas, request, "", skip, 0)
    if transcoder.has_request_id:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if transcoder.etag_in_request is not None:
        parameters.append({"$ref": "#/components/parameters/IfMatch"})
    parameters.append({"$ref": "#/components/parameters/AccessGrant"})
    answer: dict[str, Any] = {
        "description": schemas.comments.get(rpc.method.output_type.full_name, "") or "The answer.",
        "content": _json_content(schemas.message(rpc.method.output_type)),
    }
    if rpc.method.output_type.full_name == HTTP_BODY:
        # The file itself; its media type is the one the service gives (a CSV export: text/csv).
        answer = {
            "description": "The file, in the media type the service gives it.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    if transcoder.etag_in_response is not None:
        answer["headers"] = {
            "ETag": {
                "description": "The resource's etag, for If-Match on the next change.",
                "schema": {"type": "string"},
            }
        }
    result: dict[str, Any] = {
        "operationId": rpc.operation_id if primary else f"{rpc.operation_id}_{binding.verb}",
        "summary": _summary(comment, rpc.method.name),
        "tags": [rpc.service.name],
        "parameters": parameters,
        "responses": {
            "200": answer,
            **error_responses(body=bool(binding.body), etag=transcoder.etag_in_request is not None),
        },
    }
    if comment:
        result["description"] = comment
    if binding.body:
        if binding.body == "*":
            top = {f for f in path_fields if "." not in f}
            schema = schemas.body(request, top)
            required = bool(schema.get("required"))
        else:
            body_field = request.fields_by_name[binding.body]
            schema = schemas.field(body_field)
            required = _REQUIRED in _behaviours(body_field)
        result["requestBody"] = {"required": required, "content": _json_content(schema)}
    return result


# ---- links ---------------------------------------------------------------------------------------------


def _pattern_segments(pattern: str) -> list[str]:
    return ["*" if part.startswith("{") else part for part in pattern.split("/")]


def _extractor(variable: Variable, index: int) -> str:
    pieces = []
    wildcard = 0
    for segment in variable.segments:
        if segment == "*":
            pieces.append("([^/]+)" if wildcard == index else "[^/]+")
            wildcard += 1
        else:
            pieces.append(re.escape(segment))
    return "^" + "/".join(pieces) + "$"


def _links(
    schemas: Schemas, source: Rpc, targets: list[tuple[Rpc, HttpBinding]]
) -> dict[str, dict[str, Any]]:
    links: dict[str, dict[str, Any]] = {}
    for item in source.method.output_type.fields:
        if item.type != FieldDescriptor.TYPE_MESSAGE or is_repeated(item):
            continue
        names = message_of(item).fields_by_name
        if "name" not in names:
            continue
        for pattern in resource_pattern(message_of(item)):
            segments = _pattern_segments(pattern)
            for target, binding in targets:
                if target is source:
                    continue
                variables = binding.template.variables
                if len(variables) != 1 or list(variables[0].segments) != segments:
                    continue
                variable = variables[0]
                parameters = {
                    parameter.name: f"$response.body#/{item.name}/name#regex:{_extractor(variable, i)}"
                    for i, parameter in enumerate(binding.template.parameters)
                }
                links[target.method.name] = {
                    "operationId": target.operation_id,
                    "parameters": parameters,
                    "description": f"The {item.name} this answer holds, by its name.",
                }
    return links


# ---- the document --------------------------------------------------------------------------------------

DESCRIPTION = """\
REST/JSON over the Äldre direkt services. JSON follows the protobuf JSON mapping with the proto field names
(`person_number`); 64-bit integers are strings, times RFC 3339, dates objects.

- **Identity.** Every call carries `Authorization: Bearer <JWT>` of the city's identity provider.
- **Errors.** Every error is `application/problem+json` (RFC 9457); `type` ends in a stable reason.
- **Retries.** Commands take `Idempotency-Key`; updates `If-Match` with the `ETag` read.
- **Deadlines.** `Request-Timeout: <seconds>` (or `X-Request-Timeout`) bounds the call, up to the maximum.
- **Personal data.** Person numbers travel in bodies, never in URLs; answers are `Cache-Control: no-store`.
"""


def build_document(
    catalog: Catalog,
    *,
    extra_paths: Mapping[str, dict[str, Any]] | None = None,
    schemas: Schemas | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every annotated RPC, and of `extra_paths` (the composite resources, whose
    schemas refer to the same `schemas`)."""
    schemas = schemas or Schemas(catalog.comments)
    paths: dict[str, dict[str, Any]] = {}
    bound = [(rpc, binding) for rpc in catalog.rpcs for binding in rpc.bindings]
    for rpc in catalog.rpcs:
        for index, binding in enumerate(rpc.bindings):
            entry = operation(schemas, rpc, binding, primary=index == 0)
            links = _links(schemas, rpc, bound)
            if links:
                entry["responses"]["200"]["links"] = links
            paths.setdefault(binding.template.openapi_path, {})[binding.verb] = entry
    for path, operations in (extra_paths or {}).items():
        paths.setdefault(path, {}).update(operations)
    tags = [
        {"name": service.name, "description": catalog.comment(service.full_name)}
        for service in {rpc.service.full_name: rpc.service for rpc in catalog.rpcs}.values()
    ]
    schemas.components.setdefault("Problem", PROBLEM_SCHEMA)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Äldre direkt API", "version": "v1", "description": DESCRIPTION},
        "tags": [
            *tags,
            {"name": "Composite", "description": "Views the front ends need, over several services."},
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "responses": {
                "Problem": {
                    "description": "An error, as problem+json.",
                    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
            },
            "parameters": _HEADER_PARAMETERS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    }


def for_swagger_ui(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document written as OpenAPI 3.0 for the documentation page, whose bundled Swagger UI reads no 3.1:
    a $ref with keywords beside it becomes an allOf, and the links' extractors are left out."""

    def convert(node: Any) -> Any:
        if isinstance(node, dict):
            converted = {key: convert(value) for key, value in node.items() if key != "links"}
            if "$ref" in converted and len(converted) > 1:
                ref = converted.pop("$ref")
                return {"allOf": [{"$ref": ref}], **converted}
            return converted
        if isinstance(node, list):
            return [convert(value) for value in node]
        return node

    result: dict[str, Any] = convert(document)
    result["openapi"] = DOCS_OPENAPI_VERSION
    return result


def problem_titles() -> dict[int, str]:
    return {status: title_of(status) for status in _COMMON_ERRORS}
