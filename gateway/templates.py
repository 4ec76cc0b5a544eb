"""Path templates of `google.api.http` rules (`/api/v1/{name=cases/*}:forward`): parsed once, matched against
request paths, and written out as OpenAPI paths.

Syntax (google/api/http.proto):

    Template = "/" Segments [ ":" Verb ] ;  Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;  Variable = "{" FieldPath [ "=" Segments ] "}" ;

A `*` matches one path segment, `**` any number; neither takes a ":", so that `cases/12:forward` is never
read as the case "12:forward". Values are matched on the raw path and percent-decoded afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_LITERAL = re.compile(r"[A-Za-z0-9._~-]+")
_FIELD_PATH = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*")
_ONE_SEGMENT = "[^/:]+"
_ANY_SEGMENTS = "[^:]+"


class TemplateError(ValueError):
    """A path template the gateway cannot serve."""


@dataclass(frozen=True)
class Variable:
    """`{unit.name=units/*}`: the request field it fills and the segments it matches."""

    field_path: str
    segments: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.field_path.split("."))


@dataclass(frozen=True)
class PathParameter:
    """A path parameter as OpenAPI names it: one wildcard segment of a variable."""

    name: str
    variable: Variable


@dataclass(frozen=True)
class PathTemplate:
    text: str
    parts: tuple[str | Variable, ...]
    verb: str
    regex: re.Pattern[str]
    openapi_path: str
    parameters: tuple[PathParameter, ...]

    @property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(part for part in self.parts if isinstance(part, Variable))

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The decoded value of each variable (by field path) when the raw path matches, else None."""
        found = self.regex.fullmatch(raw_path)
        if found is None:
            return None
        values = found.groups()
        return {
            variable.field_path: unquote(value, errors="strict")
            for variable, value in zip(self.variables, values, strict=True)
        }


def _split_top(text: str) -> list[str]:
    """Splits on "/" outside braces."""
    pieces: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "/" and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    return pieces


def _segment_regex(segment: str) -> str:
    if segment == "*":
        return _ONE_SEGMENT
    if segment == "**":
        return _ANY_SEGMENTS
    if not _LITERAL.fullmatch(segment):
        raise TemplateError(f"{segment!r} is not a literal path segment")
    return re.escape(segment)


def _singular(literal: str) -> str:
    """A parameter's name from the collection before it: "cases" → "case"."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", literal)
    return name[:-1] if name.endswith("s") and len(name) > 1 else name


def _check_field(message: Descriptor, field_path: str) -> None:
    current: Descriptor | None = message
    fields = field_path.split(".")
    for index, name in enumerate(fields):
        if current is None or name not in current.fields_by_name:
            raise TemplateError(f"{field_path!r} is no field of {message.full_name}")
        found: FieldDescriptor = current.fields_by_name[name]
        if found.is_repeated:
            raise TemplateError(f"{field_path!r} is repeated and cannot be bound to the path")
        last = index == len(fields) - 1
        if last and found.type == FieldDescriptor.TYPE_MESSAGE:
            raise TemplateError(f"{field_path!r} is a message and cannot be bound to the path")
        current = found.message_type if not last else None


def parse_template(text: str, request: Descriptor | None = None) -> PathTemplate:
    """The parsed template; `request` (the request message) checks that each variable names a field."""
    if not text.startswith("/"):
        raise TemplateError(f"{text!r} must start with /")
    body = text[1:]
    verb = ""
    last_slash = body.rfind("/")
    colon = body.rfind(":")
    if colon > last_slash and "}" not in body[colon:]:
        body, verb = body[:colon], body[colon + 1 :]
        if not _LITERAL.fullmatch(verb):
            raise TemplateError(f"{verb!r} is not a verb")
    parts: list[str | Variable] = []
    regex = ""
    openapi = ""
    parameters: list[PathParameter] = []
    used: set[str] = set()
    for piece in _split_top(body):
        regex += "/"
        openapi += "/"
        if piece.startswith("{"):
            if not piece.endswith("}"):
                raise TemplateError(f"{piece!r} is not a variable")
            field_path, _, pattern = piece[1:-1].partition("=")
            if not _FIELD_PATH.fullmatch(field_path):
                raise TemplateError(f"{field_path!r} is not a field path")
            if request is not None:
                _check_field(request, field_path)
            segments = tuple((pattern or "*").split("/"))
            variable = Variable(field_path=field_path, segments=segments)
            parts.append(variable)
            regex += "(" + "/".join(_segment_regex(s) for s in segments) + ")"
            written: list[str] = []
            for position, segment in enumerate(segments):
                if segment in ("*", "**"):
                    before = segments[position - 1] if position else field_path.split(".")[-1]
                    name = _singular(before)
                    while name in used:
                        name += "_id"
                    used.add(name)
                    parameters.append(PathParameter(name=name, variable=variable))
                    written.append("{" + name + "}")
                else:
                    written.append(segment)
            openapi += "/".join(written)
        else:
            if piece in ("*", "**"):
                raise TemplateError("a wildcard outside a variable binds no field")
            parts.append(piece)
            regex += _segment_regex(piece)
            openapi += piece
    if verb:
        regex += ":" + re.escape(verb)
        openapi += ":" + verb
    return PathTemplate(
        text=text,
        parts=tuple(parts),
        verb=verb,
        regex=re.compile(regex),
        openapi_path=openapi,
        parameters=tuple(parameters),
    )
