"""Domain errors: what went wrong, in the terms a caller can act on.

Handlers and domain models raise these; they import no transport. `services.common.status` is the one
place that turns them into gRPC status with google.rpc details.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ERROR_DOMAIN = "aldredirekt.stockholm.se"

# How much of a caller's own value an error may quote back: enough to recognise it, never so much that
# the error outgrows what a client accepts in its trailers.
QUOTE_LIMIT = 40


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A value as an error message quotes it: its repr, cut to a short prefix when it is long."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """An error whose cause the caller can act on. `reason` is a stable UPPER_SNAKE_CASE word."""

    default_reason = "FAILED_PRECONDITION"

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Iterable[FieldViolation], *, reason: str | None = None):
        self.violations = list(violations)
        if not self.violations:
            raise ValueError("InvalidArgument needs at least one field violation")
        message = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(message, reason=reason)

    @classmethod
    def field(cls, field: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        return cls([FieldViolation(field, description)], reason=reason)


class NotFound(DomainError):
    default_reason = "NOT_FOUND"

    def __init__(self, resource_name: str, *, message: str | None = None):
        super().__init__(message or f"{resource_name} was not found", metadata={"resource": resource_name})
        self.resource_name = resource_name


class AlreadyExists(DomainError):
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    default_reason = "FAILED_PRECONDITION"


class StaleEtag(DomainError):
    default_reason = "STALE_ETAG"

    def __init__(self, resource_name: str):
        super().__init__(
            f"{resource_name} was changed since it was read; read it again and retry",
            metadata={"resource": resource_name},
        )


class PermissionDenied(DomainError):
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    default_reason = "UNAUTHENTICATED"


class Unavailable(DomainError):
    default_reason = "UNAVAILABLE"
