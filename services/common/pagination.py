"""Opaque page tokens (AIP-158): signed, bound to the query and the caller they continue.

A token carries the position after the last item returned and a fingerprint of the query's filters and of
the caller; it is signed with the service's key (HMAC-SHA256), so a token made or changed by hand, one cut
short, or one of another service is refused before anything in it is read. A token of another query or
another caller (one citizen's token sent by another) is refused too, instead of giving a wrong page. The
position is still checked for its type before it reaches a query: the signature proves where a token
came from, not that an older version of the service wrote the same shape.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Tokens this service writes stay far below this; anything longer is refused unread.
MAX_TOKEN_CHARS = 2048
MIN_KEY_BYTES = 32
_SIGNATURE_BYTES = 18
_MAX_TEXT_POSITION = 512
_INT64 = range(-(2**63), 2**63)


class PagedRequest(Protocol):
    @property
    def page_size(self) -> int: ...

    @property
    def page_token(self) -> str: ...


class PageOwner(Protocol):
    """Whose pages these are: a caller (services.common.auth.Caller has both)."""

    @property
    def subject(self) -> str: ...

    @property
    def person_number(self) -> str | None: ...


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


def query_fingerprint(query: Mapping[str, Any], owner: PageOwner | None) -> str:
    scope = {"query": query, "owner": [owner.subject, owner.person_number or ""] if owner else None}
    canonical = json.dumps(scope, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _refused() -> InvalidArgument:
    return InvalidArgument.field("page_token", "is not a page token this service issued for this query")


class PageTokens:
    """Makes and checks the page tokens of one service.

    The first key signs; every key verifies, so a key can be rotated without breaking the pages clients
    are in the middle of: add the new key first, and drop the old one once its tokens are no longer used.
    """

    def __init__(self, keys: Sequence[bytes], *, service: str):
        if not keys or any(len(key) < MIN_KEY_BYTES for key in keys):
            raise ValueError(f"a page-token key needs at least {MIN_KEY_BYTES} bytes")
        self._keys = tuple(keys)
        self.service = service

    @staticmethod
    def _signature(key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def _signed_by_us(self, payload: bytes, sent: bytes) -> bool:
        return any(hmac.compare_digest(sent, self._signature(key, payload)) for key in self._keys)

    def sign(self, fingerprint: str, position: Any) -> str:
        payload = json.dumps(
            {"s": self.service, "q": fingerprint, "a": position}, separators=(",", ":"), ensure_ascii=True
        ).encode("ascii")
        return f"{_b64encode(payload)}.{_b64encode(self._signature(self._keys[0], payload))}"

    def open(self, token: str, fingerprint: str) -> Any:
        """The position in a token of this service for this query; InvalidArgument otherwise."""
        if len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise _refused()
        encoded, dot, signature = token.partition(".")
        if not dot:
            raise _refused()
        try:
            payload, sent = _b64decode(encoded), _b64decode(signature)
        except (binascii.Error, ValueError):
            raise _refused() from None
        if not self._signed_by_us(payload, sent):
            raise _refused()
        try:
            decoded = json.loads(payload)
        except (ValueError, RecursionError):
            raise _refused() from None
        if not isinstance(decoded, dict) or decoded.get("s") != self.service:
            raise _refused()
        if decoded.get("q") != fingerprint:
            raise InvalidArgument.field(
                "page_token", "belongs to a different query; send the same filters as the first page"
            )
        return decoded.get("a")

    def request(
        self, request: PagedRequest, query: Mapping[str, Any], *, owner: PageOwner | None
    ) -> PageRequest:
        """The page a List request asks for: page_size checked (default 50; above 1000 lowered to
        1000, as AIP-158 has it) and page_token opened for this query and owner."""
        return self.page(request.page_size, request.page_token, query, owner=owner)

    def page(
        self, page_size: int, page_token: str, query: Mapping[str, Any], *, owner: PageOwner | None
    ) -> PageRequest:
        if page_size < 0:
            raise InvalidArgument.field("page_size", "must not be negative")
        size = DEFAULT_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)
        fingerprint = query_fingerprint(query, owner)
        after = self.open(page_token, fingerprint) if page_token else None
        return PageRequest(size=size, after=after, query=fingerprint, tokens=self)


def development_key(service: str) -> bytes:
    """The key of local runs and tests, the same for every process of a service. Never for production,
    where the settings refuse to start without a key of the operator's."""
    return hashlib.sha256(f"aldredirekt development page tokens: {service}".encode()).digest()


@dataclass(frozen=True)
class PageRequest:
    """A validated page: how many items, and the position (e.g. the last key) to continue after."""

    size: int
    after: Any
    query: str
    tokens: PageTokens

    # The position comes back from the client, so its shape is checked before it reaches a query.

    def after_text(self) -> str | None:
        if self.after is None or _is_text(self.after):
            return self.after  # type: ignore[no-any-return]
        raise _refused()

    def after_int(self) -> int | None:
        if self.after is None or _is_int(self.after):
            return self.after  # type: ignore[no-any-return]
        raise _refused()

    def after_text_and_int(self) -> tuple[str, int] | None:
        if self.after is None:
            return None
        if (
            isinstance(self.after, list)
            and len(self.after) == 2
            and _is_text(self.after[0])
            and _is_int(self.after[1])
        ):
            return self.after[0], self.after[1]
        raise _refused()

    def after_text_pair(self) -> tuple[str, str] | None:
        if self.after is None:
            return None
        if isinstance(self.after, list) and len(self.after) == 2 and all(_is_text(v) for v in self.after):
            return self.after[0], self.after[1]
        raise _refused()

    def next_token(self, last_position: Any, *, more: bool) -> str:
        """The token for the page after this one, or "" when there is none."""
        if not more:
            return ""
        return self.tokens.sign(self.query, last_position)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in _INT64


def _is_text(value: object) -> bool:
    if not isinstance(value, str) or len(value) > _MAX_TEXT_POSITION:
        return False
    try:
        value.encode("utf-8")  # a lone surrogate cannot be sent to a database
    except UnicodeEncodeError:
        return False
    return True
