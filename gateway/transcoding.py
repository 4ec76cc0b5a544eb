"""HTTP/JSON ⇄ protobuf for one annotated RPC, with the protobuf JSON mapping (`json_format`).

A request is assembled from the body (`body: "*"`: the whole request but the path's fields; `body: "x"`:
the field x), the path's variables and the query parameters (every other field: repeated ones given
again, nested ones as `a.b=`), then parsed once. Field names are the proto names (`person_number`); the
lowerCamelCase JSON names are accepted too. Answers use the proto names and carry every field, defaults
included, so a client never has to know protobuf's rule of leaving them out.

Headers map onto fields the same way for every RPC: `Idempotency-Key` is the `request_id` of requests that
have one, `If-Match` the etag of requests that carry one, and an answer's etag is its `ETag`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.catalog import HttpBinding, Rpc, message_class
from gateway.problems import FieldOrigins, invalid

REQUEST_ID = "request_id"
ETAG = "etag"
# Well-known types whose JSON form is one string (or number, or bool) rather than an object.
_STRING_LIKE = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.BoolValue",
}
_BOOLS = {"true": True, "false": False}
_CAMEL = re.compile(r"_([a-z0-9])")


# An RPC answering with this message answers with a file (its data, in its content_type), not JSON.
HTTP_BODY = "google.api.HttpBody"


def _lookup(message: Descriptor) -> dict[str, FieldDescriptor]:
    table: dict[str, FieldDescriptor] = {}
    for item in message.fields:
        table[item.name] = item
        table[item.json_name] = item
    return table


_LOOKUPS: dict[str, dict[str, FieldDescriptor]] = {}


def field_named(message: Descriptor, name: str) -> FieldDescriptor | None:
    """A field by its proto or JSON name."""
    table = _LOOKUPS.get(message.full_name)
    if table is None:
        table = _LOOKUPS[message.full_name] = _lookup(message)
    return table.get(name)


def message_of(item: FieldDescriptor) -> Descriptor:
    """The message type of a message field."""
    message = item.message_type
    assert message is not None, item.full_name
    return message


def enum_of(item: FieldDescriptor) -> EnumDescriptor:
    enum = item.enum_type
    assert enum is not None, item.full_name
    return enum


def is_map(item: FieldDescriptor) -> bool:
    return item.type == FieldDescriptor.TYPE_MESSAGE and message_of(item).GetOptions().map_entry


def is_repeated(item: FieldDescriptor) -> bool:
    return bool(item.is_repeated)


def _etag_path(message: Descriptor, body: str) -> tuple[str, ...] | None:
    """Where a message carries the etag of what it reads or changes: its own `etag`, that of the body's
    message, or that of its first message field with one."""
    if ETAG in message.fields_by_name:
        return (ETAG,)
    candidates = [message.fields_by_name[body]] if body and body != "*" else []
    candidates += [f for f in message.fields if f.type == FieldDescriptor.TYPE_MESSAGE]
    for item in candidates:
        if item.type != FieldDescriptor.TYPE_MESSAGE or is_repeated(item):
            continue
        inner = message_of(item).fields_by_name.get(ETAG)
        if inner is not None and inner.type == FieldDescriptor.TYPE_STRING:
            return (item.name, ETAG)
    return None


def parse_if_match(value: str) -> str | None:
    """The entity tag of an If-Match header (the first when several); None for "*"."""
    first = value.split(",")[0].strip()
    if first == "*" or not first:
        return None
    first = first.removeprefix("W/")
    if len(first) >= 2 and first.startswith('"') and first.endswith('"'):
        first = first[1:-1]
    return first


def _snake_to_camel(path: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), path)


def _set(target: dict[str, Any], keys: Sequence[str], value: Any, *, append: bool) -> None:
    for key in keys[:-1]:
        nested = target.setdefault(key, {})
        if not isinstance(nested, dict):
            nested = target[key] = {}
        target = nested
    last = keys[-1]
    if append:
        existing = target.setdefault(last, [])
        if isinstance(existing, list):
            existing.append(value)
        else:
            target[last] = [existing, value]
    else:
        target[last] = value


def scalar_from_text(item: FieldDescriptor, text: str, name: str) -> Any:
    """A query or path value as the JSON value the mapping expects for the field."""
    if item.type == FieldDescriptor.TYPE_BOOL:
        if text.lower() not in _BOOLS:
            raise invalid([(name, "must be true or false")], FieldOrigins(body=""))
        return _BOOLS[text.lower()]
    if item.type == FieldDescriptor.TYPE_MESSAGE:
        full_name = message_of(item).full_name
        if full_name == "google.protobuf.BoolValue":
            if text.lower() not in _BOOLS:
                raise invalid([(name, "must be true or false")], FieldOrigins(body=""))
            return _BOOLS[text.lower()]
        if full_name == "google.protobuf.FieldMask":
            # The JSON mapping writes masks in lowerCamelCase; the proto names people type are taken too.
            return ",".join(_snake_to_camel(part.strip()) for part in text.split(",") if part.strip())
    return text


@dataclass(frozen=True)
class Transcoder:
    """How one HTTP binding of an RPC becomes a request, and its answer JSON."""

    rpc: Rpc
    binding: HttpBinding
    path_fields: frozenset[str]
    # Top-level fields bound by the path, with the path parameters OpenAPI names them by.
    path_parameters: Mapping[str, tuple[str, ...]]
    has_request_id: bool
    etag_in_request: tuple[str, ...] | None
    etag_in_response: tuple[str, ...] | None
    # Every path variable is a string field: a request of the path alone can be filled in directly.
    path_only: bool

    @classmethod
    def of(cls, rpc: Rpc, binding: HttpBinding) -> Transcoder:
        request = rpc.method.input_type
        parameters: dict[str, tuple[str, ...]] = {}
        for parameter in binding.template.parameters:
            key = parameter.variable.field_path
            parameters[key] = (*parameters.get(key, ()), parameter.name)
        request_id = request.fields_by_name.get(REQUEST_ID)
        return cls(
            rpc=rpc,
            binding=binding,
            path_fields=frozenset(v.field_path for v in binding.template.variables),
            path_parameters=parameters,
            has_request_id=request_id is not None and request_id.type == FieldDescriptor.TYPE_STRING,
            etag_in_request=_etag_path(request, binding.body),
            etag_in_response=_etag_path(rpc.method.output_type, ""),
            path_only=all(
                _leaf(request, v.fields).type == FieldDescriptor.TYPE_STRING
                for v in binding.template.variables
            ),
        )

    def origins(self, *, idempotency_key: bool, if_match: bool) -> FieldOrigins:
        headers: dict[str, str] = {}
        if idempotency_key and self.has_request_id:
            headers[REQUEST_ID] = "Idempotency-Key"
        if if_match and self.etag_in_request is not None:
            headers[".".join(self.etag_in_request)] = "If-Match"
        return FieldOrigins(body=self.binding.body, path=self.path_parameters, headers=headers)

    # ---- the request ------------------------------------------------------------------------------------

    def _query_field(self, name: str) -> tuple[list[str], FieldDescriptor]:
        """The dotted query parameter's proto names and leaf field; a 400 when it names none the query
        may set."""
        message: Descriptor | None = self.rpc.method.input_type
        keys: list[str] = []
        item: FieldDescriptor | None = None
        parts = name.split(".")
        for index, part in enumerate(parts):
            item = field_named(message, part) if message is not None else None
            if item is None:
                raise invalid([(name, "is not a parameter of this method")], FieldOrigins(body=""))
            keys.append(item.name)
            last = index == len(parts) - 1
            if last:
                break
            if item.type != FieldDescriptor.TYPE_MESSAGE or is_repeated(item) or is_map(item):
                raise invalid([(name, "is not a parameter of this method")], FieldOrigins(body=""))
            message = message_of(item)
        assert item is not None
        dotted = ".".join(keys)
        if dotted in self.path_fields or any(dotted.startswith(p + ".") for p in self.path_fields):
            raise invalid([(name, "is given in the path")], FieldOrigins(body=""))
        if self.binding.body == "*" or (self.binding.body and keys[0] == self.binding.body):
            raise invalid([(name, "is sent in the body")], FieldOrigins(body=""))
        if is_map(item) or (
            item.type == FieldDescriptor.TYPE_MESSAGE and message_of(item).full_name not in _STRING_LIKE
        ):
            raise invalid([(name, "is a message: give its fields, as name.field=")], FieldOrigins(body=""))
        return keys, item

    def request(
        self,
        *,
        path_values: Mapping[str, str],
        query: Sequence[tuple[str, str]],
        body: Any,
        idempotency_key: str | None,
        if_match: str | None,
    ) -> Message:
        """The request message; ProblemError (400) naming the field when it cannot be made."""
        if body is None and not query and idempotency_key is None and if_match is None and self.path_only:
            return self._from_path(path_values)
        origins = self.origins(idempotency_key=idempotency_key is not None, if_match=if_match is not None)
        data: dict[str, Any]
        if self.binding.body == "*":
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise invalid([("request", "the body must be a JSON object")], origins)
            data = body
        elif self.binding.body:
            data = {} if body is None else {self.binding.body: body}
        else:
            data = {}
        for name, text in query:
            keys, item = self._query_field(name)
            _set(data, keys, scalar_from_text(item, text, name), append=is_repeated(item))
        request = self.rpc.method.input_type
        for field_path, text in path_values.items():
            keys = field_path.split(".")
            leaf = _leaf(request, keys)
            _set(data, keys, scalar_from_text(leaf, text, field_path), append=False)
        if idempotency_key is not None and self.has_request_id:
            sent = data.get(REQUEST_ID)
            if sent not in (None, "", idempotency_key):
                raise invalid([(REQUEST_ID, "differs from the Idempotency-Key header")], origins)
            data[REQUEST_ID] = idempotency_key
        if if_match is not None and self.etag_in_request is not None:
            tag = parse_if_match(if_match)
            if tag is not None:
                _set(data, self.etag_in_request, tag, append=False)
        message = self.rpc.request_class()
        try:
            json_format.ParseDict(data, message)
        except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError):
            field_path, problem_text = diagnose(request, data)
            raise invalid([(field_path, problem_text)], origins) from None
        return message

    def _from_path(self, path_values: Mapping[str, str]) -> Message:
        """A request of the path's string fields only (a GET of a resource), made without the JSON mapping:
        the common read, at a fraction of the cost."""
        message = self.rpc.request_class()
        for field_path, text in path_values.items():
            target: Any = message
            keys = field_path.split(".")
            for key in keys[:-1]:
                target = getattr(target, key)
            setattr(target, keys[-1], text)
        return message

    # ---- the answer -------------------------------------------------------------------------------------

    def etag_of(self, response: Message) -> str | None:
        if self.etag_in_response is None:
            return None
        current: Any = response
        for key in self.etag_in_response[:-1]:
            if not current.HasField(key):
                return None
            current = getattr(current, key)
        value = getattr(current, self.etag_in_response[-1])
        return str(value) if value else None


def _leaf(message: Descriptor, keys: Sequence[str]) -> FieldDescriptor:
    current = message
    item = current.fields_by_name[keys[0]]
    for key in keys[1:]:
        current = message_of(item)
        item = current.fields_by_name[key]
    return item


def response_document(message: Message) -> dict[str, Any]:
    document: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return document


def response_json(message: Message) -> bytes:
    return json.dumps(response_document(message), ensure_ascii=False, separators=(",", ":")).encode()


def read_json(body: bytes) -> Any:
    """The request body's JSON; None for an empty body; a 400 for anything else."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise invalid([("request", "the body is not valid JSON")]) from None


# ---- finding the field that failed -------------------------------------------------------------------


def _path_join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_one(item: FieldDescriptor, value: Any) -> str | None:
    """Why the mapping refuses a value for one field, or None when it takes it."""
    holder = _holder(item)
    try:
        json_format.ParseDict({item.name: value}, holder)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as error:
        return _describe(item, value, error)
    return None


def _holder(item: FieldDescriptor) -> Message:
    """An empty message of the field's own message type, to try one value in."""
    owner = item.containing_type
    assert owner is not None
    return message_class(owner)()


def _describe(item: FieldDescriptor, value: Any, error: Exception) -> str:
    """A sentence about the value expected; protobuf's own message names internal types, so it is not used."""
    if isinstance(error, RecursionError):
        return "is nested too deeply"
    expected = _expected(item)
    if is_repeated(item) and not is_map(item) and not isinstance(value, list):
        return f"must be an array of {expected}"
    return f"must be {expected}"


def _expected(item: FieldDescriptor) -> str:
    kind = item.type
    if is_map(item):
        return "an object"
    if kind == FieldDescriptor.TYPE_ENUM:
        return "one of " + ", ".join(v.name for v in enum_of(item).values)
    if kind == FieldDescriptor.TYPE_BOOL:
        return "true or false"
    if kind in (FieldDescriptor.TYPE_STRING,):
        return "a string"
    if kind == FieldDescriptor.TYPE_BYTES:
        return "base64 text"
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return "a number"
    if kind == FieldDescriptor.TYPE_MESSAGE:
        name = message_of(item).full_name
        return {
            "google.protobuf.Timestamp": "an RFC 3339 time, e.g. 2026-03-01T09:30:00Z",
            "google.protobuf.Duration": 'a duration in seconds, e.g. "1.5s"',
            "google.protobuf.FieldMask": 'field paths separated by commas, e.g. "mailbox,phoneHours"',
        }.get(name, "an object")
    bits = 64 if kind in _SIXTY_FOUR else 32
    unsigned = kind in _UNSIGNED
    return f"a{'n unsigned' if unsigned else ''} {bits}-bit integer"


_SIXTY_FOUR = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_UNSIGNED = {
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
}


def diagnose(message: Descriptor, data: Any, prefix: str = "", depth: int = 0) -> tuple[str, str]:
    """The first field of `data` the mapping refuses, with why; walks the message only after a failure."""
    if not isinstance(data, dict):
        return prefix or "request", "must be a JSON object"
    if depth > 32:
        return prefix or "request", "is nested too deeply"
    for key, value in data.items():
        item = field_named(message, key) if isinstance(key, str) else None
        if item is None:
            return _path_join(prefix, str(key)), "is not a field of this message"
        here = _path_join(prefix, item.name)
        plain_message = (
            item.type == FieldDescriptor.TYPE_MESSAGE
            and not is_map(item)
            and not message_of(item).full_name.startswith("google.protobuf.")
        )
        if plain_message and value is not None:
            if is_repeated(item):
                if not isinstance(value, list):
                    return here, "must be an array of objects"
                for index, element in enumerate(value):
                    found = diagnose(message_of(item), element, f"{here}[{index}]", depth + 1)
                    if found[1]:
                        return found
                continue
            found = diagnose(message_of(item), value, here, depth + 1)
            if found[1]:
                return found
            continue
        why = _check_one(item, value)
        if why is not None:
            return here, why
    if prefix:
        return prefix, ""
    return "request", "is not a valid request of this method"
